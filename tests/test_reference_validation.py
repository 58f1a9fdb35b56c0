"""The reference's argument checks, state rules and special values (BN-ARG-*, BN-RUN-*, BN-EMPTY-1, ...)."""

from __future__ import annotations

import numpy as np
import pytest

from bnspec.errors import InvalidArgument, InvalidDtype
from bnspec.reference import step

X = np.arange(24, dtype=np.float64).reshape(2, 3, 4) % 5


def test_one_value_per_channel_in_training_raises():
    """BN-ARG-1"""
    with pytest.raises(InvalidArgument, match=r"one value per channel.*BN-ARG-1"):
        step(np.ones((1, 3)))
    assert step(np.ones((1, 3)), training=False, running_mean=np.zeros(3), running_var=np.ones(3)).y.shape == (1, 3)


@pytest.mark.parametrize("name", ["weight", "bias", "running_mean", "running_var"])
def test_wrong_parameter_length_raises(name):
    """BN-ARG-2, BN-LAYOUT-3"""
    kwargs = {"weight": np.ones(3), "bias": np.zeros(3), "running_mean": np.zeros(3), "running_var": np.ones(3)}
    kwargs[name] = np.ones(4)
    with pytest.raises(InvalidArgument, match=rf"{name}\.shape=\(4,\) must be \(3,\).*BN-ARG-2"):
        step(X, **kwargs)


def test_integer_input_raises_type_error():
    """BN-ARG-3"""
    with pytest.raises(InvalidDtype, match="BN-ARG-3") as info:
        step(X.astype(np.int64))
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("eps", [-1e-5, float("nan")])
def test_negative_eps_raises(eps):
    """BN-ARG-4"""
    with pytest.raises(InvalidArgument, match="eps=.*BN-ARG-4") as info:
        step(X, eps=eps)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("momentum", [-0.1, 1.5, float("nan")])
def test_momentum_outside_unit_interval_raises(momentum):
    """BN-ARG-5"""
    with pytest.raises(InvalidArgument, match="momentum=.*BN-ARG-5"):
        step(X, momentum=momentum, running_mean=np.zeros(3), running_var=np.ones(3))


def test_rank_one_raises():
    """BN-ARG-6"""
    with pytest.raises(InvalidArgument, match="BN-ARG-6"):
        step(np.ones(5))


def test_axis_out_of_range_names_the_parameter():
    """BN-LAYOUT-1"""
    with pytest.raises(InvalidArgument, match="axis=3 is out of range"):
        step(X, axis=3)


def test_inputs_are_not_mutated():
    """BN-IO-1"""
    arrays = {"x": X.copy(), "weight": np.ones(3), "bias": np.zeros(3), "running_mean": np.zeros(3),
              "running_var": np.ones(3), "grad_output": np.ones_like(X)}
    before = {k: v.copy() for k, v in arrays.items()}
    step(arrays.pop("x"), **arrays)
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, before[k])


def test_empty_batch_leaves_state_alone():
    """BN-EMPTY-1"""
    s = step(np.zeros((0, 3)), running_mean=np.zeros(3), running_var=np.ones(3), num_batches_tracked=4, momentum=None)
    assert s.y.shape == (0, 3)
    np.testing.assert_array_equal(s.running_mean, np.zeros(3))
    np.testing.assert_array_equal(s.running_var, np.ones(3))
    assert s.num_batches_tracked == 4


def test_eval_changes_no_state_and_counter_counts_training_steps():
    """BN-RUN-4, BN-RUN-6"""
    s = step(X, training=False, running_mean=np.zeros(3), running_var=np.ones(3), num_batches_tracked=2)
    assert s.num_batches_tracked == 2 and not s.batch_stats
    s = step(X, training=True, running_mean=np.zeros(3), running_var=np.ones(3), num_batches_tracked=2)
    assert s.num_batches_tracked == 3


def test_untracked_creates_no_state():
    """BN-RUN-5, BN-EVAL-2"""
    s = step(X, training=False)
    assert s.running_mean is None and s.num_batches_tracked is None and s.batch_stats


def test_cumulative_average_is_the_plain_mean_of_batch_statistics():
    """BN-RUN-3"""
    rng = np.random.default_rng(0)
    rm, rv, n = np.zeros(2), np.ones(2), 0
    means, vars_ = [], []
    for _ in range(5):
        x = rng.normal(3, 2, (7, 2))
        s = step(x, momentum=None, running_mean=rm, running_var=rv, num_batches_tracked=n)
        rm, rv, n = s.running_mean, s.running_var, s.num_batches_tracked
        means.append(x.mean(axis=0))
        vars_.append(x.var(axis=0, ddof=1))
    np.testing.assert_allclose(rm, np.mean(means, axis=0), rtol=1e-14)
    np.testing.assert_allclose(rv, np.mean(vars_, axis=0), rtol=1e-14)


def test_constant_channel_gives_beta_and_finite_gradients():
    """BN-SPECIAL-2"""
    x = np.full((4, 2), 7.25)
    x[:, 1] = [1.0, 2.0, 3.0, 4.0]
    s = step(x, weight=np.array([2.0, 1.0]), bias=np.array([0.5, 0.0]), grad_output=np.arange(8.0).reshape(4, 2))
    np.testing.assert_array_equal(s.y[:, 0], 0.5)
    assert np.isfinite(s.grad_input).all() and s.grad_weight[0] == 0.0


def test_nan_stays_in_its_channel():
    """BN-SPECIAL-1"""
    x = np.arange(12.0).reshape(4, 3)
    x[1, 0] = np.nan
    s = step(x, running_mean=np.zeros(3), running_var=np.ones(3), grad_output=np.ones_like(x),
             weight=np.ones(3), bias=np.zeros(3))
    assert np.isnan(s.y[:, 0]).all() and np.isfinite(s.y[:, 1:]).all()
    assert np.isfinite(s.running_mean[1:]).all() and np.isfinite(s.grad_weight[1:]).all()


def test_channel_last_is_the_transposed_channel_first():
    """BN-LAYOUT-2"""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4, 5))
    first = step(x, axis=1, grad_output=np.ones_like(x))
    last = step(np.moveaxis(x, 1, -1), axis=-1, grad_output=np.ones((2, 4, 5, 3)))
    np.testing.assert_array_equal(np.moveaxis(last.y, -1, 1), first.y)
    np.testing.assert_array_equal(np.moveaxis(last.grad_input, -1, 1), first.grad_input)


def test_outputs_are_float64_whatever_the_input_dtype():
    """BN-DTYPE-1, BN-DTYPE-2, BN-DTYPE-3: exact values; the adapter rounds to each output's dtype."""
    s = step(X.astype(np.float16), running_mean=np.zeros(3, np.float32), running_var=np.ones(3, np.float32))
    assert s.y.dtype == np.float64 and s.running_mean.dtype == np.float64
