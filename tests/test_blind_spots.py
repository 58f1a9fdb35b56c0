"""The case families of issue 14 reach bugs nothing else reaches (``tests/impls/blind_spots.py``).

Each broken variant is caught, at default settings, by a check drawing its family, and the
correct variants that claim every family (``CLAIMING``) pass every MUST check. That the broken
variants pass the suite as it stood before the families existed was measured, not tested here: in
a worktree of commit 7c81baf (the variants' outputs differ from their correct base only on fresh
state, on state in another dtype, and on eps 0, none of which that commit draws; FreshStateAliased
ran the full suite there for seeds 0-4 and failed only quality-constant, a SHOULD check its base
fails too).
"""

from __future__ import annotations

import pytest

from bnspec.conformance import DEFAULT_EXAMPLES, run
from bnspec.conformance.cases import Recipe

from .impls.blind_spots import (
    CLAIMING,
    FAMILY,
    EpsZeroIsDefault,
    FreshStateAliased,
    OnePassWideAccumulator,
    PromotedStateDtype,
)
from .impls.numpy_impls import NumpyBatchNorm

SEED = 0
FAILING = ("fail", "error")

# family variant -> the checks that may catch it (the first one to fail is asserted to be among them)
CAUGHT_BY: dict[type[NumpyBatchNorm], tuple[str, ...]] = {
    FreshStateAliased: ("train-output", "grad-train", "layout-channel-last", "special-constant"),
    PromotedStateDtype: ("dtype-output",),
    OnePassWideAccumulator: ("special-constant", "train-output", "train-batch-stats", "grad-train", "eval-untracked",
                             "grad-eval-untracked"),
    EpsZeroIsDefault: ("train-output", "train-batch-stats", "grad-train", "eval-untracked"),
}


def _summary(report) -> str:
    return "\n".join(f"  {r.name} [{r.area}] {r.status}: {r.message[:300]}" for r in report.results)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("impl", list(CAUGHT_BY), ids=lambda c: c.name)
def test_family_variant_is_caught(impl: type[NumpyBatchNorm]) -> None:
    """The check drawing the family fails at default settings (BN-TRAIN-4, BN-DTYPE-3, BN-PREC-7, BN-ARG-4)."""
    checks = CAUGHT_BY[impl]
    report = run(impl(), examples=DEFAULT_EXAMPLES, run_seed=SEED, pattern=",".join(checks))
    caught = [r.name for r in report.results if r.status == "fail"]
    assert caught, f"{impl.name} ({impl.bug.what}) passed {checks}:\n{_summary(report)}"


@pytest.mark.parametrize("impl", CLAIMING, ids=lambda c: c.name)
def test_claiming_variant_passes_every_must_check(impl: type[NumpyBatchNorm]) -> None:
    """Correct variants claiming mixed state dtypes and eps 0 pass every MUST check (BN-DTYPE-3, BN-ARG-4)."""
    report = run(impl(), examples=DEFAULT_EXAMPLES, run_seed=SEED)
    failed = [r for r in report.results if r.status in FAILING]
    assert not failed, f"{impl.name} is correct but the suite rejects it:\n{_summary(report)}"


def test_families_are_drawn_by_default() -> None:
    """Each family appears among the recipes a default-sized draw makes."""
    from hypothesis import given, settings

    from bnspec.conformance.cases import WITH_EXTREMES, Space, recipes

    caps = CLAIMING[0].capabilities
    seen: set[str] = set()

    @settings(max_examples=500, database=None, derandomize=True)
    @given(recipes(caps, Space(data=WITH_EXTREMES)))
    def draw(r: Recipe) -> None:
        case = r.build()
        seen.add(r.state)
        seen.add(r.data)
        if r.param_dtype not in (None, r.dtype):
            seen.add(f"{r.dtype}/{r.param_dtype}")
        if r.eps == 0:
            seen.add("eps0")
        if case.values_per_channel in (2, 3):
            seen.add(f"m{case.values_per_channel}")
        if case.channels in (1, 1024):
            seen.add(f"C{case.channels}")

    draw()
    want = {"fresh", "mixed", "huge", "tiny", "large-constant", "float64/float32", "float32/float64", "eps0",
            "m2", "m3", "C1", "C1024"}
    assert want <= seen, f"not drawn: {sorted(want - seen)}"


def test_fresh_state_is_a_new_layer() -> None:
    """A fresh recipe holds weight 1, bias 0, running mean 0 and running variance 1, exactly."""
    case = Recipe(shape=(4, 3), state="fresh").build()
    assert case.weight.tolist() == [1.0] * 3 and case.bias.tolist() == [0.0] * 3
    assert case.running_mean.tolist() == [0.0] * 3 and case.running_var.tolist() == [1.0] * 3


def test_every_family_has_a_variant() -> None:
    assert set(FAMILY) == {"fresh-layer state", "state dtype", "magnitude extremes", "edge parameters"}
    assert all(impl.bug is not None for impl in FAMILY.values())
