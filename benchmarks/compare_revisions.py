"""Two builds of normopt on the same machine in one run, interleaved: is the
newer one slower? For each build dir: the 8-run comparison
(examples/compare_optimizers, the seed workflow at 2000 epochs, batch 32), a
minibatch run (batch size 2: 10 steps per epoch) reported per optimizer step, both in
process (compare_optimizers' own "all 8 runs" time), and the optimizer step
benchmarks (benchmarks/bench_optim), every measure interleaved before/after in
ABBA order and reported as the median and the minimum of --repeats (on a noisy
machine the minimum is the steadier of the two).

    .venv/bin/python benchmarks/compare_revisions.py --before OLD/build --after build \
        --data FILE [--repeats 9]
"""
import argparse
import json
import re
import statistics
import subprocess
import tempfile


def in_process_seconds(build, data, epochs, batch_size, out):
    r = subprocess.run([f"{build}/examples/compare_optimizers", "--data", data,
                        "--epochs", str(epochs), "--batch-size", str(batch_size), "--out", out],
                       capture_output=True, text=True, check=True,
                       env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return float(re.search(r"all 8 runs: ([0-9.]+) s", r.stdout).group(1))


def bench_optim(build):
    """One pass of normopt's step benchmarks: {name: seconds per step}."""
    r = subprocess.run([f"{build}/benchmarks/bench_optim", "--benchmark_format=json",
                        "--benchmark_filter=normopt", "--benchmark_min_time=0.5s"],
                       capture_output=True, text=True, check=True)
    return {b["run_name"]: b["real_time"] * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3}[b["time_unit"]]
            for b in json.loads(r.stdout)["benchmarks"]}


def order(repeat):
    """ABBA: the second of two back-to-back runs is often slower on a small
    machine, so each build goes first every other time."""
    return ("before", "after") if repeat % 2 == 0 else ("after", "before")


def fmt(seconds):
    return f"{seconds * 1e3:.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.2f} us"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--before", required=True)
    p.add_argument("--after", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--repeats", type=int, default=9)
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, epochs, batch, steps in [
                ("8-run comparison (2000 epochs, batch 32), all 8 runs", 2000, 32, None),
                ("minibatch run (500 epochs, batch 2), per optimizer step", 500, 2, 8 * 500 * 10)]:
            times = {"before": [], "after": []}
            for r in range(a.repeats):
                for which in order(r):
                    build = a.before if which == "before" else a.after
                    times[which].append(in_process_seconds(build, a.data, epochs, batch, tmp))
            rows.append((label,) + tuple(f(times[w]) / (steps or 1)
                                         for f in (statistics.median, min)
                                         for w in ("before", "after")))
    passes = {"before": [], "after": []}
    for r in range(a.repeats):
        for which in order(r):
            passes[which].append(bench_optim(a.before if which == "before" else a.after))
    for name in sorted(passes["before"][0].keys() & passes["after"][0].keys()):
        rows.append((f"bench_optim {name.replace('/real_time', '')}",)
                    + tuple(f([p[name] for p in passes[w]])
                            for f in (statistics.median, min) for w in ("before", "after")))
    print(f"median of {a.repeats}, interleaved ABBA; the workflow runs on one thread, bench_optim on all cores")
    print("| measure | median before | median after | after / before | min before | min after | after / before |")
    print("|---|---|---|---|---|---|---|")
    for label, b, n, b_min, n_min in rows:
        print(f"| {label} | {fmt(b)} | {fmt(n)} | {n / b:.2f} "
              f"| {fmt(b_min)} | {fmt(n_min)} | {n_min / b_min:.2f} |")


if __name__ == "__main__":
    main()
