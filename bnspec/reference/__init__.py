"""The NumPy reference: the judge every implementation is measured against.

``step`` carries out one batch-normalization call exactly as the spec (``spec/batchnorm.md``)
defines it and returns float64 results within a few ulps of the exact real-number ones, however
ill-conditioned the data. It never mutates its inputs and raises on invalid use (BN-ARG-*).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import exact, functional, running, sync
from .running import RunningAverage, RunningVar
from .validate import channel_axis, check_arguments

__all__ = ["Step", "step", "channel_axis", "check_arguments", "RunningVar", "RunningAverage", "exact", "functional", "running",
           "sync"]


@dataclass(frozen=True)
class Step:
    """The exact (float64) result of one call, plus what the precision model needs."""

    y: np.ndarray
    running_mean: np.ndarray | None
    running_var: np.ndarray | None
    num_batches_tracked: int | None
    grad_input: np.ndarray | None
    grad_weight: np.ndarray | None
    grad_bias: np.ndarray | None
    mean: np.ndarray  # (C,) the mean the output was normalized with
    var: np.ndarray  # (C,) the variance it was normalized with (biased batch, or running)
    batch_stats: bool  # True when the output used batch statistics


def to_rows(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` as a float64 ``(C, m)`` matrix, channel ``c`` in row ``c`` (a copy).

    Every layout goes through this one view, so a channel-last result is by construction the
    channel-first result transposed (BN-LAYOUT-2), and the caller's array is never written (BN-IO-1).
    Conversion to float64 is exact for every input dtype: the reference works on the exact values
    and leaves rounding to the output dtype (BN-DTYPE-1) to its caller; it is never less precise
    than float32 (BN-DTYPE-2).
    """
    moved = np.moveaxis(np.asarray(a, dtype=np.float64), axis, 0)
    return moved.reshape(moved.shape[0], -1)


def from_rows(rows: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Inverse of ``to_rows``."""
    moved_shape = (shape[axis],) + shape[:axis] + shape[axis + 1 :]
    return np.moveaxis(rows.reshape(moved_shape), 0, axis)


def _f64(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else np.asarray(a, dtype=np.float64)


def step(
    x: np.ndarray,
    *,
    axis: int = 1,
    training: bool = True,
    eps: float = 1e-5,
    momentum: float | None = 0.1,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    running_mean: np.ndarray | None = None,
    running_var: np.ndarray | None = None,
    num_batches_tracked: int = 0,
    grad_output: np.ndarray | None = None,
    running_var_estimator: RunningVar = "unbiased",
    running_average: RunningAverage = "plain",
) -> Step:
    """One batch-normalization call, exactly (see the module docstring)."""
    ax = check_arguments(
        x, axis=axis, training=training, eps=eps, momentum=momentum, weight=weight, bias=bias,
        running_mean=running_mean, running_var=running_var,
        num_batches_tracked=num_batches_tracked, grad_output=grad_output,
    )
    rows = to_rows(x, ax)
    m = rows.shape[1]
    w, b = _f64(weight), _f64(bias)
    tracked = running_mean is not None
    batch_stats = training or not tracked  # BN-TRAIN-5, BN-EVAL-1, BN-EVAL-2
    with np.errstate(all="ignore"):  # NaN and Inf propagate within their channel (BN-SPECIAL-1)
        if batch_stats:
            n = functional.train_normalize(rows, float(eps))
        else:
            n = functional.eval_normalize(rows, _f64(running_mean), _f64(running_var), float(eps))
        y = functional.affine(n, w, b)
        new_mean, new_var, count = _f64(running_mean), _f64(running_var), num_batches_tracked
        if training and tracked and m > 0:  # BN-RUN-6: only training steps; BN-EMPTY-1: not empty ones
            new_mean, new_var, count = running.update(
                new_mean, new_var, num_batches_tracked, n.mean, n.var, m, momentum, running_var_estimator,
                running_average,
            )
        dx = dw = db = None
        if grad_output is not None:
            dx_rows, dw, db = functional.backward(n, to_rows(grad_output, ax), w, through_stats=batch_stats)
            dx = from_rows(dx_rows, x.shape, ax)
            if w is None and b is None:
                dw = db = None
    return Step(
        y=from_rows(y, x.shape, ax),
        running_mean=new_mean,
        running_var=new_var,
        num_batches_tracked=count if tracked else None,
        grad_input=dx,
        grad_weight=dw if w is not None else None,
        grad_bias=db if b is not None else None,
        mean=exact.to_float(n.mean),
        var=exact.to_float(n.var),
        batch_stats=batch_stats,
    )
