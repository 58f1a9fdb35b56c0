"""The ``tinygrad`` adapter: a default run conforms with its declared deviations, and
``nn.BatchNorm``'s conventions map as ``spec/conventions.md`` (2.7) says."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tinygrad")

from bnspec import Case  # noqa: E402
from bnspec.adapters import load  # noqa: E402
from tests.adapters.conformance import assert_conforms  # noqa: E402

# Declared deviations that only some drawn cases expose (reported "pass" with a stale-declaration
# note when no such case is drawn); every other declared deviation must be detected.
DRAW_DEPENDENT = frozenset({"arg-shape"})  # G5 needs an eval case whose running_var has the wrong length


def test_default_run_conforms_with_declared_deviations(tmp_path):
    assert_conforms("tinygrad", tmp_path, draw_dependent=DRAW_DEPENDENT)


def test_device_is_set_when_the_adapter_is_instantiated():
    from tinygrad import Device

    adapter = load("tinygrad")
    assert adapter.device in ("CPU", "PYTHON") and Device.DEFAULT == adapter.device
    assert adapter.capabilities.device == adapter.device.lower()


def test_momentum_weights_the_new_batch_and_the_counter_rises():
    """BN-RUN-1, BN-RUN-2, BN-RUN-4: batch {0, 2} (mean 1, unbiased variance 2) from running statistics
    0 with momentum 0.25 gives 0.25 and 0.5, and the counter goes from 3 to 4."""
    x = np.array([[0.0], [2.0]], np.float32)
    case = Case(x=x, momentum=0.25, weight=np.ones(1, np.float32), bias=np.zeros(1, np.float32),
                running_mean=np.zeros(1, np.float32), running_var=np.zeros(1, np.float32), num_batches_tracked=3,
                grad_output=np.array([[1.0], [-1.0]], np.float32))
    out = load("tinygrad").run(case)
    assert out.running_mean.tolist() == [0.25] and out.running_var.tolist() == [0.5]
    assert out.num_batches_tracked == 4
    np.testing.assert_allclose(out.y.ravel(), [-1.0, 1.0], rtol=1e-5)
    np.testing.assert_allclose(out.grad_weight, [-2.0], rtol=1e-5)  # sum(dy * x_hat)
    np.testing.assert_allclose(out.grad_bias, [0.0], atol=1e-6)


def test_eval_leaves_state_and_counter_alone():
    """BN-EVAL-1, BN-RUN-6"""
    x = np.array([[1.0], [3.0]], np.float32)
    case = Case(x=x, training=False, eps=0.0, running_mean=np.array([1.0], np.float32),
                running_var=np.array([4.0], np.float32), num_batches_tracked=2)
    out = load("tinygrad").run(case)
    assert out.y.ravel().tolist() == [0.0, 1.0]
    assert out.running_mean.tolist() == [1.0] and out.running_var.tolist() == [4.0] and out.num_batches_tracked == 2
