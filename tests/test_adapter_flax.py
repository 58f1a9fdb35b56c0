"""The Flax adapters: a default run conforms with its known deviations, and the parameter mapping."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("flax")

from bnspec import Case  # noqa: E402
from bnspec.adapters import load  # noqa: E402
from tests.adapters.conformance import assert_conforms  # noqa: E402

ADAPTERS = ("flax-linen", "flax-nnx")


@pytest.mark.parametrize("name", ADAPTERS)
def test_default_run_conforms_with_known_deviations(name, tmp_path):
    # X5 (dtype-output) shows only on the draws with half-precision or float64 state: at 8 examples it may pass.
    draw_dependent = frozenset({"dtype-output"}) if name == "flax-linen" else frozenset()
    status = {c["name"]: c["status"] for c in assert_conforms(name, tmp_path, draw_dependent=draw_dependent)["checks"]}
    assert status["running-cumulative"] == "unsupported" and status["running-untracked"] == "unsupported"


@pytest.mark.parametrize("name", ADAPTERS)
def test_momentum_direction_and_biased_running_variance(name):
    """BN-RUN-1, BN-RUN-2: from running mean 0 and variance 0, one step on a batch of mean 1 and biased
    variance 1 gives exactly alpha for both (Flax is given 1 - alpha; unbiased would give 2 * alpha)."""
    alpha = 0.25  # 1 - alpha and 1 - (1 - alpha) are exact in binary
    x = np.array([[0.0, 5.0], [2.0, 5.0]], np.float32)  # channel 0: mean 1, variance 1; channel 1: constant 5
    out = load(name).run(Case(x=x, momentum=alpha, running_mean=np.zeros(2, np.float32),
                              running_var=np.zeros(2, np.float32)))
    np.testing.assert_array_equal(out.running_mean, np.array([alpha, 5 * alpha], np.float32))
    np.testing.assert_array_equal(out.running_var, np.array([alpha, 0.0], np.float32))
    assert out.num_batches_tracked is None and out.grad_input is None


@pytest.mark.parametrize("name", ADAPTERS)
def test_channel_axis_and_float64(name):
    """BN-LAYOUT-1, BN-LAYOUT-2, BN-DTYPE-1: axis 1 and -1 agree on transposed data, and float64 stays
    float64 (jax_enable_x64 is on once the adapter exists)."""
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (4, 3, 5))
    dy = rng.normal(size=x.shape)
    stats = dict(weight=rng.normal(1, 0.5, 3), bias=rng.normal(size=3), running_mean=np.zeros(3),
                 running_var=np.ones(3))
    adapter = load(name)
    first = adapter.run(Case(x=x, axis=1, grad_output=dy, **stats))
    last = adapter.run(Case(x=np.moveaxis(x, 1, -1), axis=-1, grad_output=np.moveaxis(dy, 1, -1), **stats))
    assert first.y.dtype == np.float64 and first.grad_input.dtype == np.float64
    assert first.running_var.dtype == np.float64
    np.testing.assert_allclose(np.moveaxis(last.y, -1, 1), first.y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.moveaxis(last.grad_input, -1, 1), first.grad_input, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(last.grad_weight, first.grad_weight, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(last.running_var, first.running_var, rtol=1e-12)
