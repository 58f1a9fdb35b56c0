"""The stateless math of batch normalization, exact to a few float64 ulps.

Everything here works on a channel-major matrix: shape ``(C, m)``, one row per channel, float64.
Intermediates that can cancel (the centred input, the variance, the gradient's bracket) are
double-doubles (``exact.DD``), so ill-conditioned data (a mean of 1e6 with a spread of 1e-3)
lose nothing; each result is rounded to float64 once, at the end.

Not for: the running-statistics update or argument checks (``running.py``, ``validate.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import exact
from .exact import DD


@dataclass(frozen=True)
class Normalized:
    """What the forward pass knows per channel: the statistics it used and ``x_hat``."""

    mean: DD  # (C,): the mean subtracted (batch or running)
    var: DD  # (C,): the variance divided by (biased batch variance, or running)
    invstd: DD  # (C,): 1 / sqrt(var + eps)
    xhat: DD  # (C, m)


def _col(v: DD) -> DD:
    return v[0][:, None], v[1][:, None]


def _dd(a: np.ndarray) -> DD:
    return a, np.zeros_like(a)


def batch_moments(x: np.ndarray) -> tuple[DD, DD, DD]:
    """BN-TRAIN-1 and BN-TRAIN-2: the mean, the biased variance and ``x - mean``, per row."""
    m = float(x.shape[1])
    count = exact.const(m, x[:, 0] if x.shape[1] else np.zeros(x.shape[0]))
    mean = exact.div(exact.sum_last(_dd(x)), count)
    centred = exact.add(_dd(x), exact.neg(_col(mean)))  # exact: two_sum, then the low part
    var = exact.div(exact.sum_last(exact.mul(centred, centred)), count)
    return mean, var, centred


def normalize(centred: DD, mean: DD, var: DD, eps: float) -> Normalized:
    """BN-TRAIN-3: ``x_hat = (x - mean) / sqrt(var + eps)``, epsilon inside the root.

    A constant channel has ``centred`` exactly zero, so ``x_hat = 0`` and ``y = beta`` exactly,
    with finite gradients for any ``eps > 0`` (BN-SPECIAL-2).
    """
    denom = exact.sqrt(exact.add(var, exact.const(eps, var[0])))
    invstd = exact.div(exact.const(1.0, denom[0]), denom)
    xhat = exact.mul(centred, _col(invstd))
    return Normalized(mean=mean, var=var, invstd=invstd, xhat=xhat)


def train_normalize(x: np.ndarray, eps: float) -> Normalized:
    """Normalize each row with its own batch statistics (BN-TRAIN-1..3, BN-EVAL-2)."""
    mean, var, centred = batch_moments(x)
    return normalize(centred, mean, var, eps)


def eval_normalize(x: np.ndarray, running_mean: np.ndarray, running_var: np.ndarray, eps: float) -> Normalized:
    """BN-EVAL-1: normalize with the running statistics, held constant."""
    mean, var = _dd(running_mean), _dd(running_var)
    centred = exact.add(_dd(x), exact.neg(_col(mean)))
    return normalize(centred, mean, var, eps)


def affine(n: Normalized, weight: np.ndarray | None, bias: np.ndarray | None) -> np.ndarray:
    """BN-TRAIN-4: ``y = gamma * x_hat + beta`` (``x_hat`` itself with affine off)."""
    y = n.xhat
    if weight is not None:
        y = exact.mul(y, _col(_dd(weight)))
    if bias is not None:
        y = exact.add(y, _col(_dd(bias)))
    return exact.to_float(y)


def backward(
    n: Normalized, dy: np.ndarray, weight: np.ndarray | None, through_stats: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BN-GRAD-1..3: ``(dx, dgamma, dbeta)``.

    With ``through_stats`` (batch statistics were used) the input gradient carries the paths
    through the mean and the variance:
    ``dx = gamma * invstd * (dy - mean(dy) - x_hat * mean(dy * x_hat))``; otherwise the
    statistics are constants and ``dx = gamma * invstd * dy``.
    """
    dyd = _dd(dy)
    dbeta = exact.sum_last(dyd)
    dgamma = exact.sum_last(exact.mul(dyd, n.xhat))
    scale = n.invstd if weight is None else exact.mul(n.invstd, _dd(weight))
    if through_stats:
        count = exact.const(float(dy.shape[1]), dbeta[0])
        mean_dy = exact.div(dbeta, count)
        mean_dyx = exact.div(dgamma, count)
        bracket = exact.add(dyd, exact.neg(_col(mean_dy)))
        bracket = exact.add(bracket, exact.neg(exact.mul(n.xhat, _col(mean_dyx))))
    else:
        bracket = dyd
    dx = exact.to_float(exact.mul(bracket, _col(scale)))
    return dx, exact.to_float(dgamma), exact.to_float(dbeta)
