"""normopt.optim.Adam / AdamW / SGD against independent references:
torch.optim's optimizers (float64 trajectories to 1e-12), a hand-written
float64 Keras Adam, torch.optim runs that never saw a skipped step, and
uninterrupted runs for state_dict round trips; plus LR schedulers, float32,
the cached step lists' invalidation, and argument errors."""

import collections
import copy
import io
import math
import os

import pytest
import torch
from conftest import REPO, library_path, run_python

# The parametrizations name the classes, so normopt.optim is imported while
# collecting: with the library the session fixture loads (it sets the same
# $NORMOPT_LIBRARY), or, without one, the module is skipped with the reason.
if library_path().exists():
    os.environ["NORMOPT_LIBRARY"] = str(library_path())
no = pytest.importorskip("normopt.optim", exc_type=ImportError)

F64 = torch.float64
SHAPES = [(5, 3), (7,), (2, 3, 4), ()]
STEPS = 20
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CPU-only machine)")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
# On CUDA nvcc may contract a*b+c into one rounding where torch.optim's
# separate kernels round twice (see test_ops.py): a looser float64 bound.
RTOL = {"cpu": 1e-12, "cuda": 1e-10}


def make_params(dtype=F64, device="cpu", seed=0, shapes=SHAPES):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=F64).to(dtype=dtype, device=device) for s in shapes]


TARGETS = make_params(seed=1)


def loss_of(params, scale=1.0):
    """A loss whose gradients depend on the parameters, so a difference in
    one update changes every later gradient; separable per parameter."""
    return scale * sum(((p - t.to(p)) ** 2).sum() + torch.sin(3 * p).sum() for p, t in zip(params, TARGETS))


def leaves(params):
    return [p.detach().clone().requires_grad_() for p in params]


def trajectory(make_opt, init, steps=STEPS, grad_none=None, scale=1.0, between=None):
    """Parameters after each step of make_opt(params) on loss_of (through
    step(closure)); grad_none(t) lists the parameters without a gradient at
    step t; between(t, opt, params) runs before step t."""
    params = leaves(init)
    opt = make_opt(params)
    out = []
    for t in range(steps):
        if between is not None:
            between(t, opt, params)

        def closure():
            opt.zero_grad()
            loss = loss_of(params, scale)
            loss.backward()
            for i in grad_none(t) if grad_none else ():
                params[i].grad = None
            return loss

        loss = opt.step(closure)
        assert isinstance(loss, torch.Tensor)
        out.append([p.detach().clone() for p in params])
    return out, opt


def assert_trajectories_close(got, expected, rtol=1e-12, atol=1e-14):
    assert len(got) == len(expected)
    for t, (got_t, expected_t) in enumerate(zip(got, expected), start=1):
        for i, (g, e) in enumerate(zip(got_t, expected_t)):
            torch.testing.assert_close(g, e, rtol=rtol, atol=atol, msg=lambda m: f"step {t}, param {i}: {m}")
    # The run moved every parameter: the comparison is not of two no-ops.
    for first, last in zip(got[0], got[-1]):
        assert not torch.equal(first, last)


def torch_opt(cls, **options):
    return lambda params: cls(params, foreach=False, **options)


def normopt_opt(cls, **options):
    return lambda params: cls(params, **options)


ADAM_VARIANTS = {
    "default": dict(lr=1e-2),
    "weight_decay": dict(lr=1e-2, weight_decay=0.05),
    "amsgrad": dict(lr=1e-2, amsgrad=True),
    "maximize": dict(lr=1e-2, maximize=True),
    "betas_eps": dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-6),
    "amsgrad_weight_decay_maximize": dict(lr=1e-2, amsgrad=True, weight_decay=0.05, maximize=True),
}
SGD_VARIANTS = {
    "plain": dict(lr=1e-2),
    "momentum": dict(lr=1e-2, momentum=0.9),
    "momentum_dampening_decay": dict(lr=1e-2, momentum=0.9, dampening=0.3, weight_decay=0.01),
    "nesterov": dict(lr=1e-2, momentum=0.9, nesterov=True),
    "nesterov_maximize_decay": dict(lr=1e-2, momentum=0.8, nesterov=True, maximize=True, weight_decay=0.02),
}


# ---- Trajectories against torch.optim (float64) ------------------------------


def assert_matches_torch(cls, torch_cls, options, device):
    """normopt's `cls` and torch.optim's `torch_cls`, both with `options`,
    follow the same trajectory from the same parameters on `device`, and the
    parameters stay there."""
    init = make_params(device=device)
    got, _ = trajectory(normopt_opt(cls, **options), init)
    expected, _ = trajectory(torch_opt(torch_cls, **options), init)
    assert_trajectories_close(got, expected, rtol=RTOL[device])
    assert all(p.device.type == device for p in got[-1])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", ADAM_VARIANTS, ids=str)
def test_adam_matches_torch_adam(variant, device):
    assert_matches_torch(no.Adam, torch.optim.Adam, ADAM_VARIANTS[variant], device)


