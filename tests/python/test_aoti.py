"""normopt.export: C++ checkpoint -> torch.export -> AOTInductor package.

AOTInductor compiles C++ (tens of seconds on two cores), so the suite
compiles two packages per session: the income model, from a checkpoint
written by the C++ example income_regression, through the command line
(`python -m normopt.export`, which is thereby tested), and a tiny model whose
graph calls a normopt op Inductor cannot inline (the fused SGD step), to show
what loading it without libnormopt does. Everything else (bad arguments, a
failed compile, the metadata checks) runs without compiling: the compiler is
replaced by a stub, or a compiled package's metadata is rewritten.

What the packages show about normopt's ops: the statistics ops
(scale_from_variance, standardize, destandardize) are
CompositeImplicitAutograd, so the exported graph calls them but Inductor
compiles their ATen bodies into the package, which then runs without
libnormopt; an op with its own kernels (the optimizer steps) stays a call
through the dispatcher, and such a package cannot even be loaded without
libnormopt.
"""

import csv
import json
import os
import pathlib
import subprocess
import sys
import time
import types
import zipfile

import pytest
import torch
from conftest import python_env, run, run_python

F64 = torch.float64
# What the income model's exported graph calls (PredictInOriginalUnits of a
# StandardizedRegressor over a Linear).
INCOME_OPS = ["destandardize", "scale_from_variance", "standardize"]

# torch.export's own deprecation noise (torch 2.13), not normopt's.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"
)


@pytest.fixture(scope="session")
def export(normopt_library):
    from normopt import export

    return export


def without_normopt():
    """An environment in which a fresh interpreter cannot find normopt."""
    return python_env(PYTHONPATH=None, NORMOPT_LIBRARY=None)


