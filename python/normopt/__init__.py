"""normopt for Python: libnormopt's fused optimizers, normalization modules
and exporters on top of PyTorch.

`import normopt` loads libnormopt once (see normopt._library) and registers
its ops (torch.ops.normopt.*) and TorchScript classes
(torch.classes.normopt.*).
"""

from normopt import _library

library_path, build_info = _library.load()

from normopt import data, nn, optim, train  # noqa: E402  (they need the library)
from normopt.forecast import diagnose, watch  # noqa: E402

__all__ = ["library_path", "build_info", "data", "nn", "optim", "train", "export",
           "forecast", "diagnose", "watch"]


def __getattr__(name):
    # normopt.export on first use: it is also a command (python -m
    # normopt.export), which must not find itself imported already.
    if name == "export":
        import importlib

        return importlib.import_module("normopt.export")
    raise AttributeError(f"module 'normopt' has no attribute {name!r}")
