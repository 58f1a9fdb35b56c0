"""The running-statistics update of section 3 of the spec (BN-RUN-1..4), apart from the math.

Inputs are the batch statistics as double-doubles, so the update is rounded once.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from . import exact
from .exact import DD

RunningVar = Literal["unbiased", "biased"]


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


def update(
    running_mean: np.ndarray,
    running_var: np.ndarray,
    count: int,
    mean: DD,
    var: DD,
    m: int,
    momentum: float | None,
    estimator: RunningVar = "unbiased",
) -> tuple[np.ndarray, np.ndarray, int]:
    """One training step's update of ``(running_mean, running_var, num_batches_tracked)``.

    ``var`` is the biased batch variance; BN-RUN-2 folds in ``m / (m - 1) * var``, the profile
    ``biased-running-var`` folds in ``var`` itself.
    """
    factor = update_factor(momentum, count, running_mean)
    if estimator == "unbiased":
        bessel = exact.div(exact.const(float(m), running_var), exact.const(float(m - 1), running_var))
        var = exact.mul(var, bessel)
    elif estimator != "biased":
        raise ValueError(f"estimator={estimator!r} must be 'unbiased' or 'biased'")
    return blend(running_mean, mean, factor), blend(running_var, var, factor), count + 1