@pytest.mark.parametrize("variant", ["default", "amsgrad_weight_decay_maximize"])
def test_adamw_matches_torch_adamw(variant):
    options = dict(ADAM_VARIANTS[variant])
    options.setdefault("weight_decay", 0.1)
    init = make_params()
    got, _ = trajectory(normopt_opt(no.AdamW, **options), init)
    expected, _ = trajectory(torch_opt(torch.optim.AdamW, **options), init)
    assert_trajectories_close(got, expected)
    # And AdamW's decay is not Adam's L2 penalty.
    adam, _ = trajectory(torch_opt(torch.optim.Adam, **options), init)
    assert not torch.allclose(got[-1][0], adam[-1][0], rtol=1e-6, atol=0)


def test_adamw_default_weight_decay_is_torch_s():
    init = make_params()
    got, opt = trajectory(normopt_opt(no.AdamW), init)
    expected, _ = trajectory(torch_opt(torch.optim.AdamW), init)
    assert opt.param_groups[0]["weight_decay"] == 1e-2
    assert_trajectories_close(got, expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", SGD_VARIANTS, ids=str)
def test_sgd_matches_torch_sgd(variant, device):
    assert_matches_torch(no.SGD, torch.optim.SGD, SGD_VARIANTS[variant], device)


def two_groups(cls, foreach=None, **defaults):
    """Two param groups with their own lr (and more), as torch.optim takes them."""
    extra = {} if foreach is None else dict(foreach=foreach)

    def make(params):
        if cls in (no.SGD, torch.optim.SGD):
            first = dict(lr=0.05, momentum=0.5, weight_decay=0.01)
        else:
            first = dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.01)
        return cls([{"params": params[:2], **first}, {"params": params[2:]}], **defaults, **extra)

    return make


@pytest.mark.parametrize(
    "ours, reference, defaults",
    [
        (no.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
        (no.AdamW, torch.optim.AdamW, dict(lr=1e-2)),
        (no.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True)),
    ],
    ids=["Adam", "AdamW", "SGD"],
)
def test_two_param_groups_match_torch(ours, reference, defaults):
    init = make_params()
    got, opt = trajectory(two_groups(ours, **defaults), init)
    expected, _ = trajectory(two_groups(reference, foreach=False, **defaults), init)
    assert_trajectories_close(got, expected)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 1e-2]


@pytest.mark.parametrize(
    "ours, reference, options",
    [
        (no.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
        (no.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9, dampening=0.2)),
    ],
    ids=["Adam", "SGD"],
)
def test_missing_gradients_skip_those_parameters_like_torch(ours, reference, options):
    # Parameter i has no gradient when (t + i) % 3 == 0, and parameter 3
    # none before step 7: per-parameter step counts (Adam's bias correction)
    # and first-step momentum buffers differ, and the step's lists change.
    def grad_none(t):
        return [i for i in range(len(SHAPES)) if (t + i) % 3 == 0 or (i == 3 and t < 6)]

    init = make_params()
    got, opt = trajectory(normopt_opt(ours, **options), init, grad_none=grad_none)
    expected, ref = trajectory(torch_opt(reference, **options), init, grad_none=grad_none)
    assert_trajectories_close(got, expected)
    for p, r in zip(opt.param_groups[0]["params"], ref.param_groups[0]["params"]):
        assert opt.state[p].keys() == ref.state[r].keys()
        if "step" in ref.state[r]:
            assert opt.state[p]["step"].item() == ref.state[r]["step"].item()


def test_mixed_dtypes_in_one_group_match_torch():
    # float64 and float32 parameters in one group: one fused call per dtype.
    init = make_params()
    init[1] = init[1].float()
    got, _ = trajectory(normopt_opt(no.Adam, lr=1e-2), init)
    expected, _ = trajectory(torch_opt(torch.optim.Adam, lr=1e-2), init)
    for got_t, expected_t in zip(got, expected):
        for i, (g, e) in enumerate(zip(got_t, expected_t)):
            assert g.dtype == e.dtype
            # float32: see test_float32_params_match_torch_within_rounding.
            tol = dict(rtol=1e-5, atol=1e-6) if g.dtype == torch.float32 else dict(rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(g, e, **tol)


def test_gradient_with_other_strides_than_its_parameter():
    # A transposed gradient (strides (1, 5) for a (5, 3) parameter) is
    # copied to the parameter's layout for the op; the update is the same.
    init = make_params()

    def run(make_opt):
        params = leaves(init)
        opt = make_opt(params)
        for _ in range(5):
            opt.zero_grad()
            loss_of(params).backward()
            params[0].grad = params[0].grad.t().contiguous().t()
            assert params[0].grad.stride() != params[0].stride()
            opt.step()
        return [p.detach() for p in params]

    got = run(normopt_opt(no.Adam, lr=1e-2))
    expected = run(torch_opt(torch.optim.Adam, lr=1e-2))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-14)


