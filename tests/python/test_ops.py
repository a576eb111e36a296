"""torch.ops.normopt.*: each op against plain PyTorch, opcheck, the fused
optimizer steps against torch.optim, bad input, library loading, and
torch.compile / torch.export."""

import shutil

import pytest
import torch
from conftest import run_python

ops = torch.ops.normopt
F64 = torch.float64


def reference_moments(x, dims):
    xd = x.to(F64)
    count = 1
    for d in dims:
        count *= x.shape[d]
    mean = xd.mean(dims, keepdim=True)
    m2 = ((xd - mean) ** 2).sum(dims)
    return count, mean.squeeze(dims) if dims else mean, m2


def data(shape, dtype, seed=0, offset=1e4, spread=3.0):
    g = torch.Generator().manual_seed(seed)
    return (offset + spread * torch.randn(shape, generator=g, dtype=F64)).to(dtype)


# ---- Statistics ops ----------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dims", [[0], [0, 1], [1], [-1], [0, 2]])
def test_moments_matches_reference(dtype, dims):
    x = data((7, 5, 3), dtype)
    count, mean, m2 = ops.moments(x, dims)
    ref_count, ref_mean, ref_m2 = reference_moments(x, dims)
    assert count.dtype == torch.int64 and count.dim() == 0
    assert count.item() == ref_count
    assert mean.dtype == F64 and m2.dtype == F64
    torch.testing.assert_close(mean, ref_mean, rtol=1e-14, atol=0)
    torch.testing.assert_close(m2, ref_m2, rtol=1e-12, atol=0)


def test_moments_no_dims_is_elementwise():
    x = data((4, 3), torch.float32)
    count, mean, m2 = ops.moments(x, [])
    assert count.item() == 1
    assert torch.equal(mean, x.to(F64))
    assert torch.equal(m2, torch.zeros(4, 3, dtype=F64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_merge_moments_of_halves_equals_whole(dtype):
    x = data((101, 4), dtype, offset=4e4, spread=1e4)  # income-like
    whole = ops.moments(x, [0])
    a = ops.moments(x[:37], [0])
    b = ops.moments(x[37:], [0])
    count, mean, m2 = ops.merge_moments(*a, *b)
    assert count.item() == 101
    torch.testing.assert_close(mean, whole[1], rtol=1e-12, atol=0)
    torch.testing.assert_close(m2, whole[2], rtol=1e-12, atol=0)


def test_merge_moments_ill_conditioned_stays_close():
    # Offset / spread = 1.7e5: the merge's delta^2 term carries the rounding
    # of both means, so agreement is limited by conditioning, not by a bug.
    x = data((101, 4), F64, offset=5e5, spread=3.0)
    whole = ops.moments(x, [0])
    merged = ops.merge_moments(*ops.moments(x[:37], [0]), *ops.moments(x[37:], [0]))
    torch.testing.assert_close(merged[1], whole[1], rtol=1e-14, atol=0)
    torch.testing.assert_close(merged[2], whole[2], rtol=1e-10, atol=0)


def test_merge_moments_with_empty_side():
    a = ops.moments(data((9, 2), F64), [0])
    empty = (torch.tensor(0), torch.zeros(2, dtype=F64), torch.zeros(2, dtype=F64))
    for merged in (ops.merge_moments(*a, *empty), ops.merge_moments(*empty, *a)):
        assert merged[0].item() == 9
        torch.testing.assert_close(merged[1], a[1], rtol=0, atol=0)
        torch.testing.assert_close(merged[2], a[2], rtol=0, atol=0)


def test_scale_from_variance_sqrt_floor_and_constant():
    variance = torch.tensor([4.0, 1e-20, 0.0], dtype=F64)
    mean = torch.tensor([1.0, 0.0, 7.0], dtype=F64)
    scale = ops.scale_from_variance(variance, mean, torch.tensor(10), 1e-7)
    # sqrt; floored at min_scale; exactly 1 for a constant feature.
    assert scale.tolist() == [2.0, 1e-7, 1.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_standardize_and_destandardize_match_reference(dtype):
    x = data((6, 3), dtype)
    mean = x.to(F64).mean(0)
    scale = x.to(F64).std(0, correction=0)
    z = ops.standardize(x, mean, scale)
    assert z.dtype == dtype
    assert torch.equal(z, ((x.to(F64) - mean) / scale).to(dtype))
    back = ops.destandardize(z, mean, scale)
    assert back.dtype == dtype
    assert torch.equal(back, (z.to(F64) * scale + mean).to(dtype))
    torch.testing.assert_close(back, x, rtol=1e-6 if dtype == torch.float32 else 1e-14, atol=0)


# ---- opcheck -----------------------------------------------------------------


def adam_kwargs(**overrides):
    kw = dict(
        lr=1e-2,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=0.0,
        amsgrad=False,
        maximize=False,
        decoupled_weight_decay=False,
        keras_epsilon=False,
    )
    kw.update(overrides)
    return kw


def sgd_kwargs(**overrides):
    kw = dict(
        lr=1e-2,
        momentum=0.0,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        maximize=False,
        is_first_step=True,
    )
    kw.update(overrides)
    return kw


def adam_call(params, grads, m, v, vmax=(), steps=None, **kw):
    """ops.adam_step_ on (sequences of) parameters, gradients and state, at
    step counts `steps` (default: 1 each), with adam_kwargs(**kw)."""
    ops.adam_step_(
        list(params),
        list(grads),
        list(m),
        list(v),
        list(vmax),
        steps if steps is not None else [1] * len(params),
        **adam_kwargs(**kw),
    )


def adam_state(params, amsgrad=False):
    """Fresh Adam state for `params`: zero exp_avgs, exp_avg_sqs and, with
    amsgrad, max_exp_avg_sqs (else an empty list)."""

    def zeros():
        return [torch.zeros_like(p) for p in params]

    return zeros(), zeros(), zeros() if amsgrad else []


def step_lists(shapes, dtype=F64, seed=0, n_lists=4):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=g, dtype=dtype) for s in shapes] for _ in range(n_lists)]


