"""Derivatives beyond the first (BN-GRAD-4..7), exact to a few float64 ulps.

Three kinds of result, each a function of the channel-major ``(C, m)`` rows:

* ``y_dot``: the k-th directional derivative of ``y`` along tangents ``(t_x, t_gamma, t_beta)``,
  ``d^k/dt^k y(x + t t_x, gamma + t t_gamma, beta + t t_beta)`` at ``t = 0`` (forward mode,
  forward over forward, any order k >= 1);
* ``grad_*_dot``: the directional derivative of the first-order results ``(dx, dgamma, dbeta)``
  along ``(t_x, t_gamma, t_beta, t_dy)`` (forward over reverse);
* ``grad2_*``: the gradient of ``L2 = <c_x, dx> + <c_gamma, dgamma> + <c_beta, dbeta>`` with
  respect to ``(x, gamma, beta, dy)`` (reverse over reverse: double backward, the
  Hessian-vector products of gradient penalties).

The route is Taylor-mode arithmetic (truncated power series in ``t``) through the normalization
written in normalized quantities: with ``h = x_hat``, ``r = 1/s`` and the normalized tangent
``z = (t_x - mean(t_x)) r``, the perturbed variance is ``s^2 (1 + a1 t + a2 t^2)`` with
``a1 = 2 mean(h z)``, ``a2 = mean(z^2)``, so ``x_hat(t) = (h + t z) rho(t)`` with
``rho = (1 + a1 t + a2 t^2)^(-1/2)``, whose coefficients follow the recurrence of
``f' A = -1/2 A' f`` (Knuth, TAOCP vol. 2, section 4.7, power of a power series). In eval with
running statistics, ``rho = 1`` and ``z = t_x r`` (BN-GRAD-3). Double backward is in closed form
(derived in ``spec/batchnorm.md``, BN-GRAD-5).

Every formula is written once, against a small number protocol (``+``, ``-``, ``*``,
``mean()``, ``sum()``, ``scaled(num, den)``); ``DDArray`` evaluates it in double-double
arithmetic (``exact.py``), and the precision model (``bnspec/conformance/tolerance_higher.py``)
evaluates the same formula in its error-bound arithmetic. So the tolerance and the exact value
come from one text.

Not for: running statistics, which are state and are not differentiated (BN-GRAD-4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from . import exact, functional
from .exact import DD


class Number(Protocol):
    """What the formulas need of a number type: elementwise arithmetic on (C, m) or (C, 1) arrays."""

    def __add__(self, other: Any) -> Any: ...
    def __sub__(self, other: Any) -> Any: ...
    def __mul__(self, other: Any) -> Any: ...
    def mean(self) -> Any: ...  # over the last axis, keeping it: (C, 1)
    def sum(self) -> Any: ...  # over the last axis, keeping it: (C, 1)
    def scaled(self, num: float, den: float = 1.0) -> Any: ...  # self * num / den


N = TypeVar("N", bound=Number)


class DDArray:
    """A double-double array with the operators the formulas use (exact to about 2**-104)."""

    __slots__ = ("v",)

    def __init__(self, v: DD) -> None:
        self.v = v

    @classmethod
    def of(cls, a: np.ndarray) -> DDArray:
        a = np.asarray(a, dtype=np.float64)
        return cls((a, np.zeros_like(a)))

    def __add__(self, o: DDArray) -> DDArray:
        return DDArray(exact.add(self.v, o.v))

    def __sub__(self, o: DDArray) -> DDArray:
        return DDArray(exact.add(self.v, exact.neg(o.v)))

    def __mul__(self, o: DDArray) -> DDArray:
        return DDArray(exact.mul(self.v, o.v))

    def sum(self) -> DDArray:
        s = exact.sum_last(self.v)
        return DDArray((s[0][..., None], s[1][..., None]))

    def mean(self) -> DDArray:
        return self.sum().scaled(1.0, float(self.v[0].shape[-1]))

    def scaled(self, num: float, den: float = 1.0) -> DDArray:
        out = exact.mul(self.v, exact.const(num, self.v[0]))
        if den != 1.0:
            out = exact.div(out, exact.const(den, self.v[0]))
        return DDArray(out)

    def value(self) -> np.ndarray:
        return exact.to_float(self.v)


@dataclass
class Primals:
    """The formulas' inputs for one call, in one number type; shapes (C, m) or (C, 1).

    ``h`` is x_hat, ``r`` 1/sqrt(var + eps), ``z`` the normalized tangent of x (None without
    tangents), ``g`` gamma (1 with affine off), ``batch`` whether batch statistics were used.
    """

    h: Any
    r: Any
    g: Any
    batch: bool
    z: Any = None
    tg: Any = None  # tangent of gamma (0 where absent)
    tb: Any = None  # tangent of beta
    b: Any = None  # beta
    dy: Any = None
    tdy: Any = None
    cx: Any = None  # cotangent of dx
    cg: Any = None  # cotangent of dgamma
    cb: Any = None  # cotangent of dbeta


def rho_series(p: Primals, order: int) -> list[Any]:
    """Taylor coefficients rho_0..rho_order of (1 + a1 t + a2 t^2)^(-1/2) (1 in eval: BN-GRAD-3).

    ``rho_n = (1/n) sum_{j=1,2} (j/2 - n) A_j rho_{n-j}``, ``A_1 = a1 = 2 mean(h z)``,
    ``A_2 = a2 = mean(z z)``; rho_0 = 1 is represented as None (a multiplicative identity).
    """
    if not p.batch:
        return [None] + [0] * order
    a = [None, (p.h * p.z).mean().scaled(2.0), (p.z * p.z).mean()]
    rho: list[Any] = [None]
    for n in range(1, order + 1):
        total = None
        for j in (1, 2):
            if j > n:
                break
            term = a[j] if rho[n - j] is None else a[j] * rho[n - j]
            term = term.scaled(j / 2.0 - n, float(n))
            total = term if total is None else total + term
        rho.append(total)
    return rho


def xhat_series(p: Primals, order: int) -> list[Any]:
    """Taylor coefficients of x_hat(t) = (h + t z) rho(t): ``h_n = h rho_n + z rho_{n-1}``."""
    rho = rho_series(p, order)
    out = [p.h]
    for n in range(1, order + 1):
        a = _times(p.h, rho[n])
        b = _times(p.z, rho[n - 1])
        out.append(_plus(a, b))
    return out


def y_derivative(p: Primals, order: int) -> Any:
    """BN-GRAD-4, BN-GRAD-6, BN-GRAD-7: the k-th directional derivative of y, k = ``order`` >= 1.

    ``y(t) = (g + t tg) x_hat(t) + beta + t tb``, so ``y_k = g h_k + tg h_{k-1} (+ tb if k = 1)``
    and the derivative is ``k! y_k``.
    """
    hs = xhat_series(p, order)
    yk = _plus(_times(hs[order], p.g), _times(hs[order - 1], p.tg))
    if order == 1 and p.tb is not None:
        yk = _plus(yk, p.tb)
    if _is0(yk):
        return 0
    return yk.scaled(float(math.factorial(order))) if order > 1 else yk


def grad_derivative(p: Primals) -> tuple[Any, Any, Any]:
    """BN-GRAD-6: the directional derivative of (dx, dgamma, dbeta) along (t_x, t_gamma, t_dy).

    Batch statistics: with ``B = dy - p - h q`` (BN-GRAD-1), ``rho_1 = -mean(h z)``,
    ``h_1 = z + h rho_1``, ``B' = t_dy - mean(t_dy) - h_1 q - h q'``, ``q' = mean(t_dy h + dy h_1)``:
    ``dx' = r (tg B + g rho_1 B + g B')``. Running statistics: ``dx' = r (tg dy + g t_dy)``.
    Both: ``dgamma' = sum(t_dy h + dy h_1)``, ``dbeta' = sum(t_dy)``.
    """
    h, r, g, dy, tdy = p.h, p.r, p.g, p.dy, p.tdy
    hs = xhat_series(p, 1)
    h1 = hs[1]
    dgamma_dot = _plus(_times(tdy, h), _times(dy, h1))
    dgamma_dot = dgamma_dot.sum() if not _is0(dgamma_dot) else 0
    dbeta_dot = tdy.sum() if tdy is not None else 0
    if p.batch:
        rho1 = rho_series(p, 1)[1]
        q = (dy * h).mean()
        bracket = dy - dy.mean() - h * q
        qdot = (dy * h1).mean() if tdy is None else (tdy * h + dy * h1).mean()
        bdot = _minus(_minus(tdy - tdy.mean() if tdy is not None else 0, _times(h1, q)), h * qdot)
        inner = _plus(_plus(_times(bracket, p.tg), bracket * (g * rho1)), _times(bdot, g))
    else:
        inner = _plus(_times(dy, p.tg), _times(tdy, g))
    dx_dot = _times(inner, r)
    return dx_dot, dgamma_dot, dbeta_dot


def double_backward(p: Primals) -> tuple[Any, Any, Any, Any]:
    """BN-GRAD-5: the gradient of ``<c_x, dx> + <c_gamma, dgamma> + <c_beta, dbeta>`` with respect
    to ``(x, gamma, beta, dy)``.

    Batch statistics (with ``q = mean(dy h)``, ``a = mean(c_x h)``, ``P w = w - mean(w) - h mean(w h)``,
    ``K = mean(c_x (dy - mean(dy) - h q))``):
    ``d/dx = r P G - g r^2 h K`` with ``G = c_gamma dy - g r (c_x q + dy a)``;
    ``d/dgamma = r sum(c_x (dy - mean(dy) - h q))``; ``d/dbeta = 0``;
    ``d/d(dy) = g r P c_x + c_gamma h + c_beta``. Running statistics (BN-GRAD-3):
    ``d/dx = c_gamma dy r``, ``d/dgamma = r sum(c_x dy)``, ``d/d(dy) = g r c_x + c_gamma h + c_beta``.
    """
    h, r, g, dy, cx = p.h, p.r, p.g, p.dy, p.cx
    if p.batch:
        q = (dy * h).mean()
        bracket = dy - dy.mean() - h * q
        a = (cx * h).mean()
        proj_cx = cx - cx.mean() - h * a
        gr = g * r
        gvec = _minus(_times(dy, p.cg), (cx * q + dy * a) * gr)
        proj_g = gvec - gvec.mean() - h * (gvec * h).mean()
        k = (cx * bracket).mean()
        d_x = proj_g * r - h * (k * (gr * r))
        d_gamma = (cx * bracket).sum() * r
        d_dy = proj_cx * gr
    else:
        d_x = _times(_times(dy, p.cg), r)
        d_gamma = (cx * dy).sum() * r
        d_dy = cx * (g * r)
    d_dy = _plus(_plus(d_dy, _times(h, p.cg)), p.cb)
    return d_x, d_gamma, 0, d_dy


# -- helpers for optional operands (None: absent, 0: known zero) ---------------------------------

def _is0(a: Any) -> bool:
    """Whether ``a`` is the exact zero the formulas use for an absent term."""
    return isinstance(a, int) and a == 0


def _times(a: Any, b: Any) -> Any:
    """``a * b`` where either may be None (one) or 0 (zero)."""
    if a is None:
        return b
    if b is None:
        return a
    if _is0(a) or _is0(b):
        return 0
    return a * b


def _plus(a: Any, b: Any) -> Any:
    if _is0(a) or a is None:
        return b if b is not None else 0
    if _is0(b) or b is None:
        return a
    return a + b


def _minus(a: Any, b: Any) -> Any:
    if _is0(b) or b is None:
        return a
    if _is0(a) or a is None:
        return b.scaled(-1.0)
    return a - b


# -- the reference entry point -------------------------------------------------------------------

@dataclass(frozen=True)
class Higher:
    """Exact float64 results, in the input's layout; None where not asked for."""

    y_dot: np.ndarray | None = None
    grad_input_dot: np.ndarray | None = None
    grad_weight_dot: np.ndarray | None = None
    grad_bias_dot: np.ndarray | None = None
    grad2_input: np.ndarray | None = None
    grad2_weight: np.ndarray | None = None
    grad2_bias: np.ndarray | None = None
    grad2_output: np.ndarray | None = None