def test_step_returns_the_closure_s_loss_and_none_without_one():
    params = leaves(make_params())
    opt = no.Adam(params)
    losses = []

    def closure():
        assert torch.is_grad_enabled()
        opt.zero_grad()
        loss = loss_of(params)
        loss.backward()
        losses.append(loss)
        return loss

    with torch.no_grad():  # step() enables gradients for the closure
        assert opt.step(closure) is losses[0]
    assert opt.step() is None


# ---- Keras's epsilon ----------------------------------------------------------


def keras_adam_reference(init, lr, b1, b2, eps, steps, scale, weight_decay=0.0):
    """Keras's Adam in float64, written from its formula:
    alpha = lr sqrt(1 - b2^t) / (1 - b1^t); p -= alpha m / (sqrt(v) + eps);
    with decoupled weight decay p *= 1 - lr wd first (AdamW)."""
    params = leaves(init)
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    out = []
    for t in range(1, steps + 1):
        for p in params:
            p.grad = None
        loss_of(params, scale).backward()
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        with torch.no_grad():
            for i, p in enumerate(params):
                g = p.grad
                p.mul_(1 - lr * weight_decay)
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                p.sub_(alpha * m[i] / (v[i].sqrt() + eps))
        out.append([p.detach().clone() for p in params])
    return out


# Gradients of order 1e-6, so sqrt(v) is of the order of eps and where eps
# is added matters: PyTorch's formula lands far from Keras's here.
KERAS_SCALE = 1e-6


@pytest.mark.parametrize(
    "cls, options, reference",
    [
        # eps=None: Keras's default 1e-7.
        (no.Adam, dict(lr=1e-2), dict(lr=1e-2, b1=0.9, b2=0.999, eps=1e-7)),
        (no.Adam, dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-8), dict(lr=1e-2, b1=0.8, b2=0.99, eps=1e-8)),
        (no.AdamW, dict(lr=1e-2, weight_decay=0.1), dict(lr=1e-2, b1=0.9, b2=0.999, eps=1e-7, weight_decay=0.1)),
    ],
    ids=["Adam_default_eps", "Adam_eps_1e-8", "AdamW"],
)
def test_keras_epsilon_mode_matches_keras_formula(cls, options, reference):
    init = make_params()
    got, opt = trajectory(normopt_opt(cls, epsilon_mode="keras", **options), init, scale=KERAS_SCALE)
    expected = keras_adam_reference(init, steps=STEPS, scale=KERAS_SCALE, **reference)
    assert opt.param_groups[0]["epsilon_mode"] == "keras"
    assert_trajectories_close(got, expected, rtol=1e-11, atol=1e-14)
    # The reference tells the modes apart: PyTorch's formula is far from it.
    pytorch_mode, _ = trajectory(normopt_opt(cls, **options), init, scale=KERAS_SCALE)
    assert (pytorch_mode[-1][0] - expected[-1][0]).abs().max() > 1e-4


def test_pytorch_epsilon_mode_default_eps_is_1e8():
    init = make_params()
    got, _ = trajectory(normopt_opt(no.Adam, lr=1e-2), init, scale=KERAS_SCALE)
    expected, _ = trajectory(torch_opt(torch.optim.Adam, lr=1e-2, eps=1e-8), init, scale=KERAS_SCALE)
    assert_trajectories_close(got, expected)
    other, _ = trajectory(torch_opt(torch.optim.Adam, lr=1e-2, eps=1e-7), init, scale=KERAS_SCALE)
    assert (other[-1][0] - got[-1][0]).abs().max() > 1e-4


# ---- skip_nonfinite -----------------------------------------------------------


def gradient_stream(n_steps, seed=3):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=g, dtype=F64) for s in SHAPES] for _ in range(n_steps)]


def run_stream(opt, params, stream):
    for grads in stream:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()


def state_snapshot(opt):
    return {id(p): {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), name


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    "ours, reference, options",
    [
        (no.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
        (no.AdamW, torch.optim.AdamW, dict(lr=1e-2)),
        (no.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9)),
    ],
    ids=["Adam", "AdamW", "SGD"],
)
def test_skip_nonfinite_skips_the_whole_step(ours, reference, options, bad):
    init = make_params()
    stream = gradient_stream(10)
    bad_grads = [g.clone() for g in stream[5]]
    bad_grads[2].view(-1)[7] = bad  # one element of the third parameter
    params = leaves(init)
    # Two groups: the bad gradient is in the second, the step skipped for both.
    opt = ours([{"params": params[:2]}, {"params": params[2:]}], skip_nonfinite=True, **options)
    run_stream(opt, params, stream[:5])
    before_params = [p.detach().clone() for p in params]
    before_state = state_snapshot(opt)
    for p, g in zip(params, bad_grads):
        p.grad = g
    with pytest.warns(RuntimeWarning, match=r"skipped a step whose gradients hold NaN or Inf.*1 step\(s\) skipped"):
        opt.step()
    assert opt.skipped_steps == 1
    for p, b in zip(params, before_params):
        assert torch.equal(p.detach(), b)
    assert_same_state(state_snapshot(opt), before_state)
    run_stream(opt, params, stream[6:])
    # Against torch.optim that never saw the bad step.
    ref_params = leaves(init)
    ref = reference([{"params": ref_params[:2]}, {"params": ref_params[2:]}], foreach=False, **options)
    run_stream(ref, ref_params, stream[:5] + stream[6:])
    for p, r in zip(params, ref_params):
        torch.testing.assert_close(p.detach(), r.detach(), rtol=1e-12, atol=1e-14)
    if "step" in ref.state[ref_params[0]]:
        assert opt.state[params[0]]["step"].item() == ref.state[ref_params[0]]["step"].item() == 9


