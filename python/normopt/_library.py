"""Finds and loads libnormopt, once per process.

The library is the package's own copy (normopt/lib/libnormopt.so, installed by
`pip install --no-build-isolation .`), or $NORMOPT_LIBRARY when set (a build
tree's build/libnormopt.so, as scripts/test.sh uses). Before loading, the
build's record (normopt_build_info.json beside the library) is compared with
the torch this process runs: a library built against another torch is refused
with a message that says which, instead of failing later on a missing symbol.
"""

import json
import os
import pathlib

import torch

_PACKAGE_LIBRARY = pathlib.Path(__file__).resolve().parent / "lib" / "libnormopt.so"
BUILD_INFO_NAME = "normopt_build_info.json"

_loaded = None  # (path, build_info) once loaded


def library_path():
    """The libnormopt this process loads: $NORMOPT_LIBRARY or the package's."""
    env = os.environ.get("NORMOPT_LIBRARY")
    return pathlib.Path(env).resolve() if env else _PACKAGE_LIBRARY


def read_build_info(path):
    """The build record beside library `path` (a dict), or None if absent."""
    record = pathlib.Path(path).parent / BUILD_INFO_NAME
    if not record.exists():
        return None
    with open(record, encoding="utf-8") as f:
        return json.load(f)


def check_torch(info, path):
    """Raises ImportError when `info` (a build record) names another torch."""
    if info is None:
        return
    built, running = info.get("torch"), torch.__version__
    built_git = info.get("torch_git")
    running_git = getattr(torch.version, "git_version", None)
    if built != running or (built_git and running_git and built_git != running_git):
        raise ImportError(
            f"normopt: {path} was built for torch {built} (git {built_git}), but this "
            f"process runs torch {running} (git {running_git}, {torch.__file__}). "
            "Rebuild normopt against this torch: `pip install --no-build-isolation .` "
            "in normopt's checkout, with this interpreter."
        )


def load():
    """Loads libnormopt into this process (once); returns (path, build_info)."""
    global _loaded
    if _loaded is not None:
        return _loaded
    path = library_path()
    if not path.exists():
        where = "$NORMOPT_LIBRARY" if os.environ.get("NORMOPT_LIBRARY") else "the package"
        raise ImportError(
            f"normopt: libnormopt not found at {path} ({where}). Install the package with "
            "`pip install --no-build-isolation .` in normopt's checkout, or point "
            "NORMOPT_LIBRARY at a built libnormopt.so."
        )
    info = read_build_info(path)
    check_torch(info, path)
    torch.ops.load_library(str(path))
    _loaded = (path, info)
    return _loaded
