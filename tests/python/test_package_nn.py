"""normopt.nn (Python modules on the normopt ops) against the C++ modules
(torch.classes.normopt.*): float64-identical statistics and outputs, batched
adapt/fit, errors, state_dicts (also a C++-trained checkpoint's), and
torch.export."""

import csv
import io
import math

import pytest
import torch
from conftest import run

F64 = torch.float64
ops = torch.ops.normopt

# The C++ StandardizedRegressor's state (csrc/nn/standardized_regressor.cpp
# registers normalization, regressor, target; normalization.cpp registers
# mean, variance, count; target_standardizer.cpp loc, scale, count;
# linear_regressor.cpp weight, bias), in its load order.
CPP_REGRESSOR_KEYS = [
    "normalization.mean",
    "normalization.variance",
    "normalization.count",
    "regressor.weight",
    "regressor.bias",
    "target.loc",
    "target.scale",
    "target.count",
]


@pytest.fixture(scope="module")
def nn():
    from normopt import nn

    return nn


def data(shape, dtype=F64, seed=0, offset=1e3, spread=25.0):
    g = torch.Generator().manual_seed(seed)
    return (offset + spread * torch.randn(shape, generator=g, dtype=F64)).to(dtype)


def cpp_normalization(axis=(-1,), eps=1e-7, invert=False):
    return torch.classes.normopt.Normalization(list(axis), eps, invert)


def cpp_target(method="zscore", eps=1e-7):
    return torch.classes.normopt.TargetStandardizer(method, eps)


def assert_same_normalization(py, cpp):
    """Statistics (dtype, shape, bits) and count of a Python and a C++ layer."""
    assert torch.equal(py.mean, cpp.mean()) and py.mean.dtype == F64
    assert torch.equal(py.variance, cpp.variance()) and py.variance.dtype == F64
    assert py.count.dtype == torch.int64 and py.count.shape == () and int(py.count) == cpp.count()
    assert torch.equal(py.scale(), cpp.scale())


def relative(a, b):
    return ((a - b).abs() / b.abs()).max().item()


@pytest.fixture(scope="module")
def income(income_csv):
    """(x (N, 2) float64: age, experience; y (N, 1) float64: income)."""
    with open(income_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and set(rows[0]) == {"age", "experience", "income"}, rows[:1]
    x = torch.tensor([[float(r["age"]), float(r["experience"])] for r in rows], dtype=F64)
    y = torch.tensor([[float(r["income"])] for r in rows], dtype=F64)
    return x, y


class OnePass:
    """An iterable of batches that counts how often it is iterated."""

    def __init__(self, batches):
        self.batches = list(batches)
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        return iter(self.batches)


# ---- Normalization -------------------------------------------------------------


def test_normalization_buffers_are_the_cpp_modules(nn):
    norm = nn.Normalization()
    names = [(name, t.dtype, tuple(t.shape)) for name, t in norm.named_buffers()]
    assert names == [("mean", F64, (0,)), ("variance", F64, (0,)), ("count", torch.int64, ())]
    assert list(norm.state_dict()) == ["mean", "variance", "count"]
    assert not list(norm.parameters())
    assert not norm.is_adapted()
    norm.adapt(data((6, 2)))
    assert norm.is_adapted() and list(norm.state_dict()) == ["mean", "variance", "count"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "axis, invert", [((-1,), False), ((-1,), True), ((1,), False), ((0, 2), True), ((), False)]
)
def test_normalization_matches_cpp_exactly(nn, dtype, axis, invert):
    x = data((7, 5, 3), dtype)
    py = nn.Normalization(axis, invert=invert)
    cpp = cpp_normalization(axis, invert=invert)
    py.adapt(x)
    cpp.adapt(x)
    assert_same_normalization(py, cpp)
    new = data((7, 5, 3), dtype, seed=1)
    out = py(new)
    assert out.dtype == dtype and torch.equal(out, cpp.forward(new))
    assert torch.equal(py.inverse(new), cpp.inverse(new))


def test_normalization_matches_float64_reference(nn):
    x = data((200, 3), seed=2, offset=8e3, spread=1.0)
    norm = nn.Normalization().adapt(x)
    torch.testing.assert_close(norm.mean, x.mean(0), rtol=1e-14, atol=0)
    torch.testing.assert_close(norm.variance, x.var(0, correction=0), rtol=1e-12, atol=0)
    z = norm(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=F64), rtol=0, atol=1e-10)
    torch.testing.assert_close(z.std(0, correction=0), torch.ones(3, dtype=F64), rtol=1e-12, atol=0)


