"""The 8-run comparison end to end: examples/compare_optimizers (C++,
normopt) against the same loop in Python with PyTorch
(benchmarks/workflow_python.py), same torch, data, epochs and batch size,
in one run. Reports the median of --repeats runs of each, both end to end
(process start to exit) and in-process (the 8 training runs alone).

    .venv/bin/python benchmarks/compare_workflow.py --data FILE [--repeats 5]
"""
import argparse
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def timed(cmd):
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, r


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    cpp_e2e, cpp_in, py_e2e, py_in = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.repeats):
            t, r = timed([str(ROOT / "build/examples/compare_optimizers"), "--data", a.data,
                          "--epochs", str(a.epochs), "--batch-size", str(a.batch_size),
                          "--out", tmp])
            cpp_e2e.append(t)
            cpp_in.append(float(re.search(r"all 8 runs: ([0-9.]+) s", r.stdout).group(1)))
            t, r = timed([sys.executable, str(ROOT / "benchmarks/workflow_python.py"), a.data,
                          str(a.epochs), str(a.batch_size)])
            py_e2e.append(t)
            py_in.append(float(r.stdout.strip()))
    m = statistics.median
    print(f"data {a.data}, {a.epochs} epochs, batch size {a.batch_size}, median of {a.repeats}")
    print("| measure | normopt (C++) | PyTorch (Python) | speed-up |")
    print("|---|---|---|---|")
    print(f"| end to end (process) | {m(cpp_e2e):.3f} s | {m(py_e2e):.3f} s | {m(py_e2e) / m(cpp_e2e):.1f}x |")
    print(f"| 8 training runs, in process | {m(cpp_in):.3f} s | {m(py_in):.3f} s | {m(py_in) / m(cpp_in):.1f}x |")


if __name__ == "__main__":
    main()