def _column(v: np.ndarray | None, c: int, like: Any = DDArray) -> DDArray | None:
    return None if v is None else DDArray.of(np.asarray(v, dtype=np.float64).reshape(c, 1))


def primals(rows: np.ndarray, *, batch: bool, eps: float, weight: np.ndarray | None, bias: np.ndarray | None,
            running_mean: np.ndarray | None, running_var: np.ndarray | None, tangent_rows: dict[str, Any],
            dy_rows: np.ndarray | None, cot: dict[str, Any]) -> Primals:
    """The exact ``Primals`` (double-double) of one call from its channel-major rows."""
    c = rows.shape[0]
    if batch:
        n = functional.train_normalize(rows, eps)
    else:
        n = functional.eval_normalize(rows, np.asarray(running_mean, np.float64), np.asarray(running_var, np.float64),
                                      eps)
    r = DDArray((n.invstd[0][:, None], n.invstd[1][:, None]))
    p = Primals(h=DDArray(n.xhat), r=r, g=_column(weight, c) or DDArray.of(np.ones((c, 1))), batch=batch,
                b=_column(bias, c))
    tx = tangent_rows.get("x")
    if tx is not None:
        if batch:
            _, _, centred = functional.batch_moments(tx)
            p.z = DDArray(centred) * r
        else:
            p.z = DDArray.of(tx) * r
        p.tg = _column(tangent_rows.get("weight"), c) if weight is not None else None
        p.tb = _column(tangent_rows.get("bias"), c) if bias is not None else None
        if p.tg is None:
            p.tg = 0
    if dy_rows is not None:
        p.dy = DDArray.of(dy_rows)
        tdy = tangent_rows.get("grad_output")
        p.tdy = DDArray.of(tdy) if tdy is not None else None
    if cot.get("grad_input") is not None:
        p.cx = DDArray.of(cot["grad_input"])
        p.cg = _column(cot.get("grad_weight"), c) if weight is not None else None
        p.cb = _column(cot.get("grad_bias"), c) if bias is not None else None
        p.cg = 0 if p.cg is None else p.cg
        p.cb = 0 if p.cb is None else p.cb
    return p