def test_skip_nonfinite_on_the_first_step_creates_no_state():
    params = leaves(make_params())
    opt = no.Adam(params, skip_nonfinite=True)
    for p in params:
        p.grad = torch.full_like(p, math.nan)
    with pytest.warns(RuntimeWarning, match="skipped a step"):
        opt.step()
    assert len(opt.state) == 0 and opt.skipped_steps == 1
    run_stream(opt, params, gradient_stream(1))
    assert opt.state[params[0]]["step"].item() == 1


def test_skip_nonfinite_takes_a_step_with_huge_finite_gradients():
    # 1e200 squared overflows float64: the fast 2-norm check is inf, the
    # exact check finds every value finite, and the step is taken.
    params = leaves(make_params())
    opt = no.SGD(params, lr=1e-201, skip_nonfinite=True)
    for p in params:
        p.grad = torch.full_like(p, 1e200)
    assert torch.isinf(torch.nn.utils.get_total_norm([p.grad for p in params], 2.0))
    before = [p.detach().clone() for p in params]
    opt.step()
    assert opt.skipped_steps == 0
    for p, b in zip(params, before):
        torch.testing.assert_close(p.detach(), b - 0.1, rtol=0, atol=1e-12)


def test_without_skip_nonfinite_a_nan_reaches_the_parameters():
    params = leaves(make_params())
    opt = no.Adam(params)
    for p in params:
        p.grad = torch.ones_like(p)
    params[0].grad[0, 0] = math.nan
    opt.step()
    assert torch.isnan(params[0]).any() and opt.skipped_steps == 0


# ---- state_dict ---------------------------------------------------------------


def test_state_names_and_step_dtype_are_torch_s():
    init = make_params()
    _, ours = trajectory(normopt_opt(no.Adam, amsgrad=True), init, steps=3)
    _, ref = trajectory(torch_opt(torch.optim.Adam, amsgrad=True), init, steps=3)
    got, expected = ours.state_dict(), ref.state_dict()
    assert got["state"].keys() == expected["state"].keys()
    for i, state in got["state"].items():
        assert state.keys() == expected["state"][i].keys() == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
        step = state["step"]
        assert isinstance(step, torch.Tensor) and step.dim() == 0
        assert step.dtype == expected["state"][i]["step"].dtype == torch.float32
        assert step.item() == 3
    assert got["skipped_steps"] == 0
    _, sgd = trajectory(normopt_opt(no.SGD, momentum=0.9), init, steps=2)
    assert all(s.keys() == {"momentum_buffer"} for s in sgd.state_dict()["state"].values())


def loading(get_state_dict):
    """A trajectory's `between` that loads get_state_dict() before step 1."""

    def between(t, opt, params):
        if t == 0:
            opt.load_state_dict(get_state_dict())

    return between


ROUND_TRIP = {
    "Adam_amsgrad": (no.Adam, dict(lr=1e-2, amsgrad=True, weight_decay=0.01)),
    "AdamW_keras": (no.AdamW, dict(lr=1e-2, epsilon_mode="keras")),
    "SGD_nesterov": (no.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True)),
}


@pytest.mark.parametrize("variant", ROUND_TRIP, ids=str)
def test_state_dict_round_trip_through_torch_save_is_bitwise(variant):
    cls, options = ROUND_TRIP[variant]
    init = make_params()

    def make(params):
        return cls([{"params": params[:1], "lr": 0.03}, {"params": params[1:]}], **options)

    uninterrupted, full = trajectory(make, init, steps=10)
    first, opt = trajectory(make, init, steps=5)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    del opt
    buffer.seek(0)
    # A fresh optimizer on the parameters after step 5, the saved state loaded.
    second, resumed = trajectory(make, first[-1], steps=5, between=loading(lambda: torch.load(buffer)))
    for got, expected in zip(first + second, uninterrupted):
        for g, e in zip(got, expected):
            assert torch.equal(g, e)
    resumed_params = [p for g in resumed.param_groups for p in g["params"]]
    full_params = [p for g in full.param_groups for p in g["params"]]
    for p, q in zip(resumed_params, full_params):
        assert resumed.state[p].keys() == full.state[q].keys()
        for name in full.state[q]:
            assert torch.equal(resumed.state[p][name], full.state[q][name]), name
    assert [g["lr"] for g in resumed.param_groups] == [0.03, options["lr"]]


