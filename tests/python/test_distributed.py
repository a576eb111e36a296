"""normopt::distributed across processes on loopback, through
scripts/launch.sh (torchrun): the statistics and the trained model equal one process on
all the data, and a rank that dies makes the others fail fast."""
import os
import pathlib
import socket
import subprocess
import time

import pytest
from conftest import library_path  # the build under test: $NORMOPT_LIBRARY's folder

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHECK = library_path().parent / "tests" / "dist_check"
LAUNCH = ROOT / "scripts" / "launch.sh"

pytestmark = pytest.mark.skipif(
    not CHECK.exists(),
    reason=f"{CHECK} not built: normopt was built without gloo headers (libgloo-dev)")


def launch(n, mode, timeout=120):
    start = time.monotonic()
    r = subprocess.run(["bash", str(LAUNCH), "-n", str(n), "--timeout", "90", str(CHECK), mode],
                       capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - start


@pytest.mark.parametrize("ranks", [2, 3])
def test_adapt_equals_one_process(ranks):
    r, _ = launch(ranks, "adapt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("adapt: count 1001") == ranks


@pytest.mark.parametrize("ranks", [2, 3])
def test_data_parallel_fit_equals_one_process(ranks):
    r, _ = launch(ranks, "fit")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("fit: max relative difference of parameters and losses") == ranks
    # The caller's callback still runs under distributed::fit, on every rank.
    assert r.stdout.count("user callback: 60 epoch ends, 60 steps, 60 measurements") == ranks


def spawn(n, *args, timeout=120):
    """n ranks of dist_check started directly (RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT), without torchrun, which would end the other ranks itself:
    what normopt does when a peer dies is seen only this way."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    procs = [subprocess.Popen([str(CHECK), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ, RANK=str(r), WORLD_SIZE=str(n),
                                                  MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                                                  OMP_NUM_THREADS="1"))
             for r in range(n)]
    results = [p.communicate(timeout=timeout) + (p.returncode,) for p in procs]
    return results, time.monotonic() - start


def test_dead_rank_makes_the_others_fail_fast():
    results, elapsed = spawn(2, "die")
    (_, err0, rc0), (_, err1, rc1) = results
    assert rc1 == 3 and "rank 1: exiting on purpose" in err1
    assert rc0 != 0 and "rank 0: error:" in err0, err0
    assert elapsed < 60, f"took {elapsed:.1f} s"


def test_csv_shards_give_the_whole_files_statistics(tmp_path):
    csv = tmp_path / "incomes.csv"
    rows = ["age,experience,income"] + [
        f"{22 + (i * 7) % 39},{(i * 13) % 21},{25000 + 300 * ((i * 7) % 39) + 17 * i}"
        for i in range(101)]
    csv.write_text("\n".join(rows) + "\n")
    r = subprocess.run(["bash", str(LAUNCH), "-n", "3", "--timeout", "90", str(CHECK), "csv", str(csv)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("of 101 rows") == 3
    assert r.stdout.count("equal the file's") == 3, r.stdout
    # Training on the byte-range shards: one process's History (< 1e-10).
    assert r.stdout.count("History (15 epochs) vs one process") == 3, r.stdout


def run_csv(csv, ranks=3, features=None):
    env = dict(os.environ)
    if features:
        env["NORMOPT_CHECK_FEATURES"] = features
    return subprocess.run(["bash", str(LAUNCH), "-n", str(ranks), "--timeout", "90", str(CHECK),
                           "csv", str(csv)],
                          capture_output=True, text=True, timeout=120, env=env)


def quoted_rows(n):
    """Rows whose note column is quoted and spans two lines (CRLF inside)."""
    return [f'{22 + i % 39},"note {i}\r\nsecond ""line""",{i % 21},{25000 + 17 * i}'
            for i in range(n)]


def test_csv_byte_ranges_handle_quoted_fields_spanning_lines(tmp_path):
    """Each rank reads only its bytes; cuts move past line breaks inside
    quotes, so the shards are still exactly the file's rows, without the
    whole-file fallback."""
    csv = tmp_path / "quoted.csv"
    csv.write_text("\n".join(["age,note,experience,income"] + quoted_rows(3000)) + "\n")
    r = run_csv(csv, features="age,experience")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("equal the file's") == 3, r.stdout
    assert "could not be split by bytes" not in r.stderr
    sizes = [int(line.split("rows [")[1].split(")")[0].split(", ")[1]) -
             int(line.split("rows [")[1].split(",")[0]) for line in r.stdout.splitlines()
             if "rows [" in line]
    assert min(sizes) > 900, sizes  # an even split by bytes


def test_csv_error_in_one_rank_range_is_named_on_every_rank(tmp_path):
    csv = tmp_path / "bad.csv"
    rows = ["age,experience,income"] + [f"{i % 50},{i % 21},{25000 + i}" for i in range(3000)]
    rows[2900] = "31,oops,40000"  # line 2901, in the last rank's range
    csv.write_text("\n".join(rows) + "\n")
    # Started directly: torchrun would end the other ranks once one exits.
    results, _ = spawn(3, "csv", str(csv))
    assert [rc for _, _, rc in results] == [3, 3, 3], results
    errors = [line for out, _, _ in results for line in out.splitlines()
              if "csv error" in line]
    assert len(errors) == 3, results
    messages = {line.split("csv error: ", 1)[1] for line in errors}
    assert len(messages) == 1, messages
    (message,) = messages
    assert f"CSV error in {csv} at line 2901, column 2" in message
    assert 'not a number: "oops"' in message


def test_csv_stray_quote_falls_back_to_whole_file_with_a_warning(tmp_path):
    """A '"' inside an unquoted field flips the quote parity, so a cut lands
    inside a quoted field; the rank before it fails, every rank reads the
    whole file instead (same rows) and says so."""
    csv = tmp_path / "stray.csv"
    rows = ["age,note,experience,income", '30,5" tall,1,30000'] + quoted_rows(3000)
    csv.write_text("\n".join(rows) + "\n")
    r = run_csv(csv, features="age,experience")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("equal the file's") == 3, r.stdout
    assert "could not be split by bytes" in r.stderr


@pytest.mark.parametrize("ranks", [2, 3])
def test_crashed_run_resumes_from_rank0_checkpoint(ranks, tmp_path):
    """Rank 0 alone writes the checkpoint; every rank resumes from it and the
    run (early stopping and ReduceLROnPlateau included) equals the one that
    never stopped."""
    r = subprocess.run(["bash", str(LAUNCH), "-n", str(ranks), "--timeout", "90", str(CHECK),
                        "resume", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("identical to the uninterrupted run 1") == ranks, r.stdout
    assert r.stdout.count("stopped early 1") == ranks, r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]


def test_main_job_under_launch_equals_one_process(tmp_path):
    """compare_optimizers under launch.sh: rank 0 alone reports and writes,
    and the final MSEs are those of one process."""
    main = library_path().parent / "examples" / "compare_optimizers"
    one = subprocess.run([str(main), "--epochs", "30", "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=120)
    two = subprocess.run(["bash", str(LAUNCH), "-n", "2", "--timeout", "90", str(main),
                          "--epochs", "30", "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=180)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert two.stdout.count("data: built-in synthetic incomes") == 1

    def finals(folder):
        import json
        return {p.stem: json.loads(p.read_text())["epochs"][-1]["train_mse"]
                for p in (tmp_path / folder).glob("*.json")}
    a, b = finals("one"), finals("two")
    assert len(a) == 8 and a.keys() == b.keys()
    for k in a:
        assert abs(a[k] - b[k]) <= 1e-5 * a[k], (k, a[k], b[k])
