"""Derivatives beyond the first (BN-GRAD-4..7) through JAX's transforms, for the Flax adapters.

``derivatives(case, f, primals, directions, dy, tdy)`` answers the case's mode with the pure
function ``f(x, *params) -> y``, the way JAX users compose transforms:

* ``jvp``: ``jax.jvp`` nested ``order`` times (``jacfwd(jacfwd)``);
* ``vjp-nested``: reverse mode only; each order is ``J t``, the VJP of the (linear) VJP at
  ``t``, nested ``order`` times (``jax.linear_transpose``'s route);
* ``jvp-of-vjp``: ``jax.jvp`` of ``jax.vjp`` (forward over reverse, ``jax.hessian``'s route);
* ``vjp-of-vjp``: ``jax.grad`` of ``<c, vjp(f)(dy)>`` over (x, params, dy): double backward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .contract import DERIVATIVE_MODES, Case, Outcome

MODES = DERIVATIVE_MODES


def _transposed_vjp(f: Callable[..., Any], tangents: tuple[Any, ...]) -> Callable[..., Any]:
    """``p -> J(p) t`` by reverse mode alone: the VJP of ``u -> J(p)^T u`` with cotangent ``t``."""
    import jax

    def g(*p: Any) -> Any:
        y, pullback = jax.vjp(f, *p)
        return jax.vjp(lambda u: pullback(u), jax.numpy.zeros_like(y))[1](tuple(tangents))[0]

    return g


def derivatives(case: Case, f: Callable[..., Any], primals: list[Any], directions: list[Any],
                dy: Any = None, tdy: Any = None) -> Outcome:
    """The higher-order outputs of ``case``; ``primals`` is ``[x, (weight), (bias)]`` (those present),
    ``directions`` the tangents (or, for ``vjp-of-vjp``, the cotangents) in the same order.

    The composed transform runs under one ``jax.jit``, as JAX users compose them: eagerly, every
    primitive of a third-order derivative is dispatched (and compiled per shape) on its own, which
    took minutes a run."""
    import jax

    mode, k = case.derivative, int(case.order)
    names = ["x"] + [n for n, v in (("weight", case.weight), ("bias", case.bias)) if v is not None]
    got = jax.jit(lambda p, d, g, tg: _outputs(mode, k, names, f, p, tuple(d), g, tg))(list(primals), list(directions),
                                                                                       dy, tdy)
    out = Outcome()
    for field, value in got.items():
        setattr(out, field, None if value is None else np.array(value, copy=True))
    return out


def _outputs(mode: str | None, k: int, names: list[str], f: Callable[..., Any], primals: list[Any],
             tangents: tuple[Any, ...], dy: Any, tdy: Any) -> dict[str, Any]:
    """``Outcome`` field -> array for ``mode`` at order ``k`` (traced under ``derivatives``' jit)."""
    import jax

    if mode == "jvp":
        g = f
        for _ in range(k):
            g = (lambda inner: lambda *p: jax.jvp(inner, tuple(p), tangents)[1])(g)
        return {"y_dot": g(*primals)}
    if mode == "vjp-nested":
        g = f
        for _ in range(k):
            g = _transposed_vjp(g, tangents)
        return {"y_dot": g(*primals)}
    if mode == "jvp-of-vjp":
        def grads(*p: Any) -> Any:
            return jax.vjp(f, *p[:-1])[1](p[-1])

        got = dict(zip(names, jax.jvp(grads, (*primals, dy), (*tangents, tdy))[1]))
        return {"grad_input_dot": got["x"], "grad_weight_dot": got.get("weight"), "grad_bias_dot": got.get("bias")}
    if mode == "vjp-of-vjp":
        def l2(*p: Any) -> Any:
            first = jax.vjp(f, *p[:-1])[1](p[-1])
            return sum((a * c).sum() for a, c in zip(first, tangents))

        got = dict(zip([*names, "dy"], jax.grad(l2, argnums=tuple(range(len(primals) + 1)))(*primals, dy)))
        return {"grad2_input": got["x"], "grad2_output": got["dy"], "grad2_weight": got.get("weight"),
                "grad2_bias": got.get("bias")}
    return {}


def directions_of(case: Case, to_array: Callable[[Any], Any]) -> tuple[list[Any], list[Any], Any, Any]:
    """``(primals, directions, dy, tdy)`` of a case as the framework's arrays (absent directions: zeros)."""
    present = [v for v in (case.weight, case.bias) if v is not None]
    primals = [to_array(case.x)] + [to_array(v) for v in present]
    if case.derivative == "vjp-of-vjp":
        d = [case.cotangent_input, case.cotangent_weight, case.cotangent_bias]
    else:
        d = [case.tangent_x, case.tangent_weight, case.tangent_bias]
    params = [(v, t) for v, t in zip((case.weight, case.bias), d[1:]) if v is not None]
    dirs = [to_array(d[0])] + [to_array(t if t is not None else np.zeros_like(v)) for v, t in params]
    dy = to_array(case.grad_output) if case.grad_output is not None else None
    tdy = None
    if case.grad_output is not None:
        tdy = to_array(case.tangent_grad_output if case.tangent_grad_output is not None
                       else np.zeros_like(case.grad_output))
    return primals, dirs, dy, tdy