def test_skipped_steps_survive_state_dict_and_bad_counts_are_refused():
    params = leaves(make_params())
    opt = no.SGD(params, lr=0.1, skip_nonfinite=True)
    for p in params:
        p.grad = torch.full_like(p, math.inf)
    with pytest.warns(RuntimeWarning):
        opt.step()
        opt.step()
    state = opt.state_dict()
    assert state["skipped_steps"] == 2
    fresh = no.SGD(leaves(params), lr=0.1, skip_nonfinite=True)
    fresh.load_state_dict(state)
    assert fresh.skipped_steps == 2
    with pytest.raises(ValueError, match=r"skipped_steps is -1; expected a count >= 0"):
        fresh.load_state_dict({**state, "skipped_steps": -1})


def test_loads_torch_adam_state_dict_and_continues_like_torch():
    # The state_dict format is torch.optim.Adam's: a run started by torch
    # continues under normopt exactly as it does under torch.
    init = make_params()
    first, ref = trajectory(torch_opt(torch.optim.Adam, lr=1e-2, amsgrad=True), init, steps=5)
    saved = copy.deepcopy(ref.state_dict())
    load = loading(lambda: copy.deepcopy(saved))
    expected, _ = trajectory(torch_opt(torch.optim.Adam, lr=1e-2, amsgrad=True), first[-1], steps=5, between=load)
    got, opt = trajectory(normopt_opt(no.Adam), first[-1], steps=5, between=load)
    assert opt.param_groups[0]["amsgrad"] and opt.param_groups[0]["epsilon_mode"] == "pytorch"
    assert_trajectories_close(got, expected)


MOVES = {
    "Adam": (no.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True, weight_decay=0.01)),
    "AdamW": (no.AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.05)),
    "SGD": (no.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True)),
}


@pytest.mark.parametrize("name", MOVES)
@pytest.mark.parametrize("direction", ["normopt_to_torch", "torch_to_normopt"])
def test_state_dict_moves_between_normopt_and_torch_optim(name, direction):
    # A checkpoint moves both ways (eps None used to break torch's step): 5
    # steps under one, then 5 under the other, equal 10 under the first.
    ours, theirs, options = MOVES[name]
    first_cls, second_cls = (ours, theirs) if direction == "normopt_to_torch" else (theirs, ours)
    make = lambda cls: torch_opt(cls, **options) if cls is theirs else normopt_opt(cls, **options)  # noqa: E731
    init = make_params()
    first, opt = trajectory(make(first_cls), init, steps=5)
    saved = copy.deepcopy(opt.state_dict())
    assert all(group.get("eps", 1.0) is not None for group in saved["param_groups"])
    load = loading(lambda: copy.deepcopy(saved))
    got, _ = trajectory(make(second_cls), first[-1], steps=5, between=load)
    expected, _ = trajectory(make(first_cls), first[-1], steps=5, between=load)
    assert_trajectories_close(got, expected)


def test_eps_none_resolves_per_group_mode_and_in_old_state_dicts():
    p, q = make_params()[:2]
    opt = no.Adam([{"params": [p]}, {"params": [q], "epsilon_mode": "keras"}])
    assert [g["eps"] for g in opt.param_groups] == [1e-8, 1e-7]
    old = opt.state_dict()
    for group in old["param_groups"]:
        group["eps"] = None  # as saved before eps was resolved
    opt.load_state_dict(old)
    assert [g["eps"] for g in opt.param_groups] == [1e-8, 1e-7]


def test_deepcopy_continues_independently():
    init = make_params()
    _, opt = trajectory(normopt_opt(no.Adam, lr=1e-2, skip_nonfinite=True), init, steps=3)
    clone = copy.deepcopy(opt)
    assert clone.skip_nonfinite and clone.skipped_steps == 0
    originals = [p.detach().clone() for p in opt.param_groups[0]["params"]]
    clone_params = clone.param_groups[0]["params"]
    run_stream(clone, clone_params, gradient_stream(2))
    for p, before in zip(opt.param_groups[0]["params"], originals):
        assert torch.equal(p.detach(), before)  # the copy's step left the original alone
    assert clone.state[clone_params[0]]["step"].item() == 5
    assert opt.state[opt.param_groups[0]["params"][0]]["step"].item() == 3


# ---- LR schedulers, param groups and state changes mid-run -------------------


@pytest.mark.parametrize(
    "ours, reference, options",
    [
        (no.Adam, torch.optim.Adam, dict(lr=1e-2)),
        (no.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9)),
    ],
    ids=["Adam", "SGD"],
)
def test_step_lr_scheduler_trajectory_matches_torch(ours, reference, options):
    def with_scheduler(make):
        def build(params):
            opt = make(params)
            schedulers.append(torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5))
            return opt

        return build

    def scheduler_step(t, opt, params):
        if t > 0:
            schedulers[-1].step()

    init = make_params()
    schedulers = []
    got, opt = trajectory(with_scheduler(normopt_opt(ours, **options)), init, between=scheduler_step)
    expected, ref = trajectory(with_scheduler(torch_opt(reference, **options)), init, between=scheduler_step)
    assert_trajectories_close(got, expected)
    assert opt.param_groups[0]["lr"] == ref.param_groups[0]["lr"] == 1e-2 * 0.5**6
    # The schedule changed the trajectory: a constant lr lands elsewhere.
    constant, _ = trajectory(normopt_opt(ours, **options), init)
    assert not torch.allclose(constant[-1][0], got[-1][0])


