"""What normopt.watch adds to a training step: the same loop with and without
the watch, ABAB, best of 5 (steps 1..N of a 2-feature linear model on 20 rows).

    NORMOPT_LIBRARY=build/libnormopt.so .venv/bin/python benchmarks/forecast_watch.py
"""

import sys
import pathlib
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))

import torch  # noqa: E402

import normopt  # noqa: E402

STEPS = 20000


def loop(watched):
    torch.manual_seed(0)
    x = torch.randn(20, 2, dtype=torch.float64)
    y = x @ torch.tensor([[2.0], [-1.0]], dtype=torch.float64) + 3
    model = torch.nn.Linear(2, 1).double()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    w = None
    if watched:
        d = normopt.diagnose(model, opt, x, y, steps=STEPS)
        w = normopt.watch(model, opt, x, y, d)
    start = time.perf_counter()
    for _ in range(STEPS):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    elapsed = time.perf_counter() - start
    if w is not None:
        w.remove()
    return elapsed / STEPS * 1e6


def main():
    plain, watched = [], []
    for _ in range(5):
        plain.append(loop(False))
        watched.append(loop(True))
    print(f"per step: plain {min(plain):.2f} us, watched {min(watched):.2f} us "
          f"(+{min(watched) - min(plain):.2f} us, {min(watched) / min(plain):.3f}x); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
