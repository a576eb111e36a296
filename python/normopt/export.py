"""Serving a trained model on PyTorch's maintained path: torch.export, then
AOTInductor.

``aoti_package(model, example_inputs, path)`` exports ``model`` with
``torch.export.export`` (the batch dimension dynamic) and compiles it with
``torch._inductor.aoti_compile_and_package`` into one ``.pt2`` file: raw
features in, original units out. The graph may call normopt's ops (they have
meta kernels). The statistics ops (``standardize``, ``destandardize``,
``scale_from_variance``) are composites of ATen ops, so Inductor compiles
them into the package, which then runs with plain torch; ops with their own
kernels (the fused optimizer steps) stay calls, and such a package needs
libnormopt where it runs (C++: ``normopt::deploy::Predictor``, which links
it; Python: ``import normopt`` before ``load_package``). The package's
metadata lists them (``normopt.ops``). Compiling takes 10 to 30 seconds on
two cores (AOTInductor compiles C++).

From the command line, a checkpoint written by C++ ``fit()`` or
``torch::save(StandardizedRegressor)`` becomes a package::

    python -m normopt.export checkpoint.pt model.pt2 [--eps 1e-7] [--dtype float64]

TorchScript (``normopt::jit::export_pipeline``) still works and is tested,
but is deprecated upstream; see the README for which route to use when.
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import warnings
import zipfile

import torch

from normopt import _library
from normopt import nn as normopt_nn

_library.load()

__all__ = [
    "PredictInOriginalUnits",
    "aoti_package",
    "load_package",
    "read_metadata",
    "from_checkpoint",
    "main",
]

# Keys of the metadata every package carries (strings, as AOTInductor wants),
# from libnormopt (include/normopt/deploy/predictor.h, which checks them):
# the torch, the normopt version, the normopt ops the package calls, and the
# first input's dtype ("float64") and feature count (its last dimension).
(
    METADATA_TORCH,
    METADATA_VERSION,
    METADATA_OPS,
    METADATA_DTYPE,
    METADATA_FEATURES,
) = torch.ops.normopt.package_metadata_keys()


class PredictInOriginalUnits(torch.nn.Module):
    """``model.predict`` as ``forward``: what a package serves.

    ``StandardizedRegressor.forward`` answers in standardized units (what
    training needs); a served model answers in the data's units."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.predict(x)


def _normopt_ops(program):
    """The normopt ops the compiled package still calls: those left after
    decomposing the composites (in-place ops appear inside
    ``auto_functionalized`` nodes), sorted."""
    names = set()
    for node in program.run_decompositions().graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        target = node.target
        if "auto_functionalized" in str(target) and node.args:
            target = node.args[0]
        if str(target).startswith("normopt."):
            names.add(str(target).split(".")[1])
    return sorted(names)


def read_metadata(path):
    """The metadata of the package at ``path`` (a dict of strings), read from
    the archive without loading its compiled code."""
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(".wrapper_metadata.json"):
                return json.loads(archive.read(name))
    raise ValueError(f"'{path}' holds no AOTInductor model metadata")


def aoti_package(model, example_inputs, path, *, dynamic_batch=True):
    """Exports ``model`` and compiles it into the AOTInductor package ``path``.

    ``model``: a module whose ``forward`` is what should be served (wrap a
    ``StandardizedRegressor`` in :class:`PredictInOriginalUnits`, or pass it
    and it is wrapped). ``example_inputs``: a tuple of tensors (dtype and
    feature count are fixed by them; with ``dynamic_batch`` the first
    dimension of each may vary). The package is written next to ``path`` and
    renamed over it only when whole, so a failed compile leaves an existing
    file as it was. Returns ``path`` as a ``pathlib.Path``.
    """
    if isinstance(model, normopt_nn.StandardizedRegressor):
        model = PredictInOriginalUnits(model)
    if not isinstance(example_inputs, tuple) or not example_inputs or not all(
        isinstance(t, torch.Tensor) for t in example_inputs
    ):
        raise TypeError(
            "aoti_package: example_inputs must be a non-empty tuple of tensors, "
            f"e.g. (x,), got {type(example_inputs).__name__}"
        )
    # A strided example (a column slice of a table) breaks torch's
    # decompositions; the package serves contiguous inputs anyway (load_package
    # and deploy::Predictor make them so), so it is exported from those.
    example_inputs = tuple(t.contiguous() for t in example_inputs)
    path = pathlib.Path(path)
    if path.suffix != ".pt2":
        raise ValueError(f"aoti_package: the package path must end in .pt2, got '{path}'")
    if not path.parent.is_dir():
        raise ValueError(
            f"aoti_package: cannot write '{path}': the folder '{path.parent}' does not exist"
        )
    model = model.eval()
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim.DYNAMIC
        dynamic_shapes = tuple({0: batch} for _ in example_inputs)
    with torch.no_grad():
        program = torch.export.export(model, example_inputs, dynamic_shapes=dynamic_shapes)
    metadata = {
        METADATA_TORCH: torch.__version__,
        METADATA_VERSION: (_library.load()[1] or {}).get("normopt", ""),
        METADATA_OPS: ",".join(_normopt_ops(program)),
        METADATA_DTYPE: str(example_inputs[0].dtype).removeprefix("torch."),
        METADATA_FEATURES: str(example_inputs[0].shape[-1]),
    }
    # Written under its own name in a fresh folder beside `path` (the
    # archive's folder is named after the file; the file gets the umask's
    # mode), then renamed over `path`: never half a package at `path`.
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = staging / path.name
    try:
        torch._inductor.aoti_compile_and_package(
            program,
            package_path=str(tmp),
            # Dim.DYNAMIC from a 2-row example records "at least 2 rows";
            # one row is valid (and served correctly), so no lower bound.
            inductor_configs={
                "aot_inductor.metadata": metadata,
                "aot_inductor.check_lowerbound": False,
            },
        )
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
        staging.rmdir()
    return path


