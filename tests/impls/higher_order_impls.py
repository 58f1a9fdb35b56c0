"""Derivatives beyond the first (BN-GRAD-4..7) for the NumPy implementations, and broken variants.

Written without the reference: every derivative comes from Taylor-mode arithmetic (``Jet``,
truncated power series with NumPy coefficients, in the variant's working dtype) pushed through
the plain two-pass forward pass and the first-order backward formula. Double backward uses the
symmetry of the Hessian of ``F = <dy, y>``: the gradient of ``<c, grad_theta F>`` with respect to
theta = (x, gamma, beta) is the derivative of ``grad_theta F`` along ``c``, and with respect to dy
it is the derivative of y along ``c``; both are forward passes.

``derivatives`` is the hook ``NumpyBatchNorm.run`` calls; a broken variant overrides ``frozen``,
which says where the batch statistics are (wrongly) held constant.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from bnspec.adapters.contract import Case, Outcome

MODES = ("jvp", "vjp-nested", "jvp-of-vjp", "vjp-of-vjp")
MAX_ORDER = 3


class Jet:
    """A truncated Taylor series ``sum_k c[k] t^k`` of arrays, ``k = 0..order``."""

    def __init__(self, c: list[np.ndarray]) -> None:
        self.c = c

    @classmethod
    def of(cls, value: np.ndarray, tangent: np.ndarray | None, order: int) -> Jet:
        zero = np.zeros_like(value)
        return cls([value] + [tangent if tangent is not None and k == 1 else zero for k in range(1, order + 1)])

    @property
    def order(self) -> int:
        return len(self.c) - 1

    def __add__(self, o: Jet) -> Jet:
        return Jet([a + b for a, b in zip(self.c, o.c)])

    def __sub__(self, o: Jet) -> Jet:
        return Jet([a - b for a, b in zip(self.c, o.c)])

    def __mul__(self, o: Jet) -> Jet:
        return Jet([sum(self.c[i] * o.c[k - i] for i in range(k + 1)) for k in range(self.order + 1)])

    def mean(self, axes: tuple[int, ...]) -> Jet:
        return Jet([a.mean(axis=axes, keepdims=True, dtype=a.dtype) for a in self.c])

    def sum(self, axes: tuple[int, ...]) -> Jet:
        return Jet([a.sum(axis=axes, dtype=a.dtype) for a in self.c])

    def plus(self, k: float) -> Jet:
        return Jet([self.c[0] + self.c[0].dtype.type(k)] + self.c[1:])

    def power(self, alpha: float) -> Jet:
        """``self ** alpha`` by ``n f_n A_0 = sum_{j=1..n} (alpha j - n + j) A_j f_{n-j}``."""
        a = self.c
        f = [a[0] ** a[0].dtype.type(alpha)]
        for n in range(1, self.order + 1):
            s = sum(a[0].dtype.type(alpha * j - n + j) * a[j] * f[n - j] for j in range(1, n + 1))
            f.append(s / (a[0].dtype.type(n) * a[0]))
        return Jet(f)

    def constant(self) -> Jet:
        """The same value with every derivative dropped: what a rule that freezes it sees."""
        return Jet([self.c[0]] + [np.zeros_like(a) for a in self.c[1:]])

    def drop(self, k: int) -> Jet:
        """The series with its order-``k`` coefficient dropped."""
        return Jet([np.zeros_like(a) if i == k else a for i, a in enumerate(self.c)])


class Frozen:
    """Where a variant holds the batch statistics constant: by mode and order (none: correct)."""

    def stats(self, mode: str, order: int) -> bool:
        return False

    def inv_std(self, r: Jet, mode: str, order: int) -> Jet:
        return r

    def eval_through_batch(self, mode: str, order: int) -> bool:
        """Whether eval with running statistics (wrongly) takes the batch statistics' tangents."""
        return False


def _shape(case: Case, ax: int, v: np.ndarray | None, wd: np.dtype) -> np.ndarray | None:
    if v is None:
        return None
    shape = tuple(case.x.shape[ax] if d == ax else 1 for d in range(case.x.ndim))
    return np.asarray(v, dtype=wd).reshape(shape)


