"""normopt.forecast: diagnose(), the forecast of a training run before its first
step, and watch(), which warns when a run falls behind it (both also as
normopt.diagnose and normopt.watch).

The numbers come from the one C++ implementation (train::diagnose, through
the op ``torch.ops.normopt.diagnose``): this module only reads the model,
the optimizer and the data into its arguments. An affine model
(``torch.nn.Linear``, alone or inside ``normopt.nn.StandardizedRegressor``)
is forecast exactly there; any other module is replayed here on a copy,
with a copy of the optimizer, and the C++ side judges that trajectory.

    d = normopt.diagnose(model, optimizer, x, y, steps=5000)
    print(d.verdict, d.forecast_ratio)   # "stalls", 143.0
    for f in d.findings:
        print(f)                         # [warning] lr_too_small: ...

    watch = normopt.watch(model, optimizer, x, y, d)   # warns once if
    ...                                                # the run falls behind
"""

import copy
import dataclasses
import math
import warnings

import torch

from normopt import nn as _nn
from normopt import optim as _optim

__all__ = ["Diagnosis", "Finding", "diagnose", "watch", "ForecastWatch"]

_REPLAY_ROWS = 1024


@dataclasses.dataclass(frozen=True)
class Finding:
    """One result of diagnose(): severity ("warning"/"info"), code, message."""

    severity: str
    code: str
    message: str

    def __str__(self):
        return f"[{self.severity}] {self.code}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """What diagnose() returns (the C++ train::Diagnosis)."""

    verdict: str  # "converges", "stalls", "diverges" or "unknown"
    initial_mse: float  # original units
    forecast_mse: float  # after the planned steps
    optimum_mse: float  # closed-form least squares with an intercept
    forecast_ratio: float  # forecast_mse / optimum_mse
    planned_steps: int
    steps_needed: int  # first step within 1.2x of the optimum; -1: not seen
    steps_searched: int
    method: str  # how the trajectory was forecast
    trajectory: torch.Tensor  # (m, 2): step, forecast MSE
    findings: tuple

    def find(self, code):
        """The finding with `code`, or None."""
        return next((f for f in self.findings if f.code == code), None)

    def mse_at(self, step):
        """The forecast MSE at `step` (log-linear between points)."""
        steps = self.trajectory[:, 0].contiguous()
        mse = self.trajectory[:, 1].contiguous()
        if len(steps) == 0 or step < steps[0] or step > steps[-1]:
            return math.nan
        i = int(torch.searchsorted(steps, torch.tensor([float(step)], dtype=steps.dtype)))
        if steps[i] == step or i == 0:
            return float(mse[i])
        f = (step - steps[i - 1]) / (steps[i] - steps[i - 1])
        return float(torch.exp((1 - f) * mse[i - 1].log() + f * mse[i].log()))

    def __str__(self):
        head = self.verdict
        if self.verdict != "unknown":
            head += (f": forecast MSE {self.forecast_mse:.1e}, {self.forecast_ratio:.3g}x "
                     f"the optimum {self.optimum_mse:.1e} after {self.planned_steps} steps")
        return "\n".join([head] + [f"  {f}" for f in self.findings])


# ---- The optimizer as the op's settings -----------------------------------


def _settings(optimizer):
    """(rule, settings) of param group 0, as the op reads them."""
    if not optimizer.param_groups:
        raise ValueError("diagnose: the optimizer has no param groups; build it on the "
                         "model's parameters()")
    g = optimizer.param_groups[0]
    flag = lambda key: float(bool(g.get(key, False)))  # noqa: E731
    if isinstance(optimizer, (torch.optim.SGD, _optim.SGD)):
        return "sgd", [g["lr"], g.get("momentum", 0.0), g.get("dampening", 0.0),
                       flag("nesterov"), g.get("weight_decay", 0.0), 0.0, 0.0, 0.0,
                       0.0, 0.0, 0.0, flag("maximize")]
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW, _optim.Adam)):
        decoupled = isinstance(optimizer, (torch.optim.AdamW, _optim.AdamW)) or bool(
            g.get("decoupled_weight_decay", False))
        keras = g.get("epsilon_mode", "pytorch") == "keras"
        eps = g["eps"] if g["eps"] is not None else (1e-7 if keras else 1e-8)
        wd = g.get("weight_decay", 0.0)
        beta1, beta2 = g["betas"]
        return "adam", [g["lr"], 0.0, 0.0, 0.0, 0.0 if decoupled else wd,
                        wd if decoupled else 0.0, beta1, beta2, eps, float(keras),
                        flag("amsgrad"), flag("maximize")]
    lr = g.get("lr", math.nan)
    return "unknown", [float(lr)] + [0.0] * 11


def _lr_of(optimizer, param):
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return float(group["lr"])
    return math.nan


# ---- The model as the op's data --------------------------------------------


def _loss_units(model, x, y):
    """(inner module, z, t, unit, the TargetStandardizer's method or "") as the
    loss sees them."""
    y2 = y.reshape(-1, 1) if y.dim() == 1 else y
    x64, y64 = x.detach().double(), y2.detach().double()
    if not isinstance(model, _nn.StandardizedRegressor):
        return model, x64, y64, torch.ones(y64.shape[1], dtype=torch.float64), ""
    normalization, target = model.normalization, model.target
    if not normalization.is_adapted():  # the statistics fit() would compute
        normalization = copy.deepcopy(normalization).cpu()
        normalization.adapt(x.detach())
    if not target.is_fitted():
        target = copy.deepcopy(target).cpu()
        target.fit(y.detach())
    with torch.no_grad():
        z = _forward64(normalization, x64)
        t = _forward64(target, y64)
    unit = target.scale.detach().double().reshape(-1).cpu()
    if unit.numel() == 1 and t.shape[1] > 1:
        unit = unit.expand(t.shape[1]).contiguous()
    return model.regressor, z, t, unit, target.method


def _forward64(module, data):
    with torch.no_grad():
        return module(data.to(_device_of(module))).double().cpu()


def _device_of(module):
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _replay(inner, optimizer, z, t, unit, steps, batch_size, shuffle, seed):
    """(trajectory, initial prediction mean) of `inner` trained on a copy."""
    params = list(inner.parameters())
    if not params:
        raise ValueError("diagnose: the model has no parameters")
    dtype, device = params[0].dtype, params[0].device
    replica = copy.deepcopy(inner)
    index = {id(p): i for i, p in enumerate(params)}
    copies = list(replica.parameters())
    groups = []
    for g in optimizer.param_groups:
        held = [copies[index[id(p)]] for p in g["params"] if id(p) in index]
        if held:
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": held})
    if not groups:
        raise ValueError("diagnose: the optimizer holds none of the model's parameters; "
                         "build it on the model's parameters()")
    # Every group holds all its settings, so the class alone rebuilds it.
    opt = type(optimizer)(groups)
    zd, td = z.to(device, dtype), t.to(device, dtype)
    n = zd.shape[0]
    batch = n if not batch_size else min(batch_size, n)
    batches = -(-n // batch)
    full_rows = None
    if batches == 1 and n > _REPLAY_ROWS:
        g = torch.Generator().manual_seed(seed)
        full_rows = torch.randperm(n, generator=g)[:_REPLAY_ROWS].to(device)
    weights = unit.to(torch.float64).square()

    def mse():
        with torch.no_grad():
            replica.eval()
            d = replica(zd).double().reshape(td.shape) - td.double()
            return float((d.square().mean(0).cpu() * weights).mean())

    with torch.no_grad():
        replica.eval()
        initial = replica(zd).double().reshape(td.shape).mean(0).cpu()
    points = [(0.0, mse())]
    done, epoch = 0, 0
    while done < steps and math.isfinite(points[-1][1]):
        epoch += 1
        order = None
        if batches > 1 and shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).to(device)
        for b in range(batches):
            if done == steps:
                break
            if full_rows is not None:
                rows = full_rows
            elif order is not None:
                rows = order[b * batch:(b + 1) * batch]
            else:
                rows = torch.arange(b * batch, min(n, (b + 1) * batch), device=device)
            replica.train()
            opt.zero_grad()
            pred = replica(zd[rows]).reshape(td[rows].shape)
            torch.nn.functional.mse_loss(pred, td[rows]).backward()
            opt.step()
            done += 1
        points.append((float(done), mse()))
    if points[-1][0] != steps:  # diverged early: the rest stays infinite
        points.append((float(steps), math.inf))
    return torch.tensor(points, dtype=torch.float64), initial


def diagnose(model, optimizer, x, y, *, steps, batch_size=None, shuffle=True, seed=0):
    """Forecasts `optimizer` training `model` on (x, y) with torch.nn.functional.mse_loss
    for `steps` steps of `batch_size` rows (None or 0: full batch), as normopt's fit()
    orders them (epoch e's permutation from seed + e), and checks the setup.

    Changes nothing: parameters, optimizer state, statistics, train/eval mode and the
    global RNG are as before. Raises ValueError or RuntimeError (from C++) saying what to
    do on bad input.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"diagnose: steps must be an int >= 1 (the optimizer steps the "
                         f"run will take), got {steps!r}")
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("diagnose: x and y must be tensors")
    if not list(model.parameters()):
        raise ValueError("diagnose: the model has no parameters; give it a module with "
                         "parameters, e.g. torch.nn.Linear(n_features, 1)")
    batch = int(batch_size or 0)
    if batch < 0:
        raise ValueError(f"diagnose: batch_size must be >= 0 (0 or None = full batch), got {batch}")
    rng = torch.get_rng_state()
    was_training = model.training
    try:
        raw_y = y.detach().double().cpu()
        raw_x = x.detach().double().cpu()
        inner, z, t, unit, scaling = _loss_units(model, x, y)
        rule, settings = _settings(optimizer)
        weight = bias = replayed = initial = None
        lr_w = lr_b = math.nan
        method = ""
        if isinstance(inner, torch.nn.Linear):
            weight, bias = inner.weight.detach(), inner.bias
            bias = None if bias is None else bias.detach()
            lr_w = _lr_of(optimizer, inner.weight)
            lr_b = _lr_of(optimizer, inner.bias) if inner.bias is not None else math.nan
            if math.isnan(lr_w) and math.isnan(lr_b):
                raise ValueError("diagnose: the optimizer holds none of the model's "
                                 "parameters; build it on the model's parameters()")
        elif rule != "unknown" and torch.isfinite(raw_x).all() and torch.isfinite(raw_y).all():
            replayed, initial = _replay(inner, optimizer, z, t, unit, steps, batch, shuffle, seed)
            method = ("replay of the model on a copy with a copy of the optimizer (" +
                      (f"batches of {min(batch, z.shape[0])} rows in fit()'s order)"
                       if batch and batch < z.shape[0] else "full batch)"))
        out = torch.ops.normopt.diagnose(
            z, t, unit, raw_x, raw_y, [], scaling, rule, [float(s) for s in settings],
            weight, bias, lr_w, lr_b, replayed, initial, method, steps, batch, shuffle, seed)
    finally:
        torch.set_rng_state(rng)
        model.train(was_training)
    verdict, numbers, counts, trajectory, method, severities, codes, messages = out
    return Diagnosis(verdict, *numbers, *counts, method, trajectory,
                     tuple(Finding(*f) for f in zip(severities, codes, messages)))


class ForecastWatch:
    """Compares a run's training MSE with its forecast at steps 200, 400, 800, ...
    (doubling, so it costs a few evaluations per run) and warns once, with the fix,
    when the run is more than 2x behind the forecast. Made by watch()."""

    def __init__(self, model, optimizer, x, y, diagnosis, first=200):
        self.model, self.x, self.y, self.diagnosis = model, x, y, diagnosis
        self.step, self.next_check, self.warned = 0, first, False
        inner, self._z, self._t, self._unit, _ = _loss_units(model, x, y)
        self._inner = inner
        self.handle = optimizer.register_step_post_hook(self._after_step)

    def _observed(self):
        with torch.no_grad():
            was = self._inner.training
            self._inner.eval()
            p = next(self._inner.parameters())
            d = self._inner(self._z.to(p.device, p.dtype)).double().cpu().reshape(self._t.shape) - self._t
            self._inner.train(was)
            return float((d.square().mean(0) * self._unit.square()).mean())

    def _after_step(self, optimizer, args, kwargs):
        self.step += 1
        if self.warned or self.step < self.next_check:
            return
        self.next_check *= 2
        expected = self.diagnosis.mse_at(self.step)
        observed = self._observed()
        if math.isnan(expected) or not observed > 2 * expected:
            return
        self.warned = True
        fix = next((f.message for f in self.diagnosis.findings if f.severity == "warning"),
                   "check the learning rate and the target scale")
        warnings.warn(f"normopt.watch: after {self.step} steps the training MSE is "
                      f"{observed:.3g}, {observed / expected:.3g}x the forecast "
                      f"{expected:.3g}: the run is falling behind. {fix}", stacklevel=2)

    def remove(self):
        """Stops watching."""
        self.handle.remove()


def watch(model, optimizer, x, y, diagnosis, *, first=200):
    """A ForecastWatch on `optimizer` (register_step_post_hook): warns once when the
    run falls behind `diagnosis` (from diagnose()). Call .remove() to stop."""
    return ForecastWatch(model, optimizer, x, y, diagnosis, first)