def opcheck_samples():
    """name -> (op overload, args, kwargs). Built on demand: the ops exist
    only once the session fixture has loaded the library."""
    x = data((5, 3), F64)
    x32 = data((5, 3), torch.float32)
    n, mean, m2 = ops.moments(x, [0])
    a = ops.moments(x[:2], [0])
    b = ops.moments(x[2:], [0])
    scale = ops.scale_from_variance(m2 / 5, mean, n, 1e-7)
    p, gr, m, v = step_lists([(3,), (2, 2)])
    amax = [t.abs() for t in step_lists([(3,), (2, 2)], seed=1)[0]]
    v = [t.abs() for t in v]
    return {
        "moments": (ops.moments.default, (x, [0]), {}),
        "moments_float32_all_dims": (ops.moments.default, (x32, [0, 1]), {}),
        "merge_moments": (ops.merge_moments.default, (*a, *b), {}),
        "scale_from_variance": (ops.scale_from_variance.default, (m2 / 5, mean, n, 1e-7), {}),
        "standardize": (ops.standardize.default, (x32, mean, scale), {}),
        "destandardize": (ops.destandardize.default, (x, mean, scale), {}),
        "adam_step_": (ops.adam_step_.default, (p, gr, m, v, [], [1, 3]), adam_kwargs()),
        "adam_step_amsgrad_decay": (
            ops.adam_step_.default,
            (p, gr, m, v, amax, [2, 2]),
            adam_kwargs(amsgrad=True, weight_decay=0.1),
        ),
        # Step counts of both dtypes and both one-element shapes.
        "adam_step_capturable_": (
            ops.adam_step_capturable_.default,
            (p, gr, m, v, [], [torch.tensor(0.0), torch.tensor([2.0])]),
            adam_kwargs(),
        ),
        "adam_step_capturable_amsgrad_keras": (
            ops.adam_step_capturable_.default,
            (p, gr, m, v, amax, [torch.tensor(4.0, dtype=F64), torch.tensor(1.0, dtype=F64)]),
            adam_kwargs(amsgrad=True, weight_decay=0.1, decoupled_weight_decay=True, keras_epsilon=True),
        ),
        "sgd_step_": (ops.sgd_step_.default, (p, gr, []), sgd_kwargs()),
        "sgd_step_nesterov": (
            ops.sgd_step_.default,
            (p, gr, m),
            sgd_kwargs(momentum=0.9, nesterov=True, is_first_step=False),
        ),
    }