def _jets(case: Case, ax: int, wd: np.dtype, tangents: dict[str, np.ndarray | None], order: int) -> dict[str, Jet]:
    ones = np.ones(tuple(case.x.shape[ax] if d == ax else 1 for d in range(case.x.ndim)), wd)
    g = _shape(case, ax, case.weight, wd)
    b = _shape(case, ax, case.bias, wd)
    return {
        "x": Jet.of(case.x.astype(wd), _cast(tangents.get("x"), wd), order),
        "g": Jet.of(g if g is not None else ones, _shape(case, ax, tangents.get("weight"), wd)
                    if g is not None else None, order),
        "b": Jet.of(b if b is not None else 0 * ones, _shape(case, ax, tangents.get("bias"), wd)
                    if b is not None else None, order),
        "dy": Jet.of(case.grad_output.astype(wd), _cast(tangents.get("grad_output"), wd), order)
        if case.grad_output is not None else None,
    }


def _cast(a: np.ndarray | None, wd: np.dtype) -> np.ndarray | None:
    return None if a is None else a.astype(wd)


def _normalize(case: Case, ax: int, j: dict[str, Jet], frozen: Frozen, mode: str, order: int) -> tuple[Jet, Jet]:
    """``(x_hat, 1/s)`` as jets: two-pass batch statistics, or the running ones (constants)."""
    x = j["x"]
    red = tuple(d for d in range(case.x.ndim) if d != ax)
    wd = x.c[0].dtype
    if case.training or case.running_mean is None:
        mean = x.mean(red)
        if frozen.stats(mode, order):
            mean = mean.constant()
        d = x - mean
        var = (d * d).mean(red)
        if frozen.stats(mode, order):
            var = var.constant()
    else:
        mean = Jet.of(_shape(case, ax, case.running_mean, wd), None, x.order)
        var = Jet.of(_shape(case, ax, case.running_var, wd), None, x.order)
        if frozen.eval_through_batch(mode, x.order):  # the training rule's tangents on the running values
            bmean = x.mean(red)
            bd = x - bmean
            bvar = (bd * bd).mean(red)
            mean, var = mean + bmean - bmean.constant(), var + bvar - bvar.constant()
        d = x - mean
    r = frozen.inv_std(var.plus(case.eps).power(-0.5), mode, order)
    return d * r, r


def _backward(case: Case, ax: int, j: dict[str, Jet], xhat: Jet, r: Jet) -> tuple[Jet, Jet, Jet]:
    """BN-GRAD-1..3 as jets: ``(dx, dgamma, dbeta)``."""
    red = tuple(d for d in range(case.x.ndim) if d != ax)
    dy, g = j["dy"], j["g"]
    if case.training or case.running_mean is None:
        bracket = dy - dy.mean(red) - xhat * (dy * xhat).mean(red)
    else:
        bracket = dy
    return g * r * bracket, (dy * xhat).sum(red), dy.sum(red)