def load_package(path):
    """Loads an AOTInductor package written by :func:`aoti_package`.

    Returns the callable model (``model(x)``). Refuses, naming both versions,
    a package compiled with another torch than this process runs, and names
    the normopt ops a package needs when they are not registered.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_package: no package at '{path}'")
    # Checked before the compiled code is loaded: a package for another
    # torch, or one calling an op this process lacks, fails inside torch.
    try:
        metadata = read_metadata(path)
    except (zipfile.BadZipFile, ValueError) as error:
        raise ValueError(f"load_package: '{path}' is not an AOTInductor package ({error})") from None
    built = metadata.get(METADATA_TORCH)
    if built is not None and built != torch.__version__:
        raise RuntimeError(
            f"load_package: '{path}' was compiled with torch {built}, this process "
            f"runs torch {torch.__version__}; compile it again with this torch "
            "(python -m normopt.export ...)"
        )
    for op in filter(None, metadata.get(METADATA_OPS, "").split(",")):
        if not hasattr(torch.ops.normopt, op):
            raise RuntimeError(
                f"load_package: '{path}' calls normopt::{op}, which is not registered "
                "in this process: import normopt (or load libnormopt) first"
            )
    return _Served(torch._inductor.aoti_load_package(str(path)))


class _Served:
    """A loaded package whose inputs are made contiguous first: the compiled
    code assumes contiguous inputs and, unchecked, reads strided ones
    wrongly (``x[::2]``)."""

    def __init__(self, compiled):
        self._compiled = compiled

    def __call__(self, *args):
        return self._compiled(
            *(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)
        )

    def get_metadata(self):
        return self._compiled.get_metadata()

    def __getattr__(self, name):
        return getattr(self._compiled, name)


def from_checkpoint(path, *, eps=1e-7, dtype=None):
    """A ``normopt.nn.StandardizedRegressor`` over a ``torch.nn.Linear`` with
    the tensors of a C++ checkpoint: one written by ``fit()`` (its training
    record is ignored) or by ``torch::save`` of a ``StandardizedRegressor``
    whose regressor is a ``LinearRegressor``.

    ``eps``: the Normalization's smallest scale (C++ option ``eps``; the
    checkpoint holds statistics, not options). ``dtype``: the dtype of the
    weights and of the inputs it serves (default: the checkpoint's).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"from_checkpoint: no checkpoint at '{path}'")
    try:
        # C++ archives are TorchScript files; reading one is not a use of
        # TorchScript that torch's deprecation warning is about.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated")
            archive = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as error:
        raise ValueError(
            f"from_checkpoint: '{path}' is not a checkpoint written by normopt's C++ "
            f"fit() or torch::save ({str(error).splitlines()[0]})"
        ) from None
    state = {
        k: v
        for k, v in archive.state_dict().items()
        if k.split(".")[0] in ("normalization", "regressor", "target")
    }
    weight = state.get("regressor.weight")
    if weight is None or weight.dim() != 2:
        raise ValueError(
            f"from_checkpoint: '{path}' holds no linear regressor (regressor.weight "
            f"of shape [outputs, features]); found keys {sorted(state)}"
        )
    outputs, features = weight.shape
    bias = state.get("regressor.bias")
    has_bias = bias is not None and bias.numel() > 0
    if not has_bias:
        state.pop("regressor.bias", None)
    linear = torch.nn.Linear(features, outputs, bias=has_bias, dtype=weight.dtype)
    model = normopt_nn.StandardizedRegressor(
        linear, normalization=normopt_nn.Normalization(eps=eps)
    )
    model.load_state_dict(state)
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


def main(argv=None):
    """``python -m normopt.export CHECKPOINT PACKAGE.pt2``: see the module doc."""
    parser = argparse.ArgumentParser(
        prog="python -m normopt.export",
        description="Compile a C++ normopt checkpoint into an AOTInductor package "
        "(raw features in, original units out).",
    )
    parser.add_argument("checkpoint", help="written by C++ fit() or torch::save")
    parser.add_argument("package", help="the .pt2 file to write (replaced only when whole)")
    parser.add_argument("--eps", type=float, default=1e-7, help="Normalization eps (default 1e-7)")
    parser.add_argument(
        "--dtype", choices=["float32", "float64"], default=None,
        help="dtype served (default: the checkpoint's)",
    )
    args = parser.parse_args(argv)
    try:
        model = from_checkpoint(
            args.checkpoint, eps=args.eps,
            dtype=getattr(torch, args.dtype) if args.dtype else None,
        )
        features = model.regressor.in_features
        example = torch.zeros(2, features, dtype=model.regressor.weight.dtype)
        aoti_package(model, (example,), args.package)
    except (ValueError, FileNotFoundError, TypeError) as error:
        print(f"normopt.export: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.package} ({features} features, {example.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
