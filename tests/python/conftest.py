"""Shared fixtures: libnormopt loaded once per session, paths of the build.

The library is $NORMOPT_LIBRARY when set (scripts/test.sh sets it), else
build/libnormopt.so of this checkout; it is loaded by `import normopt` from
this checkout's python/ folder. Without it every test is skipped with
the reason, so a Python-only checkout still collects cleanly.
"""

import os
import pathlib
import subprocess
import sys

import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parents[2]
# The package's sources (python/normopt) ahead of any installed copy, so the
# tests exercise this checkout.
sys.path.insert(0, str(REPO / "python"))


def pytest_configure(config):
    # TorchScript is deprecated upstream (torch.jit.* warn since 2.10), and
    # these tests exercise it on purpose: silence exactly those warnings.
    config.addinivalue_line(
        "filterwarnings",
        r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning",
    )


def library_path():
    """Where the tests load libnormopt from (may not exist)."""
    env = os.environ.get("NORMOPT_LIBRARY")
    return pathlib.Path(env) if env else REPO / "build" / "libnormopt.so"


@pytest.fixture(scope="session", autouse=True)
def normopt_library():
    """Loads libnormopt into this process once; returns its resolved path."""
    path = library_path()
    if not path.exists():
        pytest.skip(
            f"libnormopt not found at {path}: build it with "
            "`cmake --build build` or point NORMOPT_LIBRARY at it"
        )
    # Through the package, as users load it: normopt honours
    # $NORMOPT_LIBRARY, so the package's modules and the raw ops share this
    # one copy of the library.
    os.environ["NORMOPT_LIBRARY"] = str(path)
    import normopt  # noqa: F401  (loads the library, checks the torch)

    return path.resolve()


@pytest.fixture(scope="session")
def build_dir(normopt_library):
    """The CMake build folder holding the library (and examples/)."""
    return normopt_library.parent


@pytest.fixture(scope="session")
def example(build_dir):
    """example("jit_load") -> path of that built example, or skip."""

    def find(name):
        path = build_dir / "examples" / name
        if not path.exists():
            pytest.skip(
                f"{path} not built: build the examples "
                "(cmake --build build, NORMOPT_BUILD_EXAMPLES=ON)"
            )
        return path

    return find


def run(args, **kwargs):
    """Runs a command, returns the CompletedProcess; fails the test with its
    output when the exit status is not 0."""
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs
    )
    assert proc.returncode == 0, (
        f"{args} exited with {proc.returncode}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc


def run_python(code, *args, **kwargs):
    """Runs `code` in a fresh interpreter (sys.executable -c)."""
    return subprocess.run(
        [sys.executable, "-c", code, *[str(a) for a in args]],
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def python_env(**changes):
    """os.environ with this checkout's python/ on PYTHONPATH (NORMOPT_LIBRARY
    is set by the normopt_library fixture), for a fresh interpreter that
    imports normopt; a value of None removes a key."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO / "python"), env.get("PYTHONPATH")])
    )
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def parse_rows(text):
    """Lines of whitespace-separated numbers -> float64 tensor (rows, cols)."""
    rows = [[float(v) for v in line.split()] for line in text.splitlines() if line.strip()]
    return torch.tensor(rows, dtype=torch.float64)


INCOME_CSV = "multiple_linear_regression_dataset.csv"


@pytest.fixture(scope="session")
def income_csv():
    """$NORMOPT_DATA_DIR's 20-row income data (age, experience, income), or
    skip saying how to provide it."""
    root = os.environ.get("NORMOPT_DATA_DIR")
    path = pathlib.Path(root) / INCOME_CSV if root else None
    if path is None or not path.is_file():
        pytest.skip(
            f"income data not found: set NORMOPT_DATA_DIR to a folder holding {INCOME_CSV} "
            f"(columns age, experience, income); NORMOPT_DATA_DIR={root!r}"
        )
    return path