def test_normalization_eps_and_constant_features_match_cpp(nn):
    x = torch.stack(
        [torch.full((10,), 3.5, dtype=F64), 1e-9 * torch.arange(10, dtype=F64), torch.arange(10, dtype=F64)],
        1,
    )
    py = nn.Normalization(eps=1e-3).adapt(x)
    cpp = cpp_normalization(eps=1e-3)
    cpp.adapt(x)
    assert_same_normalization(py, cpp)
    assert py.scale()[0].item() == 1.0  # constant: never divided by eps
    assert py.scale()[1].item() == 1e-3  # tiny spread: floored at eps
    assert torch.equal(py(x), cpp.forward(x))


@pytest.mark.parametrize("make", [list, tuple, iter, OnePass], ids=["list", "tuple", "iterator", "iterable"])
def test_normalization_adapt_batches_equals_cpp_update_stream(nn, make):
    x = data((103, 4), seed=3)
    batches = make(x.split(10))
    py = nn.Normalization().adapt(data((5, 4), seed=9))  # replaced, not merged into
    py.adapt(batches)
    cpp = cpp_normalization()
    for batch in x.split(10):
        cpp.update(batch)
    assert_same_normalization(py, cpp)
    if isinstance(batches, OnePass):
        assert batches.passes == 1


def test_normalization_update_equals_cpp_update(nn):
    x = data((50, 2, 3), seed=4)
    py = nn.Normalization(axis=(1, 2))
    cpp = cpp_normalization((1, 2))
    for batch in x.split(7):
        py.update(batch)
        cpp.update(batch)
        assert_same_normalization(py, cpp)


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_normalization_batched_adapt_equals_whole(nn, batch_size):
    x = data((300, 3), seed=5, offset=8e3, spread=1.0)
    whole = nn.Normalization().adapt(x)
    batched = nn.Normalization().adapt(x.split(batch_size))
    assert torch.equal(batched.count, whole.count)
    torch.testing.assert_close(batched.mean, whole.mean, rtol=1e-12, atol=0)
    torch.testing.assert_close(batched.variance, whole.variance, rtol=1e-12, atol=0)
    torch.testing.assert_close(batched.variance, x.var(0, correction=0), rtol=1e-12, atol=0)


def test_normalization_moments_of_and_merge_equal_update(nn):
    x = data((40, 3), seed=6)
    merged = nn.Normalization()
    for batch in x.split(15):
        merged.merge(*merged.moments_of(batch))
    merged.merge(torch.tensor(0), torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match=r"Normalization.merge: expected a scalar count and a mean and M2 of one shape, got shape \[2\]"):
        merged.merge(torch.tensor([1, 2]), torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64))
    updated = nn.Normalization()
    for batch in x.split(15):
        updated.update(batch)
    for name in ("mean", "variance", "count"):
        assert torch.equal(getattr(merged, name), getattr(updated, name)), name


def test_normalization_fixed_statistics(nn):
    mean = torch.tensor([1.0, -2.0, 5.0], dtype=F64)
    variance = torch.tensor([4.0, 0.25, 0.0], dtype=F64)
    norm = nn.Normalization(mean=mean, variance=variance)
    assert norm.is_adapted() and int(norm.count) == 0
    x = data((6, 3), seed=7)
    scale = torch.tensor([2.0, 0.5, 1.0], dtype=F64)  # zero variance: scale 1
    assert torch.equal(norm(x), (x - mean) / scale)
    with pytest.raises(RuntimeError, match="Normalization.adapt: this layer was built with a fixed mean"):
        norm.adapt(x)
    with pytest.raises(RuntimeError, match="Normalization.update: this layer was built with a fixed mean"):
        norm.update(x)
    for _ in range(2):  # restored from a copy the buffers never alias
        norm.mean.zero_()
        norm.variance.zero_()
        norm.reset_statistics()
        assert torch.equal(norm.mean, mean) and torch.equal(norm.variance, variance)
    assert torch.equal(nn.Normalization(mean=[1.0, -2.0, 5.0], variance=[4.0, 0.25, 0.0])(x), norm(x))


