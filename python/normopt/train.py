"""normopt.train: the closed-form reference of a training run and the batch
rule of normopt::train::fit (normopt::train::solve_least_squares and
batches_per_epoch, through the ops of those names).

    ls = normopt.train.solve_least_squares(x, y)
    ls.mse      # the best MSE any linear model reaches on (x, y)
    ls.exact    # whether that is 0 up to rounding (compare differences then)
"""

from typing import NamedTuple

import torch


class LeastSquares(NamedTuple):
    """normopt::train::LeastSquares: weight (k, F) and bias (k), float64 CPU;
    mse in the targets' units squared; exact: mse is 0 up to rounding (at
    most 1e-12 times the mean of y²), so a ratio to it means nothing."""

    weight: torch.Tensor
    bias: torch.Tensor
    mse: float
    exact: bool


def solve_least_squares(x, y, ridge=0.0):
    """min over (w, b) of ||x wᵀ + b - y||² + ridge ||w||², in float64 on the
    CPU for x (N, F) and y (N) or (N, k) of any real dtype; the intercept is
    never penalized."""
    return LeastSquares(*torch.ops.normopt.solve_least_squares(x, y, float(ridge)))


def batches_per_epoch(rows, batch_size):
    """The steps of one epoch over `rows` rows: ceil(rows / batch_size), the
    last batch ragged; batch_size 0 (or >= rows) is one full batch."""
    return torch.ops.normopt.batches_per_epoch(rows, batch_size)
