"""The ``paddle`` adapter: a default run conforms with its declared findings, and Paddle's conventions map
as ``spec/conventions.md`` (2.10) says."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("paddle", reason="PaddlePaddle is not installed (pip install 'bnspec[paddle]')")

from bnspec import Case  # noqa: E402
from bnspec.adapters import load  # noqa: E402
from tests.adapters.conformance import assert_conforms  # noqa: E402


def test_default_run_conforms_with_declared_findings(tmp_path):
    assert_conforms("paddle", tmp_path)


def test_momentum_is_passed_as_the_old_weight_and_the_running_variance_is_biased():
    """BN-RUN-1, profile biased-running-var: batch {0, 2} (mean 1, biased variance 1) from 0 and 0 with
    alpha 0.25 gives 0.25 and 0.25, channel-last (data_format NLC) as well as channel-first."""
    x = np.array([[[0.0, 5.0]], [[2.0, 5.0]]], np.float32)  # (N, L, C) = (2, 1, 2)
    for axis, xx in ((-1, x), (1, np.moveaxis(x, -1, 1))):
        out = load("paddle").run(Case(x=xx, axis=axis, momentum=0.25, running_mean=np.zeros(2, np.float32),
                                      running_var=np.zeros(2, np.float32)))
        np.testing.assert_allclose(out.running_mean, [0.25, 1.25], rtol=1e-6)
        np.testing.assert_allclose(out.running_var, [0.25, 0.0], rtol=1e-6)


def test_p3_one_value_per_channel_returns_x():
    """Finding P3: m = 1 in training gives y = x and leaves the statistics, no error."""
    out = load("paddle").run(Case(x=np.array([[3.0, 4.0]], np.float32), running_mean=np.zeros(2, np.float32),
                                  running_var=np.ones(2, np.float32)))
    assert out.y.tolist() == [[3.0, 4.0]] and out.running_mean.tolist() == [0.0, 0.0]


def test_p2_untracked_eval_backward_uses_the_running_statistics():
    """Finding P2: use_global_stats=False in eval: y from the batch statistics, dgamma from the running ones."""
    x = np.array([[0.0], [2.0]], np.float32)
    out = load("paddle").run(Case(x=x, training=False, weight=np.ones(1, np.float32), bias=np.zeros(1, np.float32),
                                  grad_output=np.array([[1.0], [0.5]], np.float32)))
    np.testing.assert_allclose(out.y.ravel(), [-1.0, 1.0], atol=1e-5)
    assert abs(out.grad_weight[0] - (-0.5)) > 1.0  # the batch-statistics formula gives -0.5
