"""Section 6 of the spec: output dtypes, accumulation precision, the dtype of parameters and state
(BN-DTYPE-*)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ...adapters.contract import Capabilities, Case, Outcome
from ...dtypes import dtype_name, promoted
from ..cases import WITH_EXTREMES, Recipe, Space
from ..check import (
    ALL,
    Check,
    CompareCheck,
    Context,
    not_run,
)
from ..compare import Verdict, fail

HALF = ("float16", "bfloat16")


class DtypeOutput(Check):
    """y and dx come back in the input's dtype; parameters, state and their gradients in their own.

    Under profile promoted-dtype, y and dx may instead come back in the dtype that holds the input's
    and the parameters' (or the parameters' and the state's) dtypes."""

    name = "dtype-output"
    area = "DTYPE"
    clauses = ("BN-DTYPE-1", "BN-DTYPE-3")  # sentences BN-DTYPE-1.1 and BN-DTYPE-3.1
    space = Space(grad=True, large=False, dtypes=None, half_params=None, data=WITH_EXTREMES, mixed_every=2)

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if (bad := not_run(outcome, error)) is not None:
            return bad
        assert outcome is not None
        pairs = [("y", case.x), ("running_mean", case.running_mean), ("running_var", case.running_var)]
        if ctx.capabilities.gradients:
            pairs += [("grad_input", case.x), ("grad_weight", case.weight), ("grad_bias", case.bias)]
        for name, like in pairs:
            got = getattr(outcome, name)
            if like is None or got is None:
                continue
            want_dt, got_dt = dtype_name(like.dtype), dtype_name(getattr(got, "dtype", object))
            allowed = {want_dt}
            if like is case.x and ctx.capabilities.dtype_rule == "promoted":
                allowed |= set(promoted_dtypes(case))
            if got_dt not in allowed:
                want = " or ".join(sorted(a for a in allowed if a))
                return fail(f"{name}.dtype = {got_dt or getattr(got, 'dtype', type(got).__name__)}, expected {want}",
                            output=name, got=str(got_dt), expected=want)
        return Verdict()


def promoted_dtypes(case: Case) -> tuple[str, ...]:
    """The compute dtypes profile promoted-dtype allows for y and dx: the promotion of x with the
    parameters, and of x with the parameters and the state (section 3 of spec/conventions.md)."""
    def name(a: np.ndarray | None) -> str | None:
        return None if a is None else dtype_name(a.dtype)

    x = name(case.x)
    params = (name(case.weight), name(case.bias))
    return (promoted(x, *params), promoted(x, *params, name(case.running_mean), name(case.running_var)))


class DtypeHalfParams(CompareCheck):
    """With half-precision parameters and state too, half inputs are still computed in float32."""

    name = "dtype-half-params"
    area = "DTYPE"
    clauses = ("BN-DTYPE-2", "BN-DTYPE-3", "BN-PREC-3", "BN-PREC-5")
    outputs = ALL
    space = Space(dtypes=HALF, grad=True, half_params=True, data=WITH_EXTREMES)

    def unsupported(self, caps: Capabilities) -> str | None:
        if not caps.half_params:
            return "the adapter takes half-precision inputs only with float32 parameters and state"
        return super().unsupported(caps)
    fixed = (Recipe(shape=(8, 2, 4), dtype="float16", data="offset", offset=1e2, seed=14, grad="normal"),)


class DtypeHalf(CompareCheck):
    """float16 and bfloat16 inputs accumulate in at least float32 and round once to their dtype."""

    name = "dtype-half"
    area = "DTYPE"
    clauses = ("BN-DTYPE-2", "BN-PREC-3", "BN-PREC-5")
    # BN-DTYPE-1.2 (SHOULD support float16 and bfloat16): an adapter claiming neither is reported unsupported here.
    outputs = ALL
    space = Space(dtypes=HALF, grad=True, very_large=True, data=WITH_EXTREMES)
    fixed = (
        # x**2 overflows float16 (max 65504) at |x| > 256: a float16 accumulator returns inf.
        Recipe(shape=(8, 2, 4), dtype="float16", param_dtype="float32", data="offset", offset=1e2, seed=14,
               grad="normal"),
        Recipe(shape=(64, 2, 8, 8), dtype="float16", param_dtype="float32", seed=15),  # m = 4096
    )

    def prepare(self, case: Case, extra: Any) -> Case:
        if extra is None:
            return case
        # Move every channel up to ~300 so that a float16 sum of squares overflows.
        return replace(case, x=(case.x.astype(np.float64) + 300.0).astype(case.x.dtype))

    def extras(self, caps: Capabilities) -> st.SearchStrategy[Any]:
        return st.sampled_from([None, None, "shift"])
