"""The running-statistics update of section 3 of the spec (BN-RUN-1..4), apart from the math.

Inputs are the batch statistics as double-doubles, so the update is rounded once.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from . import exact
from .exact import DD

RunningVar = Literal["unbiased", "biased"]
RunningAverage = Literal["plain", "debiased"]


def update_factor(momentum: float | None, count: int, like: np.ndarray) -> DD:
    """The weight of the new batch: ``momentum`` (BN-RUN-1) or ``1 / (n + 1)`` (BN-RUN-3)."""
    if momentum is None:
        return exact.div(exact.const(1.0, like), exact.const(float(count + 1), like))
    return exact.const(float(momentum), like)


def blend(old: np.ndarray, new: DD, factor: DD) -> np.ndarray:
    """``(1 - factor) * old + factor * new``, written as ``old + factor * (new - old)``, exactly."""
    old_dd = exact.const(old, old)
    step = exact.mul(factor, exact.add(new, exact.neg(old_dd)))
    return exact.to_float(exact.add(old_dd, step))


def _power(base: DD, n: int) -> DD:
    """``base ** n`` for an integer ``n >= 0``, by squaring (each product rounded to double-double)."""
    result = exact.const(1.0, base[0])
    while n > 0:
        if n & 1:
            result = exact.mul(result, base)
        base = exact.mul(base, base)
        n >>= 1
    return result


def debiased_blend(old: np.ndarray, new: DD, momentum: float, count: int) -> np.ndarray:
    """The profile ``debiased-running-average`` (``spec/conventions.md``, section 3): with ``d = 1 - alpha``
    and ``n = count``, ``(d * old * (1 - d^n) + alpha * new) / (1 - d^(n+1))``: the average of a moving
    average started at 0 and divided by its weight after ``n + 1`` steps (Haiku's
    ``ExponentialMovingAverage(zero_debias=True)``). For alpha = 0 it is the limit, the cumulative
    average ``(n * old + new) / (n + 1)``."""
    old_dd = exact.const(old, old)
    if momentum == 0.0:
        total = exact.add(exact.mul(exact.const(float(count), old), old_dd), new)
        return exact.to_float(exact.div(total, exact.const(float(count + 1), old)))
    alpha = exact.const(float(momentum), old)
    d = exact.add(exact.const(1.0, old), exact.neg(alpha))
    one = exact.const(1.0, old)
    dn = _power(d, count)
    hidden = exact.add(exact.mul(exact.mul(d, old_dd), exact.add(one, exact.neg(dn))), exact.mul(alpha, new))
    return exact.to_float(exact.div(hidden, exact.add(one, exact.neg(exact.mul(dn, d)))))


def update(
    running_mean: np.ndarray,
    running_var: np.ndarray,
    count: int,
    mean: DD,
    var: DD,
    m: int,
    momentum: float | None,
    estimator: RunningVar = "unbiased",
    average: RunningAverage = "plain",
) -> tuple[np.ndarray, np.ndarray, int]:
    """One training step's update of ``(running_mean, running_var, num_batches_tracked)``.

    ``var`` is the biased batch variance; BN-RUN-2 folds in ``m / (m - 1) * var``, the profile
    ``biased-running-var`` folds in ``var`` itself. ``average="debiased"`` is the profile
    ``debiased-running-average`` (``debiased_blend``; a number ``momentum`` only).
    """
    factor = update_factor(momentum, count, running_mean)
    if estimator == "unbiased":
        bessel = exact.div(exact.const(float(m), running_var), exact.const(float(m - 1), running_var))
        var = exact.mul(var, bessel)
    elif estimator != "biased":
        raise ValueError(f"estimator={estimator!r} must be 'unbiased' or 'biased'")
    if average == "debiased":
        if momentum is None:
            raise ValueError("average='debiased' needs a number momentum (the profile has no cumulative average)")
        return (debiased_blend(running_mean, mean, momentum, count),
                debiased_blend(running_var, var, momentum, count), count + 1)
    if average != "plain":
        raise ValueError(f"average={average!r} must be 'plain' or 'debiased'")
    return blend(running_mean, mean, factor), blend(running_var, var, factor), count + 1
