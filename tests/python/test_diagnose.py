"""normopt.diagnose and normopt.watch against the runs they forecast:
plain torch loops in float64 are the reference."""

import math
import warnings

import pytest
import torch

import normopt


def income_data(n=20, dtype=torch.float64):
    i = torch.arange(n, dtype=dtype)
    age = 22 + (i * 7) % 39
    experience = (i * 13) % 21
    noise = ((i * 37) % 11 - 5) * 450.0
    x = torch.stack([age, experience], 1)
    y = (25000 + 300 * age + 1200 * experience + noise).reshape(-1, 1)
    return x, y


def train(model, optimizer, x, y, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(model(x), y))


@pytest.mark.parametrize("make", [
    lambda p: torch.optim.SGD(p, lr=1e-4),
    lambda p: torch.optim.SGD(p, lr=1e-4, momentum=0.9, nesterov=True),
    lambda p: torch.optim.Adam(p, lr=0.5),
    lambda p: torch.optim.AdamW(p, lr=0.5, weight_decay=0.1, amsgrad=True),
    lambda p: normopt.optim.Adam(p, lr=0.5, epsilon_mode="keras"),
    lambda p: normopt.optim.SGD(p, lr=1e-4, momentum=0.5),
])
def test_linear_forecast_equals_the_plain_loop(make):
    x, y = income_data()
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1).double()
    optimizer = make(model.parameters())
    d = normopt.diagnose(model, optimizer, x, y, steps=150)
    assert d.method == "exact full-batch quadratic (float64)"
    assert d.trajectory.shape == (151, 2)
    mse = train(model, optimizer, x, y, 150)
    assert d.forecast_mse == pytest.approx(mse, rel=1e-9)
    optimum = torch.linalg.lstsq(torch.cat([x, torch.ones(20, 1, dtype=x.dtype)], 1), y).solution
    best = float(((torch.cat([x, torch.ones(20, 1, dtype=x.dtype)], 1) @ optimum - y) ** 2).mean())
    assert d.optimum_mse == pytest.approx(best, rel=1e-9)
    assert d.forecast_ratio == pytest.approx(mse / best, rel=1e-9)


def test_reads_model_and_optimizer_into_the_ops_arguments():
    # normopt.diagnose's numbers are the op's on the arguments written by hand
    # (the C++ suite checks the op's DescribedRun against diagnose(model, ...)).
    x, y = income_data(dtype=torch.float32)
    torch.manual_seed(0)
    model = normopt.nn.StandardizedRegressor(torch.nn.Linear(2, 1), target=normopt.nn.TargetStandardizer("none"))
    model.fit_statistics(x, y)
    optimizer = normopt.optim.Adam(model.parameters(), lr=1e-2)
    d = normopt.diagnose(model, optimizer, x, y, steps=200)
    # Direct DescribedRun through the op: the module's loss units, its weight.
    z = model.normalization(x.double())
    out = torch.ops.normopt.diagnose(
        z, y.double(), torch.ones(1, dtype=torch.float64), x.double(), y.double(), [],
        "none", "adam",
        [1e-2, 0, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 0, 0],
        model.regressor.weight.detach(), model.regressor.bias.detach(), 1e-2, 1e-2,
        None, None, "", 200, 0, True, 0)
    assert out[0] == d.verdict == "stalls"
    assert list(out[1]) == [d.initial_mse, d.forecast_mse, d.optimum_mse, d.forecast_ratio]
    assert d.find("adam_scale_stall") is not None
    assert "StandardizedRegressor" in d.find("forecast").message


def test_standardized_regressor_matches_its_training():
    x, y = income_data()
    torch.manual_seed(0)
    model = normopt.nn.StandardizedRegressor(torch.nn.Linear(2, 1).double())
    model.fit_statistics(x, y)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    d = normopt.diagnose(model, optimizer, x, y, steps=100)
    for _ in range(100):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), model.transform_targets(y)).backward()
        optimizer.step()
    with torch.no_grad():
        mse = float(((model.predict(x) - y) ** 2).mean())
    assert d.forecast_mse == pytest.approx(mse, rel=1e-9)
    assert d.verdict == "stalls"
    assert d.find("lr_too_small") is not None


def test_mlp_replayed_on_a_copy_changes_nothing():
    x, y = income_data()
    xs, ys = (x - x.mean(0)) / x.std(0), (y - y.mean()) / y.std()
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    optimizer = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in mlp.parameters()]
    torch.manual_seed(3)
    d = normopt.diagnose(mlp, optimizer, xs, ys, steps=300)
    draw = torch.rand(2)
    torch.manual_seed(3)
    assert torch.equal(draw, torch.rand(2))
    assert all(torch.equal(a, b) for a, b in zip(before, mlp.parameters()))
    assert optimizer.state == {} or all(len(s) == 0 for s in optimizer.state.values())
    assert "replay" in d.method
    mse = train(mlp, optimizer, xs, ys, 300)
    assert d.forecast_mse == pytest.approx(mse, rel=1e-9)
    assert d.verdict == ("converges" if mse <= 1.2 * d.optimum_mse else d.verdict)


def test_bad_input_is_refused_with_a_message():
    x, y = income_data()
    model = torch.nn.Linear(2, 1).double()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        normopt.diagnose(model, sgd, x, y, steps=0)
    with pytest.raises(ValueError, match="holds none of the model's parameters"):
        normopt.diagnose(torch.nn.Linear(2, 1).double(), sgd, x, y, steps=5)
    bad = x.clone()
    bad[3, 1] = math.nan
    with pytest.raises(RuntimeError, match=r"feature \[3, 1\] is NaN or Inf"):
        normopt.diagnose(model, sgd, bad, y, steps=5)
    wide = torch.nn.Linear(2, 3).double()
    with pytest.raises(RuntimeError, match="weight has shape"):
        normopt.diagnose(wide, torch.optim.SGD(wide.parameters(), lr=0.1), x, y, steps=5)


def test_watch_warns_once_when_the_run_falls_behind():
    x, y = income_data()
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1).double()
    sgd = torch.optim.SGD(model.parameters(), lr=1e-4)
    d = normopt.diagnose(model, sgd, x, y, steps=1000)
    # The run that was forecast: no warning.
    w = normopt.watch(model, sgd, x, y, d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(model, sgd, x, y, 1000)
    w.remove()
    # The same forecast watched over a run that secretly takes 100x smaller steps.
    torch.manual_seed(0)
    slow_model = torch.nn.Linear(2, 1).double()
    slow = torch.optim.SGD(slow_model.parameters(), lr=1e-6)
    w = normopt.watch(slow_model, slow, x, y, d)
    with pytest.warns(UserWarning, match="falling behind") as caught:
        train(slow_model, slow, x, y, 1000)
    assert len(caught) == 1
    w.remove()
