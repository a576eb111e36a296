"""Prediction latency of one trained normopt model served three ways, in one
run: an AOTInductor package from C++ (normopt::deploy::Predictor), the
TorchScript pipeline from C++ (normopt::jit::load_pipeline) and the eager C++
module (StandardizedRegressor::predict), for 1 row and 10,000 rows of 2
float32 features; plus the time ``python -m normopt.export`` takes to build
the package.

Steps, in a temporary folder DIR:
  1. build/benchmarks/bench_deploy --prepare DIR    (trains; writes model.pt, pipeline.pt)
  2. python -m normopt.export DIR/model.pt DIR/model.pt2    (timed: the package build)
  3. build/benchmarks/bench_deploy DIR --benchmark_format=json
         --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
Prints a markdown table of the median real time per call (µs).

Build the benchmark first (cmake --build build --target bench_deploy), then,
from the repository root:

    NORMOPT_LIBRARY=build/libnormopt.so PYTHONPATH=python .venv/bin/python benchmarks/deploy_latency.py

The normopt.export step runs with this interpreter (sys.executable) and this
environment, so it needs ``import normopt`` to work: NORMOPT_LIBRARY and
PYTHONPATH as above, or the installed package. The package must be compiled
with the torch whose LibTorch bench_deploy links.

Options: --bench PATH (default build/benchmarks/bench_deploy), --repetitions N
(default 5), --keep DIR (use and keep DIR instead of a temporary folder).
"""

import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
ROUTES = [
    ("aoti", "AOTInductor package (deploy::Predictor)"),
    ("torchscript", "TorchScript (jit::load_pipeline)"),
    ("eager", "eager C++ (StandardizedRegressor::predict)"),
]
ROWS = [1, 10_000]


def run(cmd, **kwargs):
    """Runs ``cmd``, echoing it; exits with its output when it fails."""
    print("$ " + shlex.join(str(c) for c in cmd), file=sys.stderr, flush=True)
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.stderr.write(result.stdout)
        sys.stderr.write(result.stderr)
        sys.exit(f"deploy_latency: {cmd[0]} failed (exit {result.returncode})")
    return result


def medians(report):
    """{(route, rows): median real time in µs} from Google Benchmark JSON."""
    out = {}
    for b in report["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        # run_name: "Predict/aoti/1/real_time"
        parts = b["run_name"].split("/")
        route, rows = parts[1], int(parts[2])
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b["time_unit"]]
        out[(route, rows)] = b["real_time"] * scale
    return out


def fmt_us(value):
    if value is None:
        return "n/a"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=str(ROOT / "build/benchmarks/bench_deploy"))
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--keep", default=None, help="work in (and keep) this folder")
    args = parser.parse_args(argv)

    bench = pathlib.Path(args.bench)
    if not bench.is_file():
        sys.exit(
            f"deploy_latency: no {bench}; build it first: "
            "cmake --build build --target bench_deploy"
        )
    env = dict(os.environ)  # NORMOPT_LIBRARY / PYTHONPATH pass through

    with tempfile.TemporaryDirectory(prefix="normopt-deploy-") as tmp:
        work = pathlib.Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)

        prepared = run([bench, "--prepare", work], env=env)
        sys.stderr.write(prepared.stdout)

        export_cmd = [
            sys.executable, "-m", "normopt.export",
            work / "model.pt", work / "model.pt2",
        ]
        start = time.perf_counter()
        exported = run(export_cmd, env=env)
        build_s = time.perf_counter() - start
        sys.stderr.write(exported.stdout)

        bench_cmd = [
            bench, work,
            "--benchmark_format=json",
            f"--benchmark_repetitions={args.repetitions}",
            "--benchmark_report_aggregates_only=true",
        ]
        measured = run(bench_cmd, env=env)
        # The agreement check prints its lines before the JSON object.
        text = measured.stdout
        brace = text.index("{")
        check = text[:brace].strip()
        report = json.loads(text[brace:])

    times = medians(report)
    context = report.get("context", {})
    print(f"Prediction latency, median of {args.repetitions} repetitions "
          f"(real time per call, µs; 2 float32 features)\n")
    print("| route | 1 row | 10,000 rows |")
    print("|---|---:|---:|")
    for key, label in ROUTES:
        print(f"| {label} | {fmt_us(times.get((key, 1)))} | "
              f"{fmt_us(times.get((key, 10_000)))} |")
    print()
    print(f"Package build (python -m normopt.export, wall): {build_s:.1f} s")
    print()
    print("Agreement on 10,000 rows (bench_deploy):")
    for line in check.splitlines():
        print(f"    {line}")
    print()
    cpus = context.get("num_cpus")
    mhz = context.get("mhz_per_cpu")
    if cpus:
        print(f"Machine: {cpus} CPUs at {mhz} MHz, "
              f"load average {context.get('load_avg')}")
    prefix = [f"{k}={env[k]}" for k in ("NORMOPT_LIBRARY", "PYTHONPATH") if k in env]
    script = [os.path.relpath(sys.executable), *sys.argv] if argv is None else []
    print("Command: " + " ".join(prefix + [shlex.join(script)]))
    print("  which ran: " + shlex.join([str(bench), "--prepare", "DIR"]))
    print("             " + shlex.join(
        [os.path.relpath(sys.executable), "-m", "normopt.export",
         "DIR/model.pt", "DIR/model.pt2"]))
    print("             " + shlex.join([str(bench), "DIR", *map(str, bench_cmd[2:])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
