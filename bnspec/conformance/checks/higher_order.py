"""Section 5 of the spec, beyond the first order: forward mode, double backward, their compositions
and any order (BN-GRAD-4..7), under the precision model of BN-PREC-8.

Each check is named by its mode and order. A case is a drawn first-order case plus tangents or
cotangents drawn from a seed (``prepare``), so hypothesis shrinks the data and the direction
together. Cases stay small (no large draws): these are the suite's most expensive comparisons.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
from hypothesis import strategies as st

from ...adapters.contract import Capabilities, Case, Outcome
from ...dtypes import LARGEST, dtype_name
from ..cases import Recipe, Space
from ..check import CompareCheck, Context, describe_error, not_run
from ..compare import Verdict, compare_outputs
from ..tolerance_higher import expected_higher, tolerances

Y_DOT = ("y_dot",)
GRAD_DOTS = ("grad_input_dot", "grad_weight_dot", "grad_bias_dot")
GRAD2 = ("grad2_input", "grad2_weight", "grad2_bias", "grad2_output")
_PRIMAL = {"y_dot": "x", "grad_input_dot": "x", "grad2_input": "x", "grad2_output": "x",
           "grad_weight_dot": "weight", "grad2_weight": "weight", "grad_bias_dot": "bias", "grad2_bias": "bias"}


def directions(case: Case, seed: int, mode: str, order: int = 1) -> Case:
    """``case`` with tangents (``jvp``, ``vjp-nested``, ``jvp-of-vjp``) or cotangents (``vjp-of-vjp``) drawn from
    ``seed``, each in its primal's shape and dtype."""
    rng = np.random.default_rng(seed)

    def like(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else rng.standard_normal(a.shape).astype(a.dtype)

    if mode == "vjp-of-vjp":
        return replace(case, cotangent_input=like(case.x), cotangent_weight=like(case.weight),
                       cotangent_bias=like(case.bias))
    changes: dict[str, Any] = dict(tangent_x=like(case.x), tangent_weight=like(case.weight),
                                   tangent_bias=like(case.bias), order=order, by_reverse=mode == "vjp-nested")
    if mode == "jvp-of-vjp":
        changes["tangent_grad_output"] = like(case.grad_output)
    return replace(case, **changes)


def _limits(case: Case) -> dict[str, float]:
    out = {}
    for name, primal in _PRIMAL.items():
        like = getattr(case, primal)
        dt = dtype_name(like.dtype) if like is not None else None
        if dt is not None:
            out[name] = LARGEST[dt]
    return out


class _HigherCheck(CompareCheck):
    mode: ClassVar[str]
    order: ClassVar[int] = 1
    outputs: ClassVar[tuple[str, ...]] = Y_DOT

    def unsupported(self, caps: Capabilities) -> str | None:
        gap = caps.derivative_gap(self.mode)
        if gap:
            return gap
        return super().unsupported(caps)

    def extras(self, caps: Capabilities) -> st.SearchStrategy[Any]:
        return st.integers(0, 2**32 - 1)

    def prepare(self, case: Case, extra: Any) -> Case:
        return directions(case, 7 if extra is None else int(extra), self.mode, self.order)

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if (bad := not_run(outcome, error)) is not None:
            return bad
        return compare_higher(case, outcome, self.outputs)


def compare_higher(case: Case, outcome: Any, outputs: tuple[str, ...]) -> Verdict:
    """``outcome``'s higher-order outputs against the reference under BN-PREC-8.

    An output that is exactly zero may come back as None ("no dependence", BN-GRAD-5).
    """
    want = expected_higher(case)
    tols = tolerances(case, want)
    names = tuple(n for n in outputs if getattr(want, n) is not None and n in tols)
    got = {}
    for n in names:
        value = getattr(outcome, n, None)
        if value is None and not np.any(getattr(want, n)):
            value = np.zeros_like(getattr(want, n))
        got[n] = value
    return compare_outputs(_Got(got), {n: getattr(want, n) for n in names}, tols, names, None, _limits(case))


class _Got:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


class JvpTrain(_HigherCheck):
    """Forward mode in training: the JVP of y carries the tangents of the batch mean and variance."""

    name = "jvp-train"
    area = "GRAD2"
    clauses = ("BN-GRAD-4", "BN-PREC-8")
    mode = "jvp"
    space = Space(training=True, large=False)
    fixed = (Recipe(shape=(4, 3), seed=41), Recipe(shape=(6, 2, 3), data="offset", offset=1e3, seed=42))


class JvpEval(_HigherCheck):
    """Forward mode in eval: the running statistics are constants of the JVP."""

    name = "jvp-eval"
    area = "GRAD2"
    clauses = ("BN-GRAD-4", "BN-GRAD-3", "BN-PREC-8")
    mode = "jvp"
    space = Space(training=False, tracked=True, large=False)


class Grad2Train(_HigherCheck):
    """Double backward in training: the derivative of dx, dgamma, dbeta through the batch statistics."""

    name = "grad2-train"
    area = "GRAD2"
    clauses = ("BN-GRAD-5", "BN-PREC-8")
    mode = "vjp-of-vjp"
    outputs = GRAD2
    space = Space(training=True, grad=True, large=False)
    fixed = (Recipe(shape=(4, 3), grad="normal", seed=43),
             Recipe(shape=(5, 2, 3), grad="correlated", data="offset", offset=1e3, seed=44))


class Grad2Eval(_HigherCheck):
    """Double backward in eval: the running statistics stay constants at second order."""

    name = "grad2-eval"
    area = "GRAD2"
    clauses = ("BN-GRAD-5", "BN-GRAD-3", "BN-PREC-8")
    mode = "vjp-of-vjp"
    outputs = GRAD2
    space = Space(training=False, tracked=True, grad=True, large=False)


class JvpOverVjp(_HigherCheck):
    """Forward over reverse: the JVP of dx, dgamma, dbeta along tangents of x, gamma, beta and dy."""

    name = "jvp-over-vjp"
    area = "GRAD2"
    clauses = ("BN-GRAD-6", "BN-PREC-8")
    mode = "jvp-of-vjp"
    outputs = GRAD_DOTS
    space = Space(grad=True, large=False)
    fixed = (Recipe(shape=(4, 3), grad="normal", seed=45),)


class JvpOverJvp(_HigherCheck):
    """Forward over forward: the second directional derivative of y."""

    name = "jvp-over-jvp"
    area = "GRAD2"
    clauses = ("BN-GRAD-6", "BN-PREC-8")
    mode = "jvp"
    order = 2
    space = Space(large=False)
    fixed = (Recipe(shape=(4, 3), seed=46),)

    def unsupported(self, caps: Capabilities) -> str | None:
        if "jvp" in caps.derivatives and caps.max_order < 2:
            return f"the adapter claims forward mode up to order {caps.max_order} only"
        return super().unsupported(caps)


class Order3RightOrRaised(_HigherCheck):
    """The third directional derivative of y is right, or the call raises; never silently wrong."""

    name = "order3-right-or-raised"
    area = "GRAD2"
    clauses = ("BN-GRAD-7", "BN-PREC-8")
    mode = "jvp"
    order = 3
    space = Space(large=False)
    # A rank-4 case too, so that adapters of ranks 4-5 only meet a training case first (each draw is costly).
    fixed = (Recipe(shape=(4, 3), seed=47), Recipe(shape=(4, 3, 2, 1), seed=49))

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if error is not None:  # a refusal conforms (BN-GRAD-7)
            return Verdict(ok=True, message=f"refused: {describe_error(error)}")
        return super().judge(case, outcome, error, ctx)


class Order3ReverseRightOrRaised(Order3RightOrRaised):
    """The third directional derivative of y by nested reverse mode alone is right, or the call raises."""

    name = "order3-reverse-right-or-raised"
    mode = "vjp-nested"
    fixed = (Recipe(shape=(4, 3), seed=48), Recipe(shape=(4, 3, 2, 1), seed=50))