def test_normalization_reset_statistics(nn):
    norm = nn.Normalization().adapt(data((10, 2)))
    norm.reset_statistics()
    assert not norm.is_adapted() and int(norm.count) == 0 and norm.mean.shape == (0,)
    with pytest.raises(RuntimeError, match="called before the statistics were set"):
        norm(data((2, 2)))


def test_normalization_to_float32_keeps_exact_count(nn):
    norm = nn.Normalization()
    big = 2**24 + 1  # not representable in float32
    norm.merge(torch.tensor(big), torch.ones(2, dtype=F64), torch.full((2,), float(big), dtype=F64))
    norm.to(torch.float32)
    assert norm.mean.dtype == torch.float32 and norm.variance.dtype == torch.float32
    assert norm.count.dtype == torch.int64 and int(norm.count) == big
    x = torch.tensor([[2.0, 3.0]])
    assert torch.equal(norm(x), torch.tensor([[1.0, 2.0]]))


def test_normalization_bad_batch_leaves_statistics_unchanged(nn):
    norm = nn.Normalization().adapt(data((10, 2)))
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    bad = data((5, 2), seed=1)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"Normalization.adapt \(batch 1\): data holds a non-finite value \(NaN or Inf\) at index \[3, 1\], feature \[1\]"):
        norm.adapt([data((5, 2)), bad])
    with pytest.raises(ValueError, match=r"Normalization.adapt \(batch 1\): batch has feature shape \[3\] along axis \[-1\] but the statistics were adapted on \[2\]"):
        norm.adapt(iter([data((5, 2)), data((5, 3))]))
    for k, v in norm.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda nn: nn.Normalization()(torch.ones(2, 3)), RuntimeError,
         r"Normalization.forward: called before the statistics were set; call adapt\(x\)"),
        (lambda nn: nn.Normalization().inverse(torch.ones(2, 3)), RuntimeError,
         r"Normalization.inverse: called before the statistics were set"),
        (lambda nn: nn.Normalization().scale(), RuntimeError, r"Normalization: no statistics yet; call adapt\(x\)"),
        (lambda nn: nn.Normalization().adapt(torch.ones(2, 3, dtype=torch.int64)), TypeError,
         r"Normalization.adapt: expected floating-point data, got torch.int64; convert it with x.to\(torch.float32\)"),
        (lambda nn: nn.Normalization().adapt(torch.ones(0, 3)), ValueError,
         r"Normalization.adapt: got an empty tensor of shape \[0, 3\]; pass at least one sample"),
        (lambda nn: nn.Normalization().adapt(torch.tensor([[1.0, float("inf")]])), ValueError,
         r"Normalization.adapt: data holds a non-finite value \(NaN or Inf\) at index \[0, 1\], feature \[1\]"),
        (lambda nn: nn.Normalization().update(torch.tensor([[float("nan")]])), ValueError,
         r"Normalization.update: data holds a non-finite value"),
        (lambda nn: nn.Normalization().adapt(data((5, 3)))(torch.ones(2, 4, dtype=F64)), ValueError,
         r"Normalization.forward: input has feature shape \[4\] along axis \[-1\] but the statistics have shape \[3\]"),
        (lambda nn: nn.Normalization().adapt(data((5, 3)))(torch.ones(2, 3, dtype=torch.int32)), TypeError,
         r"Normalization.forward: expected floating-point input, got torch.int32"),
        (lambda nn: nn.Normalization(5).adapt(torch.ones(2, 3)), ValueError,
         r"Normalization.adapt: axis 5 is out of range for a 2-D input \(valid: -2 to 1\)"),
        (lambda nn: nn.Normalization((1, -1)).adapt(torch.ones(2, 3)), ValueError,
         r"axis \[1, -1\] names the same dimension twice for a 2-D input"),
        (lambda nn: nn.Normalization((0, 0)), ValueError, r"axis 0 is listed twice"),
        (lambda nn: nn.Normalization().adapt([]), ValueError, r"Normalization.adapt: got no batches; pass at least one"),
        (lambda nn: nn.Normalization().adapt(3), TypeError,
         r"Normalization.adapt: expected a tensor or an iterable of batches, got int"),
        (lambda nn: nn.Normalization().adapt([torch.ones(2, 2), "x"]), TypeError,
         r"Normalization.adapt \(batch 1\): expected a torch.Tensor, got str"),
        (lambda nn: nn.Normalization(mean=torch.zeros(2)), ValueError, r"give both mean and variance, or neither"),
        (lambda nn: nn.Normalization(mean=torch.zeros(2), variance=torch.ones(3)), ValueError,
         r"fixed mean has shape \[2\] but variance has shape \[3\]"),
        (lambda nn: nn.Normalization(mean=torch.zeros(2), variance=-torch.ones(2)), ValueError,
         r"variance finite and non-negative"),
        (lambda nn: nn.Normalization(mean=torch.zeros(2, dtype=torch.int64), variance=torch.ones(2)), TypeError,
         r"fixed mean must be floating-point"),
    ],
)
def test_normalization_errors(nn, call, error, message):
    with pytest.raises(error, match=message):
        call(nn)


