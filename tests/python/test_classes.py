"""torch.classes.normopt.{Normalization, TargetStandardizer}: results against
plain PyTorch, errors, and TorchScript save/load in Python and in C++."""

import pytest
import torch
from conftest import parse_rows, run

F64 = torch.float64


def data(shape, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (1e3 + 25 * torch.randn(shape, generator=g, dtype=F64)).to(dtype)


def Normalization(*args):
    return torch.classes.normopt.Normalization(*args)


def TargetStandardizer(*args):
    return torch.classes.normopt.TargetStandardizer(*args)


# ---- Normalization -----------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalization_adapt_forward_inverse_match_reference(dtype):
    x = data((50, 3), dtype)
    norm = Normalization()
    assert not norm.is_adapted()
    norm.adapt(x)
    mean = x.to(F64).mean(0)
    variance = x.to(F64).var(0, correction=0)
    assert norm.is_adapted() and norm.count() == 50
    torch.testing.assert_close(norm.mean(), mean, rtol=1e-14, atol=0)
    torch.testing.assert_close(norm.variance(), variance, rtol=1e-12, atol=0)
    torch.testing.assert_close(norm.scale(), variance.sqrt(), rtol=1e-12, atol=0)
    z = norm.forward(x)
    assert z.dtype == dtype
    expected = ((x.to(F64) - norm.mean()) / norm.scale()).to(dtype)
    assert torch.equal(z, expected)
    assert torch.equal(norm.inverse(z), (z.to(F64) * norm.scale() + norm.mean()).to(dtype))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(z.to(F64).mean(0), torch.zeros(3, dtype=F64), rtol=0, atol=tol)
    torch.testing.assert_close(z.to(F64).std(0, correction=0), torch.ones(3, dtype=F64), rtol=tol, atol=0)


def test_normalization_defaults_and_options():
    norm = Normalization()
    assert norm.axis() == [-1] and norm.eps() == 1e-7 and norm.invert() is False
    other = Normalization([0, 2], 1e-3, True)
    assert other.axis() == [0, 2] and other.eps() == 1e-3 and other.invert() is True


def test_normalization_axis_and_invert():
    x = data((4, 6, 5))
    norm = Normalization([1], 1e-7, True)  # features along dim 1, inverted
    norm.adapt(x)
    mean = x.mean((0, 2))
    scale = x.var((0, 2), correction=0).sqrt()
    assert norm.mean().shape == (6,)
    expected = x * scale.view(1, 6, 1) + mean.view(1, 6, 1)
    torch.testing.assert_close(norm.forward(x), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(norm.inverse(norm.forward(x)), x, rtol=1e-12, atol=0)


def test_normalization_update_streams_like_adapt():
    x = data((90, 4))
    streamed = Normalization()
    for batch in x.split(25):
        streamed.update(batch)
    whole = Normalization()
    whole.adapt(x)
    assert streamed.count() == whole.count() == 90
    torch.testing.assert_close(streamed.mean(), whole.mean(), rtol=1e-13, atol=0)
    torch.testing.assert_close(streamed.variance(), whole.variance(), rtol=1e-11, atol=0)
    streamed.reset_statistics()
    assert not streamed.is_adapted() and streamed.count() == 0


def test_normalization_constant_feature_gets_scale_one():
    x = torch.stack([torch.full((10,), 3.5, dtype=F64), torch.arange(10.0, dtype=F64)], 1)
    norm = Normalization()
    norm.adapt(x)
    assert norm.scale()[0].item() == 1.0
    assert torch.equal(norm.forward(x)[:, 0], torch.zeros(10, dtype=F64))


def test_normalization_getters_return_copies():
    norm = Normalization()
    norm.adapt(data((10, 2)))
    norm.mean().zero_()
    assert norm.mean().abs().min().item() > 0


def test_normalization_errors_propagate_as_runtime_error():
    norm = Normalization()
    with pytest.raises(RuntimeError, match=r"Normalization.forward: called before the statistics were set; call adapt"):
        norm.forward(torch.ones(2, 3))
    with pytest.raises(RuntimeError, match="Normalization.adapt: expected floating-point data, got Long"):
        norm.adapt(torch.ones(2, 3, dtype=torch.int64))
    norm.adapt(data((5, 3)))
    with pytest.raises(RuntimeError, match=r"input has feature shape \[4\] .* statistics have shape \[3\]"):
        norm.forward(torch.ones(2, 4, dtype=F64))
    with pytest.raises(RuntimeError, match="axis 5 is out of range"):
        Normalization([5], 1e-7, False).adapt(torch.ones(2, 3))


def test_errors_inside_scripted_code_keep_the_message():
    class Uses(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = Normalization()

        def forward(self, x):
            return self.norm.forward(x)

    scripted = torch.jit.script(Uses())
    # A C++ error inside scripted code still reaches Python as RuntimeError
    # with the C++ message (only TorchScript `raise` gives torch.jit.Error).
    with pytest.raises(RuntimeError, match="Normalization.forward: called before the statistics were set"):
        scripted(torch.ones(2, 3))


# ---- TargetStandardizer ------------------------------------------------------


@pytest.mark.parametrize("method", ["zscore", "minmax", "none"])
def test_target_standardizer_matches_reference(method):
    y = data((40, 2))
    ts = TargetStandardizer(method)
    assert ts.method() == method and not ts.is_fitted()
    ts.fit(y)
    assert ts.is_fitted() and ts.count() == 40
    if method == "zscore":
        loc, scale = y.mean(0), y.std(0, correction=0)
    elif method == "minmax":
        loc, scale = y.min(0).values, y.max(0).values - y.min(0).values
    else:
        loc, scale = torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)
    torch.testing.assert_close(ts.loc(), loc, rtol=1e-14, atol=0)
    torch.testing.assert_close(ts.scale(), scale, rtol=1e-12, atol=0)
    z = ts.transform(y)
    assert torch.equal(z, (y - ts.loc()) / ts.scale())
    assert torch.equal(ts.forward(y), z)
    assert torch.equal(ts.inverse_transform(z), z * ts.scale() + ts.loc())


def test_target_standardizer_errors():
    with pytest.raises(RuntimeError, match="unknown method 'robust'; use \"zscore\""):
        TargetStandardizer("robust")
    ts = TargetStandardizer()
    with pytest.raises(RuntimeError, match=r"TargetStandardizer.transform: called before fit\(\)"):
        ts.transform(torch.ones(3))
    with pytest.raises(RuntimeError, match=r"expected targets of shape \(N\) or \(N, k\)"):
        ts.fit(torch.ones(2, 2, 2))


# ---- TorchScript ---------------------------------------------------------------


class Pipeline(torch.nn.Module):
    """A scripted module holding both classes as attributes."""

    def __init__(self, norm, target):
        super().__init__()
        self.norm = norm
        self.target = target

    def forward(self, x):
        return self.target.inverse_transform(self.norm.forward(x) * 0.5)


def fitted_pipeline():
    x = data((30, 3), seed=1)
    norm = Normalization()
    norm.adapt(x)
    target = TargetStandardizer("zscore")
    target.fit(data((30, 3), seed=2))
    return Pipeline(norm, target)


def test_script_function_builds_and_uses_a_normalization():
    @torch.jit.script
    def normalize(x: torch.Tensor) -> torch.Tensor:
        norm = torch.classes.normopt.Normalization([1], 1e-7, False)
        norm.adapt(x)
        return norm.forward(x)

    x = data((8, 2))
    expected = (x - x.mean(0)) / x.std(0, correction=0)
    torch.testing.assert_close(normalize(x), expected, rtol=1e-12, atol=1e-12)


def test_scripted_module_saves_and_loads_in_python(tmp_path):
    module = fitted_pipeline()
    scripted = torch.jit.script(module)
    x = data((5, 3), seed=3)
    eager = module(x)
    assert torch.equal(scripted(x), eager)
    path = tmp_path / "pipeline.pt"
    torch.jit.save(scripted, str(path))
    loaded = torch.jit.load(str(path))
    assert torch.equal(loaded(x), eager)
    # The statistics came back, not just the outputs.
    assert torch.equal(loaded.norm.mean(), module.norm.mean())
    assert loaded.norm.count() == 30
    assert loaded.target.method() == "zscore"
    assert torch.equal(loaded.target.scale(), module.target.scale())


def test_unadapted_normalization_round_trips(tmp_path):
    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = Normalization([0], 1e-3, True)

        def forward(self, x):
            return self.norm.forward(x)

    path = tmp_path / "holder.pt"
    torch.jit.save(torch.jit.script(Holder()), str(path))
    loaded = torch.jit.load(str(path))
    assert not loaded.norm.is_adapted()
    assert loaded.norm.axis() == [0] and loaded.norm.eps() == 1e-3 and loaded.norm.invert()
    loaded.norm.adapt(data((4, 3)))  # a working layer, not a shell
    assert loaded.norm.count() == 3  # axis [0]: 4 features, 3 samples each
    assert loaded.norm.mean().shape == (4,)


def test_scripted_module_loads_in_cpp_with_same_outputs(tmp_path, example):
    jit_load = example("jit_load")
    module = fitted_pipeline()
    path = tmp_path / "pipeline.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    x = data((4, 3), seed=4)
    values = [repr(v) for v in x.reshape(-1).tolist()]
    proc = run([jit_load, path, "--float64", "--cols", "3", *values])
    from_cpp = parse_rows(proc.stdout)
    expected = torch.jit.load(str(path))(x)
    # Same C++ kernels on both sides; %.17g round-trips float64 exactly.
    assert torch.equal(from_cpp, expected)
