"""The compiled, jitted and exported forms (``bnspec/adapters/compiled/``, issue 16): each is registered
beside its eager twin, runs one step as its twin maps it, and shows the findings its conventions entry
states (``spec/conventions.md``, section 4, "Compiled, jitted and exported forms"). Default runs are
checked for the forms cheap enough for CI (the compilers' forms take minutes on 2 cores; their default
runs are measured in the issue's note instead).

Keras and JAX take process-wide settings, so those forms run in a subprocess."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from bnspec import Case
from bnspec.adapters import load
from bnspec.adapters.registry import BUILTIN, FAMILIES, TWINS
from tests.adapters.conformance import assert_conforms


def _have(*mods: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in mods)


def needs(*mods: str):  # noqa: ANN201 - a pytest mark
    return pytest.mark.skipif(not _have(*mods), reason=f"needs {', '.join(mods)}")


def test_every_builtin_has_one_family_and_every_form_an_eager_twin_in_it():
    members = [n for names in FAMILIES.values() for n in names]
    assert set(members) <= set(BUILTIN) and len(set(members)) == len(members)
    for name, entry in BUILTIN.items():  # an adapter no family lists is a family of its own
        assert entry.family == next((f for f, names in FAMILIES.items() if name in names), name)
    for form, twin in TWINS.items():
        assert BUILTIN[form].twin == twin and twin in BUILTIN and not BUILTIN[twin].twin
        assert BUILTIN[form].family == BUILTIN[twin].family
        assert BUILTIN[form].requires[:len(BUILTIN[twin].requires)] == BUILTIN[twin].requires or \
            set(BUILTIN[twin].requires) <= set(BUILTIN[form].requires)


def _one_step(x, momentum=0.25, grad=True):
    c = x.shape[1]
    one, zero = np.ones(c, x.dtype), np.zeros(c, x.dtype)
    return Case(x=x, momentum=momentum, weight=one, bias=zero, running_mean=zero, running_var=zero,
                grad_output=np.eye(*x.shape, dtype=x.dtype) if grad else None)


# -- ONNX: the exporter-shaped model -------------------------------------------------------------------

ONNX_FORMS = ["onnxruntime-exported", "onnxruntime-exported-noopt", "onnxruntime-exported-dangling",
              "onnxruntime-exported-dangling-noopt"]


@needs("onnx", "onnxruntime")
@pytest.mark.parametrize("name", ONNX_FORMS)
def test_exported_onnx_forms_conform_with_the_operator_findings(name, tmp_path):
    # OX1, OX2 (default optimizations only) and O6's float32-state case need particular draws.
    assert_conforms(name, tmp_path, draw_dependent=frozenset({
        "dtype-half", "dtype-half-params", "train-output", "train-batch-stats", "special-nonfinite", "special-constant",
        "scenario-multistep", "quality-constant"}))


@needs("onnx", "onnxruntime")
def test_default_optimizations_break_float16_training_with_initializers():
    """OX1 (BN-TRAIN-1, BN-DTYPE-2): the same float16 training step, parameters and state as initializers:
    optimizations off give the exact +-0.9996, onnxruntime's default level [0.953, -0.848]."""
    x = np.array([[0.63232421875], [0.4189453125]], np.float16)
    one, zero = np.ones(1, np.float16), np.zeros(1, np.float16)
    case = Case(x=x, momentum=0.1, weight=one, bias=zero, running_mean=zero, running_var=one)
    assert np.allclose(load("onnxruntime-exported-noopt").run(case).y.ravel(), [0.99956, -0.99956], atol=1e-3)
    assert np.allclose(load("onnxruntime").run(case).y.ravel(), [0.99956, -0.99956], atol=1e-3)
    assert abs(load("onnxruntime-exported").run(case).y[1, 0] + 0.848) < 1e-2


@needs("onnx", "onnxruntime")
@pytest.mark.parametrize("name", ONNX_FORMS)
def test_exported_onnx_forms_hold_the_state_in_initializers_and_match_the_one_node_model(name):
    """BN-RUN-1, BN-RUN-2 (biased-running-var), BN-EVAL-1: the exported forms give the plain operator's
    results bit for bit, in training (with the running outputs consumed or dangling) and in eval."""
    from bnspec.adapters.compiled.onnx_forms import exported_model

    x = np.random.default_rng(3).standard_normal((6, 3, 2)).astype(np.float32)
    for training in (True, False):
        case = Case(**{**vars(_one_step(x, grad=False)), "training": training})
        mdl = exported_model(case, training, consumed=name.count("dangling") == 0)
        assert [i.name for i in mdl.graph.input] == ["X"] and len(mdl.graph.initializer) == 4
        got, plain = load(name).run(case), load("onnxruntime").run(case)
        for field in ("y", "running_mean", "running_var"):
            if training and field == "y" and name == "onnxruntime-exported-dangling":  # OX2
                assert not np.allclose(got.y, plain.y, atol=1e-3)
                continue
            assert np.array_equal(getattr(got, field), getattr(plain, field)), (training, field)