OPCHECK_SAMPLES = [
    "moments",
    "moments_float32_all_dims",
    "merge_moments",
    "scale_from_variance",
    "standardize",
    "destandardize",
    "adam_step_",
    "adam_step_amsgrad_decay",
    "adam_step_capturable_",
    "adam_step_capturable_amsgrad_keras",
    "sgd_step_",
    "sgd_step_nesterov",
]


@pytest.mark.parametrize("name", OPCHECK_SAMPLES)
def test_opcheck(name):
    samples = opcheck_samples()
    assert sorted(samples) == sorted(OPCHECK_SAMPLES)
    op, args, kwargs = samples[name]
    torch.library.opcheck(op, args, kwargs)


# ---- Optimizer steps against torch.optim -------------------------------------

SHAPES = [(5, 3), (7,), (2, 3, 4), ()]


def run_adam_op(params, grads_per_step, amsgrad=False, decoupled=False, **hyper):
    params = [p.clone() for p in params]
    m, v, vmax = adam_state(params, amsgrad)
    for step, grads in enumerate(grads_per_step, start=1):
        adam_call(
            params,
            grads,
            m,
            v,
            vmax,
            [step] * len(params),
            amsgrad=amsgrad,
            decoupled_weight_decay=decoupled,
            **hyper,
        )
    return params


def run_torch_optim(cls, params, grads_per_step, **options):
    params = [p.clone().requires_grad_() for p in params]
    opt = cls(params, foreach=False, **options)
    for grads in grads_per_step:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in params]


def gradient_stream(n_steps, dtype=F64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=g, dtype=dtype) for s in SHAPES] for _ in range(n_steps)]


ADAM_VARIANTS = {
    "default": dict(),
    "amsgrad": dict(amsgrad=True),
    "weight_decay": dict(weight_decay=0.05),
    "amsgrad_weight_decay_maximize": dict(amsgrad=True, weight_decay=0.05, maximize=True),
}


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CPU-only machine)")
# The step ops on each device against torch.optim on the same device. On
# CUDA nvcc may contract a*b+c into one rounding (an FMA) where
# torch.optim's separate kernels round twice: a looser float64 tolerance.
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
RTOL = {"cpu": 1e-12, "cuda": 1e-10}


def on(device, lists):
    return [[t.to(device) for t in ts] for ts in lists]


def loop_inputs(device):
    """The step loops' parameters (SHAPES) and 100 steps of gradients, on
    `device`."""
    return on(device, step_lists(SHAPES, n_lists=1))[0], on(device, gradient_stream(100))


def assert_loop_matches(got, expected, params, device):
    """A step loop's parameters `got` match torch.optim's `expected` on
    `device` and moved away from the initial `params`."""
    for g, e in zip(got, expected):
        assert g.device.type == device
        torch.testing.assert_close(g, e, rtol=RTOL[device], atol=1e-15)
    # The updates are not trivially zero.
    assert not torch.equal(got[0], params[0])


