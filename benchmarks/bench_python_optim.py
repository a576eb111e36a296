"""One optimizer step from Python: normopt.optim.Adam against
torch.optim.Adam(foreach=True) and torch.optim.Adam(fused=True), on
(a) 1 tensor of 10M float32 parameters and (b) 1,000 tensors of 1,000.

All optimizers run in this one process with the same threads, each on its
own copy of the parameters and gradients. After a warm-up (state created,
caches filled) the optimizers take turns, one step each per round in an order
rotated every round, so a disturbance of the machine falls on all of them
alike; the table reports the median and the minimum step time over the
rounds. A fourth row times the
fused op alone with prepared lists (torch.ops.normopt.adam_step_): the floor
that normopt.optim.Adam's Python bookkeeping adds to.

    PYTHONPATH=python NORMOPT_LIBRARY=build/libnormopt.so \\
        .venv/bin/python benchmarks/bench_python_optim.py [--rounds N]
"""

import argparse
import datetime
import platform
import statistics
import sys
import time

import torch

import normopt.optim

CASES = {
    "1 x 10M fp32": dict(tensors=1, numel=10_000_000, rounds=60),
    "1,000 x 1,000 fp32": dict(tensors=1_000, numel=1_000, rounds=200),
}
WARMUP = 5


def make_params(tensors, numel, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(numel, generator=g).requires_grad_() for _ in range(tensors)]
    for p in params:
        p.grad = torch.randn(numel, generator=g)
    return params


def prepared_op(params):
    """One step of the fused op on lists built once: no optimizer around it."""
    grads = [p.grad for p in params]
    exp_avgs = [torch.zeros_like(p) for p in params]
    exp_avg_sqs = [torch.zeros_like(p) for p in params]
    step = [0]
    op = torch.ops.normopt.adam_step_.default

    def run():
        step[0] += 1
        with torch.no_grad():
            op(
                params, grads, exp_avgs, exp_avg_sqs, [], [step[0]] * len(params),
                lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                amsgrad=False, maximize=False, decoupled_weight_decay=False,
                keras_epsilon=False,
            )  # fmt: skip

    return run


def contenders(tensors, numel):
    def optimizer(make):
        return make(make_params(tensors, numel)).step

    return {
        "normopt.optim.Adam": optimizer(lambda p: normopt.optim.Adam(p, lr=1e-3)),
        "torch.optim.Adam(foreach=True)": optimizer(lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True)),
        "torch.optim.Adam(fused=True)": optimizer(lambda p: torch.optim.Adam(p, lr=1e-3, fused=True)),
        "torch.ops.normopt.adam_step_ (prepared lists)": prepared_op(make_params(tensors, numel)),
    }


def measure(steps, rounds):
    """{name: [seconds per step, one per round]}, the steps interleaved."""
    for step in steps.values():
        for _ in range(WARMUP):
            step()
    names = list(steps)
    times = {name: [] for name in names}
    for r in range(rounds):
        # Rotated each round, so each contender follows each other alike.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    return times


def fmt(seconds):
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} us"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, help="rounds per case (default: 60 for 10M, 200 for 1,000 x 1,000)")
    args = parser.parse_args()

    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
    )
    print(f"warm-up {WARMUP} steps, then rounds of one step per optimizer (interleaved, order rotated)\n")
    print("| shape | optimizer | median | min | speed-up vs fused=True (medians) |")
    print("|---|---|---|---|---|")
    for case, spec in CASES.items():
        rounds = args.rounds or spec["rounds"]
        times = measure(contenders(spec["tensors"], spec["numel"]), rounds)
        fused = statistics.median(times["torch.optim.Adam(fused=True)"])
        for name, samples in times.items():
            median = statistics.median(samples)
            row = [f"{case} ({rounds} rounds)", name, fmt(median), fmt(min(samples)), f"{fused / median:.2f}x"]
            print(f"| {' | '.join(row)} |")
        del times


if __name__ == "__main__":
    main()
