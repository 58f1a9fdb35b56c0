"""The ``haiku`` adapter: a default run conforms with its declared findings, and hk.BatchNorm's moving
averages map as ``spec/conventions.md`` (2.11) says."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("haiku", reason="dm-haiku is not installed (pip install 'bnspec[haiku]')")

from bnspec import Case  # noqa: E402
from bnspec.adapters import load  # noqa: E402
from tests.adapters.conformance import assert_conforms  # noqa: E402


def test_default_run_conforms_with_declared_findings(tmp_path):
    assert_conforms("haiku", tmp_path)


def _step(n: int) -> tuple[np.ndarray, int]:
    x = np.array([[0.0], [2.0]], np.float32)  # batch mean 1
    out = load("haiku").run(Case(x=x, momentum=0.1, running_mean=np.full(1, 0.5, np.float32),
                                 running_var=np.ones(1, np.float32), num_batches_tracked=n))
    return out.running_mean, out.num_batches_tracked


def test_the_state_is_built_from_the_step_count_and_debiased():
    """Profile debiased-running-average: from n = 0 the first step stores the batch mean (1.0, not 0.55);
    after many steps the debiasing vanishes and the update is BN-RUN-1's 0.9 * 0.5 + 0.1 * 1 = 0.55."""
    mean, counter = _step(0)
    assert mean.tolist() == [1.0] and counter == 1
    mean, _ = _step(1000)
    np.testing.assert_allclose(mean, [0.55], rtol=1e-6)


def test_h1_one_pass_variance_goes_negative():
    """Finding H1: 256 float32 values at 1e4 +- 1 give a negative variance and NaN y."""
    x = np.random.default_rng(4).normal(1e4, 1.0, (256, 2)).astype(np.float32)
    out = load("haiku").run(Case(x=x, axis=-1, running_mean=np.zeros(2, np.float32),
                                 running_var=np.ones(2, np.float32)))
    assert np.isnan(out.y).all()


def test_h2_decay_one_makes_the_statistics_nan():
    """Finding H2: alpha 0 is decay_rate 1, and the debiasing divides by 1 - 1^n = 0."""
    out = load("haiku").run(Case(x=np.array([[0.0], [2.0]], np.float32), momentum=0.0,
                                 running_mean=np.zeros(1, np.float32), running_var=np.ones(1, np.float32),
                                 num_batches_tracked=2))
    assert np.isnan(out.running_mean).all() and np.isnan(out.running_var).all()