def test_normalization_state_dict_round_trip(nn):
    source = nn.Normalization(axis=1).adapt(data((8, 4, 2), seed=8))
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    loaded = nn.Normalization(axis=1)  # un-adapted: takes the checkpoint's shapes
    loaded.load_state_dict(torch.load(buffer))
    for name in ("mean", "variance", "count"):
        assert torch.equal(getattr(loaded, name), getattr(source, name)), name
    x = data((3, 4, 2), seed=9)
    assert torch.equal(loaded(x), source(x))
    adapted = nn.Normalization().adapt(data((5, 3)))  # adapted: shapes must match
    with pytest.raises(RuntimeError, match="size mismatch for mean"):
        adapted.load_state_dict(source.state_dict())


# ---- TargetStandardizer --------------------------------------------------------


def test_target_buffers_are_the_cpp_modules(nn):
    ts = nn.TargetStandardizer()
    names = [(name, t.dtype, tuple(t.shape)) for name, t in ts.named_buffers()]
    assert names == [("loc", F64, (0,)), ("scale", F64, (0,)), ("count", torch.int64, ())]
    assert list(ts.state_dict()) == ["loc", "scale", "count"]
    assert not ts.is_fitted()


@pytest.mark.parametrize("method", ["zscore", "minmax", "none"])
@pytest.mark.parametrize("shape", [(40,), (40, 1), (40, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_target_matches_cpp_exactly(nn, method, shape, dtype):
    y = data(shape, dtype, seed=10)
    py = nn.TargetStandardizer(method).fit(y)
    cpp = cpp_target(method)
    cpp.fit(y)
    assert py.method == method and py.is_fitted()
    assert torch.equal(py.loc, cpp.loc()) and py.loc.dtype == F64
    assert torch.equal(py.scale, cpp.scale()) and py.scale.dtype == F64
    assert py.count.dtype == torch.int64 and int(py.count) == cpp.count() == 40
    new = data(shape, dtype, seed=11)
    z = py.transform(new)
    assert z.dtype == dtype and torch.equal(z, cpp.transform(new))
    assert torch.equal(py(new), z)
    assert torch.equal(py.inverse_transform(z), cpp.inverse_transform(z))


def test_target_eps_and_constant_targets_match_cpp(nn):
    y = torch.stack([torch.full((8,), 2.0, dtype=F64), 1e-9 * torch.arange(8, dtype=F64)], 1)
    for method in ("zscore", "minmax"):
        py = nn.TargetStandardizer(method, eps=1e-4).fit(y)
        cpp = cpp_target(method, 1e-4)
        cpp.fit(y)
        assert torch.equal(py.scale, cpp.scale()) and py.scale.tolist() == [1.0, 1e-4], method


@pytest.mark.parametrize("method", ["zscore", "minmax", "none"])
def test_target_batched_fit_equals_whole(nn, method):
    y = data((101, 2), seed=12, offset=5e4, spread=3.0)
    whole = nn.TargetStandardizer(method).fit(y)
    batches = OnePass(y.split(9))
    batched = nn.TargetStandardizer(method).fit(batches)
    assert batches.passes == 1
    assert torch.equal(batched.count, whole.count)
    if method == "zscore":
        torch.testing.assert_close(batched.loc, y.mean(0), rtol=1e-14, atol=0)
        torch.testing.assert_close(batched.loc, whole.loc, rtol=1e-12, atol=0)
        torch.testing.assert_close(batched.scale, whole.scale, rtol=1e-12, atol=0)
        torch.testing.assert_close(batched.scale, y.std(0, correction=0), rtol=1e-12, atol=0)
    else:  # min-max ranges and the identity merge exactly
        assert torch.equal(batched.loc, whole.loc) and torch.equal(batched.scale, whole.scale)


def test_target_fit_moments_and_range_equal_fit(nn):
    y = data((30, 2), seed=13)
    n, mean, m2 = ops.moments(y, [0])
    zscore = nn.TargetStandardizer().fit_moments(n, mean, m2)
    assert torch.equal(zscore.scale, nn.TargetStandardizer().fit(y).scale)
    minmax = nn.TargetStandardizer("minmax").fit_range(n, y.min(0).values, y.max(0).values)
    assert torch.equal(minmax.loc, nn.TargetStandardizer("minmax").fit(y).loc)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda nn: nn.TargetStandardizer("robust"), ValueError,
         r"TargetStandardizer: unknown method 'robust'; use \"zscore\", \"minmax\" or \"none\""),
        (lambda nn: nn.TargetStandardizer().transform(torch.ones(3)), RuntimeError,
         r"TargetStandardizer.transform: called before fit\(\); call fit\(y_train\) first"),
        (lambda nn: nn.TargetStandardizer().inverse_transform(torch.ones(3)), RuntimeError,
         r"TargetStandardizer.inverse_transform: called before fit\(\)"),
        (lambda nn: nn.TargetStandardizer().fit(torch.ones(2, 2, 2)), ValueError,
         r"TargetStandardizer.fit: expected targets of shape \(N\) or \(N, k\), got \[2, 2, 2\]"),
        (lambda nn: nn.TargetStandardizer().fit(torch.ones(0, 2)), ValueError,
         r"TargetStandardizer.fit: got no targets \(shape \[0, 2\]\)"),
        (lambda nn: nn.TargetStandardizer().fit(torch.arange(4)), TypeError,
         r"TargetStandardizer.fit: expected floating-point targets, got torch.int64"),
        (lambda nn: nn.TargetStandardizer().fit(torch.tensor([1.0, float("nan")])), ValueError,
         r"TargetStandardizer.fit: target \[1\] is NaN or Inf; remove or impute it"),
        (lambda nn: nn.TargetStandardizer().fit(data((5, 2))).transform(torch.ones(5, 3, dtype=F64)), ValueError,
         r"TargetStandardizer.transform: got shape \[5, 3\] but the statistics were fitted on 2 target column\(s\); pass \(N\) or \(N, 2\)"),
        (lambda nn: nn.TargetStandardizer().fit([torch.ones(3, 2), torch.ones(3, 1)]), ValueError,
         r"TargetStandardizer.fit \(batch 1\): got targets of shape \[3, 1\] but earlier batches had shape \(N, 2\)"),
        (lambda nn: nn.TargetStandardizer().fit([]), ValueError, r"TargetStandardizer.fit: got no batches"),
        (lambda nn: nn.TargetStandardizer("minmax").fit_moments(torch.tensor(2), torch.zeros(1), torch.ones(1)),
         RuntimeError, r"fit_moments: min-max scaling needs the range; use fit_range"),
        (lambda nn: nn.TargetStandardizer().fit_range(torch.tensor(2), torch.zeros(1), torch.ones(1)),
         RuntimeError, r"fit_range: only min-max scaling is fitted from a range"),
    ],
)
def test_target_errors(nn, call, error, message):
    with pytest.raises(error, match=message):
        call(nn)


