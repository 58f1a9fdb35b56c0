"""The ``openvino`` adapter: inference only (``Capabilities(training=False)``), a default run conforms with
its declared finding, and BatchNormInference maps as ``spec/conventions.md`` (2.13) says."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'bnspec[openvino]')")

from bnspec import Case  # noqa: E402
from bnspec.adapters import load  # noqa: E402
from tests.adapters.conformance import assert_conforms  # noqa: E402


def test_default_run_conforms_with_declared_findings(tmp_path):
    report = assert_conforms("openvino", tmp_path)
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert status["train-output"] == "unsupported" and status["eval-output"] in ("pass", "deviation")


def test_eval_float32_matches_the_formula_and_keeps_the_state():
    x = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    w, b = np.array([2.0, 1.0], np.float32), np.array([0.5, 0.0], np.float32)
    m, v = np.array([1.0, 0.0], np.float32), np.array([4.0, 1.0], np.float32)
    out = load("openvino").run(Case(x=x, training=False, eps=1e-5, weight=w, bias=b, running_mean=m, running_var=v))
    np.testing.assert_allclose(out.y, w * (x - m) / np.sqrt(v + 1e-5) + b, rtol=1e-6)
    assert out.running_mean.tolist() == m.tolist() and out.running_var.tolist() == v.tolist()


def test_v1_float64_is_computed_in_float32():
    """Finding V1: the float64 result carries float32 rounding (3.6e-8 relative here)."""
    x = np.array([[0.0], [0.1]])
    out = load("openvino").run(Case(x=x, training=False, weight=np.ones(1), bias=np.zeros(1),
                                    running_mean=np.zeros(1), running_var=np.full(1, 3.0)))
    exact = 0.1 / np.sqrt(3.0 + 1e-5)
    assert out.y.dtype == np.float64 and 1e-9 < abs(out.y[1, 0] - exact) / exact < 1e-6


def test_a_training_case_is_refused():
    with pytest.raises(ValueError, match="no training mode"):
        load("openvino").run(Case(x=np.zeros((2, 1), np.float32), weight=np.ones(1, np.float32),
                                  bias=np.zeros(1, np.float32), running_mean=np.zeros(1, np.float32),
                                  running_var=np.ones(1, np.float32)))
