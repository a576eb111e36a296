"""normopt::jit::export_pipeline end to end: the C++ example trains and
exports; plain PyTorch (no normopt), the C++ loader and
examples/python/predict.py reproduce its predictions."""

import sys

import pytest
import torch
from conftest import REPO, parse_rows, run, run_python


@pytest.fixture(scope="module")
def exported(tmp_path_factory, example):
    """(path of the exported file, features (N, 2) float32, C++ predictions
    (N,) float64, targets (N,) float64) from examples/export_torchscript."""
    path = tmp_path_factory.mktemp("export") / "p.pt"
    proc = run([example("export_torchscript"), path])
    rows = [line.split()[2:] for line in proc.stdout.splitlines() if line.startswith("row ")]
    assert len(rows) == 5, proc.stdout
    table = torch.tensor([[float(v) for v in r] for r in rows], dtype=torch.float64)
    features = table[:, :2].to(torch.float32)  # printed from float32: exact
    assert torch.equal(features.to(torch.float64), table[:, :2])
    return path, features, table[:, 3], table[:, 2]


def relative_error(a, b):
    return ((a - b).abs() / b.abs()).max().item()


LOAD_WITHOUT_NORMOPT = """
import sys, torch
module = torch.jit.load(sys.argv[1])
x = torch.tensor([float(v) for v in sys.argv[2:]], dtype=torch.float32).reshape(-1, 2)
assert not torch.ops.loaded_libraries, torch.ops.loaded_libraries
with torch.no_grad():
    for v in module(x)[:, 0].tolist():
        print(repr(v))
"""


def test_plain_pytorch_reproduces_cpp_predictions(exported):
    path, features, cpp, targets = exported
    values = [repr(v) for v in features.reshape(-1).tolist()]
    proc = run_python(LOAD_WITHOUT_NORMOPT, path, *values)
    assert proc.returncode == 0, proc.stderr
    python = parse_rows(proc.stdout)[:, 0]
    assert relative_error(python, cpp) < 1e-6
    # Sanity: the model learned something (predictions near the incomes).
    assert relative_error(cpp, targets) < 0.25


def test_cpp_loader_matches_python_loader(exported, example):
    path, features, cpp, _ = exported
    values = [repr(v) for v in features.reshape(-1).tolist()]
    proc = run([example("jit_load"), path, *values])
    from_cpp = parse_rows(proc.stdout)
    with torch.no_grad():
        from_python = torch.jit.load(str(path))(features).to(torch.float64)
    assert torch.equal(from_cpp, from_python)
    assert relative_error(from_cpp[:, 0], cpp) < 1e-6


def test_predict_script_prints_the_same_predictions(exported):
    path, features, cpp, _ = exported
    values = [repr(v) for v in features.reshape(-1).tolist()]
    proc = run([sys.executable, REPO / "examples" / "python" / "predict.py", path, *values])
    lines = proc.stdout.splitlines()
    assert len(lines) == 5
    predicted = torch.tensor([float(line.split()[-1]) for line in lines], dtype=torch.float64)
    assert relative_error(predicted, cpp) < 1e-6


def test_exported_graph_is_plain_aten(exported):
    path, features, _, _ = exported
    module = torch.jit.load(str(path))
    kinds = {node.kind() for node in module.graph.nodes()}
    assert "aten::linear" in kinds
    assert not [k for k in kinds if k.startswith("normopt::")]
    names = dict(module.named_buffers())
    assert set(names) == {"mean", "scale", "target_loc", "target_scale"}
    assert names["mean"].dtype == torch.float64
    assert module.in_features == 2 and module.out_features == 1
    assert not module.training


def test_exported_forward_rejects_bad_input(exported):
    path, _, _, _ = exported
    module = torch.jit.load(str(path))
    # Errors raised by TorchScript code reach Python as torch.jit.Error.
    with pytest.raises(torch.jit.Error, match="normopt pipeline: expected floating-point features"):
        module(torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(
        torch.jit.Error,
        match=r"normopt pipeline: expected features with 2 columns in the last dimension, got shape \[2, 3\]",
    ):
        module(torch.ones(2, 3))