def test_target_state_dict_round_trip(nn):
    source = nn.TargetStandardizer("minmax").fit(data((12, 2), seed=14))
    loaded = nn.TargetStandardizer("minmax")
    loaded.load_state_dict(source.state_dict())
    for name in ("loc", "scale", "count"):
        assert torch.equal(getattr(loaded, name), getattr(source, name)), name
    z = data((4, 2), seed=15)
    assert torch.equal(loaded.inverse_transform(z), source.inverse_transform(z))


# ---- StandardizedRegressor -----------------------------------------------------


class Quadratic(torch.nn.Module):
    """A custom regressor: (N, k) -> (N), not a Linear."""

    def __init__(self, k):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.a = torch.nn.Parameter(torch.randn(k, generator=g, dtype=F64))
        self.b = torch.nn.Parameter(torch.randn(k, generator=g, dtype=F64))

    def forward(self, z):
        return z.square() @ self.a + z @ self.b


def linear(k, dtype=F64):
    torch.manual_seed(0)
    return torch.nn.Linear(k, 1, dtype=dtype)


def test_regressor_state_dict_keys_are_the_cpp_modules(nn):
    model = nn.StandardizedRegressor(linear(2))
    assert [name for name, _ in model.named_children()] == ["normalization", "regressor", "target"]
    assert list(model.state_dict()) == CPP_REGRESSOR_KEYS
    model.fit_statistics(data((10, 2)), data((10, 1), seed=1))
    assert list(model.state_dict()) == CPP_REGRESSOR_KEYS


