"""The programs' command lines (CLI11). The main job: bad input fails
cleanly, good input writes every run's history. The serving programs
(jit_load, deploy_predict): a bad flag is named before anything loads."""
import json
import os
import pathlib
import subprocess

import pytest
from conftest import library_path  # the build under test: $NORMOPT_LIBRARY's folder

BIN = library_path().parent / "examples" / "compare_optimizers"

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


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-0.1", "1e999", "0.01,nan", "x"])
def test_bad_learning_rates_are_refused_before_anything_is_written(tmp_path, value):
    out = tmp_path / "out"
    r = run("--lrs", value, "--epochs", "1", "--out", out)
    assert r.returncode != 0
    assert "expects a finite number above 0" in r.stderr, r.stderr
    assert len(r.stderr) < 300, r.stderr  # no range printed in 300 digits
    assert not out.exists()


def test_unknown_option_and_help():
    r = run("--bogus")
    assert r.returncode != 0 and "not expected: --bogus" in r.stderr
    h = run("--help")
    assert h.returncode == 0 and "--data FILE" in h.stdout and "--epochs N" in h.stdout


@pytest.mark.parametrize(
    "flag, value",
    [("--epochs", "2.5"), ("--epochs", "1e30"), ("--epochs", "99999999999999999999"),
     ("--epochs", "0"), ("--seed", "-1"), ("--batch-size", "-3"),
     ("--checkpoint-every", "x")],
)
def test_integer_flags_refuse_what_is_not_an_integer_in_range(tmp_path, flag, value):
    """Never truncated (2.5 -> 2), saturated (1e30) or wrapped (-1 -> 2^64 - 1)."""
    out = tmp_path / "out"
    r = run(flag, value, "--out", out)
    assert r.returncode != 0
    assert f"{flag}: expects an integer from" in r.stderr and f"got '{value}'" in r.stderr
    assert not out.exists()


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


def test_resume_from_checkpoints_equals_one_uninterrupted_run(tmp_path):
    """A run stopped after 7 epochs and resumed to 20 from its checkpoints
    gives the histories of a straight 20-epoch run, bit for bit."""
    common = ["--batch-size", 8, "--optimizers", "adam,sgd", "--lrs", "0.01"]
    straight = run("--epochs", 20, "--out", tmp_path / "straight", *common)
    assert straight.returncode == 0, straight.stderr
    ckpt = tmp_path / "ckpt"
    first = run("--epochs", 7, "--out", tmp_path / "first", "--checkpoint-dir", ckpt,
                "--checkpoint-every", 3, *common)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(
        f"{o}_lr0.01_{t}.pt" for o in ("adam", "sgd") for t in ("raw", "standardized"))
    resumed = run("--epochs", 20, "--out", tmp_path / "resumed", "--checkpoint-dir", ckpt,
                  "--resume", *common)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("resuming from") == 4

    def columns(folder):
        rows = {}
        for p in (tmp_path / folder).glob("*.csv"):
            lines = p.read_text().splitlines()[1:]
            # every column but wall_seconds (a clock reading)
            rows[p.stem] = [line.rsplit(",", 1)[0] for line in lines]
        return rows

    assert columns("resumed") == columns("straight")
    assert len(columns("resumed")["adam_lr0.01_raw"]) == 20


def test_resume_without_checkpoint_dir_is_refused(tmp_path):
    r = run("--resume", "--out", tmp_path / "out")
    assert r.returncode != 0 and "--resume needs --checkpoint-dir" in r.stderr
    assert not (tmp_path / "out").exists()


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