@pytest.mark.parametrize(
    "ours, reference, options",
    [
        (no.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
        (no.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9)),
    ],
    ids=["Adam", "SGD"],
)
def test_changes_mid_run_match_torch(ours, reference, options):
    # A param group added at step 4, the state cleared at step 8, a step
    # count reset in place at step 10, the lr set by hand at step 12 and a
    # group's parameters reordered at step 15: each changes what the step
    # must update.
    init = make_params()

    def changes(t, opt, params):
        if t == 4:
            opt.add_param_group({"params": [params[0]], "lr": 0.05})
        if t == 8:
            opt.state.clear()
        if t == 10 and "step" in opt.state[params[2]]:
            opt.state[params[2]]["step"].fill_(0.0)
        if t == 12:
            opt.param_groups[0]["lr"] = 0.02
        if t == 15:
            opt.param_groups[0]["params"].reverse()

    def make(cls, **extra):
        return lambda params: cls(params[1:], **options, **extra)

    got, _ = trajectory(make(ours), init, between=changes)
    expected, _ = trajectory(make(reference, foreach=False), init, between=changes)
    assert_trajectories_close(got, expected)


def test_amsgrad_switched_on_mid_run_starts_from_the_second_moment():
    params = leaves(make_params())
    opt = no.Adam(params, lr=1e-2)
    stream = gradient_stream(4)
    run_stream(opt, params, stream[:3])
    state = opt.state[params[0]]
    assert "max_exp_avg_sq" not in state
    v_before = state["exp_avg_sq"].clone()
    opt.param_groups[0]["amsgrad"] = True
    run_stream(opt, params, stream[3:])
    # The max started as v before the step, then took the step's v.
    expected = torch.maximum(v_before, 0.999 * v_before + 0.001 * stream[3][0] ** 2)
    torch.testing.assert_close(state["max_exp_avg_sq"], expected, rtol=1e-15, atol=0)
    assert state["step"].item() == 4


def test_step_bumps_parameter_versions_for_autograd():
    # As with torch.optim, autograd refuses a backward through a parameter
    # that a step changed after the forward saved it.
    params = leaves(make_params())
    opt = no.Adam(params)
    loss_of(params).backward()
    saved = (params[0] * params[0]).sum()
    version = params[0]._version
    opt.step()
    assert params[0]._version > version
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.backward()


# ---- float32 ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ours, reference, options",
    [
        (no.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True, weight_decay=0.01)),
        (no.AdamW, torch.optim.AdamW, dict(lr=1e-2)),
        (no.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True)),
    ],
    ids=["Adam", "AdamW", "SGD"],
)
def test_float32_params_match_torch_within_rounding(ours, reference, options):
    # float32 rounds each operation to 6e-8 relative, and torch.optim orders
    # them differently (lerp, addcdiv, a separate sqrt and division), so the
    # two runs part by an ulp or so per step, and through the loss's
    # gradients that feeds later steps: measured at most 1.4e-7 * max(|p|, 1)
    # after 20 steps. Bound: 1e-6 * max(|p|, 1), 8 ulps of an O(1) value.
    # Both float32 runs stray further from the float64 trajectory (up to
    # 2.4e-6 with momentum), so that is checked as: normopt no further than
    # 1.5x torch.optim's own distance plus an ulp.
    def distance(a, b):
        return max(
            ((x.double() - y.double()).abs() / y.double().abs().clamp_min(1)).max().item()
            for a_t, b_t in zip(a, b)
            for x, y in zip(a_t, b_t)
        )

    init = make_params(torch.float32)
    got, _ = trajectory(normopt_opt(ours, **options), init)
    expected, _ = trajectory(torch_opt(reference, **options), init)
    exact, _ = trajectory(torch_opt(reference, **options), [p.double() for p in init])
    assert all(g.dtype == torch.float32 for g in got[-1])
    assert distance(got, expected) <= 1e-6
    assert distance(got, exact) <= 1.5 * distance(expected, exact) + 1.2e-7


# ---- Errors -------------------------------------------------------------------


def one_param():
    return [torch.zeros(3, requires_grad=True)]