def run_adam_capturable_op(params, grads_per_step, amsgrad=False, step_dtype=torch.float32, **hyper):
    params = [p.clone() for p in params]
    m, v, vmax = adam_state(params, amsgrad)
    steps = [torch.zeros((), dtype=step_dtype, device=p.device) for p in params]
    for grads in grads_per_step:
        ops.adam_step_capturable_(params, grads, m, v, vmax, steps, **adam_kwargs(amsgrad=amsgrad, **hyper))
    assert all(s.item() == len(grads_per_step) and s.device == p.device for s, p in zip(steps, params))
    return params


# The Adam step ops' loops (run_adam_op, run_adam_capturable_op) by op name.
ADAM_LOOPS = {"adam_step_": run_adam_op, "adam_step_capturable_": run_adam_capturable_op}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", ADAM_VARIANTS, ids=str)
@pytest.mark.parametrize("op", ADAM_LOOPS)
def test_adam_step_loop_matches_torch_adam(op, variant, device):
    # torch.optim refuses capturable=True on the CPU: there the reference of
    # adam_step_capturable_ is its plain step, and adam_step_ bit for bit.
    capturable = op == "adam_step_capturable_"
    options = ADAM_VARIANTS[variant]
    params, grads = loop_inputs(device)
    got = ADAM_LOOPS[op](params, grads, lr=1e-2, **options)
    expected = run_torch_optim(
        torch.optim.Adam, params, grads, lr=1e-2, capturable=capturable and device == "cuda", **options
    )
    assert_loop_matches(got, expected, params, device)
    if capturable and device == "cpu":
        for g, e in zip(got, run_adam_op(params, grads, lr=1e-2, **options)):
            assert torch.equal(g, e)


def test_training_loop_with_adam_step_matches_torch_adam():
    # Gradients come from the loss, so any difference in an update would
    # change every later gradient: the two runs must agree all the way.
    g = torch.Generator().manual_seed(7)
    x = torch.randn(64, 3, generator=g, dtype=F64)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5]], dtype=F64) + 0.3
    y = y + 0.1 * torch.randn(64, 1, generator=g, dtype=F64)

    def make_model():
        torch.manual_seed(0)
        return torch.nn.Linear(3, 1, dtype=F64)

    ours, reference = make_model(), make_model()
    params = list(ours.parameters())
    m, v, vmax = adam_state(params, amsgrad=True)
    opt = torch.optim.Adam(reference.parameters(), lr=0.05, amsgrad=True, weight_decay=1e-3, foreach=False)
    for step in range(1, 101):
        loss = torch.nn.functional.mse_loss(ours(x), y)
        ours.zero_grad()
        loss.backward()
        with torch.no_grad():
            grads = [p.grad for p in params]
            steps = [step] * len(params)
            adam_call(params, grads, m, v, vmax, steps, lr=0.05, amsgrad=True, weight_decay=1e-3)
        ref_loss = torch.nn.functional.mse_loss(reference(x), y)
        opt.zero_grad()
        ref_loss.backward()
        opt.step()
        torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    for p, r in zip(ours.parameters(), reference.parameters()):
        torch.testing.assert_close(p, r, rtol=1e-12, atol=1e-15)
    assert loss.item() < 0.05  # it trained


def test_adam_step_decoupled_matches_torch_adamw():
    params = step_lists(SHAPES, n_lists=1)[0]
    grads = gradient_stream(100)
    got = run_adam_op(params, grads, lr=1e-2, weight_decay=0.1, decoupled=True)
    expected = run_torch_optim(torch.optim.AdamW, params, grads, lr=1e-2, weight_decay=0.1)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-15)


def test_adam_step_float32_matches_torch_adam():
    params = step_lists(SHAPES, dtype=torch.float32, n_lists=1)[0]
    grads = gradient_stream(100, dtype=torch.float32)
    got = run_adam_op(params, grads, lr=1e-2)
    expected = run_torch_optim(torch.optim.Adam, params, grads, lr=1e-2)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)