@pytest.mark.parametrize("kind", ["linear", "custom"])
def test_regressor_predict_equals_pipeline_by_hand(nn, kind):
    x = data((25, 3), seed=16)
    y = data((25, 1) if kind == "linear" else (25,), seed=17, offset=4e4, spread=800.0)
    regressor = linear(3) if kind == "linear" else Quadratic(3)
    model = nn.StandardizedRegressor(regressor).fit_statistics(x, y)
    norm, target = cpp_normalization(), cpp_target()
    norm.adapt(x)
    target.fit(y)
    new = data((6, 3), seed=18)
    with torch.no_grad():
        z = ops.standardize(new, norm.mean(), norm.scale())
        expected = ops.destandardize(regressor(z), target.loc(), target.scale())
        assert torch.equal(model(new), regressor(z))  # forward: standardized units
        assert torch.equal(model.predict(new), expected)
    assert torch.equal(model.transform_targets(y), target.transform(y))


def test_regressor_options_reach_the_parts(nn):
    model = nn.StandardizedRegressor(
        linear(2), nn.Normalization(eps=1e-3), nn.TargetStandardizer("minmax")
    )
    y = data((9, 1), seed=19)
    model.fit_statistics(data((9, 2)), y)
    assert model.normalization.eps == 1e-3
    assert torch.equal(model.target.loc, y.min(0).values)


def test_regressor_fit_statistics_from_batches(nn):
    x, y = data((70, 3), seed=20), data((70, 1), seed=21)
    whole = nn.StandardizedRegressor(linear(3)).fit_statistics(x, y)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    batched = nn.StandardizedRegressor(linear(3)).fit_statistics(loader)
    pairs = OnePass(zip(x.split(16), y.split(16)))
    assert torch.equal(nn.StandardizedRegressor(linear(3)).fit_statistics(pairs).normalization.mean, batched.normalization.mean)
    assert pairs.passes == 1
    # The C++ modules' stream over the same batches, bit for bit.
    norm = cpp_normalization()
    for b in x.split(16):
        norm.update(b)
    assert_same_normalization(batched.normalization, norm)
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(batched.state_dict()[name], value, rtol=1e-12, atol=0)