@needs("onnx", "onnxruntime")
def test_default_optimizations_change_y_of_a_training_node_whose_running_outputs_dangle():
    """OX2 (BN-TRAIN-1): batch [0, 2], state mean 0, var 4, eps 0: y = [-1, 1] except with the running outputs
    unconsumed at onnxruntime's default level, where it is [-0.9, 1.1]."""
    case = Case(x=np.array([[0.0], [2.0]], np.float32), eps=0.0, momentum=0.1, weight=np.ones(1, np.float32),
                bias=np.zeros(1, np.float32), running_mean=np.zeros(1, np.float32), running_var=np.full(1, 4.0, np.float32))
    for name in ("onnxruntime", "onnxruntime-exported", "onnxruntime-exported-noopt", "onnxruntime-exported-dangling-noopt"):
        assert np.allclose(load(name).run(case).y.ravel(), [-1.0, 1.0], atol=1e-6), name
    assert np.allclose(load("onnxruntime-exported-dangling").run(case).y.ravel(), [-0.9, 1.1], atol=1e-6)


# -- PyTorch ----------------------------------------------------------------------------------------

@needs("torch")
def test_torch_compile_normalizes_an_integer_input_eager_rejects():
    """TC1 (BN-ARG-3): eval, frozen parameters (the adapter sets requires_grad only for a gradient case):
    the compiled module returns int32 [0, 2], truncating [0.999995, 2.999985]; eager raises."""
    case = Case(x=np.array([[1], [3]], np.int32), training=False, weight=np.ones(1, np.float32),
                bias=np.zeros(1, np.float32), running_mean=np.zeros(1, np.float32), running_var=np.ones(1, np.float32))
    with pytest.raises(NotImplementedError):
        load("torch").run(case)
    y = load("torch-compile").run(case).y
    assert y.dtype == np.int32 and y.ravel().tolist() == [0, 2]
    assert "arg-non-floating" in dict(load("torch-compile").capabilities.known_deviations)


@needs("torch")
def test_torch_compile_matches_the_mapping_of_its_eager_twin():
    """BN-RUN-1, BN-RUN-2 (unbiased), BN-RUN-4, BN-GRAD-1 through Inductor: batch {0, 2}, momentum 0.25."""
    out = load("torch-compile").run(_one_step(np.array([[0.0], [2.0]], np.float32)))
    assert out.running_mean.tolist() == [0.25] and out.running_var.tolist() == [0.5]
    assert out.num_batches_tracked == 1 and out.grad_bias.tolist() == [1.0]


@needs("torch", "onnx", "onnxruntime")
def test_torch_onnx_export_drops_the_running_outputs_and_undoes_its_tracing_step():
    """TO1 (BN-RUN-1..4): the exported training step normalizes with the batch statistics but updates no
    state; TO2: the exporter's own tracing pass, which did update the module, is undone by the adapter."""
    case = _one_step(np.array([[0.0], [2.0]], np.float32), grad=False)
    out = load("torch-onnx").run(case)
    assert np.allclose(out.y.ravel(), [-1.0, 1.0], atol=1e-5)
    assert out.running_mean.tolist() == [0.0] and out.running_var.tolist() == [0.0] and out.num_batches_tracked == 0


# -- TensorFlow -------------------------------------------------------------------------------------

@needs("tensorflow")
def test_xla_fused_batch_norm_takes_the_variance_one_pass():
    """FX1 (BN-TRAIN-2): 1000 float32 values at 1e4, spread 1: eager keeps the variance (0.955), XLA's
    expander gives a negative one and a NaN output."""
    x = (1e4 + np.random.default_rng(0).standard_normal((1000, 1, 1, 1))).astype(np.float32)
    one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)
    case = Case(x=x, momentum=1.0, weight=one, bias=zero, running_mean=zero, running_var=one)
    exact = x.astype(np.float64).var(ddof=1)
    eager, xla = load("tf-fused").run(case), load("tf-fused-xla").run(case)
    assert abs(eager.running_var[0] - exact) < 1e-3 and np.isfinite(eager.y).all()
    assert xla.running_var[0] < 0 and np.isnan(xla.y).all()