def derivatives(impl: object, case: Case, ax: int, out: Outcome, frozen: Frozen | None = None) -> Outcome:
    """``out`` with the higher-order outputs ``case`` asks for (BN-GRAD-4..7)."""
    frozen = frozen or getattr(impl, "frozen", Frozen())
    wd = impl.work_dtype(case.x.dtype)  # type: ignore[attr-defined]
    mode = case.derivative
    xdt = case.x.dtype

    def cast(a: np.ndarray, like: np.ndarray | None) -> np.ndarray | None:
        return None if like is None else np.asarray(a).reshape(like.shape).astype(like.dtype)

    if mode in ("jvp", "vjp-nested"):  # one Taylor computation serves either route
        k = int(case.order)
        if k > MAX_ORDER:
            raise NotImplementedError(f"order={k}: these implementations stop at order {MAX_ORDER} (BN-GRAD-7)")
        j = _jets(case, ax, wd, {"x": case.tangent_x, "weight": case.tangent_weight, "bias": case.tangent_bias}, k)
        xhat, _ = _normalize(case, ax, j, frozen, mode, k)
        y = j["g"] * xhat + j["b"]
        return replace(out, y_dot=(y.c[k] * wd.type(math.factorial(k))).astype(xdt))
    if mode == "jvp-of-vjp":
        j = _jets(case, ax, wd, {"x": case.tangent_x, "weight": case.tangent_weight, "bias": case.tangent_bias,
                                 "grad_output": case.tangent_grad_output}, 1)
        xhat, r = _normalize(case, ax, j, frozen, mode, 1)
        dx, dg, db = _backward(case, ax, j, xhat, r)
        return replace(out, grad_input_dot=dx.c[1].astype(xdt), grad_weight_dot=cast(dg.c[1], case.weight),
                       grad_bias_dot=cast(db.c[1], case.bias))
    if mode == "vjp-of-vjp":  # the Hessian of <dy, y> is symmetric: both halves are forward passes
        c = {"x": case.cotangent_input, "weight": case.cotangent_weight, "bias": case.cotangent_bias}
        j = _jets(case, ax, wd, c, 1)
        xhat, r = _normalize(case, ax, j, frozen, mode, 1)
        dx, dg, _ = _backward(case, ax, j, xhat, r)
        y = j["g"] * xhat + j["b"]
        return replace(out, grad2_input=dx.c[1].astype(xdt), grad2_weight=cast(dg.c[1], case.weight),
                       grad2_bias=cast(np.zeros(case.x.shape[ax]), case.bias), grad2_output=y.c[1].astype(xdt))
    return out


# =================================================================================================
# Broken variants (mixed into NumpyBatchNorm in tests/test_higher_order.py): where each freezes.
# =================================================================================================

class FirstOrderJvpFrozen(Frozen):
    """Forward mode drops the tangents of the mean and the variance (first-order rule only)."""

    def stats(self, mode: str, order: int) -> bool:
        return mode == "jvp" and order == 1


class DoubleBackwardFrozen(Frozen):
    """Double backward holds the batch statistics constant: d(dx)/dx as if mean and var were inputs."""

    def stats(self, mode: str, order: int) -> bool:
        return mode == "vjp-of-vjp"


class ForwardOverReverseFrozen(Frozen):
    """The JVP of the gradient holds the batch statistics constant."""

    def stats(self, mode: str, order: int) -> bool:
        return mode == "jvp-of-vjp"


class SecondOrderCurvatureDropped(Frozen):
    """Forward over forward keeps the statistics' first-order tangents but not their curvature:
    the second-order term of 1/s is dropped."""

    def inv_std(self, r: Jet, mode: str, order: int) -> Jet:
        return r.drop(2) if mode == "jvp" and order == 2 else r


class ThirdOrderFrozen(Frozen):
    """The third derivative differentiates the second-order rule with the statistics frozen: the
    third-order term of 1/s is missing (orders 1 and 2 are right)."""

    def inv_std(self, r: Jet, mode: str, order: int) -> Jet:
        return r.drop(3) if mode == "jvp" and order == 3 else r


class ReverseThirdOrderFrozen(Frozen):
    """Nested reverse mode differentiates a double-backward rule whose saved statistics carry no
    history: at order 3 the third-order term of 1/s is missing (forward mode is right)."""

    def inv_std(self, r: Jet, mode: str, order: int) -> Jet:
        return r.drop(3) if mode == "vjp-nested" and order == 3 else r


class JvpEvalThroughBatch(Frozen):
    """Forward mode in eval applies the training rule (first-order rule only): the batch statistics'
    tangents, although the output was normalized with the running statistics."""

    def eval_through_batch(self, mode: str, order: int) -> bool:
        return mode == "jvp" and order == 1


class DoubleBackwardEvalThroughBatch(Frozen):
    """Double backward in eval differentiates through the batch statistics."""

    def eval_through_batch(self, mode: str, order: int) -> bool:
        return mode == "vjp-of-vjp"
