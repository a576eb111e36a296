"""The 8-run comparison of examples/compare_optimizers written in Python with
PyTorch: the reference for benchmarks/compare_workflow.py.

Same data, model (linear, features z-scored), optimizers (torch.optim Adam
and SGD), learning rates, epochs and batch size; each epoch also evaluates
the full-data loss and MSE in original units, as normopt::train::fit does.
Prints the in-process wall time of the 8 runs in seconds.
"""
import csv
import sys
import time

import torch


def load(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    data = torch.tensor([[float(v) for v in r] for r in rows[1:]], dtype=torch.float32)
    return data[:, :-1], data[:, -1:]


def run(x, y, opt_name, lr, standardized, epochs, batch_size, seed):
    torch.manual_seed(seed)
    model = torch.nn.Linear(x.shape[1], 1)
    xm, xs = x.double().mean(0), x.double().std(0, unbiased=False)
    z = ((x.double() - xm) / xs).float()
    ym, ys = (y.double().mean(), y.double().std(unbiased=False)) if standardized else (0.0, 1.0)
    t = ((y.double() - ym) / ys).float()
    opt = (torch.optim.Adam if opt_name == "adam" else torch.optim.SGD)(model.parameters(), lr=lr)
    gen = torch.Generator()
    n = x.shape[0]
    bs = n if batch_size == 0 else min(batch_size, n)
    history = []
    for epoch in range(1, epochs + 1):
        # normopt's fit() seeds epoch e's permutation with seed + e.
        perm = torch.randperm(n, generator=gen.manual_seed(seed + epoch))
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(z[idx]), t[idx])
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = model(z)
            train_loss = torch.nn.functional.mse_loss(pred, t).item()
            train_mse = torch.nn.functional.mse_loss(pred.double() * ys + ym, y.double()).item()
        history.append((train_loss, train_mse))
    return history


def main():
    path = sys.argv[1]
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    batch_size = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    torch.set_num_threads(1)
    x, y = load(path)
    start = time.perf_counter()
    finals = []
    for standardized in (False, True):
        for opt_name in ("adam", "sgd"):
            for lr in (1e-2, 1e-3):
                finals.append(run(x, y, opt_name, lr, standardized, epochs, batch_size, 0)[-1][1])
    elapsed = time.perf_counter() - start
    print(f"{elapsed:.6f}")
    print(" ".join(f"{v:.6g}" for v in finals), file=sys.stderr)


if __name__ == "__main__":
    main()
