"""normopt.data and normopt.train (the C++ reader, built-in data set, closed
form and batch rule, through their ops) against independent references:
Python's csv module, a re-derivation of the data set's generator, LAPACK's
least squares through torch.linalg, and hand-counted batches."""

import csv
import math

import pytest
import torch

import normopt.data
import normopt.train

F64 = torch.float64


def test_read_csv_matches_pythons_csv_module(income_csv):
    with open(income_csv, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    values = torch.tensor([[float(v) for v in r] for r in rows[1:]], dtype=F64)
    table = normopt.data.read_csv(income_csv)
    assert table.feature_names == header[:-1] and table.target_name == header[-1]
    assert table.features.dtype == torch.float32 and table.targets.shape == (len(rows) - 1, 1)
    assert torch.equal(table.features, values[:, :-1].to(torch.float32))
    assert torch.equal(table.targets, values[:, -1:].to(torch.float32))
    # Another target, the features in the order named, float64.
    table = normopt.data.read_csv(income_csv, target=header[0],
                                  features=[header[2], header[1]], dtype=F64)
    assert table.target_name == header[0] and table.feature_names == [header[2], header[1]]
    assert torch.equal(table.features, values[:, [2, 1]])
    assert torch.equal(table.targets, values[:, :1])


def test_read_csv_errors_name_the_file_and_place(tmp_path):
    missing = tmp_path / "nothing.csv"
    with pytest.raises(RuntimeError, match="nothing.csv"):
        normopt.data.read_csv(missing)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    with pytest.raises(RuntimeError, match=r"ragged\.csv.*line 3"):
        normopt.data.read_csv(ragged)
    with pytest.raises(RuntimeError, match='target column "c" not found'):
        normopt.data.read_csv(ragged, target="c")
    with pytest.raises(RuntimeError, match="one character"):
        normopt.data.read_csv(ragged, delimiter=";;")


MASK64 = (1 << 64) - 1


def split_mix64(seed):
    """SplitMix64 (Steele, Lea and Flood 2014) as uniforms in [0, 1) from the
    top 53 bits."""
    state = seed & MASK64
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        yield ((z ^ (z >> 31)) >> 11) * 2.0**-53


def income_reference(rows, seed):
    """The documented data set, derived here: age uniform in 22..60, whole
    years of experience up to min(age - 22, 20), income = 20,000 + 300 age +
    1,400 experience + 2,500 N(0, 1) (Box-Muller) rounded to tens, halves
    away from zero."""
    u = split_mix64(seed)
    x, y = [], []
    for _ in range(rows):
        age = math.floor(22 + 39 * next(u))
        experience = math.floor((min(age - 22, 20.0) + 1) * next(u))
        u1, u2 = 1.0 - next(u), next(u)
        noise = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        income = 20000 + 300 * age + 1400 * experience + 2500 * noise
        x.append([float(age), float(experience)])
        y.append([math.copysign(math.floor(abs(income / 10) + 0.5), income) * 10])
    return torch.tensor(x, dtype=F64), torch.tensor(y, dtype=F64)


@pytest.mark.parametrize("rows,seed", [(20, 0), (57, 3), (1, 2**40)])
def test_synthetic_income_is_the_documented_data_set(rows, seed):
    x, y = income_reference(rows, seed)
    table = normopt.data.synthetic_income(rows, seed, dtype=F64)
    assert (table.feature_names, table.target_name) == (["age", "experience"], "income")
    assert torch.equal(table.features, x) and torch.equal(table.targets, y)
    single = normopt.data.synthetic_income(rows, seed)
    assert single.features.dtype == torch.float32
    assert torch.equal(single.targets, y.to(torch.float32))


def test_synthetic_income_bad_arguments():
    with pytest.raises(RuntimeError, match="seed must be >= 0"):
        normopt.data.synthetic_income(20, -1)
    with pytest.raises(RuntimeError):
        normopt.data.synthetic_income(-5)


def test_solve_least_squares_matches_lapack_in_float64():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(40, 3, generator=g, dtype=F64) * torch.tensor([1.0, 30.0, 1e3], dtype=F64)
    y = x @ torch.tensor([[2.0], [-0.5], [1e-3]], dtype=F64) + 40000
    y = y + torch.randn(40, 1, generator=g, dtype=F64) * 10
    design = torch.cat([x, torch.ones(40, 1, dtype=F64)], dim=1)
    reference = torch.linalg.lstsq(design, y).solution
    ls = normopt.train.solve_least_squares(x.to(torch.float32), y.to(torch.float32))
    ls64 = normopt.train.solve_least_squares(x, y)
    torch.testing.assert_close(ls64.weight, reference[:3].T, rtol=1e-9, atol=0)
    torch.testing.assert_close(ls64.bias, reference[3], rtol=1e-12, atol=0)
    mse = (design @ reference - y).square().mean().item()
    assert ls64.mse == pytest.approx(mse, rel=1e-9) and not ls64.exact
    assert ls.weight.dtype == F64 and ls.mse == pytest.approx(mse, rel=1e-3)
    # Ridge: centered normal equations, the intercept unpenalized.
    xc, yc = x - x.mean(0), y - y.mean(0)
    w = torch.linalg.solve(xc.T @ xc + 5.0 * torch.eye(3, dtype=F64), xc.T @ yc)
    ridge = normopt.train.solve_least_squares(x, y, ridge=5.0)
    torch.testing.assert_close(ridge.weight, w.T, rtol=1e-9, atol=0)
    torch.testing.assert_close(ridge.bias, (y.mean(0) - x.mean(0) @ w), rtol=1e-9, atol=0)


def test_solve_least_squares_exact_fit_and_errors():
    x = torch.arange(10, dtype=torch.float32).reshape(5, 2)
    ls = normopt.train.solve_least_squares(x, 3 * x[:, :1] - 2 * x[:, 1:] + 7)
    assert ls.exact and ls.mse < 1e-9
    y = torch.ones(5, 1)
    y[2] = math.nan
    with pytest.raises(RuntimeError, match="NaN"):
        normopt.train.solve_least_squares(x, y)
    with pytest.raises(RuntimeError, match="ridge"):
        normopt.train.solve_least_squares(x, x[:, :1], ridge=-1.0)


def test_batches_per_epoch_hand_counted():
    cases = {(20, 32): 1, (20, 0): 1, (20, 8): 3, (20, 5): 4, (20, 1): 20, (0, 4): 0,
             (28155, 32): 880}
    for (rows, batch), steps in cases.items():
        assert normopt.train.batches_per_epoch(rows, batch) == steps, (rows, batch)
    with pytest.raises(RuntimeError, match="negative|>= 0"):
        normopt.train.batches_per_epoch(20, -1)