@pytest.mark.parametrize(
    "cls, options, match",
    [
        (no.Adam, dict(lr=-1e-3), r"Adam: invalid lr=-0.001; it must be a finite number >= 0, e.g. 1e-3"),
        (no.Adam, dict(lr=math.nan), r"invalid lr=nan"),
        (no.Adam, dict(lr=torch.tensor(1e-3)), r"invalid lr=tensor\(0.0010\); it must be a finite number"),
        (
            no.Adam,
            dict(betas=(0.9, 1.0)),
            r"invalid betas=\(0.9, 1.0\); pass two numbers in \[0, 1\), e.g. betas=\(0.9, 0.999\)",
        ),
        (no.Adam, dict(betas=(0.9,)), r"invalid betas=\(0.9,\)"),
        (no.Adam, dict(eps=-1e-8), r"invalid eps=-1e-08; .* or None for the epsilon_mode's default"),
        (no.AdamW, dict(weight_decay=-0.1), r"AdamW: invalid weight_decay=-0.1; it must be a finite number >= 0"),
        (no.Adam, dict(amsgrad="yes"), r"amsgrad must be True or False, got 'yes'"),
        (no.Adam, dict(maximize=1), r"maximize must be True or False, got 1"),
        (no.Adam, dict(epsilon_mode="tf"), r"invalid epsilon_mode='tf'; pass 'pytorch' .* or 'keras'"),
        (no.Adam, dict(skip_nonfinite=None), r"skip_nonfinite must be True or False, got None"),
        (no.SGD, dict(lr=-0.1), r"SGD: invalid lr=-0.1"),
        (no.SGD, dict(momentum=-0.5), r"invalid momentum=-0.5; it must be a finite number >= 0, e.g. 0.9"),
        (no.SGD, dict(dampening=math.inf), r"invalid dampening=inf; it must be a finite number"),
        (no.SGD, dict(weight_decay=-1.0), r"invalid weight_decay=-1.0"),
        (no.SGD, dict(nesterov=True), r"nesterov=True needs momentum > 0 and dampening 0, got momentum=0.0"),
        (
            no.SGD,
            dict(nesterov=True, momentum=0.9, dampening=0.1),
            r"got momentum=0.9 and dampening=0.1; set a momentum \(e.g. 0.9\) and dampening=0, or nesterov=False",
        ),
    ],
)
def test_bad_arguments_are_refused(cls, options, match):
    with pytest.raises(ValueError, match=match):
        cls(one_param(), **options)


def test_bad_param_group_names_the_group():
    with pytest.raises(ValueError, match=r"Adam: invalid lr=-1 in param group 1; it must be"):
        no.Adam([{"params": one_param()}, {"params": one_param(), "lr": -1}])
    opt = no.SGD(one_param(), lr=0.1)
    with pytest.raises(ValueError, match=r"nesterov=True in param group 1 needs momentum > 0"):
        opt.add_param_group({"params": one_param(), "nesterov": True})
    assert len(opt.param_groups) == 1


def test_non_floating_parameters_are_refused():
    opt = no.Adam(one_param())
    with pytest.raises(ValueError, match=r"parameter 1 of param group 1 has dtype torch.int64; normopt optimizers"):
        opt.add_param_group({"params": [torch.zeros(2), torch.zeros(2, dtype=torch.int64)]})
    assert len(opt.param_groups) == 1


def test_bad_epsilon_mode_set_after_construction_is_refused_at_step():
    params = one_param()
    opt = no.Adam(params)
    opt.param_groups[0]["epsilon_mode"] = "Keras"
    params[0].grad = torch.ones(3)
    with pytest.raises(ValueError, match=r"invalid epsilon_mode='Keras'"):
        opt.step()


def test_a_refused_step_changes_nothing():
    # The op refuses a negative lr set after construction (e.g. by a
    # scheduler): parameters, state and step counts stay as they were.
    params = leaves(make_params())
    opt = no.Adam(params, lr=1e-2)
    run_stream(opt, params, gradient_stream(2))
    before_params = [p.detach().clone() for p in params]
    before_state = state_snapshot(opt)
    opt.param_groups[0]["lr"] = -1.0
    with pytest.raises(RuntimeError, match="invalid learning rate -1"):
        opt.step()
    for p, b in zip(params, before_params):
        assert torch.equal(p.detach(), b)
    assert_same_state(state_snapshot(opt), before_state)
    opt.param_groups[0]["lr"] = 1e-2
    opt.step()
    assert opt.state[params[0]]["step"].item() == 3


@pytest.mark.parametrize("skip_nonfinite", [False, True])
@pytest.mark.parametrize("cls", [no.Adam, no.SGD])
def test_sparse_gradients_are_refused(cls, skip_nonfinite):
    params = [torch.zeros(4, 3, requires_grad=True)]
    params[0].grad = torch.sparse_coo_tensor([[1]], torch.ones(1, 3), (4, 3), check_invariants=True)
    opt = cls(params, lr=0.1, skip_nonfinite=skip_nonfinite)
    with pytest.raises(RuntimeError, match=r"shape \[4, 3\] has a torch.sparse_coo gradient.*use dense gradients"):
        opt.step()
    assert torch.equal(params[0].detach(), torch.zeros(4, 3))


