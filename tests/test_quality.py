"""The quality tier (BN-QUAL-*, ``spec/precision.md``): its bounds, its exactness properties, its checks.

The bounds are shown on the sums themselves (pairwise, blocked, Welford/Chan against a sequential
float32 loop), then on whole implementations: the reference and the good NumPy algorithms of
``impls/quality_impls.py`` never trip the QUAL checks; each poor one falls short on its clause, and
a shortfall is never a failure (the MUST checks pass the poor ones too).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnspec.adapters.contract import Case
from bnspec.adapters.reference import ReferenceAdapter
from bnspec.conformance import run
from bnspec.conformance.checks.quality import QUALITY_CHECKS
from bnspec.conformance.quality import (
    constant_channel_verdict,
    gamma_q,
    mirrored,
    rounding_errors_q,
    sign_symmetry_verdict,
)
from bnspec.conformance.tolerance import batch_stat_error, gamma_m

from .impls.numpy_impls import CORRECT, PairwiseMerge
from .impls.quality_impls import QUALITY_CORRECT, QUALITY_POOR, SequentialFloat32

U32 = 2.0**-24
QUAL = "quality-*"


def offset_rows(m: int, seed: int = 0, mean: float = 1e4) -> np.ndarray:
    """Two channels of ``m`` float32 values ``mean + N(0, 1)`` as a ``(2, m)`` matrix."""
    rng = np.random.default_rng(seed)
    return (np.array([[mean], [-1.5 * mean]]) + rng.standard_normal((2, m))).astype(np.float32)


def test_quality_charge_grows_like_log_m():
    """BN-QUAL-1: q(m) = min(m - 1, 128 + ceil(log2 m)); the charge never exceeds the MUST one."""
    assert [rounding_errors_q(m) for m in (0, 1, 2, 100, 136, 137, 2**16, 2**20)] == [0, 0, 1, 99, 135, 136, 144, 148]
    for m in (2, 64, 1000, 2**16, 2**24):
        assert gamma_q(m, U32) <= gamma_m(m, U32)
    assert gamma_q(2**20, U32) == pytest.approx(148 * U32, rel=1e-4)  # gamma_k = k u / (1 - k u)
    assert gamma_m(2**20, U32) / gamma_q(2**20, U32) > 7000
    with pytest.raises(ValueError, match="m=-1"):
        rounding_errors_q(-1)


@pytest.mark.parametrize("m", [2**10, 2**16, 2**20])
def test_pairwise_and_blocked_sums_meet_the_bound_a_sequential_one_does_not(m: int):
    """BN-QUAL-1: NumPy's blocked pairwise float32 sum stays within gamma_q * sum|x|; a sequential
    float32 loop exceeds it at m = 2**16 and 2**20 on data with a large mean."""
    x = offset_rows(m)[0]
    exact = math.fsum(x.astype(np.float64))
    scale = float(np.abs(x.astype(np.float64)).sum())
    pairwise = abs(float(np.add.reduce(x, dtype=np.float32)) - exact) / scale
    sequential = abs(float(np.cumsum(x, dtype=np.float32)[-1]) - exact) / scale
    assert pairwise <= gamma_q(m, U32)
    print(f"m={m}: pairwise {pairwise / U32:.2f} u, sequential {sequential / U32:.1f} u, "
          f"SHOULD {rounding_errors_q(m)} u, MUST {m - 1} u")
    if m >= 2**16:
        assert sequential > 10 * gamma_q(m, U32), "the sequential sum should fall far short at large m"
    assert sequential <= gamma_m(m, U32)  # it does conform: the MUST bound admits every order


@pytest.mark.parametrize("impl", [PairwiseMerge, *QUALITY_CORRECT], ids=lambda c: c.name)
@pytest.mark.parametrize("m", [2**12, 2**16, 2**20])
def test_good_moments_meet_the_quality_bound(impl, m: int):
    """BN-QUAL-1 (BN-PREC-2 with gamma_q): the Chan pairwise merge and blocked Welford means and
    variances are within E_mu and E_v of the quality tier; the sequential float32 two-pass is not at m >= 2**16."""
    rows = offset_rows(m, seed=1)
    x = rows.astype(np.float64)
    exact_mean = np.array([math.fsum(r) / m for r in x])
    exact_var = np.array([math.fsum((r - mu) ** 2) / m for r, mu in zip(x, exact_mean)])
    bound = batch_stat_error(x, exact_mean, exact_var, U32, gamma_q)
    for cls, good in ((impl, True), (SequentialFloat32, False)):
        mean, var = cls().moments(rows, (1,))
        e_mu = np.abs(mean.ravel().astype(np.float64) - exact_mean) / bound.mean
        e_v = np.abs(var.ravel().astype(np.float64) - exact_var) / bound.var
        print(f"{cls.name} m={m}: mean {e_mu.max():.3g}, var {e_v.max():.3g} of the quality bound")
        if good:
            assert e_mu.max() <= 1 and e_v.max() <= 1
        elif m >= 2**16:
            assert max(e_mu.max(), e_v.max()) > 1


@pytest.mark.parametrize("adapter", [ReferenceAdapter(), PairwiseMerge(), *(c() for c in QUALITY_CORRECT)],
                         ids=lambda a: a.name)
def test_reference_and_good_algorithms_never_fall_short(adapter):
    """BN-QUAL-1, BN-QUAL-2, BN-QUAL-3: every quality check passes the reference and the good NumPy
    algorithms, in every dtype and layout they claim."""
    report = run(adapter, pattern=QUAL, examples=0)
    statuses = {r.name: r.status for r in report.results}
    assert set(statuses) == {c.name for c in QUALITY_CHECKS}
    assert set(statuses.values()) == {"pass"}, [(r.name, r.status, r.message) for r in report.results]


@pytest.mark.parametrize("impl", QUALITY_POOR, ids=lambda c: c.name)
def test_a_poor_algorithm_falls_short_on_its_clause_and_still_conforms(impl):
    """BN-QUAL-1, BN-QUAL-2, BN-QUAL-3: each poor algorithm falls short (status shortfall, not fail)
    on the check of the clause it misses; the MUST checks of the areas it could break still pass it."""
    assert impl.bug is not None
    report = run(impl(), pattern=QUAL, examples=0)
    short = {r.name for r in report.results if r.status == "shortfall"}
    assert all(r.status in ("pass", "shortfall") for r in report.results)
    caught = {c.name for c in QUALITY_CHECKS if set(c.clauses) & set(impl.bug.clauses)}
    assert caught <= short, (impl.name, [(r.name, r.status, r.message) for r in report.results])
    must = run(impl(), pattern="train-output,special-constant,grad-train,layout-channel-last", examples=5)
    assert [r.status for r in must.results] == ["pass"] * len(must.results), \
        [(r.name, r.status, r.message) for r in must.results]


def test_each_quality_check_has_a_poor_algorithm_it_alone_catches_or_shares():
    """BN-QUAL-2, BN-QUAL-3: the scale-shift form and the sorted merge are caught by their own check
    only; BN-QUAL-1: the sequential accumulator by the reductions check (and, its mean of a constant
    channel being inexact, by the constant-channel one)."""
    seen = {}
    for impl in QUALITY_POOR:
        report = run(impl(), pattern=QUAL, examples=0)
        seen[impl.name] = {r.name for r in report.results if r.status == "shortfall"}
    assert seen["numpy-scale-shift-exact-mean"] == {"quality-constant"}
    assert seen["numpy-sorted-merge"] == {"quality-sign-symmetry"}
    assert "quality-reductions" in seen["numpy-sequential-f32"]


def test_numpy_float_sum_over_m_misses_the_constant():
    """BN-QUAL-2: the MUST-correct NumPy variants that divide a sum by m (float64 two-pass on float64
    input, input-precision sums) fall short on a large constant channel; the Chan merge does not."""
    short = {}
    for impl in CORRECT:
        report = run(impl(), pattern="quality-constant", examples=0)
        short[impl.name] = report.results[0].status
    assert short["numpy-pairwise-chan"] == "pass"
    assert short["numpy-input-precision"] == "shortfall"
    assert short["numpy-scale-shift"] == "shortfall"


def constant_case(c: float = 12345.679, dtype=np.float32) -> Case:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 2, 16)).astype(dtype)
    x[:, 0] = dtype(c)
    return Case(x=x, eps=1e-5, momentum=0.5, weight=np.array([1.5, 0.7], dtype), bias=np.array([0.25, -1.0], dtype),
                running_mean=np.zeros(2, dtype), running_var=np.zeros(2, dtype),
                grad_output=rng.standard_normal(x.shape).astype(dtype))


def test_constant_channel_verdict_names_the_output_and_value():
    """BN-QUAL-2: beta exactly passes; one ulp off in y, a nonzero dgamma or a nonzero running
    variance fails, naming the output, the index and the exact value expected."""
    case = constant_case()
    good = ReferenceAdapter().run(case)
    assert constant_channel_verdict(case, good).ok
    y = good.y.copy()
    y[3, 0, 5] = np.nextafter(y[3, 0, 5], np.float32(2))
    v = constant_channel_verdict(case, type(good)(**{**vars(good), "y": y}))
    assert not v.ok and v.message.startswith("y[3, 0, 5] = ") and "(beta) exactly" in v.message
    gw = good.grad_weight.copy()
    gw[0] = 1e-30
    assert "grad_weight[0]" in constant_channel_verdict(case, type(good)(**{**vars(good), "grad_weight": gw})).message
    rv = good.running_var.copy()
    rv[0] = 1e-12
    assert "running_var[0]" in constant_channel_verdict(case, type(good)(**{**vars(good), "running_var": rv})).message


def test_sign_symmetry_verdict_and_mirror():
    """BN-QUAL-3: the mirror negates x and the running mean; a nonzero bias is refused naming it;
    an output off by one ulp in the mirrored run fails."""
    case = constant_case()
    with pytest.raises(ValueError, match="bias zero"):
        mirrored(case)
    case = Case(**{**vars(case), "bias": np.zeros(2, np.float32), "running_mean": np.array([0.5, -2.0], np.float32)})
    mirror = mirrored(case)
    assert np.array_equal(mirror.x, -case.x) and np.array_equal(mirror.running_mean, -case.running_mean)
    ref = ReferenceAdapter()
    a, b = ref.run(case), ref.run(mirror)
    assert sign_symmetry_verdict(a, b).ok
    dx = b.grad_input.copy()
    dx[0, 1, 2] = np.nextafter(dx[0, 1, 2], np.float32(10))
    v = sign_symmetry_verdict(a, type(b)(**{**vars(b), "grad_input": dx}))
    assert not v.ok and "grad_input[0, 1, 2]" in v.message and "mirrored case" in v.message
