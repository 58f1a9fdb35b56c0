"""The ``mlx`` adapter: a default run conforms with its declared deviations, and ``mlx.nn.BatchNorm``'s
conventions map as ``spec/conventions.md`` (2.8) says."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mlx.core")

from bnspec import Case  # noqa: E402
from bnspec.adapters import load  # noqa: E402
from tests.adapters.conformance import assert_conforms  # noqa: E402


def test_default_run_conforms_with_declared_deviations(tmp_path):
    assert_conforms("mlx", tmp_path)


def test_momentum_weights_the_new_batch_channel_last():
    """BN-RUN-1, BN-RUN-2, BN-LAYOUT-1: channel-last batch {0, 2} (mean 1, unbiased variance 2) from
    running statistics 0 with momentum 0.25 gives 0.25 and 0.5; gradients come back for every input."""
    x = np.array([[[0.0, 5.0]], [[2.0, 5.0]]], np.float32)  # (N, L, C) = (2, 1, 2); channel 1 constant
    case = Case(x=x, axis=-1, momentum=0.25, weight=np.ones(2, np.float32), bias=np.zeros(2, np.float32),
                running_mean=np.zeros(2, np.float32), running_var=np.zeros(2, np.float32),
                grad_output=np.ones_like(x))
    out = load("mlx").run(case)
    assert out.running_mean.tolist() == [0.25, 1.25] and out.running_var.tolist() == [0.5, 0.0]
    assert out.num_batches_tracked is None
    np.testing.assert_allclose(out.grad_bias, [2.0, 2.0])
    assert out.grad_input.shape == x.shape and out.grad_weight.shape == (2,)


def test_float64_stays_float64():
    """BN-DTYPE-1, BN-DTYPE-3: the adapter asks MLX for float64 (mx.array would make float32)."""
    x = np.array([[0.0], [2.0]])
    out = load("mlx").run(Case(x=x, axis=-1, running_mean=np.zeros(1), running_var=np.ones(1)))
    assert out.y.dtype == np.float64 and out.running_mean.dtype == np.float64


def test_rank_5_raises():
    """BN-LAYOUT-2 (finding M4): MLX accepts ranks 2-4 only, so the adapter claims no more."""
    assert load("mlx").capabilities.ranks == (2, 3, 4)
    with pytest.raises(ValueError):
        load("mlx").run(Case(x=np.zeros((2, 1, 1, 1, 3), np.float32), axis=-1))
