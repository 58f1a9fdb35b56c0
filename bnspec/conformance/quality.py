"""The quality tier of ``spec/precision.md`` (BN-QUAL-*), as code: SHOULD bounds and exactness.

The MUST tolerance (``tolerance.py``, BN-PREC-*) charges every reduction of ``m`` terms the
worst case of any summation order, ``gamma_{m-1}``. The quality tier charges it what blocked,
pairwise, tree-shaped and Welford/Chan-merging algorithms are proved to meet, a number of rounding
errors growing like ``log2 m`` (``gamma_q``, BN-QUAL-1); and it names exact results that good
algorithms keep: a constant channel (BN-QUAL-2) and sign symmetry (BN-QUAL-3).

Everything here judges through ``compare.Verdict``: a failing verdict of a check whose
``level`` is ``"SHOULD"`` is a shortfall, not a failure.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from ..adapters.contract import Case, Outcome
from ..reference import Step, channel_axis, to_rows
from .compare import Verdict, as_float64, fail
from .tolerance import gamma_m, tolerances

# The longest sequential run of additions the tier admits: a leaf of 128 terms summed in order
# (NumPy's pairwise summation has 128-term leaves; an 8- or 16-lane vector loop over a 1024-term
# leaf adds 128 or 64 terms per lane).
BLOCK = 128


def rounding_errors_q(m: int) -> int:
    """BN-QUAL-1: how many rounding errors one term of a reduction of ``m`` terms may collect:
    ``min(m - 1, BLOCK + ceil(log2 m))``. Raises ValueError for a negative ``m``."""
    if m < 0:
        raise ValueError(f"m={m} must be a count of values, >= 0")
    if m <= 1:
        return 0
    return min(m - 1, BLOCK + math.ceil(math.log2(m)))


def gamma_q(m: int, u: float) -> float:
    """BN-QUAL-1: the relative error the quality tier charges one reduction of ``m`` terms in
    precision ``u``: ``gamma_k = k u / (1 - k u)`` with ``k = rounding_errors_q(m)``.

    Source: the blocked-pairwise bound of Higham, *Accuracy and Stability of Numerical Algorithms*,
    2nd ed. (2002), section 4.2, eq. (4.6) and the blocked variant below it; the pairwise variance
    update of Chan, Golub and LeVeque (1983). Never larger than ``tolerance.gamma_m``.
    """
    k = rounding_errors_q(m) * u
    return min(k / (1.0 - k) if k < 1.0 else np.inf, gamma_m(m, u))


def quality_tolerances(case: Case, expected: Step, estimator: str = "unbiased") -> dict[str, np.ndarray]:
    """Every output's SHOULD tolerance (BN-QUAL-1): the BN-PREC-2..5 formulas with ``gamma_q`` in
    place of ``gamma_m``. Same keys and shapes as ``tolerance.tolerances``."""
    return tolerances(case, expected, estimator=estimator, gamma=gamma_q)


# -- exactness -------------------------------------------------------------------------------------

def _where(idx: tuple[int, ...]) -> str:
    return f"[{', '.join(map(str, idx))}]" if idx else ""


def exactly(name: str, got: Any, want: np.ndarray, mask: np.ndarray | None = None, what: str = "") -> Verdict:
    """``got`` equal to ``want`` element by element, bit for bit as numbers (0 and -0 are equal),
    where ``mask`` holds. ``what`` names the expected value in the message (``"beta"``)."""
    want = np.asarray(want, dtype=np.float64)
    arr, why = as_float64(got, name, want.shape)
    if arr is None:
        return fail(why, output=name)
    considered = np.ones(want.shape, bool) if mask is None else np.broadcast_to(mask, want.shape)
    with np.errstate(all="ignore"):
        bad = considered & ~((arr == want) | (np.isnan(arr) & np.isnan(want)))
    if not bad.any():
        return Verdict()
    with np.errstate(all="ignore"):  # inf - inf, NaN: the difference is infinite
        diff = np.where(bad, np.abs(arr - want), 0.0)
    diff = np.where(bad & ~np.isfinite(diff), np.inf, diff)
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.where(bad, diff, -1.0))), want.shape))
    g, w = float(arr[idx]), float(want[idx])
    label = f" ({what})" if what else ""
    message = (f"{name}{_where(idx)} = {g!r}, expected {w!r}{label} exactly; {int(bad.sum())} of "
               f"{int(considered.sum())} elements differ, the largest by {float(diff.max()):.3g}")
    return Verdict(ok=False, budget=float("inf"), message=message,
                   worst={"output": name, "index": list(idx), "got": g, "expected": w, "tolerance": 0.0,
                          "mismatched": int(bad.sum()), "compared": int(considered.sum())})


def finite(name: str, got: Any, shape: tuple[int, ...], mask: np.ndarray | None = None) -> Verdict:
    """Every element of ``got`` finite where ``mask`` holds."""
    arr, why = as_float64(got, name, shape)
    if arr is None:
        return fail(why, output=name)
    considered = np.ones(shape, bool) if mask is None else np.broadcast_to(mask, shape)
    bad = considered & ~np.isfinite(arr)
    if not bad.any():
        return Verdict()
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    return fail(f"{name}{_where(idx)} = {float(arr[idx])}, expected a finite value; {int(bad.sum())} of "
                f"{int(considered.sum())} elements are not finite", output=name, index=list(idx))


def constant_channels(case: Case) -> np.ndarray:
    """``(C,)`` booleans: the channels whose values are all equal (and finite), m >= 2."""
    rows = to_rows(case.x, channel_axis(case.axis, case.x.ndim))
    if rows.shape[1] < 2:
        return np.zeros(rows.shape[0], bool)
    return np.all(rows == rows[:, :1], axis=1) & np.isfinite(rows[:, 0])


def constant_channel_verdict(case: Case, outcome: Outcome) -> Verdict:
    """BN-QUAL-2 on every constant channel of a training ``case``: ``y`` exactly beta (rounded to
    y's dtype; 0 with affine off), ``dgamma`` exactly 0, the batch mean exactly the channel's value
    and its variance exactly 0 as the running statistics show them, ``dx`` finite.

    The running statistics are judged only when the case makes their exact value independent of
    the update's form: old running mean and variance 0 and a momentum that is a power of two
    (then ``(1 - a) * 0 + a * c`` and ``0 - (0 - c) * a`` are both exactly ``a * c``).
    """
    const = constant_channels(case)
    verdict = Verdict()
    if not case.training or not const.any():
        return verdict
    ax = case.channel_axis
    shape = [1] * case.x.ndim
    shape[ax] = case.channels
    full = np.broadcast_to(const.reshape(shape), case.x.shape)
    y = getattr(outcome, "y", None)
    y_dt = y.dtype if isinstance(y, np.ndarray) else case.x.dtype
    beta = case.bias if case.bias is not None else np.zeros(case.channels)
    beta_y = np.asarray(beta).astype(y_dt).astype(np.float64).reshape(shape)
    verdict = verdict.merge(exactly("y", y, np.broadcast_to(beta_y, case.x.shape), full, "beta"))
    if case.grad_output is not None:
        if case.weight is not None and outcome.grad_weight is not None:
            verdict = verdict.merge(exactly("grad_weight", outcome.grad_weight, np.zeros(case.channels), const, "0"))
        if outcome.grad_input is not None:
            verdict = verdict.merge(finite("grad_input", outcome.grad_input, case.x.shape, full))
    if stats_are_exact(case) and outcome.running_mean is not None and outcome.running_var is not None:
        assert case.running_mean is not None and case.momentum is not None
        rows = to_rows(case.x, ax)
        a = float(case.momentum)
        want_m = (a * rows[:, 0]).astype(case.running_mean.dtype).astype(np.float64)
        verdict = verdict.merge(exactly("running_mean", outcome.running_mean, want_m, const,
                                        "momentum times the constant value"))
        verdict = verdict.merge(exactly("running_var", outcome.running_var, np.zeros(case.channels), const, "0"))
    return verdict


def stats_are_exact(case: Case) -> bool:
    """Whether a constant channel's running statistics have an exact value every update form gives."""
    if case.running_mean is None or case.running_var is None or case.momentum is None:
        return False
    a = float(case.momentum)
    return (0 < a <= 1 and math.frexp(a)[0] == 0.5 and not np.any(case.running_mean)
            and not np.any(case.running_var))


# -- sign symmetry -----------------------------------------------------------------------------------

def mirrored(case: Case) -> Case:
    """The case with ``x`` and the running mean negated (BN-QUAL-3); ``dy`` and the rest unchanged.

    Raises ValueError when the bias is not zero: only with beta = 0 is the exact result odd.
    """
    if case.bias is not None and np.any(case.bias):
        raise ValueError("mirrored(case) needs bias zero (or None): with beta != 0 the result is not odd in x "
                         "(BN-QUAL-3)")
    rm = None if case.running_mean is None else -case.running_mean
    return replace(case, x=-case.x, running_mean=rm)


# Per output: +1 where the mirrored case's result is the original's, -1 where it is its negation.
PARITY = {"y": -1, "running_mean": -1, "running_var": 1, "grad_input": 1, "grad_weight": -1, "grad_bias": 1}


def sign_symmetry_verdict(original: Outcome, mirror: Outcome) -> Verdict:
    """BN-QUAL-3: the mirrored case's outputs are the original's, negated where ``PARITY`` says,
    bit for bit (0 and -0 are equal). Outputs missing from both are skipped."""
    verdict = Verdict()
    for name, sign in PARITY.items():
        a, b = getattr(original, name, None), getattr(mirror, name, None)
        if a is None and b is None:
            continue
        if not isinstance(a, np.ndarray):
            return fail(f"{name} of the original case is {type(a).__name__}, not a NumPy array", output=name)
        what = f"{'minus ' if sign < 0 else ''}{name} of the original case"
        with np.errstate(all="ignore"):
            want = sign * a.astype(np.float64)
        v = exactly(name, b, want, what=what)
        if not v.ok:
            v.message = "mirrored case (x and running_mean negated): " + v.message
        verdict = verdict.merge(v)
    return verdict
