"""Reads bench_cuda's JSON on stdin and prints the CUDA table of
benchmarks/RESULTS.md: each step's time, its bandwidth and its fraction of
the copy bandwidth measured in the same run (the target for normopt's Adam at
16M parameters: >= 0.80, and at least as fast as at::_fused_adam_).

    build-cuda/benchmarks/bench_cuda --benchmark_format=json --benchmark_repetitions=5 \\
        --benchmark_report_aggregates_only=true | .venv/bin/python benchmarks/compare_cuda.py
"""
import json
import sys


def main():
    data = json.load(sys.stdin)
    med = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name", "median") != "median":
            continue
        med[b["run_name"].split("/")[0]] = b
    copy_bw = med["BM_CudaCopy"]["bytes_per_second"]
    print(f"device copy bandwidth (16M fp32 copy_): {copy_bw / 1e9:.0f} GB/s\n")
    print("| step (16M fp32) | time | bandwidth | fraction of copy bandwidth |")
    print("|---|---|---|---|")
    for name in ("BM_CudaAdam_normopt", "BM_CudaAdam_aten_fused", "BM_CudaAdam_libtorch",
                 "BM_CudaSGD_normopt", "BM_CudaSGD_aten_fused", "BM_CudaSGD_libtorch"):
        if name not in med:
            continue
        b = med[name]
        bw = b["bytes_per_second"]
        print(f"| {name[7:]} | {b['real_time'] / 1e3:.1f} us | {bw / 1e9:.0f} GB/s | "
              f"{bw / copy_bw:.2f} |")


if __name__ == "__main__":
    main()
