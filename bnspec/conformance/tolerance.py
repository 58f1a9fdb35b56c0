"""The precision model of ``spec/precision.md`` (BN-PREC-*), as code.

``tolerances`` returns, for every output of a case, an array of the same shape holding how far a
conforming result may be from the exact one. It is a first-order forward error analysis of the
spec's formulas in which each reduction of ``m`` terms may be carried out in any order: its
error is charged ``Gamma_m = (m - 1) u / (1 - (m - 1) u)`` times the sum of the magnitudes of its
terms. Every term below is named after the symbol it carries in ``spec/precision.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..adapters.contract import Case
from ..dtypes import SMALLEST_SUBNORMAL, UNIT_ROUNDOFF, accumulation_roundoff, dtype_name
from ..reference import Step, channel_axis, from_rows, to_rows


def gamma_m(m: int, u: float) -> float:
    """BN-PREC-1: the relative error charged to one reduction of ``m`` terms in precision ``u``:
    the classical bound ``gamma_{m-1}``, which holds for every summation order."""
    n = max(m - 1, 0) * u
    return n / (1.0 - n) if n < 1.0 else np.inf


def _u(a: np.ndarray | None, default: str) -> float:
    name = dtype_name(a.dtype) if a is not None else None
    return UNIT_ROUNDOFF[name or default]


def rounding(v: np.ndarray, dtype_of: np.ndarray | None, default: str = "float32") -> np.ndarray:
    """BN-PREC-1: the error of rounding ``v`` once to the dtype of ``dtype_of``: ``u|v| + eta/2``,
    ``eta`` the dtype's smallest subnormal (below the normal range spacing is absolute)."""
    name = (dtype_name(dtype_of.dtype) if dtype_of is not None else None) or default
    return UNIT_ROUNDOFF[name] * np.abs(v) + 0.5 * SMALLEST_SUBNORMAL[name]


@dataclass(frozen=True)
class StatError:
    """Per-channel uncertainty of the statistics a forward pass normalized with (BN-PREC-2)."""

    mean: np.ndarray  # E_mu
    var: np.ndarray  # E_v


def batch_stat_error(rows: np.ndarray, mean: np.ndarray, var: np.ndarray, u: float,
                     gamma: Callable[[int, float], float] = gamma_m) -> StatError:
    """BN-PREC-2: ``E_mu = G*M1 + u|mu|``; ``E_v = (G + 3u) v + 2 G M1 sigma + E_mu**2``.

    ``gamma(m, u)`` is the charge of one reduction: ``gamma_m`` (BN-PREC-1), or the quality tier's
    (``quality.gamma_q``, BN-QUAL-1)."""
    m = rows.shape[1]
    g = gamma(m, u)
    with np.errstate(invalid="ignore"):
        m1 = np.abs(rows).mean(axis=1) if m else np.zeros(rows.shape[0])
    e_mu = g * m1 + u * np.abs(mean)
    e_v = (g + 3 * u) * var + 2 * g * m1 * np.sqrt(np.maximum(var, 0)) + e_mu**2
    return StatError(mean=e_mu, var=e_v)


def tolerances(
    case: Case, expected: Step, stat_error: StatError | None = None, estimator: str = "unbiased",
    gamma: Callable[[int, float], float] = gamma_m, average: str = "plain",
) -> dict[str, np.ndarray]:
    """The tolerance of every output of ``case`` whose exact result is ``expected``.

    ``average="debiased"``: the running statistics under the profile debiased-running-average.

    ``stat_error`` overrides the uncertainty of the statistics used; the multi-step scenario
    passes the accumulated uncertainty of chained running statistics (BN-PREC-6). ``gamma(m, u)``
    is the charge of one reduction of ``m`` terms: ``gamma_m`` for the MUST tolerance, the quality
    tier's ``quality.gamma_q`` for the SHOULD one (BN-QUAL-1).
    """
    ax = channel_axis(case.axis, case.x.ndim)
    xname = dtype_name(case.x.dtype) or "float64"
    u = accumulation_roundoff(xname)  # BN-DTYPE-2
    u_y = UNIT_ROUNDOFF[xname]
    rows = to_rows(case.x, ax)
    m = rows.shape[1]
    g = gamma(m, u)
    mu, v = expected.mean[:, None], expected.var[:, None]
    if stat_error is None:
        if expected.batch_stats:
            stat_error = batch_stat_error(rows, expected.mean, expected.var, u, gamma)
        else:
            zeros = np.zeros_like(expected.mean)
            stat_error = StatError(zeros, zeros)
    e_mu, e_v = stat_error.mean[:, None], stat_error.var[:, None]
    eps = float(case.eps)
    gam = np.abs(case.weight.astype(np.float64))[:, None] if case.weight is not None else np.ones_like(mu)
    bet = np.abs(case.bias.astype(np.float64))[:, None] if case.bias is not None else np.zeros_like(mu)
    out: dict[str, np.ndarray] = {}
    with np.errstate(all="ignore"):
        s = np.sqrt(np.maximum(v, 0) + eps)
        rho_s = e_v / (2 * (np.maximum(v, 0) + eps)) + 3 * u  # relative error of s
        xhat = (rows - mu) / s
        axh = np.abs(xhat)
        e_xhat = (e_mu + 2 * u * (np.abs(rows) + np.abs(mu))) / s + axh * (rho_s + 2 * u)
        y = to_rows(expected.y, ax)
        e_y = gam * e_xhat + 2 * u * (gam * axh + bet) + rounding(y, case.x)  # BN-PREC-3
        out["y"] = from_rows(e_y, case.x.shape, ax)
        if expected.running_mean is not None and case.running_mean is not None:
            if case.training and m > 0:
                out.update(_running(case, expected, stat_error, u, m, estimator, average))  # BN-PREC-4
            else:  # BN-RUN-6, BN-EMPTY-1: unchanged, bit for bit
                out.update(running_mean=np.zeros(case.channels), running_var=np.zeros(case.channels))
        if case.grad_output is not None:
            out.update(_gradients(case, expected, rows, s, rho_s, xhat, e_xhat, gam, g, u, u_y, ax))  # BN-PREC-5
    return out