@needs("tensorflow")
@pytest.mark.parametrize("name", ["tf-nn", "tf-nn-xla"])
def test_tf_nn_composite_maps_momentum_and_the_biased_variance(name):
    """BN-RUN-1, BN-RUN-2 (biased-running-var), BN-GRAD-1 for the moments + batch_normalization composite."""
    out = load(name).run(_one_step(np.array([[0.0], [2.0]], np.float32)))
    assert out.running_mean.tolist() == [0.25] and out.running_var.tolist() == [0.25]
    assert np.allclose(out.y.ravel(), [-1.0, 1.0], atol=1e-4) and out.grad_bias.tolist() == [1.0]


# -- JAX, MLX, tinygrad: the step inside the compiler equals the eager one here --------------------------

@pytest.mark.parametrize("name,twin,mods", [
    pytest.param("flax-linen-jit", "flax-linen", ("flax", "jax"), id="flax-linen-jit"),
    pytest.param("mlx-compile", "mlx", ("mlx",), id="mlx-compile"),
    pytest.param("tinygrad-jit", "tinygrad", ("tinygrad",), id="tinygrad-jit"),
])
def test_compiled_step_agrees_with_its_eager_twin(name, twin, mods):
    """BN-TRAIN-1, BN-RUN-1, BN-GRAD-1: a small well-conditioned step, twice (a compiled form caches its
    step and must not carry state from the first call into the second), within float32 rounding."""
    if not _have(*mods):
        pytest.skip(f"needs {', '.join(mods)}")
    rng = np.random.default_rng(7)
    form, eager = load(name), load(twin)
    axis = -1 if twin == "mlx" else 1
    for _ in range(2):
        x = rng.standard_normal((6, 3)).astype(np.float32)
        c = 3
        case = Case(x=x, axis=axis, momentum=0.25, weight=rng.uniform(0.5, 2, c).astype(np.float32),
                    bias=rng.standard_normal(c).astype(np.float32), running_mean=np.zeros(c, np.float32),
                    running_var=np.ones(c, np.float32), grad_output=rng.standard_normal(x.shape).astype(np.float32))
        a, b = form.run(case), eager.run(case)
        stale = name == "tinygrad-jit"  # GJ1: the replay returns the capture call's statistics (the adapter warms up on -x)
        for field in ("y", "grad_input", "grad_weight", "grad_bias") + (() if stale else ("running_mean", "running_var")):
            assert np.allclose(getattr(a, field), getattr(b, field), rtol=1e-5, atol=1e-6), field
        if stale:  # the capture call's statistics (from -x of the first case with this shape), not this case's
            assert not np.allclose(a.running_mean, b.running_mean, rtol=1e-3, atol=1e-3)


_KERAS_STEP = """
import json, sys
import numpy as np
from bnspec import Case
from bnspec.adapters import load
adapter = load(sys.argv[1])
x = np.array([[0.0, 5.0], [2.0, 5.0]], np.float32)
one, zero = np.ones(2, np.float32), np.zeros(2, np.float32)
case = Case(x=x, momentum=0.25, weight=one, bias=zero, running_mean=zero, running_var=zero,
            grad_output=np.array([[1.0, 0.0], [0.0, 0.0]], np.float32))
outs = [adapter.run(case) for _ in range(2)]  # the cached layer takes the case's values each time
print(json.dumps([dict(mean=o.running_mean.tolist(), var=o.running_var.tolist(), dbeta=o.grad_bias.tolist())
                  for o in outs]))
"""


@pytest.mark.parametrize("name,mods", [("keras-jax-jit", ("keras", "jax")),
                                       ("keras-tensorflow-xla", ("keras", "tensorflow"))])
def test_compiled_keras_layer_maps_like_the_eager_one(name, mods):
    """BN-RUN-1, BN-RUN-2 (biased-running-var), BN-GRAD-2: as test_adapter_keras's one step, run twice on
    the compiled step: the second call starts from the case's state, not the first call's."""
    if not _have(*mods):
        pytest.skip(f"needs {', '.join(mods)}")
    p = subprocess.run([sys.executable, "-c", _KERAS_STEP, name], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    for got in json.loads(p.stdout.strip().splitlines()[-1]):
        assert got["mean"] == [0.25, 1.25] and got["var"] == [0.25, 0.0] and got["dbeta"] == [1.0, 0.0]
