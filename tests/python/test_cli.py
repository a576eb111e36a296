"""The main job's command line: bad input fails cleanly, good input writes
every run's history."""
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / "build" / "examples" / "compare_optimizers"

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built (run scripts/setup.sh)")


def run(*args):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_missing_file_exits_nonzero_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    r = run("--data", tmp_path / "nope.csv", "--out", out)
    assert r.returncode != 0
    assert "nope.csv" in r.stderr and "error" in r.stderr
    assert not out.exists()


def test_unknown_column_exits_nonzero_and_writes_nothing(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,y\n1,2,3\n4,5,6\n7,8,10\n")
    out = tmp_path / "out"
    r = run("--data", csv, "--target", "income", "--out", out)
    assert r.returncode != 0
    assert "income" in r.stderr and "\"y\"" in r.stderr
    assert not out.exists()


def test_unknown_option_and_help():
    r = run("--bogus")
    assert r.returncode != 0 and "unknown option '--bogus'" in r.stderr
    h = run("--help")
    assert h.returncode == 0 and "--data FILE" in h.stdout


def test_short_run_writes_eight_histories(tmp_path):
    out = tmp_path / "out"
    r = run("--epochs", 3, "--out", out)
    assert r.returncode == 0, r.stderr
    csvs = sorted(p.name for p in out.glob("*.csv"))
    assert len(csvs) == 8 and "adam_lr0.01_raw.csv" in csvs
    lines = (out / "sgd_lr0.001_standardized.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,train_mse,val_loss,val_mse,lr,wall_seconds"
    assert len(lines) == 4
    meta = json.loads((out / "adam_lr0.01_raw.json").read_text())
    assert meta["run"] == "adam_lr0.01_raw" and len(meta["epochs"]) == 3
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]


@pytest.mark.skipif(not os.environ.get("NORMOPT_DATA_DIR"), reason="NORMOPT_DATA_DIR not set")
def test_seed_data_adam_raw_stalls_standardized_converges(tmp_path):
    data = pathlib.Path(os.environ["NORMOPT_DATA_DIR"]) / "multiple_linear_regression_dataset.csv"
    if not data.exists():
        pytest.skip(f"{data} absent")
    out = tmp_path / "out"
    r = run("--data", data, "--target", "income", "--out", out)
    assert r.returncode == 0, r.stderr
    final = {p.stem: json.loads(p.read_text())["epochs"][-1]["train_mse"] for p in out.glob("*.json")}
    assert final["adam_lr0.01_raw"] > 1.7e9
    assert all(final[k] < 1.7e8 for k in final if k.endswith("_standardized"))