def _running(
    case: Case, expected: Step, err: StatError, u: float, m: int, estimator: str, average: str = "plain"
) -> dict[str, np.ndarray]:
    assert case.running_mean is not None and case.running_var is not None
    assert expected.running_mean is not None and expected.running_var is not None
    u_s = _u(case.running_mean, "float32")
    u_upd = max(u, u_s)
    if case.momentum is None:
        alpha = 1.0 / (case.num_batches_tracked + 1)
    else:
        alpha = float(case.momentum)
    old_m = np.abs(case.running_mean.astype(np.float64))
    old_v = np.abs(case.running_var.astype(np.float64))
    bessel = m / (m - 1) if m > 1 and estimator == "unbiased" else 1.0
    e_rm = alpha * err.mean + 3 * u_upd * ((1 - alpha) * old_m + alpha * np.abs(expected.mean)) \
        + rounding(expected.running_mean, case.running_mean)
    e_rv = alpha * bessel * err.var + 4 * u_upd * ((1 - alpha) * old_v + alpha * bessel * np.abs(expected.var)) \
        + rounding(expected.running_var, case.running_var)
    if average == "debiased" and case.momentum is not None and alpha > 0:
        # Profile debiased-running-average: weights a = d (1 - d^n) / w on the old value and alpha / w on the
        # batch's, w = 1 - d^(n+1). Forming d = 1 - alpha and d^(n+1) by n + 1 products errs by (n + 2) u
        # relative, and 1 - d^(n+1) cancels: w and each weight carry (2n + 4) u d^(n+1) / w relative more.
        n, d = case.num_batches_tracked, 1.0 - alpha
        w = 1.0 - d ** (n + 1)
        a, b, rel_w = d * (1.0 - d ** n) / w, alpha / w, (2 * n + 4) * u_upd * d ** (n + 1) / w
        for key, old, stat, e_stat, scale in (("mean", old_m, expected.mean, err.mean, 1.0),
                                              ("var", old_v, expected.var, err.var, bessel)):
            new = scale * np.abs(stat)
            want = np.abs(expected.running_mean if key == "mean" else expected.running_var)
            e = b * scale * e_stat + 4 * u_upd * (a * old + b * new) + rel_w * (a * old + b * new + want) \
                + rounding(want, case.running_mean if key == "mean" else case.running_var)
            if key == "mean":
                e_rm = e
            else:
                e_rv = e
    return {"running_mean": e_rm, "running_var": e_rv}


def _gradients(case: Case, expected: Step, rows: np.ndarray, s: np.ndarray, rho_s: np.ndarray,
               xhat: np.ndarray, e_xhat: np.ndarray, gam: np.ndarray, g: float, u: float, u_y: float,
               ax: int) -> dict[str, np.ndarray]:
    assert case.grad_output is not None and expected.grad_input is not None
    dy = to_rows(case.grad_output, ax)
    ady, axh = np.abs(dy), np.abs(xhat)
    m = max(rows.shape[1], 1)
    dx = to_rows(expected.grad_input, ax)
    if expected.batch_stats:  # the bracket dy - p - xhat q of BN-GRAD-1
        p = dy.sum(axis=1, keepdims=True) / m
        q = (dy * xhat).sum(axis=1, keepdims=True) / m
        e_p = g * ady.mean(axis=1, keepdims=True) + u * np.abs(p)
        e_q = g * (ady * axh).mean(axis=1, keepdims=True) + (ady * e_xhat).mean(axis=1, keepdims=True) + u * np.abs(q)
        # e_xhat * e_q is second order, but x_hat's error is not small where s is tiny (a constant
        # channel with a small eps), and there it is what a correct implementation errs by.
        e_br = e_p + axh * e_q + e_xhat * (np.abs(q) + e_q) + 3 * u * (ady + np.abs(p) + axh * np.abs(q))
    else:  # BN-GRAD-3: statistics are constants
        e_br = 2 * u * ady
    e_dx = gam / s * e_br + np.abs(dx) * (rho_s + 2 * u) + rounding(dx, case.x)
    out = {"grad_input": from_rows(e_dx, case.x.shape, ax)}
    if expected.grad_weight is not None:
        out["grad_weight"] = g * (ady * axh).sum(axis=1) + (ady * e_xhat).sum(axis=1) \
            + rounding(expected.grad_weight, case.weight)
    if expected.grad_bias is not None:
        out["grad_bias"] = g * ady.sum(axis=1) + rounding(expected.grad_bias, case.bias)
    return out