@pytest.fixture(scope="session")
def income_x(income_csv):
    """The 20 training rows' features (age, experience), float64."""
    with open(income_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return torch.tensor([[float(r["age"]), float(r["experience"])] for r in rows], dtype=F64)


@pytest.fixture(scope="session")
def checkpoint(example, income_csv, tmp_path_factory):
    """income_model.pt: torch::save of a StandardizedRegressor trained by C++."""
    folder = tmp_path_factory.mktemp("checkpoint")
    run([example("income_regression"), income_csv], cwd=folder)
    path = folder / "income_model.pt"
    assert path.is_file(), f"income_regression wrote no {path}"
    return path


@pytest.fixture(scope="session")
def package(checkpoint, tmp_path_factory):
    """The session's AOTInductor package of the C++ checkpoint, served in
    float64, compiled by the command line. (path, CLI stdout, seconds)."""
    path = tmp_path_factory.mktemp("package") / "income.pt2"
    start = time.perf_counter()
    proc = run(
        [sys.executable, "-m", "normopt.export", checkpoint, path, "--dtype", "float64"],
        env=python_env(),
    )
    return types.SimpleNamespace(
        path=path, stdout=proc.stdout, seconds=time.perf_counter() - start
    )


@pytest.fixture(scope="session")
def compiled(export, package):
    """The session's package, loaded in this process."""
    return export.load_package(package.path)


@pytest.fixture(scope="session")
def reference(export, checkpoint):
    """The same checkpoint as eager Python modules, in float64."""
    return export.from_checkpoint(checkpoint, dtype=F64)


def relative(a, b):
    return ((a - b).abs() / b.abs()).max().item()


def rewritten(source, target, **metadata):
    """A copy of package `source` at `target` whose metadata has `metadata`
    changed: AOTInductor reads it from the *_metadata.json files of the
    archive, so no compile is needed to make a package that says it was
    built elsewhere."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("_metadata.json"):
                data = json.dumps({**json.loads(data), **metadata}).encode()
            zout.writestr(info, data)
    seen = torch._inductor.aoti_load_package(str(target)).get_metadata()
    assert all(seen.get(k) == v for k, v in metadata.items()), (
        "AOTInductor no longer reads a package's metadata from its *_metadata.json "
        f"files (got {seen}): make the test package another way"
    )
    return target


# ---- The command line and the package -------------------------------------------


def test_cli_compiles_the_cpp_checkpoint(package):
    assert package.path.is_file()
    assert zipfile.is_zipfile(package.path)
    assert f"wrote {package.path} (2 features, torch.float64)" in package.stdout
    # No temporary file is left beside the package.
    assert sorted(p.name for p in package.path.parent.iterdir()) == ["income.pt2"]


def test_package_file_mode_follows_umask(package):
    umask = os.umask(0)
    os.umask(umask)
    assert package.path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("rows", ["training", "one", "ten_thousand"])
def test_package_predicts_what_the_checkpoint_does(compiled, reference, income_x, rows):
    """Raw features in, dollars out, equal to the eager modules' predict in
    float64; the batch dimension is dynamic (the example input had 2 rows)."""
    if rows == "training":
        x = income_x
    elif rows == "one":
        x = torch.tensor([[38.0, 9.0]], dtype=F64)
    else:
        g = torch.Generator().manual_seed(0)
        age = torch.randint(18, 71, (10_000, 1), generator=g).to(F64)
        x = torch.cat([age, (age - 18) * torch.rand(10_000, 1, generator=g, dtype=F64)], 1)
    with torch.no_grad():
        expected = reference.predict(x)
        got = compiled(x)
    assert got.dtype == F64 and got.shape == (x.shape[0], 1)
    assert relative(got, expected) <= 1e-12
    # Incomes in dollars (the training targets are 30,450 to 63,600).
    assert 1e4 < expected.median().item() < 1e5


def test_package_metadata(export, compiled, reference, income_x):
    import normopt

    meta = compiled.get_metadata()
    assert meta["normopt.torch"] == torch.__version__
    assert meta["normopt.version"] == (normopt.build_info or {}).get("normopt", "")
    assert meta["normopt.input_dtype"] == "float64"
    assert meta["normopt.input_features"] == "2"
    # normopt.ops: the normopt ops the package still calls. The exported
    # graph calls the three statistics ops, but they are composites that
    # Inductor compiles in: none is left (test below: it runs without
    # libnormopt).
    program = torch.export.export(export.PredictInOriginalUnits(reference), (income_x,))
    called = sorted(
        str(node.target).split(".")[1]
        for node in program.graph.nodes
        if node.op == "call_function" and str(node.target).startswith("normopt.")
    )
    assert called == INCOME_OPS
    assert meta["normopt.ops"] == ""


def test_statistics_ops_are_compiled_into_the_package(package, reference, income_x):
    """The income package runs in an interpreter that never loads
    libnormopt: its ops are CompositeImplicitAutograd, and Inductor compiled
    their ATen bodies in (so 'the package needs libnormopt' holds only for
    graphs that call the optimizer steps, see below)."""
    code = (
        "import sys, torch\n"
        "m = torch._inductor.aoti_load_package(sys.argv[1])\n"
        "x = torch.tensor(eval(sys.argv[2]), dtype=torch.float64)\n"
        "y = m(x)\n"
        "maps = open('/proc/self/maps').read()\n"
        "assert 'normopt' not in sys.modules and 'libnormopt' not in maps\n"
        "print(repr([v.hex() for v in y.flatten().tolist()]))\n"
    )
    proc = run_python(code, package.path, repr(income_x.tolist()), env=without_normopt())
    assert proc.returncode == 0, proc.stderr
    got = torch.tensor([float.fromhex(v) for v in eval(proc.stdout.strip())], dtype=F64)
    with torch.no_grad():
        expected = reference.predict(income_x).flatten()
    assert relative(got, expected) <= 1e-12


class SGDStep(torch.nn.Module):
    """One fused SGD step (momentum 0.9, first step) of x against a gradient
    of ones: x - 0.5. Its graph calls normopt::sgd_step_, which has its own
    kernels and so stays a dispatcher call in the package."""

    def forward(self, x):
        p = x.clone()
        torch.ops.normopt.sgd_step_(
            [p], [torch.ones_like(x)], [torch.zeros_like(x)], lr=0.5, momentum=0.9,
            dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False,
            is_first_step=True,
        )
        return p


@pytest.fixture(scope="session")
def step_package(export, tmp_path_factory):
    """The second (and last) compile: a package whose code calls a normopt op."""
    path = tmp_path_factory.mktemp("step") / "sgd_step.pt2"
    x = torch.arange(6, dtype=F64).reshape(3, 2)
    export.aoti_package(SGDStep(), (x,), path)
    return path


def test_package_calling_a_normopt_kernel_needs_normopt(export, step_package):
    compiled = export.load_package(step_package)
    assert compiled.get_metadata()["normopt.ops"] == "sgd_step_"
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]], dtype=F64)
    assert torch.equal(compiled(x), x - 0.5)
    assert torch.equal(SGDStep()(x), x - 0.5)
    # A fresh interpreter that does not import normopt cannot load it:
    # torch names the missing op.
    code = (
        "import sys, torch\n"
        "m = torch._inductor.aoti_load_package(sys.argv[1])\n"
        "print(m(torch.ones(2, 2, dtype=torch.float64)))\n"
    )
    proc = run_python(code, step_package, env=without_normopt())
    assert proc.returncode != 0, proc.stdout
    assert "normopt::sgd_step_" in proc.stderr, proc.stderr[-2000:]
    # With `import normopt` first (as the module doc says), it loads and runs.
    code = "import normopt\n" + code.replace("torch.ones", "2 * torch.ones")
    proc = run_python(code, step_package, env=python_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1.5" in proc.stdout


# ---- load_package's checks --------------------------------------------------------


def test_load_package_refuses_another_torch(export, package, tmp_path):
    other = rewritten(package.path, tmp_path / "old.pt2", **{"normopt.torch": "1.0.0"})
    with pytest.raises(RuntimeError) as info:
        export.load_package(other)
    message = str(info.value)
    assert "torch 1.0.0" in message and f"torch {torch.__version__}" in message
    assert "old.pt2" in message and "python -m normopt.export" in message


def test_load_package_refuses_another_torch_in_process(export, package, monkeypatch):
    """The same check seen from the other side: this process's torch changes."""
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    with pytest.raises(RuntimeError) as info:
        export.load_package(package.path)
    message = str(info.value)
    assert "torch 9.9.9" in message
    monkeypatch.undo()
    assert f"torch {torch.__version__}" in message


def test_load_package_names_an_unregistered_op(export, package, tmp_path):
    other = rewritten(
        package.path, tmp_path / "newer.pt2", **{"normopt.ops": "standardize,no_such_op"}
    )
    with pytest.raises(RuntimeError, match=r"normopt::no_such_op, which is not registered"):
        export.load_package(other)


def test_load_package_of_a_missing_file(export, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no package at '.*nothing\.pt2'"):
        export.load_package(tmp_path / "nothing.pt2")


# ---- torch.export of the Python modules -------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_python_modules_export_without_graph_breaks(export, strict):
    from normopt import nn

    g = torch.Generator().manual_seed(1)
    income_x = torch.cat(
        [torch.randint(22, 61, (20, 1), generator=g), torch.randint(0, 21, (20, 1), generator=g)],
        1,
    ).to(F64)
    y = income_x @ torch.tensor([[300.0], [1400.0]], dtype=F64) + 2e4
    model = nn.StandardizedRegressor(torch.nn.Linear(2, 1, dtype=F64))
    model.fit_statistics(income_x, y).eval()
    served = export.PredictInOriginalUnits(model)
    explanation = torch._dynamo.explain(served)(income_x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1, (
        explanation.break_reasons
    )
    program = torch.export.export(
        served, (income_x,), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},), strict=strict
    )
    targets = [
        node.target for node in program.graph.nodes if node.op == "call_function"
    ]
    assert torch.ops.normopt.standardize.default in targets
    assert torch.ops.normopt.destandardize.default in targets
    assert torch.ops.normopt.scale_from_variance.default in targets
    x = torch.cat([income_x, income_x[:3] + 1])
    assert torch.equal(program.module()(x), model.predict(x))


# ---- aoti_package without compiling -----------------------------------------------


@pytest.fixture
def no_compile(monkeypatch):
    """Makes any compile fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("aoti_compile_and_package was called")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", refuse)


@pytest.fixture
def small_model(export):
    from normopt import nn

    x = torch.tensor([[25.0, 1.0], [30.0, 3.0], [47.0, 2.0]], dtype=F64)
    y = torch.tensor([[30450.0], [35670.0], [31580.0]], dtype=F64)
    model = nn.StandardizedRegressor(torch.nn.Linear(2, 1, dtype=F64))
    return model.fit_statistics(x, y).eval(), x


@pytest.mark.parametrize(
    "case, error, message",
    [
        ("suffix", ValueError, r"must end in \.pt2, got '.*model\.pt'"),
        ("folder", ValueError, r"the folder '.*missing' does not exist"),
        ("inputs", TypeError, r"example_inputs must be a non-empty tuple of tensors, .* got list"),
        ("empty", TypeError, r"example_inputs must be a non-empty tuple of tensors, .* got tuple"),
    ],
)
def test_aoti_package_refuses_bad_arguments(
    export, small_model, no_compile, tmp_path, case, error, message
):
    model, x = small_model
    path, inputs = tmp_path / "model.pt2", (x,)
    if case == "suffix":
        path = tmp_path / "model.pt"
    elif case == "folder":
        path = tmp_path / "missing" / "model.pt2"
    elif case == "empty":
        inputs = ()
    else:
        inputs = [x]
    with pytest.raises(error, match=message):
        export.aoti_package(model, inputs, path)
    assert list(tmp_path.iterdir()) == []


def test_aoti_package_writes_whole_file_with_metadata(export, small_model, monkeypatch, tmp_path):
    """With the compiler stubbed: what aoti_package hands it (the program,
    the metadata) and that the result replaces the old file."""
    model, x = small_model
    seen = {}

    def fake(program, package_path, inductor_configs):
        seen.update(program=program, path=package_path, configs=inductor_configs)
        pathlib.Path(package_path).write_bytes(b"new package")
        return package_path

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", fake)
    path = tmp_path / "model.pt2"
    path.write_bytes(b"old package")
    result = export.aoti_package(model, (x,), path)  # a bare StandardizedRegressor
    assert result == path and isinstance(result, pathlib.Path)
    assert path.read_bytes() == b"new package"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt2"]
    # Compiled under its own name in a staging folder beside it (the archive's
    # folder is named after the file), then renamed over it.
    staged = pathlib.Path(seen["path"])
    assert staged.name == "model.pt2" and staged.parent.parent == tmp_path
    meta = seen["configs"]["aot_inductor.metadata"]
    assert meta["normopt.torch"] == torch.__version__
    assert meta["normopt.ops"] == ""  # the statistics ops are compiled in
    assert meta["normopt.input_dtype"] == "float64" and meta["normopt.input_features"] == "2"
    # It served predict (original units) with a dynamic batch.
    x7 = torch.cat([x, x + 1, x[:1] + 2])
    assert torch.equal(seen["program"].module()(x7), model.predict(x7))


def test_metadata_keys_come_from_the_library(export):
    # One source: the keys normopt.export writes are the ones
    # normopt::deploy::Predictor checks (predictor.h), read from the op.
    assert (export.METADATA_TORCH, export.METADATA_VERSION, export.METADATA_OPS,
            export.METADATA_DTYPE, export.METADATA_FEATURES) == tuple(
                torch.ops.normopt.package_metadata_keys())
    assert export.METADATA_TORCH == "normopt.torch"  # what packages already hold


def test_column_slice_example_input_exports(export, monkeypatch, tmp_path):
    """An example input that is a column slice of a table (strides (3, 1))
    exported for any model failed inside run_decompositions; it is exported
    as its contiguous copy (serving makes inputs contiguous too)."""
    seen = {}

    def fake(program, package_path, inductor_configs):
        seen.update(program=program)
        pathlib.Path(package_path).write_bytes(b"package")
        return package_path

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", fake)
    torch.manual_seed(0)
    linear = torch.nn.Linear(2, 1).double()
    data = torch.randn(10, 3, dtype=torch.float64)
    export.aoti_package(linear, (data[:, :2],), tmp_path / "linear.pt2")
    with torch.no_grad():
        assert torch.equal(seen["program"].module()(data[:, :2].contiguous()),
                           linear(data[:, :2]))


def test_failed_compile_leaves_the_old_package(export, small_model, monkeypatch, tmp_path):
    model, x = small_model

    def fail(program, package_path, inductor_configs):
        pathlib.Path(package_path).write_bytes(b"half a package")
        raise RuntimeError("compile failed (stub)")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", fail)
    path = tmp_path / "model.pt2"
    path.write_bytes(b"old package")
    with pytest.raises(RuntimeError, match=r"compile failed \(stub\)"):
        export.aoti_package(export.PredictInOriginalUnits(model), (x,), path)
    assert path.read_bytes() == b"old package"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt2"]


# ---- The command line's errors ------------------------------------------------------


def test_cli_missing_checkpoint(tmp_path):
    missing = tmp_path / "no_such_model.pt"
    proc = _cli(missing, tmp_path / "out.pt2")
    assert proc.returncode == 2, proc.stderr
    assert f"no checkpoint at '{missing}'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.pt2").exists()


def test_cli_not_a_checkpoint(income_csv, tmp_path):
    proc = _cli(income_csv, tmp_path / "out.pt2")
    assert proc.returncode == 2, proc.stderr
    assert f"'{income_csv}' is not a checkpoint written by normopt's C++" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.pt2").exists()


def _cli(*args):
    """`python -m normopt.export ARGS` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "normopt.export", *[str(a) for a in args]],
        capture_output=True, text=True, timeout=300, env=python_env(),
    )


