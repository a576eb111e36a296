"""Plots the histories written by compare_optimizers: training MSE (original
units) per epoch, log scale, one line per run, the closed-form optimum as a
dashed line.

    .venv/bin/python scripts/plot_history.py out/compare [--output out/compare/mse.png]
"""
import argparse
import csv
import json
import math
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--output", type=pathlib.Path)
    args = parser.parse_args(argv)
    runs = sorted(args.folder.glob("*.csv"))
    runs = [r for r in runs if r.name != "summary.csv"]
    if not runs:
        print(f"plot_history: no run histories (*.csv) in {args.folder}", file=sys.stderr)
        return 1
    fig, ax = plt.subplots(figsize=(11, 5.5))
    optimum = None
    for path in runs:
        with path.open() as f:
            rows = list(csv.DictReader(f))
        epochs = [int(r["epoch"]) for r in rows]
        mse = [float(r["train_mse"]) for r in rows]
        style = "-" if "standardized" in path.stem else "--"
        line, = ax.plot(epochs, mse, style, label=path.stem, linewidth=1.6)
        # diagnose()'s forecast of the run, made before it: thin, same color.
        forecast = path.with_suffix(".forecast")
        if forecast.exists():
            with forecast.open() as f:
                points = [r for r in csv.DictReader(f) if float(r["epoch"]) >= 1]
            ax.plot([float(r["epoch"]) for r in points],
                    [float(r["forecast_mse"]) for r in points],
                    "-", color=line.get_color(), linewidth=0.6, alpha=0.9)
        meta = path.with_suffix(".json")
        if optimum is None and meta.exists():
            optimum = json.loads(meta.read_text()).get("optimum_mse")
    if optimum is not None and math.isfinite(optimum):
        ax.axhline(optimum, color="black", linestyle=":", linewidth=1,
                   label=f"closed-form optimum ({optimum:.3g})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training MSE (original units²)")
    ax.set_title("Adam vs SGD, raw (dashed) vs standardized (solid) targets; "
                 "thin: diagnose()'s forecast")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    output = args.output or args.folder / "mse.png"
    fig.savefig(output, dpi=110)
    print(f"plot: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
