"""examples/python/compare_optimizers.py: the main job from the Python
package (normopt.nn.StandardizedRegressor, normopt.optim.Adam/SGD)."""

import csv
import re
import subprocess
import sys

import pytest
from conftest import REPO, python_env, run

SCRIPT = REPO / "examples" / "python" / "compare_optimizers.py"
RUNS = [
    f"{opt}_lr{lr}_{kind}"
    for kind in ("raw", "standardized")
    for opt in ("adam", "sgd")
    for lr in ("0.01", "0.001")
]
ROW = re.compile(
    r"^(\w+_lr[\d.]+_(?:raw|standardized))\s+(\S+)\s+(\S+)\s+(\S+ \w+)\s+(\S+)$")


def env(**changes):
    """conftest's python_env, with matplotlib's non-interactive backend
    unless `changes` says otherwise; None removes a key."""
    return python_env(**{"MPLBACKEND": "Agg", **changes})


def table(stdout):
    """{run: (final MSE, vs optimum, seconds, forecast)} from the printed table."""
    rows = {}
    for line in stdout.splitlines():
        match = ROW.match(line.strip())
        if match:
            rows[match[1]] = (float(match[2]), match[3], float(match[5]), match[4])
    return rows


def history(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [float(r["train_mse"]) for r in csv.DictReader(f)]


def test_income_data_shows_the_seed_lesson(normopt_library, income_csv, tmp_path):
    out = tmp_path / "out"
    proc = run(
        [sys.executable, SCRIPT, "--data", income_csv, "--epochs", "100", "--out", out],
        env=env(),
    )
    assert f"data: {income_csv}, 20 rows, features [age, experience], target income" in (
        proc.stdout
    )
    rows = table(proc.stdout)
    assert list(rows) == RUNS, proc.stdout
    # Adam moves each weight by about lr per step: on incomes in dollars it
    # barely moves in 100 epochs; on standardized targets it reaches the
    # optimum's neighbourhood.
    raw, standardized = rows["adam_lr0.01_raw"][0], rows["adam_lr0.01_standardized"][0]
    assert standardized * 100 < raw, proc.stdout
    optimum = float(re.search(r"closed-form optimum MSE: (\S+)", proc.stdout)[1])
    assert optimum == pytest.approx(1.53363e6, rel=1e-5)  # least squares on [X, 1]
    assert standardized < 2 * optimum < raw / 100
    for name in RUNS:
        assert len(history(out / f"{name}.csv")) == 100
        assert (out / f"{name}.json").is_file()
    plot = out / "mse.png"
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_matches_the_cpp_job_on_the_builtin_data(normopt_library, example, tmp_path):
    """Without --data or NORMOPT_DATA_DIR both use the built-in synthetic
    incomes; with the same seed they start from the same weights and
    shuffles, so the histories agree up to float32 rounding (C++ uses
    closed-form gradients, Python autograd)."""
    epochs = "40"
    cpp = run(
        [example("compare_optimizers"), "--epochs", epochs, "--out", tmp_path / "cpp"],
        env=env(NORMOPT_DATA_DIR=None),
    )
    py = run(
        [sys.executable, SCRIPT, "--epochs", epochs, "--out", tmp_path / "py"],
        env=env(NORMOPT_DATA_DIR=None),
    )
    header = "data: built-in synthetic incomes, 20 rows, features [age, experience], target income"
    assert header in cpp.stdout and header in py.stdout
    optimum = re.compile(r"closed-form optimum MSE: \S+")
    assert optimum.search(py.stdout)[0] == optimum.search(cpp.stdout)[0]
    assert list(table(py.stdout)) == list(table(cpp.stdout)) == RUNS
    # normopt.diagnose and train::diagnose forecast each run alike.
    forecasts = {name: row[3] for name, row in table(py.stdout).items()}
    assert forecasts == {name: row[3] for name, row in table(cpp.stdout).items()}
    for name in RUNS:
        ours, theirs = history(tmp_path / "py" / f"{name}.csv"), history(
            tmp_path / "cpp" / f"{name}.csv"
        )
        assert len(ours) == len(theirs) == int(epochs)
        worst = max(abs(a - b) / b for a, b in zip(ours, theirs))
        assert worst < 1e-5, f"{name}: relative difference {worst:.3g}"


def test_bad_data_path_is_named(normopt_library, tmp_path):
    missing = tmp_path / "nothing.csv"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(missing), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=env(),
    )
    assert proc.returncode == 2, proc.stderr
    assert f"CSV error: cannot open '{missing}'" in proc.stderr  # the C++ reader's
    assert not (tmp_path / "out").exists()