def test_regressor_bad_input_changes_nothing(nn):
    model = nn.StandardizedRegressor(linear(2))
    with pytest.raises(ValueError, match=r"fit_statistics: x and y must be tensors with the same number of rows, got shape \[5, 2\] and shape \[4, 1\]"):
        model.fit_statistics(data((5, 2)), data((4, 1)))
    bad_y = data((5, 1))
    bad_y[2, 0] = float("inf")
    with pytest.raises(ValueError, match=r"TargetStandardizer.fit \(batch 1\): target \[2, 0\] is NaN or Inf"):
        model.fit_statistics([(data((5, 2)), data((5, 1))), (data((5, 2)), bad_y)])
    with pytest.raises(TypeError, match=r"fit_statistics: batch 0 is a Tensor, expected an \(x, y\) pair"):
        model.fit_statistics([data((5, 2))])
    with pytest.raises(TypeError, match=r"fit_statistics: got x without y; pass fit_statistics\(x, y\)"):
        model.fit_statistics(data((5, 2)))
    with pytest.raises(ValueError, match=r"fit_statistics: got no batches"):
        model.fit_statistics([])
    assert not model.normalization.is_adapted() and not model.target.is_fitted()
    with pytest.raises(TypeError, match=r"regressor must be a torch.nn.Module"):
        nn.StandardizedRegressor(lambda x: x)
    with pytest.raises(TypeError, match=r"target must be a normopt.nn.TargetStandardizer"):
        nn.StandardizedRegressor(linear(2), target=nn.Normalization())


def test_regressor_trains_in_standardized_space(nn):
    x = data((64, 2), seed=22, offset=40.0, spread=10.0)
    y = 3e4 + 900.0 * x[:, :1] - 50.0 * x[:, 1:]
    model = nn.StandardizedRegressor(linear(2)).fit_statistics(x, y)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    target = model.transform_targets(y)
    for _ in range(300):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        opt.step()
    assert loss.item() < 1e-6
    assert relative(model.predict(x), y) < 1e-4


def test_regressor_state_dict_round_trip(nn):
    source = nn.StandardizedRegressor(linear(2)).fit_statistics(data((10, 2)), data((10, 1), seed=1))
    with torch.no_grad():
        source.regressor.weight.add_(1.0)
    loaded = nn.StandardizedRegressor(torch.nn.Linear(2, 1, dtype=F64))
    loaded.load_state_dict(source.state_dict())
    x = data((4, 2), seed=2)
    assert torch.equal(loaded.predict(x), source.predict(x))


def test_cpp_trained_checkpoint_loads(nn, income, income_csv, example, tmp_path):
    x, y = income
    proc = run([example("income_regression"), income_csv], cwd=tmp_path)
    printed = [float(line.split("predicted ")[1]) for line in proc.stdout.splitlines() if "predicted" in line]
    assert len(printed) == 5, proc.stdout
    # torch::save(module) writes an archive that torch.jit.load reads.
    cpp_state = torch.jit.load(str(tmp_path / "income_model.pt")).state_dict()
    assert list(cpp_state) == CPP_REGRESSOR_KEYS
    python = nn.StandardizedRegressor(torch.nn.Linear(2, 1)).fit_statistics(x, y)
    assert {k: v.dtype for k, v in python.state_dict().items()} == {k: v.dtype for k, v in cpp_state.items()}
    model = nn.StandardizedRegressor(torch.nn.Linear(2, 1))
    model.load_state_dict(cpp_state)
    for name, value in model.state_dict().items():
        assert torch.equal(value, cpp_state[name]), name
    with torch.no_grad():
        predicted = model.predict(x[:5].to(torch.float32))[:, 0].to(F64)
    # The example prints 6 significant digits.
    assert relative(predicted, torch.tensor(printed, dtype=F64)) < 1e-5


# ---- The income data -------------------------------------------------------------