def test_import_normopt_optim_in_a_fresh_interpreter():
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    proc = run_python("import normopt.optim as o; print(o.Adam.__name__, o.AdamW.__name__, o.SGD.__name__)", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Adam", "AdamW", "SGD"]


def test_state_cleared_by_assignment_starts_over_like_torch():
    # optimizer.state replaced by a new mapping: a fresh start, as in torch.
    init = make_params()

    def reset(t, opt, params):
        if t == 5:
            opt.state = collections.defaultdict(dict)

    got, _ = trajectory(normopt_opt(no.Adam, lr=1e-2), init, between=reset)
    expected, _ = trajectory(torch_opt(torch.optim.Adam, lr=1e-2), init, between=reset)
    assert_trajectories_close(got, expected)


# ---- capturable -------------------------------------------------------------------

CAPTURABLE = {
    "Adam_amsgrad_decay": (no.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True, weight_decay=0.05)),
    "Adam_maximize": (no.Adam, torch.optim.Adam, dict(lr=1e-2, maximize=True)),
    "AdamW_amsgrad": (no.AdamW, torch.optim.AdamW, dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", CAPTURABLE, ids=str)
def test_capturable_matches_torch(variant, device):
    # torch.optim refuses capturable on the CPU: there the reference is its
    # plain step (the same arithmetic); on CUDA its capturable one.
    ours, reference, options = CAPTURABLE[variant]
    init = make_params(device=device)
    got, opt = trajectory(normopt_opt(ours, capturable=True, **options), init)
    expected, _ = trajectory(torch_opt(reference, capturable=device == "cuda", **options), init)
    assert_trajectories_close(got, expected, rtol=RTOL[device])
    for p in opt.param_groups[0]["params"]:
        step = opt.state[p]["step"]
        assert step.device == p.device and step.dtype == torch.float32 and step.item() == STEPS
    # Bit for bit normopt's step with host counts, Keras's mode included.
    if device == "cpu":
        for extra in ({}, dict(epsilon_mode="keras")):
            host, _ = trajectory(normopt_opt(ours, **options, **extra), init)
            captured, _ = trajectory(normopt_opt(ours, capturable=True, **options, **extra), init)
            for h, c in zip(host[-1], captured[-1]):
                assert torch.equal(h, c)


@pytest.mark.parametrize("saved, loaded", [(False, True), (True, False), (True, True)])
def test_capturable_state_dict_loads_under_either_setting(saved, loaded):
    init = make_params()
    options = dict(lr=1e-2, amsgrad=True)
    uninterrupted, _ = trajectory(normopt_opt(no.AdamW, **options), init, steps=10)
    first, opt = trajectory(normopt_opt(no.AdamW, capturable=saved, **options), init, steps=4)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    second, resumed = trajectory(
        normopt_opt(no.AdamW, capturable=loaded, **options),
        first[-1],
        steps=6,
        between=loading(lambda: torch.load(buffer)),
    )
    for got, expected in zip(first + second, uninterrupted):
        for g, e in zip(got, expected):
            assert torch.equal(g, e)
    # The loading optimizer keeps its own setting.
    assert resumed.param_groups[0]["capturable"] is loaded
    assert all(s["step"].item() == 10 for s in resumed.state.values())


def test_capturable_switched_mid_run_equals_host_counts():
    init = make_params()

    def switch(t, opt, params):
        opt.param_groups[0]["capturable"] = 3 <= t < 7

    switched, _ = trajectory(normopt_opt(no.Adam, lr=1e-2), init, steps=10, between=switch)
    plain, _ = trajectory(normopt_opt(no.Adam, lr=1e-2), init, steps=10)
    for g, e in zip(switched[-1], plain[-1]):
        assert torch.equal(g, e)


def test_capturable_bad_arguments_raise():
    params = leaves(make_params())
    with pytest.raises(ValueError, match="capturable must be True or False"):
        no.Adam(params, capturable=1)
    with pytest.raises(ValueError, match="capturable=True and skip_nonfinite=True cannot be combined"):
        no.AdamW(params, capturable=True, skip_nonfinite=True)


@CUDA
def test_capturable_step_replays_in_a_cuda_graph():
    # torch.cuda.graph captures forward, backward and normopt's step; each
    # replay equals an eager step on the same data.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).cuda().double()
    eager = copy.deepcopy(model)
    opt = no.Adam(model.parameters(), lr=1e-2, capturable=True)
    opt_eager = no.Adam(eager.parameters(), lr=1e-2, capturable=True)
    data = [(torch.randn(32, 8, device="cuda", dtype=F64), torch.randn(32, 1, device="cuda", dtype=F64)) for _ in range(13)]
    x_static, y_static = data[0][0].clone(), data[0][1].clone()

    def train_step(m, o, x, y):
        o.zero_grad(set_to_none=False)
        torch.nn.functional.mse_loss(m(x), y).backward()
        o.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for x, y in data[:3]:  # warm-up, state created
            x_static.copy_(x)
            y_static.copy_(y)
            train_step(model, opt, x_static, y_static)
            train_step(eager, opt_eager, x, y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        train_step(model, opt, x_static, y_static)
    for x, y in data[3:]:
        x_static.copy_(x)
        y_static.copy_(y)
        graph.replay()
        train_step(eager, opt_eager, x, y)
    torch.cuda.synchronize()
    for p, q in zip(model.parameters(), eager.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
    assert all(s["step"].item() == 13 for s in opt.state.values())
