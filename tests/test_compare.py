"""Meta-tests: the comparison and the precision model fail when they should, and only then."""

from __future__ import annotations

import numpy as np
import pytest

from bnspec import Case
from bnspec.conformance.compare import compare
from bnspec.conformance.tolerance import gamma_m, tolerances
from bnspec.reference import step


def test_compare_reports_worst_element_with_both_values():
    want = np.array([1.0, 2.0, 3.0])
    v = compare("y", np.array([1.0, 2.5, 3.0], dtype=np.float32), want, np.full(3, 0.1))
    assert not v.ok and v.budget == pytest.approx(5.0)
    assert v.worst["index"] == [1] and v.worst["got"] == 2.5 and v.worst["expected"] == 2.0
    assert "y[1] = 2.5, expected 2" in v.message and "1 of 3 elements" in v.message


def test_compare_within_tolerance_passes_with_budget():
    v = compare("y", np.array([1.05]), np.array([1.0]), np.array([0.1]))
    assert v.ok and v.budget == pytest.approx(0.5)


@pytest.mark.parametrize("got,why", [(None, "missing"), ([1.0], "not a NumPy array"),
                                     (np.zeros(2), "shape"), (np.array([np.nan]), "nan")])
def test_compare_rejects_malformed_results(got, why):
    v = compare("y", got, np.array([1.0]), np.array([0.1]))
    assert not v.ok and (why in v.message.lower() or v.budget == np.inf)


def test_nan_where_the_exact_value_is_finite_fails():
    """BN-PREC-7"""
    assert not compare("y", np.array([np.nan, 1.0]), np.array([0.0, 1.0]), np.ones(2)).ok


def test_overflow_beyond_the_dtype_range_conforms_only_with_its_sign():
    """BN-PREC-1"""
    want = np.array([7e4])
    assert compare("g", np.array([np.inf], np.float16), want, np.ones(1), limit=65504.0).ok
    assert not compare("g", np.array([-np.inf], np.float16), want, np.ones(1), limit=65504.0).ok


def test_gamma_m_is_the_classical_bound():
    u = 2.0**-24
    assert gamma_m(1, u) == 0.0 and gamma_m(2, u) == pytest.approx(u)
    assert gamma_m(1001, u) == pytest.approx(1000 * u / (1 - 1000 * u))


def test_tolerance_rejects_a_one_pass_float32_variance_on_offset_data():
    """BN-PREC-2: a large mean against a small spread defeats E[x^2] - E[x]^2 in float32."""
    rng = np.random.default_rng(0)
    x = (1e3 + rng.standard_normal((16, 2))).astype(np.float32)
    case = Case(x=x)
    want = step(x)
    xf = x.astype(np.float32)
    one_pass = (xf * xf).mean(axis=0) - xf.mean(axis=0) ** 2
    y = ((xf - xf.mean(axis=0)) / np.sqrt(one_pass + np.float32(1e-5))).astype(np.float32)
    assert not compare("y", y, want.y, tolerances(case, want)["y"]).ok
    two_pass = ((xf - xf.mean(axis=0)) ** 2).mean(axis=0)
    y2 = ((xf - xf.mean(axis=0)) / np.sqrt(two_pass + np.float32(1e-5))).astype(np.float32)
    assert compare("y", y2, want.y, tolerances(case, want)["y"]).ok


def test_tolerance_rejects_a_relative_error_of_1e_4_in_dgamma():
    """BN-PREC-5: on well-conditioned float32 data of moderate size, 1e-4 relative is a bug."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    dy = (2 * (x - x.mean(0)) / x.std(0) + 0.5).astype(np.float32)
    w, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    case = Case(x=x, weight=w, bias=b, grad_output=dy)
    want = step(x, weight=w, bias=b, grad_output=dy)
    tol = tolerances(case, want)["grad_weight"]
    assert compare("grad_weight", want.grad_weight.astype(np.float32), want.grad_weight, tol).ok
    assert not compare("grad_weight", want.grad_weight * (1 + 1e-4), want.grad_weight, tol).ok
