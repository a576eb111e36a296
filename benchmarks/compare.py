"""Runs bench_optim once and prints the comparison table of
benchmarks/RESULTS.md: normopt against torch::optim, PyTorch's fused CPU
kernels and the copy roofline, all from the same run.

    .venv/bin/python benchmarks/compare.py build/benchmarks/bench_optim
"""
import json
import subprocess
import sys

SHAPES = {0: "1 x 10M fp32", 1: "1,000 x 1,000 fp32", 2: "linear model (3 params)"}
BYTES = {"Adam": 28, "SGD": 16}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/benchmarks/bench_optim"
    out = subprocess.run(
        [binary, "--benchmark_format=json", "--benchmark_repetitions=5",
         "--benchmark_report_aggregates_only=true", "--benchmark_min_time=0.2s"],
        check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    med = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        med[b["run_name"].replace("/real_time", "")] = b
    t = {k: v["real_time"] for k, v in med.items()}  # ns
    copy_bw = med["BM_Copy"]["bytes_per_second"]  # bytes/s, 8 B per float
    ctx = data["context"]
    print(f"host: {ctx.get('num_cpus')} CPUs @ {ctx.get('mhz_per_cpu')} MHz, "
          f"date {ctx.get('date')}")
    print(f"copy bandwidth (10M fp32 copy_): {copy_bw / 1e9:.1f} GB/s\n")
    print("| optimizer | shape | normopt | at::_fused_* | torch::optim | "
          "speed-up vs torch::optim | vs fused | roofline | normopt / roofline "
          "| allocs/step normopt / torch::optim |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for opt in ("Adam", "SGD"):
        for shape, label in SHAPES.items():
            ours = t[f"BM_{opt}_normopt/shape:{shape}"]
            fused = t[f"BM_{opt}_aten_fused/shape:{shape}"]
            lib = t[f"BM_{opt}_libtorch/shape:{shape}"]
            n = med[f"BM_{opt}_normopt/shape:{shape}"]["params"]
            roof = BYTES[opt] * n / copy_bw * 1e9
            a_ours = med[f"BM_{opt}_normopt/shape:{shape}"]["allocs/step"]
            a_lib = med[f"BM_{opt}_libtorch/shape:{shape}"]["allocs/step"]
            print(f"| {opt} | {label} | {fmt(ours)} | {fmt(fused)} | {fmt(lib)} | "
                  f"{lib / ours:.1f}x | {fused / ours:.2f}x | {fmt(roof)} | "
                  f"{ours / roof:.2f} | {a_ours:g} / {a_lib:g} |")


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} us"
    return f"{ns:.0f} ns"


if __name__ == "__main__":
    main()