def test_cpp_predictor_serves_the_package_as_python_does(example, package, reference, income_x):
    """The round trip: trained in C++ (income_regression), packaged in Python
    (the CLI), served from C++ (deploy_predict, normopt::deploy::Predictor):
    equal to predict() of the same tensors in float64, to 1e-12."""
    values = [f"{v:.17g}" for v in income_x.reshape(-1).tolist()]
    proc = run([example("deploy_predict"), package.path, *values])
    served = torch.tensor([float(line) for line in proc.stdout.split()], dtype=F64)
    with torch.no_grad():
        expected = reference.predict(income_x).reshape(-1)
    assert served.shape == expected.shape
    assert relative(served, expected) <= 1e-12


def test_cpp_predictor_refuses_wrong_features_and_other_torch(example, package, tmp_path):
    proc = subprocess.run(
        [str(example("deploy_predict")), str(package.path), "--cols", "3", "1", "2", "3"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    assert f"'{package.path}' takes 2 features per row, got 3" in proc.stderr
    other = tmp_path / "other.pt2"
    rewritten(package.path, other, **{"normopt.torch": "1.0.0+cpu"})
    proc = subprocess.run(
        [str(example("deploy_predict")), str(other)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1
    assert f"'{other}' was compiled with torch 1.0.0+cpu" in proc.stderr
    assert "compile the package again" in proc.stderr


def test_strided_inputs_are_served_as_contiguous_ones(example, compiled, reference, income_x):
    """The compiled code assumes contiguous inputs; load_package's model and
    deploy::Predictor copy strided ones first (x[::2], a transposed copy)."""
    wide = torch.cat([income_x, income_x], 1)[:, :2]  # row stride 4
    every_other = income_x[::2]
    transposed = income_x.t().contiguous().t()
    for x in (wide, every_other, transposed):
        assert not x.is_contiguous()
        with torch.no_grad():
            assert relative(compiled(x), reference.predict(x.contiguous())) <= 1e-12


def test_fit_checkpoints_load_for_export(export, example, income_csv, income_x, tmp_path):
    """A checkpoint written by C++ fit() (the main job's --checkpoint-dir)
    holds its training record beside the model; from_checkpoint takes the
    model: its MSE on the training rows equals the History's last train_mse
    (evaluated by C++ at the end of the last epoch, float32 weights)."""
    run([example("compare_optimizers"), "--data", income_csv, "--epochs", "20",
         "--optimizers", "adam", "--lrs", "0.01", "--checkpoint-dir", tmp_path / "ck",
         "--out", tmp_path / "out"])
    with open(income_csv, newline="", encoding="utf-8") as f:
        y = torch.tensor([[float(r["income"])] for r in csv.DictReader(f)], dtype=F64)
    for name in ("adam_lr0.01_raw", "adam_lr0.01_standardized"):
        model = export.from_checkpoint(tmp_path / "ck" / f"{name}.pt", dtype=F64)
        with torch.no_grad():
            mse = ((model.predict(income_x) - y) ** 2).mean().item()
        with open(tmp_path / "out" / f"{name}.csv", newline="", encoding="utf-8") as f:
            history = list(csv.DictReader(f))
        assert len(history) == 20
        assert abs(mse / float(history[-1]["train_mse"]) - 1) <= 1e-6, name
