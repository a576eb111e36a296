"""The main job in Python: why Adam stalls on incomes in dollars, and the fix.

The same 8 runs as build/examples/compare_optimizers, written against the
Python package: a linear model with z-scored features
(``normopt.nn.StandardizedRegressor(torch.nn.Linear(...))``) trained with
``normopt.optim.Adam`` and ``normopt.optim.SGD`` at lr 1e-2 and 1e-3, on raw
and on standardized targets. Prints each run's final MSE (original units²),
its gap to the closed-form least-squares optimum and its time, writes each
run's history (``<run>.csv``/``.json``, the C++ job's format, so
scripts/plot_history.py reads them too) and a plot (``mse.png``) to --out.
With the same data and seed the runs start from the C++ job's initial
weights and shuffles, so the histories agree with its to float32 rounding
(the C++ job computes the linear model's gradient in closed form, this one
with autograd); tests/python/test_python_example.py checks it.

    python examples/python/compare_optimizers.py                  # see --data
    python examples/python/compare_optimizers.py --data my.csv --target y \\
        --epochs 500 --out results/

Data: --data CSV (a header row, numbers; the target is --target or the last
column), else $NORMOPT_DATA_DIR/multiple_linear_regression_dataset.csv (the
20-row income data normopt started from) when it exists, else the C++ job's
built-in synthetic incomes (normopt.data.synthetic_income(20, 0)). The data,
the CSV reader and the closed-form optimum are the library's
(normopt.data, normopt.train.solve_least_squares); the training loop is
written out here, as a PyTorch user would.

Needs libnormopt (``import normopt``: the installed package, or
NORMOPT_LIBRARY=build/libnormopt.so with python/ on PYTHONPATH) and
matplotlib.
"""

import argparse
import json
import math
import os
import pathlib
import sys
import time

import torch

import normopt.data
import normopt.nn
import normopt.optim
import normopt.train

INCOME_CSV = "multiple_linear_regression_dataset.csv"
OPTIMIZERS = {"adam": normopt.optim.Adam, "sgd": normopt.optim.SGD}


# ---- Data ------------------------------------------------------------------------


def load_data(args):
    """(x, y, feature names, target name, description) as the flags say."""
    if args.data:
        return (*normopt.data.read_csv(args.data, args.target), str(args.data))
    if args.target:
        raise ValueError("--target needs --data (the default data sets have their own)")
    root = os.environ.get("NORMOPT_DATA_DIR")
    if root and (pathlib.Path(root) / INCOME_CSV).is_file():
        path = pathlib.Path(root) / INCOME_CSV
        return (*normopt.data.read_csv(path), str(path))
    return (*normopt.data.synthetic_income(20, 0), "built-in synthetic incomes")


# ---- The runs --------------------------------------------------------------------


def train(x, y, optimizer, lr, standardized, epochs, batch_size, seed):
    """One run, as normopt::train::fit: statistics from the training data,
    inputs normalized once, epoch e shuffled with seed + e (a single full
    batch is not), MSE loss in standardized units; after each epoch the
    losses over the whole set in float64. Returns the history (dicts) and
    normopt.diagnose()'s forecast of the run, made before it."""
    torch.manual_seed(seed)
    model = normopt.nn.StandardizedRegressor(
        torch.nn.Linear(x.shape[1], y.shape[1]),
        target=normopt.nn.TargetStandardizer("zscore" if standardized else "none"),
    )
    model.fit_statistics(x, y)
    opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr)
    n = x.shape[0]
    batches = normopt.train.batches_per_epoch(n, batch_size)
    size = batch_size or n  # 0: the full batch
    # The forecast before the run: the same numbers as the C++ job's.
    forecast = normopt.diagnose(model, opt, x, y, steps=epochs * batches,
                                batch_size=batch_size, seed=seed)
    with torch.no_grad():
        x_norm = model.normalization(x)
        y_std = model.transform_targets(y)
        y_std64 = model.transform_targets(y.to(torch.float64))
    scale64 = model.target.scale.to(torch.float64)
    generator = torch.Generator()
    history = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = None
        if batches > 1:
            generator.manual_seed(seed + epoch)
            order = torch.randperm(n, generator=generator)
        for b in range(batches):
            rows = slice(b * size, min(n, (b + 1) * size))
            xb, yb = (x_norm[rows], y_std[rows]) if order is None else (
                x_norm[order[rows]], y_std[order[rows]])
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model.regressor(xb), yb)
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"the training loss is {loss.item()} at epoch {epoch}, batch {b + 1}: "
                    "the run diverged; lower the learning rate or standardize the targets"
                )
            loss.backward()
            opt.step()
        with torch.no_grad():
            diff = model.regressor(x_norm).to(torch.float64) - y_std64
            train_loss = diff.square().mean().item()
            train_mse = (diff * scale64).square().mean().item()
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_mse": train_mse,
                "val_loss": math.nan,
                "val_mse": math.nan,
                "lr": lr,
                "wall_seconds": time.perf_counter() - start,
            }
        )
    return history, forecast


# ---- Output ----------------------------------------------------------------------

FIELDS = ["epoch", "train_loss", "train_mse", "val_loss", "val_mse", "lr", "wall_seconds"]


