"""The installed package (`pip install --no-build-isolation .`, which
scripts/test.sh runs): `import normopt` finds its own library, loads it once,
and refuses a library built for another torch with a message that says so."""

import json
import os
import pathlib
import shutil

import pytest
import torch
from conftest import REPO, run_python

from normopt import _library


def run_outside(code, **env):
    """Runs `code` in a fresh interpreter outside this checkout (in /), with
    os.environ less NORMOPT_LIBRARY and PYTHONPATH (so `import normopt`
    finds the installed package), plus `env`."""
    clean = {k: v for k, v in os.environ.items() if k not in ("NORMOPT_LIBRARY", "PYTHONPATH")}
    return run_python(code, cwd="/", env=dict(clean, **env))


def installed_package():
    """The normopt installed in this interpreter's site-packages, or skip."""
    proc = run_outside(
        "import importlib.util, sys; spec = importlib.util.find_spec('normopt'); "
        "print(spec.origin if spec else '')"
    )
    origin = proc.stdout.strip()
    if not origin or pathlib.Path(origin).resolve().is_relative_to(REPO / "python"):
        pytest.skip(
            "normopt is not installed in this interpreter: "
            "`pip install --no-build-isolation .` (scripts/test.sh does)"
        )
    return pathlib.Path(origin).parent


def refused_import(library):
    """`import normopt` from this checkout's python/ with `library` as
    $NORMOPT_LIBRARY, which must fail; returns its stderr."""
    proc = run_outside(
        "import normopt", NORMOPT_LIBRARY=str(library), PYTHONPATH=str(REPO / "python")
    )
    assert proc.returncode != 0
    return proc.stderr


def test_installed_package_loads_its_own_library_and_runs_an_op():
    package = installed_package()
    proc = run_outside(
        "import torch, normopt\n"
        "x = torch.tensor([[1.0], [3.0]], dtype=torch.float64)\n"
        "count, mean, m2 = torch.ops.normopt.moments(x, [0])\n"
        "print(normopt.library_path)\n"
        "print(count.item(), mean.item(), m2.item())\n"
        "print(normopt.build_info['torch'] == torch.__version__)\n"
    )
    assert proc.returncode == 0, proc.stderr
    path, values, same_torch = proc.stdout.splitlines()
    assert pathlib.Path(path) == package / "lib" / "libnormopt.so"
    assert values == "2 2.0 2.0"  # mean 2, m2 = 1 + 1
    assert same_torch == "True"


def test_package_version_is_the_cmake_project_s():
    # One source: pyproject.toml reads project(normopt VERSION ...) from
    # CMakeLists.txt, and the library records the same number.
    installed_package()
    import re

    cmake = re.search(r"project\(normopt VERSION ([0-9][0-9.]*)", (REPO / "CMakeLists.txt").read_text())
    proc = run_outside(
        "import importlib.metadata, normopt\n"
        "print(importlib.metadata.version('normopt'))\n"
        "print(normopt.build_info['normopt'])\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [cmake[1], cmake[1]]


def test_build_record_names_the_torch_it_was_built_against(normopt_library):
    info = _library.read_build_info(normopt_library)
    assert info is not None, f"no {_library.BUILD_INFO_NAME} beside {normopt_library}"
    assert info["torch"] == torch.__version__
    assert info["torch_git"] in ("", torch.version.git_version)


def test_library_for_another_torch_is_refused_naming_both(tmp_path, normopt_library):
    # A copy of the library whose record names another torch: refused before
    # it is loaded, with both versions and what to do.
    shutil.copy(normopt_library, tmp_path / "libnormopt.so")
    info = dict(_library.read_build_info(normopt_library), torch="2.99.0+cu999", torch_git="0" * 40)
    (tmp_path / _library.BUILD_INFO_NAME).write_text(json.dumps(info))
    stderr = refused_import(tmp_path / "libnormopt.so")
    assert "built for torch 2.99.0+cu999" in stderr
    assert f"this process runs torch {torch.__version__}" in stderr
    assert "pip install --no-build-isolation ." in stderr


def test_missing_library_is_named(tmp_path):
    stderr = refused_import(tmp_path / "nowhere.so")
    assert f"libnormopt not found at {tmp_path / 'nowhere.so'} ($NORMOPT_LIBRARY)" in stderr