@pytest.mark.parametrize(
    "rows, says",
    [
        ("30,5,52000\n", "1 row(s) for 2 feature(s)"),
        ("30,5,48000\n41,9,48000\n25,2,48000\n50,20,48000\n", "the target is constant"),
    ],
    ids=["one_row", "constant_target"],
)
def test_degenerate_data_gets_a_diagnosis_and_gaps_not_ratios(tmp_path, rows, says):
    """On data a linear model fits exactly the optimum MSE is rounding noise:
    the table gives final - optimum, never a ratio to it (once "4.43e+30x")."""
    csv = tmp_path / "d.csv"
    csv.write_text("age,experience,income\n" + rows)
    r = run("--data", csv, "--epochs", 2, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "degenerate_data" in r.stdout and says in r.stdout
    table = r.stdout.split("vs optimum")[1]
    lines = [l for l in table.splitlines() if l.startswith(("adam_", "sgd_"))]
    assert len(lines) == 8
    for line in lines:
        versus = line.split()[2]
        assert versus.startswith("+") and not versus.endswith("x"), line
    assert "final MSE - closed-form optimum MSE" in r.stdout


def test_stream_equals_reading_the_file_whole(tmp_path):
    """--stream reads the file in parts each epoch; with a shuffle buffer of
    every row the runs are those of the whole-file job: the same histories
    (the losses summed part by part: 1e-9), the same columns."""
    import csv as csvlib
    import random
    rng = random.Random(4)
    data = tmp_path / "incomes.csv"
    with open(data, "w") as f:
        f.write("age,experience,income\n")
        for _ in range(3000):
            a, e = rng.uniform(20, 60), rng.uniform(0, 30)
            f.write(f"{a:.2f},{e:.2f},{1000 * a + 500 * e + 20000 + rng.gauss(0, 3000):.2f}\n")
    whole = run("--data", data, "--epochs", "3", "--out", tmp_path / "whole")
    streamed = run("--data", data, "--epochs", "3", "--stream", "--out", tmp_path / "stream")
    assert whole.returncode == 0, whole.stderr
    assert streamed.returncode == 0, streamed.stderr
    assert "3000 rows" in streamed.stdout and "--stream" in streamed.stdout
    names = sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "stream").iterdir()) and len(names) == 24
    for name in names:
        if not name.endswith(".csv"):
            continue
        a = list(csvlib.DictReader(open(tmp_path / "whole" / name)))
        b = list(csvlib.DictReader(open(tmp_path / "stream" / name)))
        assert a[0].keys() == b[0].keys() and len(a) == len(b) == 3
        for ra, rb in zip(a, b):
            for key in ("train_loss", "train_mse"):
                assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-9), (name, key)


def test_stream_refuses_full_batch_and_missing_data(tmp_path):
    r = run("--stream", "--out", tmp_path / "out")
    assert r.returncode != 0 and "--stream needs --data" in r.stderr
    data = tmp_path / "d.csv"
    data.write_text("a,y\n1,2\n3,4\n")
    r = run("--data", data, "--stream", "--batch-size", "0", "--out", tmp_path / "out")
    assert r.returncode != 0 and "--stream needs --batch-size >= 1" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("program", ["jit_load", "deploy_predict"])
@pytest.mark.parametrize(
    "args, says",
    [
        (["m.pt", "--cols", "0"], "--cols: Value 0 not in range 1 to 9223372036854775807"),
        (["m.pt", "--cols", "2.5"], "--cols: Value 2.5 not in range 1 to 9223372036854775807"),
        (["m.pt", "1", "x"], "Could not convert: values = 1,x"),
        (["m.pt", "--bogus"], "The following argument was not expected: --bogus"),
        ([], "is required"),
    ],
)
def test_serving_programs_refuse_bad_flags_before_loading(example, program, args, says):
    """jit_load and deploy_predict parse with CLI11 as compare_optimizers
    does: a bad flag is named before the (here missing) model is opened."""
    r = subprocess.run([str(example(program)), *args], capture_output=True, text=True, timeout=300)
    assert r.returncode not in (0, 1)  # 1 is a model that does not load
    assert says in r.stderr
    assert "m.pt" not in r.stderr


@pytest.mark.parametrize("program", ["jit_load", "deploy_predict"])
def test_serving_programs_help_lists_their_flags(example, program):
    r = subprocess.run(
        [str(example(program)), "--help"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0
    assert "--cols" in r.stdout and "values" in r.stdout
    assert ("--float64" in r.stdout) == (program == "jit_load")
