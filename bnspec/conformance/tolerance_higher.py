"""The precision model of the higher-order outputs (BN-PREC-8), as code.

The tolerance of each output of BN-GRAD-4..7 is a first-order running error bound of its
clause's formula: the very formula the reference evaluates (``bnspec/reference/higher.py``),
evaluated here in ``Bound`` arithmetic, where a number is its exact value and a bound on the
error a conforming implementation may have made computing it. ``x_hat`` and ``1/s`` enter with
the errors BN-PREC-2 and BN-PREC-3 grant them; every reduction is charged ``Gamma_m`` times the
sum of its terms' magnitudes (BN-PREC-1); each product and two-term sum ``u`` times its
operands' magnitudes; the result is rounded once to its output dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters.contract import Case
from ..dtypes import accumulation_roundoff, dtype_name
from ..reference import channel_axis, from_rows, to_rows
from ..reference import higher as hr
from .tolerance import batch_stat_error, gamma_m, rounding

# BN-PREC-8: the errors x_hat, 1/s and z enter with are BN-PREC-2/3's, times ROUTES. The clause's
# formula uses one copy of each; an implementation's route (a JVP rule, autodiff of a two-pass
# forward pass, a fused double backward) recomputes them in several places, each with its own
# rounding, and where the formula cancels (1 - x_hat^2 with m = 2, eps << var) those errors do not
# cancel with one another.
ROUTES = 4.0


class Bound:
    """An exact value with the error bound a conforming computation of it may carry.

    ``u`` is the unit roundoff of the arithmetic and ``g`` the reduction charge ``Gamma_m``;
    values are float64 arrays of shape (C, m) or (C, 1).
    """

    __slots__ = ("v", "e", "u", "g")

    def __init__(self, v: np.ndarray, e: np.ndarray, u: float, g: float) -> None:
        self.v, self.e, self.u, self.g = v, e, u, g

    def _new(self, v: np.ndarray, e: np.ndarray) -> Bound:
        return Bound(v, e, self.u, self.g)

    def __add__(self, o: Bound) -> Bound:
        return self._new(self.v + o.v, self.e + o.e + self.u * (np.abs(self.v) + np.abs(o.v)))

    def __sub__(self, o: Bound) -> Bound:
        return self._new(self.v - o.v, self.e + o.e + self.u * (np.abs(self.v) + np.abs(o.v)))

    def __mul__(self, o: Bound) -> Bound:
        v = self.v * o.v
        return self._new(v, np.abs(self.v) * o.e + np.abs(o.v) * self.e + self.e * o.e + self.u * np.abs(v))

    def sum(self) -> Bound:
        return self._new(self.v.sum(axis=-1, keepdims=True),
                         self.e.sum(axis=-1, keepdims=True) + self.g * np.abs(self.v).sum(axis=-1, keepdims=True))

    def mean(self) -> Bound:
        return self.sum().scaled(1.0, float(self.v.shape[-1]))

    def scaled(self, num: float, den: float = 1.0) -> Bound:
        k = num / den
        return self._new(self.v * k, abs(k) * self.e + 2 * self.u * np.abs(self.v * k))


def _exact(a: np.ndarray | None, shape: tuple[int, ...], u: float, g: float) -> Bound | None:
    if a is None:
        return None
    v = np.asarray(a, dtype=np.float64).reshape(shape)
    return Bound(v, np.zeros_like(v), u, g)


def tolerances(case: Case, want: hr.Higher) -> dict[str, np.ndarray]:
    """The BN-PREC-8 tolerance of every higher-order output ``want`` holds (same shapes)."""
    ax = channel_axis(case.axis, case.x.ndim)
    xname = dtype_name(case.x.dtype) or "float64"
    u = accumulation_roundoff(xname)  # BN-DTYPE-2
    rows = to_rows(case.x, ax)
    c, m = rows.shape
    g = gamma_m(m, u)
    batch = case.training or case.running_mean is None
    exact_p = _exact_primals(case, ax, rows, batch)
    h, r = exact_p.h.value(), exact_p.r.value()
    with np.errstate(all="ignore"):
        if batch:
            mean = rows.mean(axis=1)
            var = np.maximum(((rows - mean[:, None]) ** 2).mean(axis=1), 0)
            err = batch_stat_error(rows, mean, var, u)  # BN-PREC-2
            e_mu, e_v = err.mean[:, None], err.var[:, None]
            mu = mean[:, None]
        else:
            mu = np.asarray(case.running_mean, np.float64)[:, None]
            var = np.asarray(case.running_var, np.float64)
            e_mu = e_v = np.zeros((c, 1))
        v = np.maximum(var, 0).reshape(c, 1)
        rho_s = e_v / (2 * (v + float(case.eps))) + 3 * u
        e_h = (e_mu + 2 * u * (np.abs(rows) + np.abs(mu))) * r + np.abs(h) * (rho_s + 2 * u)  # BN-PREC-3
        p = hr.Primals(h=Bound(h, ROUTES * e_h, u, g), r=Bound(r, ROUTES * np.abs(r) * (rho_s + u), u, g),
                       g=_exact(case.weight, (c, 1), u, g) or Bound(np.ones((c, 1)), np.zeros((c, 1)), u, g),
                       batch=batch)
        if case.tangent_x is not None:
            tx = to_rows(case.tangent_x, ax)
            zv = exact_p.z.value()
            if batch:
                tbar = tx.mean(axis=1, keepdims=True)
                e_t = g * np.abs(tx).mean(axis=1, keepdims=True) + u * np.abs(tbar)
                e_z = (e_t + 2 * u * (np.abs(tx) + np.abs(tbar))) * r + np.abs(zv) * (rho_s + 2 * u)
            else:
                e_z = np.abs(zv) * (rho_s + 2 * u)
            p.z = Bound(zv, ROUTES * e_z, u, g)
            p.tg = _exact(case.tangent_weight, (c, 1), u, g) if case.weight is not None else None
            p.tb = _exact(case.tangent_bias, (c, 1), u, g) if case.bias is not None else None
            p.tg = 0 if p.tg is None else p.tg
        if case.grad_output is not None:
            p.dy = _exact(to_rows(case.grad_output, ax), (c, m), u, g)
            if case.tangent_grad_output is not None:
                p.tdy = _exact(to_rows(case.tangent_grad_output, ax), (c, m), u, g)
        if case.cotangent_input is not None:
            p.cx = _exact(to_rows(case.cotangent_input, ax), (c, m), u, g)
            p.cg = (_exact(case.cotangent_weight, (c, 1), u, g) if case.weight is not None else None) or 0
            p.cb = (_exact(case.cotangent_bias, (c, 1), u, g) if case.bias is not None else None) or 0
        out: dict[str, np.ndarray] = {}

        def full(b: Any, name: str) -> None:
            if getattr(want, name) is None:
                return
            e = np.zeros((c, m)) if hr._is0(b) else np.broadcast_to(b.e, (c, m))
            out[name] = from_rows(e, case.x.shape, ax) + rounding(getattr(want, name), case.x)

        def chan(b: Any, name: str, like: np.ndarray | None) -> None:
            if getattr(want, name) is None:
                return
            e = np.zeros(c) if hr._is0(b) else b.e[:, 0]
            out[name] = e + rounding(getattr(want, name), like)

        if want.y_dot is not None:
            full(hr.y_derivative(p, int(case.order)), "y_dot")
        if want.grad_input_dot is not None:
            dxd, dgd, dbd = hr.grad_derivative(p)
            full(dxd, "grad_input_dot")
            chan(dgd, "grad_weight_dot", case.weight)
            chan(dbd, "grad_bias_dot", case.bias)
        if want.grad2_input is not None:
            d_x, d_g, d_b, d_dy = hr.double_backward(p)
            full(d_x, "grad2_input")
            chan(d_g, "grad2_weight", case.weight)
            chan(d_b, "grad2_bias", case.bias)
            full(d_dy, "grad2_output")
    return out


def _exact_primals(case: Case, ax: int, rows: np.ndarray, batch: bool) -> hr.Primals:
    """The exact x_hat, 1/s and normalized tangent of ``case`` (double-double)."""
    tx = to_rows(case.tangent_x, ax) if case.tangent_x is not None else None
    return hr.primals(rows, batch=batch, eps=float(case.eps), weight=case.weight, bias=case.bias,
                      running_mean=case.running_mean, running_var=case.running_var,
                      tangent_rows={"x": tx}, dy_rows=None, cot={})


def expected_higher(case: Case) -> hr.Higher:
    """The exact higher-order results a ``case`` asks for (BN-GRAD-4..7)."""
    return hr.derivatives(
        case.x, axis=case.axis, training=case.training, eps=case.eps, weight=case.weight, bias=case.bias,
        running_mean=case.running_mean, running_var=case.running_var, grad_output=case.grad_output,
        tangent_x=case.tangent_x, tangent_weight=case.tangent_weight, tangent_bias=case.tangent_bias,
        tangent_grad_output=case.tangent_grad_output, cotangent_input=case.cotangent_input,
        cotangent_weight=case.cotangent_weight, cotangent_bias=case.cotangent_bias, order=case.order,
    )

