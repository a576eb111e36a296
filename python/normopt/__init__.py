"""normopt for Python: libnormopt's fused optimizers, normalization modules
and exporters on top of PyTorch.

`import normopt` loads libnormopt once (see normopt._library) and registers
its ops (torch.ops.normopt.*) and TorchScript classes
(torch.classes.normopt.*).
"""

from normopt import _library

library_path, build_info = _library.load()

from normopt import export, nn  # noqa: E402  (they need the library loaded)

__all__ = ["library_path", "build_info", "nn", "export"]