def derivatives(
    x: np.ndarray, *, axis: int = 1, training: bool = True, eps: float = 1e-5,
    weight: np.ndarray | None = None, bias: np.ndarray | None = None,
    running_mean: np.ndarray | None = None, running_var: np.ndarray | None = None,
    grad_output: np.ndarray | None = None,
    tangent_x: np.ndarray | None = None, tangent_weight: np.ndarray | None = None,
    tangent_bias: np.ndarray | None = None, tangent_grad_output: np.ndarray | None = None,
    cotangent_input: np.ndarray | None = None, cotangent_weight: np.ndarray | None = None,
    cotangent_bias: np.ndarray | None = None, order: int = 1,
) -> Higher:
    """The exact higher-order results of one call (BN-GRAD-4..7); arrays of ``x``'s shape or (C,).

    With ``tangent_x`` and no ``grad_output``: ``y_dot``, the ``order``-th directional derivative of
    y. With ``tangent_x`` and ``grad_output``: ``grad_*_dot`` (forward over reverse). With
    ``cotangent_input`` (and ``grad_output``): ``grad2_*`` (double backward). Tangents and
    cotangents of absent parameters are ignored; an absent one of a present parameter is zero.
    Raises ``InvalidArgument`` on invalid use (BN-ARG-*) or a tangent of the wrong shape, and
    ``ValueError`` for ``order < 1``.
    """
    from ..errors import InvalidArgument
    from . import from_rows, to_rows
    from .validate import check_arguments

    ax = check_arguments(x, axis=axis, training=training, eps=eps, momentum=None, weight=weight, bias=bias,
                         running_mean=running_mean, running_var=running_var, num_batches_tracked=0,
                         grad_output=grad_output)
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise InvalidArgument(f"order={order!r} must be an integer >= 1", "BN-GRAD-7")
    for name, t, like in (("tangent_x", tangent_x, x), ("tangent_grad_output", tangent_grad_output, x),
                          ("cotangent_input", cotangent_input, x), ("tangent_weight", tangent_weight, weight),
                          ("tangent_bias", tangent_bias, bias), ("cotangent_weight", cotangent_weight, weight),
                          ("cotangent_bias", cotangent_bias, bias)):
        if t is not None and like is not None and np.shape(t) != like.shape:
            raise InvalidArgument(f"{name}.shape={np.shape(t)} must equal {like.shape}", "BN-GRAD-4")
    if (cotangent_input is not None or tangent_grad_output is not None) and grad_output is None:
        raise InvalidArgument("cotangents and a tangent of dy need grad_output", "BN-GRAD-5")
    rows = to_rows(x, ax)
    batch = training or running_mean is None
    def as_rows(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else to_rows(a, ax)

    dy_rows = as_rows(grad_output)
    with np.errstate(all="ignore"):
        p = primals(rows, batch=batch, eps=float(eps), weight=weight, bias=bias, running_mean=running_mean,
                    running_var=running_var,
                    tangent_rows={"x": as_rows(tangent_x), "weight": tangent_weight, "bias": tangent_bias,
                                  "grad_output": as_rows(tangent_grad_output)},
                    dy_rows=dy_rows,
                    cot={"grad_input": as_rows(cotangent_input), "grad_weight": cotangent_weight,
                         "grad_bias": cotangent_bias})
        full = lambda v: from_rows(_values(v, rows.shape), x.shape, ax)  # noqa: E731
        chan = lambda v: _values(v, (rows.shape[0], 1))[:, 0]  # noqa: E731
        out: dict[str, np.ndarray | None] = {}
        if tangent_x is not None and grad_output is None:
            out["y_dot"] = full(y_derivative(p, int(order)))
        if tangent_x is not None and grad_output is not None:
            dxd, dgd, dbd = grad_derivative(p)
            out.update(grad_input_dot=full(dxd), grad_weight_dot=chan(dgd) if weight is not None else None,
                       grad_bias_dot=chan(dbd) if bias is not None else None)
        if cotangent_input is not None:
            d_x, d_g, d_b, d_dy = double_backward(p)
            out.update(grad2_input=full(d_x), grad2_weight=chan(d_g) if weight is not None else None,
                       grad2_bias=chan(d_b) if bias is not None else None, grad2_output=full(d_dy))
    return Higher(**out)


def _values(v: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A formula's result as a float64 array of ``shape`` (0 is an exact zero)."""
    if _is0(v) or v is None:
        return np.zeros(shape)
    return np.broadcast_to(v.value(), shape).copy()
