"""A corpus of real bugs: each bug reported against a public batch-norm implementation, rebuilt in
NumPy (``tests/impls/reported_bugs.py``), fails the check of the clause it breaks.

Everything runs at the suite's default settings (``DEFAULT_EXAMPLES`` examples, seed 0), as
``test_suite_catches_bugs.py`` runs its broken variants. A check's cases are seeded from the run's
seed and the check's name, so running one check alone draws the cases a full run draws.

``CAUGHT_BY`` says, per report, the check that must fail, the clause its message must cite, and
the outputs whose error may be the worst one (None where the bug raises instead). A report the
suite cannot catch yet belongs in a ``pytest.param`` marked ``xfail(strict=True)`` whose reason
names the check that should catch it and the case or tolerance that stands in the way, so that the
test turns red, and the mark is removed, when the suite learns to catch it.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from bnspec.adapters.contract import Case
from bnspec.clauses import clauses
from bnspec.conformance import CHECKS, DEFAULT_EXAMPLES, run
from bnspec.dtypes import numpy_dtype

from .impls.numpy_impls import NumpyBatchNorm
from .impls.reported_bugs import (
    REPORTED,
    ChainerEpsInRunningVar,
    ChainerNhwcChannelFirstAxes,
    FlagGemsRsqrtOfInvstd,
    HalfInFloat32,
    JaxStaxSquaredVariance,
    KerasDetachedMoments,
    OnnxscriptMomentumNotComplemented,
    TorchBfloat16SavedStats,
    TorchHalfBackwardSums,
    TorchHalfVarSum,
    TtMetalBiasedRunningVar,
)

SEED = 0
NEEDS_BFLOAT16 = pytest.mark.skipif(importlib.util.find_spec("ml_dtypes") is None, reason="bfloat16 needs ml_dtypes")
FAILING = ("fail", "error")

# report -> (the check that fails, the clause its message cites, the outputs that may be worst)
CAUGHT_BY: dict[type[NumpyBatchNorm], tuple[str, str, frozenset[str] | None]] = {
    JaxStaxSquaredVariance: ("train-output", "BN-TRAIN-3", frozenset({"y"})),
    KerasDetachedMoments: ("grad-train", "BN-GRAD-1", frozenset({"grad_input"})),
    ChainerEpsInRunningVar: ("running-momentum", "BN-RUN-2", frozenset({"running_var"})),
    OnnxscriptMomentumNotComplemented: ("running-momentum", "BN-RUN-1", frozenset({"running_mean", "running_var"})),
    # H != C on the raw (N, H, W, C) array: the per-H statistics do not broadcast along C, and chainer raised.
    ChainerNhwcChannelFirstAxes: ("layout-channel-last", "BN-LAYOUT-1", None),
    TorchHalfBackwardSums: ("dtype-half", "BN-DTYPE-2", frozenset({"grad_input", "grad_bias"})),
    TorchHalfVarSum: ("dtype-half-params", "BN-DTYPE-2", frozenset({"y", "running_var", "grad_input", "grad_weight"})),
    # dtype-half reaches the bug only with affine off and untracked (no float32 parameter): the report's own
    # configuration, drawn in 9 of seeds 0-9; dtype-half-params (bfloat16 parameters) in all 10.
    TorchBfloat16SavedStats: ("dtype-half-params", "BN-DTYPE-2", frozenset({"y", "grad_input", "grad_weight"})),
    TtMetalBiasedRunningVar: ("running-momentum", "BN-RUN-2", frozenset({"running_var"})),
    FlagGemsRsqrtOfInvstd: ("grad-train", "BN-GRAD-1", frozenset({"grad_input", "grad_weight"})),
}


def _summary(report) -> str:
    return "\n".join(f"  {r.name} [{r.area}] {r.status} budget={r.budget}: {r.message[:300]}" for r in report.results)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # float16 overflow in the variants' own arithmetic
@pytest.mark.parametrize(("impl", "check", "clause", "outputs"),
                         [pytest.param(impl, *CAUGHT_BY[impl], id=impl.name,
                                       marks=NEEDS_BFLOAT16 if impl is TorchBfloat16SavedStats else ())
                          for impl in REPORTED])
def test_reported_bug_fails_its_check(impl: type[NumpyBatchNorm], check: str, clause: str,
                                      outputs: frozenset[str] | None) -> None:
    """The named check fails at default settings, its message citing the clause the report breaks,
    its worst error in an output the bug touches."""
    report = run(impl(), examples=DEFAULT_EXAMPLES, run_seed=SEED, pattern=check)
    result = next(r for r in report.results if r.name == check)
    assert result.status == "fail", (f"{impl.name} ({getattr(impl.bug, 'what', 'no bug')}) passed {check} (seed {SEED}):\n"
                                     f"{_summary(report)}")
    assert clause in result.clauses
    assert re.search(rf"\((?:BN-[A-Z]+-\d+, )*{clause}\b", result.message), result.message
    if outputs is None:
        assert result.message.startswith("raised "), result.message
    else:
        assert result.worst.get("output") in outputs, result.message


def test_half_precision_baseline_passes_the_full_suite() -> None:
    """The baseline the half-precision reports break (float32 arithmetic, one rounding) passes every
    check, the half-precision ones included: their failures are the reports' own mistakes."""
    report = run(HalfInFloat32(), examples=DEFAULT_EXAMPLES, run_seed=SEED)
    assert report.complete
    failed = [r for r in report.results if r.status in FAILING]
    assert not failed, f"{HalfInFloat32.name} is correct but the suite rejects it (seed {SEED}):\n{_summary(report)}"
    ran = {r.name for r in report.results if r.status == "pass"}
    assert {"dtype-half", "dtype-half-params"} <= ran


def test_reports_are_documented() -> None:
    """Each variant cites its report's address, names real clauses, and lists the area of the check that catches it."""
    spec_clauses = set(clauses())
    areas = {c.name: c.area for c in CHECKS}
    assert set(CAUGHT_BY) == set(REPORTED)
    assert len({c.name for c in REPORTED}) == len(REPORTED)
    for impl in REPORTED:
        assert impl.bug is not None, impl.name
        repo = impl.name.split("#")[0]
        assert f"https://github.com/{repo}/" in (impl.__doc__ or ""), impl.name
        assert impl.bug.clauses and set(impl.bug.clauses) <= spec_clauses, (impl.name, impl.bug.clauses)
        check, clause, _ = CAUGHT_BY[impl]
        assert areas[check] in impl.bug.areas, (impl.name, check)
        assert clause in impl.bug.clauses, (impl.name, clause)


@NEEDS_BFLOAT16
def test_bfloat16_model_gives_the_reported_numbers() -> None:
    """pytorch/pytorch#140112's own case, bfloat16 x = [1.3047, 0.8789], affine off, untracked: the
    model gives the CPU result the report prints, [0.9883, -1.0078]; the baseline gives CUDA's [1, -1]."""
    x = np.array([[[1.3047, 0.8789]]]).astype(numpy_dtype("bfloat16"))
    case = Case(x=x, training=True, eps=1e-5)
    assert TorchBfloat16SavedStats().run(case).y.astype(np.float64).ravel().tolist() == [0.98828125, -1.0078125]
    assert HalfInFloat32().run(case).y.astype(np.float64).ravel().tolist() == [1.0, -1.0]
