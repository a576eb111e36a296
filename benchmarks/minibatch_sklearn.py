"""The 8-run minibatch job against scikit-learn's SGDRegressor (issue 24).

Generates a wage-like data set of 28,155 rows x 4 features (the size of the
real one the issue was measured on), then, interleaved --repeats times:
examples/compare_optimizers (Adam and SGD at lr 1e-2 and 1e-3, raw and
standardized targets, batch 32, 5 epochs, one thread) and SGDRegressor
fitted 8 times on the same rows x epochs (per-row SGD, 5 epochs, constant
learning rate, z-scored features). Reports medians: the C++ job's training
(the 8 fit() calls), the whole in-process job (the 8 forecasts and the 8
fit() calls; compare_optimizers writes the files after its clock stops),
and scikit-learn's 8 fits.

    .venv/bin/python benchmarks/minibatch_sklearn.py [--repeats 7] [--build build]
"""
import argparse
import os
import pathlib
import re
import statistics
import subprocess
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROWS = 28155


def wages(path):
    rng = np.random.default_rng(0)
    age = rng.uniform(18, 65, ROWS)
    education = rng.integers(8, 21, ROWS).astype(float)
    hours = rng.uniform(10, 60, ROWS)
    experience = np.clip(age - education - 6 + rng.normal(0, 2, ROWS), 0, None)
    wage = (1500 * education + 800 * experience + 300 * hours - 5 * age**2
            + rng.normal(0, 8000, ROWS) + 10000)
    data = np.c_[age, education, hours, experience, wage]
    np.savetxt(path, data, delimiter=",", fmt="%.6g", comments="",
               header="age,education,hours,experience,wage")
    return data


def normopt_job(build, csv, out, epochs):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([str(build / "examples/compare_optimizers"), "--data", str(csv),
                        "--batch-size", "32", "--epochs", str(epochs), "--out", str(out)],
                       capture_output=True, text=True, check=True, env=env)
    total = float(re.search(r"all 8 runs: ([0-9.]+) s", r.stdout).group(1))
    fits = sum(float(m.group(1)) for m in
               re.finditer(r"^\S+_(?:raw|standardized)\s.*\s([0-9.]+)$", r.stdout, re.M))
    return fits, total


def sklearn_job(data, epochs):
    from sklearn.linear_model import SGDRegressor
    x = data[:, :4]
    x = (x - x.mean(0)) / x.std(0)
    y = data[:, 4]
    start = time.perf_counter()
    for standardized in (False, True):
        target = (y - y.mean()) / y.std() if standardized else y
        for eta in (1e-2, 1e-3, 1e-2, 1e-3):
            SGDRegressor(max_iter=epochs, tol=None, learning_rate="constant", eta0=eta,
                         penalty=None, random_state=0).fit(x, target)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--build", type=pathlib.Path, default=ROOT / "build",
                   help="the build folder whose examples/compare_optimizers runs")
    a = p.parse_args()
    import warnings
    warnings.filterwarnings("ignore")  # SGDRegressor on raw dollars overflows
    fits, totals, sk = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        csv = pathlib.Path(tmp) / "wages.csv"
        data = wages(csv)
        for _ in range(a.repeats):
            f, t = normopt_job(a.build.resolve(), csv, pathlib.Path(tmp) / "out", a.epochs)
            fits.append(f)
            totals.append(t)
            sk.append(sklearn_job(data, a.epochs))
    m = statistics.median
    print(f"{ROWS} rows x 4 features, batch 32, {a.epochs} epochs, 8 runs, one thread, "
          f"median of {a.repeats}")
    print("| measure | seconds | vs SGDRegressor |")
    print("|---|---|---|")
    print(f"| scikit-learn SGDRegressor, 8 fits | {m(sk):.3f} | 1.00x |")
    print(f"| normopt: the 8 fit() calls | {m(fits):.3f} | {m(fits) / m(sk):.2f}x |")
    print(f"| normopt: the whole job in process (8 forecasts + 8 fit() calls) | "
          f"{m(totals):.3f} | {m(totals) / m(sk):.2f}x |")


if __name__ == "__main__":
    main()