def test_adam_step_keras_epsilon_matches_formula():
    # Keras: alpha = lr sqrt(1 - b2^t) / (1 - b1^t); p -= alpha m / (sqrt(v) + eps)
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-7
    params = step_lists(SHAPES, n_lists=1)[0]
    grads = gradient_stream(50)
    got = run_adam_op(params, grads, lr=lr, beta1=b1, beta2=b2, eps=eps, keras_epsilon=True)
    ref = [p.clone() for p in params]
    m, v, _ = adam_state(params)
    for t, gs in enumerate(grads, start=1):
        alpha = lr * (1 - b2**t) ** 0.5 / (1 - b1**t)
        for i, g in enumerate(gs):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            ref[i] = ref[i] - alpha * m[i] / (v[i].sqrt() + eps)
    for g, e in zip(got, ref):
        torch.testing.assert_close(g, e, rtol=1e-11, atol=1e-14)


SGD_VARIANTS = {
    "plain": dict(),
    "momentum": dict(momentum=0.9),
    "momentum_dampening_decay": dict(momentum=0.9, dampening=0.3, weight_decay=0.01),
    "nesterov": dict(momentum=0.9, nesterov=True),
    "nesterov_maximize": dict(momentum=0.8, nesterov=True, maximize=True, weight_decay=0.02),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", SGD_VARIANTS, ids=str)
def test_sgd_step_loop_matches_torch_sgd(variant, device):
    options = SGD_VARIANTS[variant]
    params, grads = loop_inputs(device)
    got = [p.clone() for p in params]
    bufs = [torch.zeros_like(p) for p in params] if options.get("momentum") else []
    for step, gs in enumerate(grads, start=1):
        ops.sgd_step_(got, gs, bufs, **sgd_kwargs(lr=1e-2, is_first_step=step == 1, **options))
    expected = run_torch_optim(torch.optim.SGD, params, grads, lr=1e-2, **options)
    assert_loop_matches(got, expected, params, device)


@CUDA
@pytest.mark.parametrize(
    "name",
    ["adam_step_", "adam_step_amsgrad_decay", "adam_step_capturable_", "adam_step_capturable_amsgrad_keras"]
    + ["sgd_step_", "sgd_step_nesterov"],
)
def test_opcheck_cuda(name):
    op, args, kwargs = opcheck_samples()[name]
    args = tuple([t.cuda() if isinstance(t, torch.Tensor) else t for t in a] for a in args)
    torch.library.opcheck(op, args, kwargs)


# ---- Bad input ---------------------------------------------------------------


def fresh(shape=(3,), dtype=F64):
    return torch.zeros(shape, dtype=dtype)


def test_bad_dtype_raises():
    p = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(RuntimeError, match=r"params\[0\] has dtype Long; expected float32"):
        adam_call([p], [p.clone()], [p.clone()], [p.clone()])
    with pytest.raises(RuntimeError, match=r"exp_avgs\[0\] is Float .* but params\[0\] is Double"):
        adam_call([fresh()], [fresh()], [fresh(dtype=torch.float32)], [fresh()])
    with pytest.raises(RuntimeError, match="moments: expected a floating-point tensor, got Long"):
        ops.moments(torch.ones(3, 2, dtype=torch.int64), [0])


def test_mismatched_list_lengths_raise():
    with pytest.raises(RuntimeError, match=r"expected 2 tensors in grads \(one per parameter\), got 1"):
        adam_call([fresh(), fresh()], [fresh()], [fresh(), fresh()], [fresh(), fresh()])
    with pytest.raises(RuntimeError, match="expected 1 step counts, got 2"):
        adam_call([fresh()], [fresh()], [fresh()], [fresh()], steps=[1, 1])
    with pytest.raises(RuntimeError, match="amsgrad needs one max_exp_avg_sqs tensor per parameter"):
        adam_call([fresh()], [fresh()], [fresh()], [fresh()], amsgrad=True)
    with pytest.raises(RuntimeError, match="needs one momentum buffer per parameter, got 0"):
        ops.sgd_step_([fresh()], [fresh()], [], **sgd_kwargs(momentum=0.9))
    with pytest.raises(RuntimeError, match="different feature shapes"):
        a = ops.moments(torch.ones(4, 2), [0])
        b = ops.moments(torch.ones(4, 3), [0])
        ops.merge_moments(*a, *b)


def test_shape_mismatch_raises():
    with pytest.raises(RuntimeError, match=r"grads\[0\] has shape \[4\] .* but params\[0\] has \[3\]"):
        adam_call([fresh()], [fresh((4,))], [fresh()], [fresh()])


def test_non_contiguous_param_raises():
    t = torch.zeros(4, 3, dtype=F64)
    column = t[:, 0]
    assert not column.is_contiguous()
    with pytest.raises(RuntimeError, match=r"params\[0\] .* is not dense or overlaps itself"):
        adam_call([column], [fresh((4,))], [fresh((4,))], [fresh((4,))])
    with pytest.raises(RuntimeError, match="is not dense or overlaps itself"):
        ops.sgd_step_([column], [fresh((4,))], [], **sgd_kwargs())


def test_overlapping_tensors_raise():
    p = fresh()
    with pytest.raises(RuntimeError, match=r"exp_avgs\[0\] shares memory with params\[0\]"):
        adam_call([p], [fresh()], [p], [fresh()])
    expanded = torch.zeros(1, dtype=F64).expand(3)
    with pytest.raises(RuntimeError, match="overlaps itself"):
        adam_call([expanded], [fresh()], [fresh()], [fresh()])


def test_bad_hyper_parameters_raise():
    with pytest.raises(RuntimeError, match="invalid learning rate -1"):
        adam_call([fresh()], [fresh()], [fresh()], [fresh()], lr=-1.0)
    with pytest.raises(RuntimeError, match=r"steps\[0\] is 0; step counts start at 1"):
        adam_call([fresh()], [fresh()], [fresh()], [fresh()], steps=[0])
    with pytest.raises(RuntimeError, match="Nesterov momentum requires a momentum"):
        ops.sgd_step_([fresh()], [fresh()], [], **sgd_kwargs(nesterov=True))


def test_mixed_devices_raise():
    # CPU tensors next to meta ones: the dispatcher picks the meta kernel,
    # which rejects the CPU tensor by name (the CUDA case reads the same).
    with pytest.raises(RuntimeError, match=r"grads\[0\] is Double on cpu but params\[0\] is Double on meta"):
        adam_call(
            [torch.zeros(3, dtype=F64, device="meta")],
            [fresh()],
            [torch.zeros(3, dtype=F64, device="meta")],
            [torch.zeros(3, dtype=F64, device="meta")],
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CPU-only machine)")
def test_cuda_params_with_cpu_grads_raise():
    p = torch.zeros(3, dtype=F64, device="cuda")
    with pytest.raises(RuntimeError, match="on cpu but params"):
        adam_call([p], [fresh()], [torch.zeros_like(p)], [torch.zeros_like(p)])


def test_meta_kernel_validates_and_leaves_tensors_alone():
    meta = [torch.empty(3, dtype=F64, device="meta") for _ in range(4)]
    adam_call(*[[t] for t in meta])  # valid lists: no error, nothing to compute
    with pytest.raises(RuntimeError, match="expected 1 tensors in exp_avgs"):
        adam_call([meta[0]], [meta[1]], [], [meta[3]])


# ---- Loading the library -----------------------------------------------------


def test_loading_same_path_again_is_noop(normopt_library):
    before = torch._C._dispatch_dump("normopt::adam_step_")
    torch.ops.load_library(str(normopt_library))
    assert torch._C._dispatch_dump("normopt::adam_step_") == before
    assert ops.standardize(torch.ones(2), torch.zeros(2), torch.ones(2)).tolist() == [1.0, 1.0]


COPY_SCRIPT = """
import sys, torch
torch.ops.load_library(sys.argv[1])
x = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
before = torch.ops.normopt.moments(x, [0])
torch.ops.load_library(sys.argv[2])          # another copy of the library
after = torch.ops.normopt.moments(x, [0])
assert all(torch.equal(a, b) for a, b in zip(before, after))
norm = torch.classes.normopt.Normalization([-1], 1e-7, False)
norm.adapt(x)
print("still working", norm.count())
"""


def test_loading_a_copy_warns_and_keeps_first(normopt_library, tmp_path):
    copy = tmp_path / "libnormopt_copy.so"
    shutil.copy(normopt_library, copy)
    proc = run_python(COPY_SCRIPT, normopt_library, copy)
    assert proc.returncode == 0, proc.stderr  # no abort
    assert "still working 2" in proc.stdout
    assert "not registering this copy of the library" in proc.stderr
    assert str(copy) in proc.stderr and str(normopt_library) in proc.stderr
    assert "Load one libnormopt per process" in proc.stderr


def test_loading_missing_library_raises_oserror(tmp_path):
    with pytest.raises(OSError, match="Could not load this library"):
        torch.ops.load_library(str(tmp_path / "libnormopt_missing.so"))


# ---- torch.compile and torch.export ------------------------------------------


def standardize_by_batch(x):
    count, mean, m2 = ops.moments(x, [0])
    variance = m2 / count
    scale = ops.scale_from_variance(variance, mean, count, 1e-7)
    z = ops.standardize(x, mean, scale)
    return ops.destandardize(z * 2.0, mean, scale)


@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph_statistics_ops(dynamic):
    torch._dynamo.reset()
    compiled = torch.compile(
        standardize_by_batch, fullgraph=True, backend="aot_eager", dynamic=dynamic
    )
    for rows in (8, 13):
        x = data((rows, 3), torch.float32, seed=rows)
        assert torch.equal(compiled(x), standardize_by_batch(x))


def adam_two_steps(params, grads, m, v):
    for step in (1, 2):
        ops.adam_step_(params, grads, m, v, [], [step] * len(params), **adam_kwargs())
    return params


@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph_adam_step_mutates_inputs(dynamic):
    torch._dynamo.reset()
    compiled = torch.compile(adam_two_steps, fullgraph=True, backend="aot_eager", dynamic=dynamic)
    params, grads = step_lists([(4, 3), (5,)], n_lists=2)
    state = [params, grads, [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]]
    eager_state = [[t.clone() for t in lst] for lst in state]
    compiled(*state)
    adam_two_steps(*eager_state)
    for got, expected in zip(state, eager_state):
        for g, e in zip(got, expected):
            assert torch.equal(g, e)


def test_compile_traces_adam_step_as_auto_functionalized():
    torch._dynamo.reset()
    graphs = []

    def backend(gm, example_inputs):
        from torch._functorch.aot_autograd import aot_module_simplified

        def inner(fx, inputs):
            graphs.append(str(fx.graph))
            return fx

        return aot_module_simplified(gm, example_inputs, fw_compiler=inner)

    compiled = torch.compile(adam_two_steps, fullgraph=True, backend=backend)
    p, g = step_lists([(3,)], n_lists=2)
    compiled(p, g, [torch.zeros(3, dtype=F64)], [torch.zeros(3, dtype=F64)])
    text = "\n".join(graphs)
    assert "normopt.adam_step_" in text
    assert "auto_functionalized" in text


class Standardizer(torch.nn.Module):
    def __init__(self, mean, scale):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)

    def forward(self, x):
        return ops.standardize(x, self.mean, self.scale)


def test_export_module_using_standardize():
    x = data((6, 3), torch.float32)
    module = Standardizer(x.to(F64).mean(0), x.to(F64).std(0))
    program = torch.export.export(module, (x,))
    y = data((6, 3), torch.float32, seed=5)
    assert torch.equal(program.module()(y), module(y))