def test_income_statistics(nn, income):
    x, y = income
    norm = nn.Normalization().adapt(x)
    cpp = cpp_normalization()
    cpp.adapt(x)
    assert_same_normalization(norm, cpp)
    assert torch.equal(norm(x), cpp.forward(x))
    # Against correctly rounded sums (math.fsum), column by column.
    n = x.shape[0]
    for j, column in enumerate(x.T.tolist()):
        mean = math.fsum(column) / n
        variance = math.fsum((v - mean) ** 2 for v in column) / n
        assert abs(norm.mean[j].item() - mean) <= 1e-14 * abs(mean)
        assert abs(norm.variance[j].item() - variance) <= 1e-12 * variance
    for size in (1, 3, 8):
        batched = nn.Normalization().adapt(x.split(size))
        torch.testing.assert_close(batched.mean, norm.mean, rtol=1e-12, atol=0)
        torch.testing.assert_close(batched.variance, norm.variance, rtol=1e-12, atol=0)
    ts = nn.TargetStandardizer().fit(y)
    cpp_ts = cpp_target()
    cpp_ts.fit(y)
    assert torch.equal(ts.loc, cpp_ts.loc()) and torch.equal(ts.scale, cpp_ts.scale())
    torch.testing.assert_close(nn.TargetStandardizer().fit(y.split(6)).scale, ts.scale, rtol=1e-12, atol=0)


def test_income_least_squares_in_standardized_space(nn, income):
    # Linear least squares is affine-equivariant: solved on standardized data
    # and mapped back by predict(), it equals the fit on raw data.
    x, y = income
    model = nn.StandardizedRegressor(torch.nn.Linear(2, 1, dtype=F64)).fit_statistics(x, y)
    ones = torch.ones(x.shape[0], 1, dtype=F64)
    z = torch.cat([model.normalization(x), ones], 1)
    solution = torch.linalg.lstsq(z, model.transform_targets(y)).solution
    with torch.no_grad():
        model.regressor.weight.copy_(solution[:2].T)
        model.regressor.bias.copy_(solution[2])
        raw = torch.cat([x, ones], 1)
        expected = raw @ torch.linalg.lstsq(raw, y).solution
        assert relative(model.predict(x), expected) < 1e-9
        assert relative(model.predict(x), y) < 0.2  # and it is a model of incomes


# ---- torch.export --------------------------------------------------------------


def exportable(nn, name):
    """(module, example input, another input) for one export case."""
    x = data((12, 3), seed=30)
    other = data((5, 3), seed=31)
    if name == "normalization":
        return nn.Normalization().adapt(x), x, other
    if name == "normalization-invert-axis1":
        x3, other3 = data((4, 3, 2), seed=32), data((2, 3, 2), seed=33)
        return nn.Normalization(1, invert=True).adapt(x3), x3, other3
    if name == "normalization-fixed-float32":
        norm = nn.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.0, 9.0])
        return norm, x.to(torch.float32), other.to(torch.float32)
    if name == "target-zscore":
        return nn.TargetStandardizer().fit(x), x, other
    if name == "target-minmax-1d":
        return nn.TargetStandardizer("minmax").fit(x[:, 0]), x[:, 0], other[:, 0]
    y = data((12, 1), seed=34)
    regressor = linear(3) if name == "regressor-linear" else Quadratic(3)
    if name == "regressor-custom":
        y = y[:, 0]
    return nn.StandardizedRegressor(regressor).fit_statistics(x, y), x, other


@pytest.mark.parametrize("strict", [False, True], ids=["nonstrict", "strict"])
@pytest.mark.parametrize(
    "name",
    [
        "normalization",
        "normalization-invert-axis1",
        "normalization-fixed-float32",
        "target-zscore",
        "target-minmax-1d",
        "regressor-linear",
        "regressor-custom",
    ],
)
def test_export_matches_eager(nn, name, strict):
    module, x, other = exportable(nn, name)
    batch = torch.export.Dim("batch")  # any number of rows
    program = torch.export.export(module, (x,), dynamic_shapes=({0: batch},), strict=strict)
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert any(t.startswith("normopt.") for t in targets), targets
    exported = program.module()
    with torch.no_grad():
        assert torch.equal(exported(x), module(x))
        assert torch.equal(exported(other), module(other))


def test_export_of_unadapted_module_says_what_to_do(nn):
    with pytest.raises(RuntimeError, match=r"Normalization.forward: called before the statistics were set"):
        torch.export.export(nn.Normalization(), (torch.ones(2, 3),))
