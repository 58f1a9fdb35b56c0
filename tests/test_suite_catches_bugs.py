"""The suite catches bugs: it passes independent correct implementations and fails broken ones.

``tests/impls/numpy_impls.py`` holds a plain NumPy batch norm in several correct variants (float64
or the input's precision, two-pass or a pairwise merge, channel-first or channel-last rows,
``gamma * x_hat + beta`` or ``x * scale + shift``) and many broken ones, each a small deviation
that records the clauses it breaks and the areas whose checks must catch it.

Everything runs at the suite's default settings (``DEFAULT_EXAMPLES`` examples, seed 0), the
settings a user gets from ``bnspec run``: each correct variant runs the full suite, each broken
variant the checks of its areas.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bnspec.conformance import AREAS, DEFAULT_EXAMPLES, run

from .impls.numpy_impls import BROKEN, CORRECT, NumpyBatchNorm

SEED = 0
FAILING = ("fail", "error")
SPEC = Path(__file__).resolve().parents[1] / "spec" / "batchnorm.md"


def _summary(report) -> str:
    return "\n".join(f"  {r.name} [{r.area}] {r.status} budget={r.budget}: {r.message[:300]}" for r in report.results)


@pytest.mark.parametrize("impl", CORRECT, ids=lambda c: c.name)
def test_correct_variant_passes_the_full_suite(impl: type[NumpyBatchNorm]) -> None:
    """Every check, default settings: no fail, no error; nothing skipped but half precision."""
    report = run(impl(), examples=DEFAULT_EXAMPLES, run_seed=SEED)
    assert report.complete
    failed = [r for r in report.results if r.status in FAILING]
    assert not failed, f"{impl.name} is correct but the suite rejects it (seed {SEED}):\n{_summary(report)}"
    # The variants claim float32 and float64, both layouts and everything else the contract has:
    # only the half-precision checks may be out of their reach, and the synchronized ones (one replica).
    skipped = {r.name for r in report.results if r.status == "unsupported" and r.area not in ("DTYPE", "SYNC")}
    assert not skipped, f"checks reported unsupported for {impl.name}: {sorted(skipped)}"
    assert any(r.status == "pass" for r in report.results)


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")  # broken-empty-batch-nan's own
@pytest.mark.parametrize("impl", BROKEN, ids=lambda c: c.name)
def test_broken_variant_is_caught(impl: type[NumpyBatchNorm]) -> None:
    """A check of the area the bug breaks fails, at default settings."""
    bug = impl.bug
    assert bug is not None
    report = run(impl(), examples=DEFAULT_EXAMPLES, run_seed=SEED, pattern=",".join(sorted(bug.areas)))
    caught = [r for r in report.results if r.status == "fail" and r.area in bug.areas]
    assert caught, (f"{impl.name} ({bug.what}; breaks {', '.join(bug.clauses)}) passed every check of "
                    f"{sorted(bug.areas)} (seed {SEED}):\n{_summary(report)}")


def test_variants_are_documented() -> None:
    """Every broken variant names real clauses and areas; names are unique."""
    clauses = set(re.findall(r"^### (BN-[A-Z]+-\d+)", SPEC.read_text(), flags=re.M))
    names = [c.name for c in CORRECT + BROKEN]
    assert len(names) == len(set(names))
    assert all(c.bug is None for c in CORRECT)
    for impl in BROKEN:
        assert impl.bug is not None, impl.name
        assert impl.bug.clauses and set(impl.bug.clauses) <= clauses, (impl.name, impl.bug.clauses)
        assert impl.bug.areas and impl.bug.areas <= set(AREAS), (impl.name, impl.bug.areas)
    assert len(CORRECT) >= 3 and len(BROKEN) >= 12
