"""Drawn cases stay inside what an adapter declares it can do.

Capabilities decide which cases are generated: an adapter without an untracked mode, affine-off
layers, a cumulative average, half-precision parameters, gradients or one layout must never be handed such a case, or its honest
"unsupported" would turn into a spurious error (BN-RUN-5, BN-TRAIN-4, BN-RUN-3,
BN-DTYPE-3, BN-GRAD-1, BN-LAYOUT-1).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from bnspec.adapters.contract import Capabilities, Case
from bnspec.conformance.checks import CHECKS

NARROW = Capabilities(
    dtypes=("float16", "float32"),
    channel_axes=(-1,),
    ranks=(4,),
    cumulative_average=False,
    untracked=False,
    affine_off=False,
    counter=False,
    stats_dtypes=("float32",),
    half_params=False,
    gradients=False,
)


def _inside(case: Case, caps: Capabilities) -> None:
    assert case.x.ndim in caps.ranks, case
    assert case.axis in caps.channel_axes or case.axis - case.x.ndim in caps.channel_axes, case
    assert case.running_mean is not None, f"untracked case for an adapter that always tracks: {case}"
    assert case.weight is not None and case.bias is not None, f"affine-off case for an adapter without it: {case}"
    assert case.momentum is not None, f"cumulative-average case for an adapter without it: {case}"
    assert case.grad_output is None, f"a gradient asked of an adapter without gradients: {case}"
    if case.x.dtype == np.float16:
        assert case.weight.dtype == np.float32, f"half parameters for an adapter without them: {case}"


@pytest.mark.parametrize("check", [c for c in CHECKS if c.strategy(NARROW) is not None and not c.unsupported(NARROW)],
                         ids=lambda c: c.name)
def test_drawn_cases_respect_capabilities(check) -> None:  # type: ignore[no-untyped-def]
    """Every check's strategy, for a narrow adapter, draws only cases it declared it can run."""
    if check.name.startswith("arg-"):
        pytest.skip("invalid-use checks deliberately build cases outside the valid space")

    @settings(max_examples=15, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(check.strategy(NARROW))
    def prop(subject) -> None:  # type: ignore[no-untyped-def]
        cases = getattr(subject, "cases", None)
        for case in (cases() if callable(cases) else [subject]):
            if isinstance(case, Case):
                _inside(case, NARROW)

    prop()


@pytest.mark.parametrize("switch", ["tracked", "affine"])
def test_wide_adapter_still_gets_every_variant(switch: str) -> None:
    """The other side: an adapter that allows everything is drawn both variants of a free switch."""
    caps = replace(NARROW, channel_axes=(1, -1), untracked=True, affine_off=True, cumulative_average=True)
    check = next(c for c in CHECKS if c.space is not None and getattr(c.space, switch) is None)
    seen: set[bool] = set()

    @settings(max_examples=60, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(check.strategy(caps))
    def prop(case: Case) -> None:
        seen.add((case.running_mean if switch == "tracked" else case.weight) is not None)

    prop()
    assert seen == {True, False}, check.name


def test_a_check_with_no_fitting_case_is_unsupported_not_passed() -> None:
    """A check none of whose cases fits (here the fixed-case-only BN-EMPTY-1 check against a
    channel-last, rank-3 adapter) reports unsupported, never a pass with nothing run."""
    check = next(c for c in CHECKS if c.name == "empty-batch")
    caps = replace(NARROW, channel_axes=(-1,), ranks=(3,))
    assert "none of its cases fits" in (check.unsupported(caps) or "")
    assert check.unsupported(replace(caps, ranks=(4,))) is None  # its channel-last rank-4 case fits
