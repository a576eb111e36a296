"""normopt.data: numeric tables from a CSV file or the built-in income data,
read by the one C++ implementation (normopt::data, through the ops
``torch.ops.normopt.read_csv`` and ``torch.ops.normopt.synthetic_income``).

    table = normopt.data.read_csv("wages.csv", target="wage")
    table.features        # (N, F) float32, the other columns in file order
    table.targets         # (N, 1) float32
    table.feature_names, table.target_name

Errors are the C++ reader's (a RuntimeError naming the file, line and
column, e.g. for a missing file, a ragged row or a cell that is not a
number).
"""

from typing import List, NamedTuple

import torch


class Table(NamedTuple):
    """normopt::data::Table: features (N, F), targets (N, 1), both CPU and
    contiguous, with the columns' names."""

    features: torch.Tensor
    targets: torch.Tensor
    feature_names: List[str]
    target_name: str


def read_csv(path, target=None, *, features=None, dtype=torch.float32, delimiter=","):
    """The CSV file at `path` (a header row, then numbers) as a Table.

    target: the target column's name (default: the last column); features:
    the feature columns' names, in the order wanted (default: every other
    column, in file order); dtype: torch.float32 or torch.float64 (values
    are parsed as double, then rounded once); delimiter: one character.
    """
    return Table(*torch.ops.normopt.read_csv(
        str(path), target or "", None if features is None else list(features), dtype,
        delimiter))


def synthetic_income(rows=20, seed=0, *, dtype=torch.float32):
    """The built-in income data (normopt::data::synthetic_income): `rows`
    people with "age" (22 to 60) and "experience" (whole years), target
    "income" = 20,000 + 300 age + 1,400 experience + N(0, 2,500²) dollars
    rounded to tens. The same numbers as the C++ job's for the same seed,
    on every platform."""
    return Table(*torch.ops.normopt.synthetic_income(rows, seed, dtype))
