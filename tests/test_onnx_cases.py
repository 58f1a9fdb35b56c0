"""ONNX's own BatchNormalization operator test cases, reproduced by the reference.

The installed ``onnx`` wheel no longer ships the stored node data for these cases, so they are
generated from its case definitions (``onnx.backend.test.case.node.batch_normalization``) with a
fixed NumPy seed. ONNX's conventions map onto the spec as ``spec/conventions.md`` says: its
momentum weights the old value (spec momentum = 1 - ONNX momentum), its epsilon is a float32
attribute, and its running variance is the biased one (profile ``biased-running-var``).
"""

from __future__ import annotations

import numpy as np
import pytest

from bnspec import Case
from bnspec.conformance.compare import compare
from bnspec.conformance.tolerance import tolerances
from bnspec.reference import step

onnx = pytest.importorskip("onnx")
bn_cases = pytest.importorskip("onnx.backend.test.case.node.batch_normalization")

NAMES = ("test_batchnorm_example", "test_batchnorm_epsilon",
         "test_batchnorm_example_training_mode", "test_batchnorm_epsilon_training_mode")


def onnx_cases() -> dict[str, tuple]:
    captured: dict[str, tuple] = {}

    def capture(node, inputs, outputs, name, **kwargs):
        captured[name] = (node, inputs, outputs)

    original = bn_cases.expect
    bn_cases.expect = capture
    try:
        np.random.seed(0)
        bn_cases.BatchNormalization.export()
        bn_cases.BatchNormalization.export_train()
    finally:
        bn_cases.expect = original
    return captured


CASES = onnx_cases()


def attribute(node, name, default):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


@pytest.mark.parametrize("name", NAMES)
def test_reference_reproduces_onnx_case(name):
    """BN-EVAL-1 (test mode); BN-TRAIN-1..4, BN-RUN-1 and the biased-running-var profile (training mode)."""
    assert name in CASES, f"onnx no longer defines {name}; the cases it defines: {sorted(CASES)}"
    node, (x, s, bias, mean, var), outputs = CASES[name]
    training = bool(attribute(node, "training_mode", 0))
    onnx_momentum = float(np.float32(attribute(node, "momentum", 0.9)))  # float32 attribute
    eps = float(np.float32(attribute(node, "epsilon", 1e-5)))
    case = Case(x=x, axis=1, training=training, eps=eps, momentum=1.0 - onnx_momentum,
                weight=s, bias=bias, running_mean=mean, running_var=var)
    want = step(x, axis=1, training=training, eps=eps, momentum=1.0 - onnx_momentum, weight=s, bias=bias,
                running_mean=mean, running_var=var, running_var_estimator="biased")
    tol = tolerances(case, want, estimator="biased")
    names = ("y", "running_mean", "running_var") if training else ("y",)
    assert len(outputs) == len(names)
    for out_name, onnx_value in zip(names, outputs):
        verdict = compare(out_name, np.asarray(onnx_value), getattr(want, out_name), tol[out_name])
        assert verdict.ok, f"{name}: {verdict.message}"


def test_unbiased_running_variance_disagrees_with_onnx():
    """The profile matters: under the spec's own unbiased estimator ONNX's training case fails."""
    node, (x, s, bias, mean, var), outputs = CASES["test_batchnorm_example_training_mode"]
    want = step(x, axis=1, training=True, momentum=0.1, weight=s, bias=bias, running_mean=mean, running_var=var)
    case = Case(x=x, momentum=0.1, weight=s, bias=bias, running_mean=mean, running_var=var)
    verdict = compare("running_var", np.asarray(outputs[2]), want.running_var, tolerances(case, want)["running_var"])
    assert not verdict.ok
