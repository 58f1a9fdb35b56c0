"""The ``equinox`` (mode="batch") and ``equinox-ema`` (mode="ema") adapters: default runs conform with their
declared findings, and eqx.nn.BatchNorm's state maps as ``spec/conventions.md`` (2.12) says."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("equinox", reason="Equinox is not installed (pip install 'bnspec[equinox]')")

from bnspec import Case  # noqa: E402
from bnspec.adapters import load  # noqa: E402
from tests.adapters.conformance import assert_conforms  # noqa: E402

X = np.array([[0.0], [2.0]], np.float32)  # batch mean 1, biased variance 1


@pytest.mark.parametrize("name", ["equinox", "equinox-ema"])
def test_default_run_conforms_with_declared_findings(name, tmp_path):
    assert_conforms(name, tmp_path)


def test_batch_mode_eval_uses_the_case_statistics():
    """The state built from the case (counter n, hidden = R (1 - d^n)) makes eval use R exactly."""
    for n in (0, 3):
        out = load("equinox").run(Case(x=X, training=False, momentum=0.1, running_mean=np.full(1, 1.0, np.float32),
                                       running_var=np.full(1, 4.0, np.float32), num_batches_tracked=n))
        np.testing.assert_allclose(out.y.ravel(), [-0.5, 0.5], rtol=1e-5)


def test_e1_batch_mode_debiases_the_initial_variance():
    """Finding E1: one step from a fresh state (0, 1) with momentum 0.9 stores var 0.9/0.1 + 1 = 10, not 1."""
    out = load("equinox").run(Case(x=X, momentum=0.1, running_mean=np.zeros(1, np.float32),
                                   running_var=np.ones(1, np.float32), num_batches_tracked=0))
    np.testing.assert_allclose(out.running_var, [10.0], rtol=1e-5)
    np.testing.assert_allclose(out.running_mean, [1.0], rtol=1e-5)


def test_e2_ema_mode_normalizes_with_the_blend():
    """Finding E2: running mean 11 and var 1, alpha 0.1: training normalizes with 0.1 * 1 + 0.9 * 11 = 10."""
    out = load("equinox-ema").run(Case(x=X, momentum=0.1, running_mean=np.full(1, 11.0, np.float32),
                                       running_var=np.ones(1, np.float32)))
    np.testing.assert_allclose(out.y.ravel(), [-10.0, -8.0], rtol=1e-4)
    np.testing.assert_allclose(out.running_mean, [10.0], rtol=1e-6)
