"""Predict incomes with a pipeline written by examples/export_torchscript.

Plain PyTorch: the exported file holds its statistics, weights and code, so
neither normopt nor a C++ toolchain is needed.

    python examples/python/predict.py income_pipeline.pt [age experience ...]

Prints one prediction per row with 17 significant digits.
"""

import sys

import torch


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    pipeline = torch.jit.load(argv[1], map_location="cpu")
    pipeline.eval()
    values = [float(v) for v in argv[2:]] or [25, 1, 32, 5, 47, 12, 58, 20]
    if len(values) % 2:
        print("predict.py: give (age, experience) pairs", file=sys.stderr)
        return 2
    features = torch.tensor(values, dtype=torch.float32).reshape(-1, 2)
    with torch.no_grad():
        incomes = pipeline(features)
    for (age, experience), income in zip(features.tolist(), incomes[:, 0].tolist()):
        print(f"age {age:g}, experience {experience:g}: {income:.17g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
