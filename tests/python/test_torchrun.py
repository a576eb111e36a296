"""The main job under torchrun (the launcher that ships with torch): one
machine (--standalone), two "machines" meeting at a rendezvous endpoint
(--nnodes 2), and a rank killed with SIGKILL under --max-restarts 1, after
which the job resumes from its checkpoints and ends with the histories of a
run that was never interrupted."""
import csv
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import library_path  # the build under test

MAIN = library_path().parent / "examples" / "compare_optimizers"
TORCHRUN = pathlib.Path(sys.executable).parent / "torchrun"

pytestmark = pytest.mark.skipif(
    not (library_path().parent / "tests" / "dist_check").exists() or not MAIN.exists(),
    reason="normopt built without gloo headers (libgloo-dev) or without its examples")


def torchrun(*args, timeout=240, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([str(TORCHRUN), "--no-python", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, **kwargs)


def finish(proc, timeout=240):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def histories(folder):
    """Every run's History CSV without wall_seconds (the one column that
    depends on the machine's speed), as text rows."""
    result = {}
    for path in sorted(pathlib.Path(folder).glob("*.csv")):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        result[path.stem] = [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]
    return result


def finals(folder):
    return {p.stem: json.loads(p.read_text())["epochs"][-1]["train_mse"]
            for p in pathlib.Path(folder).glob("*.json")}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_standalone_two_ranks_equal_one_process(tmp_path):
    one = subprocess.run([str(MAIN), "--epochs", "30", "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    rc, out, err = finish(torchrun("--standalone", "--nproc-per-node", 2, MAIN,
                                   "--epochs", 30, "--out", tmp_path / "two"))
    assert rc == 0, err
    assert out.count("data: built-in synthetic incomes") == 1  # rank 0 alone reports
    a, b = finals(tmp_path / "one"), finals(tmp_path / "two")
    assert len(a) == 8 and a.keys() == b.keys()
    for k in a:
        assert abs(a[k] - b[k]) <= 1e-5 * a[k], (k, a[k], b[k])


def test_two_nodes_meet_at_a_rendezvous_endpoint(tmp_path):
    """Two torchrun agents, one process each, as on two machines:
    --nnodes 2 --rdzv-backend c10d --rdzv-endpoint HOST:PORT."""
    endpoint = f"127.0.0.1:{free_port()}"
    agents = [torchrun("--nnodes", 2, "--nproc-per-node", 1, "--rdzv-backend", "c10d",
                       "--rdzv-endpoint", endpoint, "--rdzv-id", "normopt-test",
                       MAIN, "--epochs", 30, "--out", tmp_path / f"node{i}")
              for i in range(2)]
    results = [finish(a) for a in agents]
    for rc, _, err in results:
        assert rc == 0, err
    # The rank-0 process wrote the histories, in its own node's --out folder.
    written = [tmp_path / f"node{i}" for i in range(2) if (tmp_path / f"node{i}").exists()]
    assert len(written) == 1
    one = subprocess.run([str(MAIN), "--epochs", "30", "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=120)
    a, b = finals(tmp_path / "one"), finals(written[0])
    assert len(a) == 8 and a.keys() == b.keys()
    for k in a:
        assert abs(a[k] - b[k]) <= 1e-5 * a[k], (k, a[k], b[k])


def worker_pid(marker, rank):
    """The pid of the compare_optimizers process of `rank` whose command
    line holds `marker`, or None."""
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (cmdline and cmdline[0].endswith(b"compare_optimizers")
                and marker.encode() in b" ".join(cmdline)
                and f"RANK={rank}".encode() in environ):
            return int(entry.name)
    return None


def test_rank_killed_is_restarted_and_resumes_to_the_same_histories(tmp_path):
    job = ["--epochs", 600, "--checkpoint-every", 25, "--resume"]
    # The uninterrupted run.
    rc, _, err = finish(torchrun("--standalone", "--nproc-per-node", 2, MAIN, *job,
                                 "--checkpoint-dir", tmp_path / "ckpt_a",
                                 "--out", tmp_path / "a"))
    assert rc == 0, err
    # The same run, with rank 1 killed once the first checkpoint is on disk.
    ckpt = tmp_path / "ckpt_b"
    proc = torchrun("--standalone", "--nproc-per-node", 2, "--max-restarts", 1, MAIN, *job,
                    "--checkpoint-dir", ckpt, "--out", tmp_path / "b")
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        if any(ckpt.glob("*.pt")):
            pid = worker_pid(str(ckpt), 1)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed = pid
        time.sleep(0.01)
    rc, out, err = finish(proc)
    assert killed is not None, "the job ended before a checkpoint was written: " + err
    assert rc == 0, err
    assert "resuming from" in out, out  # the restarted attempt resumed
    a, b = histories(tmp_path / "a"), histories(tmp_path / "b")
    assert len(a) == 8 and a.keys() == b.keys()
    for run in a:
        assert a[run] == b[run], run
