"""The ``tf-fused`` adapter: a default run conforms with its declared deviations (F1-F3), and the
op's conventions map as ``spec/conventions.md`` (2.3) says."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from bnspec import Case  # noqa: E402
from bnspec.adapters import load  # noqa: E402
from tests.adapters.conformance import assert_conforms  # noqa: E402


def test_default_run_conforms_with_declared_deviations(tmp_path):
    # F5 shows only on a drawn training case with momentum 1 and a wrong-length statistic.
    report = assert_conforms("tf-fused", tmp_path, draw_dependent=frozenset({"arg-shape"}))
    status = {c["name"]: c["status"] for c in report["checks"]}
    # What the op cannot express (affine off, no statistics) is reported unsupported, never passed.
    assert status["train-affine-off"] == "unsupported" and status["running-untracked"] == "unsupported"


@pytest.mark.parametrize("axis", [1, -1])
def test_momentum_is_the_new_batch_weight_and_variance_unbiased(axis):
    """BN-RUN-1, BN-RUN-2, BN-LAYOUT-1: batch {0, 2} per channel (mean 1, unbiased variance 2) from
    running statistics 0 with momentum 0.25 gives 0.25 and 0.5, in either data_format."""
    x = np.array([0.0, 2.0], np.float32).reshape(2, 1, 1, 1) * np.ones((1, 3, 1, 1), np.float32)
    if axis == -1:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    c = 3
    out = load("tf-fused").run(Case(x=x, axis=axis, momentum=0.25, weight=np.ones(c, np.float32),
                                    bias=np.zeros(c, np.float32), running_mean=np.zeros(c, np.float32),
                                    running_var=np.zeros(c, np.float32)))
    assert out.running_mean.tolist() == [0.25] * c and out.running_var.tolist() == [0.5] * c
    np.testing.assert_allclose(out.y.reshape(-1), np.repeat([-1.0, 1.0], c), rtol=1e-4)


def test_eval_uses_and_returns_the_running_statistics():
    """BN-EVAL-1, BN-RUN-6: inference normalizes with the given statistics and hands them back unchanged;
    the gradient of y with respect to x is then gamma / sqrt(var + eps), statistics held constant (BN-GRAD-3)."""
    x = np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2)
    case = Case(x=x, training=False, weight=np.array([2.0, 1.0], np.float32), bias=np.array([0.5, 0.0], np.float32),
                running_mean=np.array([1.0, 3.0], np.float32), running_var=np.array([4.0, 1.0], np.float32), eps=0.0,
                grad_output=np.ones_like(x))
    out = load("tf-fused").run(case)
    want = (x - case.running_mean[None, :, None, None]) / np.sqrt(case.running_var)[None, :, None, None]
    np.testing.assert_allclose(out.y, want * case.weight[None, :, None, None] + case.bias[None, :, None, None])
    assert out.running_mean.tolist() == [1.0, 3.0] and out.running_var.tolist() == [4.0, 1.0]
    np.testing.assert_allclose(out.grad_input[:, 0], 1.0)  # 2 / sqrt(4)
    np.testing.assert_allclose(out.grad_input[:, 1], 1.0)  # 1 / sqrt(1)