def write_history(folder, name, history, optimum):
    """<name>.csv and <name>.json, the format of History::write_csv/_json."""
    with open(folder / f"{name}.csv", "w", encoding="utf-8") as f:
        f.write(",".join(FIELDS) + "\n")
        for row in history:
            f.write(",".join(format(row[k], ".17g") for k in FIELDS) + "\n")
    nulls = [{k: (None if isinstance(v, float) and math.isnan(v) else v)
              for k, v in row.items()} for row in history]
    doc = {"run": name, "optimum_mse": optimum, "stopped_early": False, "epochs": nulls}
    (folder / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def plot(path, results, optimum):
    """MSE per epoch, log scale, raw dashed, standardized solid, the optimum
    dotted (as scripts/plot_history.py)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.5))
    for name, _, _, standardized, history, _ in results:
        ax.plot(
            [r["epoch"] for r in history],
            [r["train_mse"] for r in history],
            "-" if standardized else "--",
            label=name,
            linewidth=1.6,
        )
    if math.isfinite(optimum) and optimum > 0:
        ax.axhline(optimum, color="black", linestyle=":", linewidth=1,
                   label=f"closed-form optimum ({optimum:.3g})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training MSE (original units²)")
    ax.set_title("Adam vs SGD, raw (dashed) vs standardized (solid) targets (Python)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def whole_number(minimum):
    """An argparse type: a whole decimal number >= minimum ("2.5" is refused)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expects a whole number, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expects a number >= {minimum}, got {value}")
        return value

    return parse


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="compare_optimizers.py",
        description="Trains a linear model with Adam and SGD at two learning rates on raw "
        "and on standardized targets (8 runs), prints the final MSE and the gap to the "
        "closed-form optimum, and writes the histories and a plot.",
    )
    parser.add_argument("--data", type=pathlib.Path, metavar="CSV",
                        help="numeric CSV with a header row (default: "
                        f"$NORMOPT_DATA_DIR/{INCOME_CSV} if present, else the built-in "
                        "synthetic incomes, 20 rows)")
    parser.add_argument("--target", metavar="COL", help="target column of --data "
                        "(default: the last)")
    parser.add_argument("--epochs", type=whole_number(1), default=200, metavar="N",
                        help="epochs per run (default: 200)")
    parser.add_argument("--batch-size", type=whole_number(0), default=32, metavar="N",
                        help="rows per step, 0 = full batch (default: 32)")
    parser.add_argument("--seed", type=whole_number(0), default=0, metavar="S",
                        help="seed of the initial weights and the shuffling (default: 0)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/compare-python"),
                        metavar="DIR", help="folder for the histories and mse.png "
                        "(default: out/compare-python)")
    args = parser.parse_args(argv)
    try:
        x, y, feature_names, target_name, source = load_data(args)
    except (ValueError, RuntimeError) as error:  # RuntimeError: the CSV reader's
        print(f"compare_optimizers.py: error: {error}", file=sys.stderr)
        return 2
    closed_form = normopt.train.solve_least_squares(x, y)
    optimum, exact = closed_form.mse, closed_form.exact
    print(f"data: {source}, {x.shape[0]} rows, features [{', '.join(feature_names)}], "
          f"target {target_name}")
    print(f"closed-form optimum MSE: {optimum:.6g}\n")

    results = []
    started = time.perf_counter()
    for standardized in (False, True):
        for optimizer in OPTIMIZERS:
            for lr in (1e-2, 1e-3):
                name = f"{optimizer}_lr{lr:g}_{'standardized' if standardized else 'raw'}"
                history, forecast = train(x, y, optimizer, lr, standardized,
                                          args.epochs, args.batch_size, args.seed)
                print(f"{name}: forecast {forecast}")
                results.append((name, optimizer, lr, standardized, history, forecast))
    total = time.perf_counter() - started

    args.out.mkdir(parents=True, exist_ok=True)
    for name, _, _, _, history, _ in results:
        write_history(args.out, name, history, optimum)
    plot_path = args.out / "mse.png"
    plot(plot_path, results, optimum)

    print(f"\n{'run':<32} {'final MSE':>16} {'vs optimum':>14} {'forecast':>22} "
          f"{'seconds':>10}")
    for name, _, _, _, history, forecast in results:
        last = history[-1]
        if exact:
            versus = f"+{last['train_mse'] - optimum:.3g}"
        else:
            versus = f"{last['train_mse'] / optimum:.3g}x"
        predicted = f"{forecast.forecast_ratio:.3g}x {forecast.verdict}"
        print(f"{name:<32} {last['train_mse']:>16.6g} {versus:>14} {predicted:>22} "
              f"{last['wall_seconds']:>10.3f}")
    print()
    if exact:
        print("(vs optimum: final MSE - closed-form optimum MSE; the optimum is 0 up to "
              "rounding, so a ratio would mean nothing)")
    else:
        print("(vs optimum: final MSE / closed-form optimum MSE; 1x is the best a linear "
              "model can do; forecast: normopt.diagnose()'s forecast of that ratio and "
              "its verdict, made before the run)")
    print(f"histories: {args.out}/*.csv, *.json\nplot: {plot_path}\n"
          f"all {len(results)} runs: {total:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
