"""Derivatives beyond the first (BN-GRAD-4..7) through MLX's transforms, for the ``mlx`` adapter.

``derivatives(case, f, primals, directions, dy, tdy)`` answers the case's mode with ``f(*p) -> y``:
``jvp``: ``mx.jvp`` nested ``order`` times; ``vjp-nested``: reverse mode only, each order the VJP
of the (linear) VJP at the tangent, nested; ``jvp-of-vjp``: ``mx.jvp`` of ``mx.vjp``;
``vjp-of-vjp``: ``mx.vjp`` of ``<c, mx.vjp(f)(dy)>`` (double backward).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .contract import DERIVATIVE_MODES, Case, Outcome

MODES = DERIVATIVE_MODES


def derivatives(case: Case, f: Callable[..., Any], primals: list[Any], directions: list[Any],
                dy: Any, tdy: Any, to_numpy: Callable[[Any], Any]) -> Outcome:
    """The higher-order outputs of ``case``; ``primals`` ``[x, (weight), (bias)]``, ``directions`` the
    tangents (cotangents for ``vjp-of-vjp``) in the same order, MLX arrays."""
    import mlx.core as mx

    mode, k = case.derivative, int(case.order)
    names = ["x"] + [n for n, v in (("weight", case.weight), ("bias", case.bias)) if v is not None]
    out = Outcome()

    def first(*p: Any) -> list[Any]:  # the first-order VJP at (p[:-1], dy = p[-1])
        return mx.vjp(f, list(p[:-1]), [p[-1]])[1]

    if mode == "jvp":
        g = f
        for _ in range(k):
            g = (lambda inner: lambda *p: mx.jvp(inner, list(p), list(directions))[1][0])(g)
        y = g(*primals)
        mx.eval(y)
        out.y_dot = to_numpy(y)
    elif mode == "vjp-nested":
        g = f
        for _ in range(k):
            def g(*p: Any, inner: Callable[..., Any] = g) -> Any:
                # y has x's shape: evaluating inner(*p) here for it would trip MLX's MH1 (an unused
                # evaluation inside a 3-deep nested VJP makes it return 0), which is not batch norm's
                u0 = mx.zeros(p[0].shape, p[0].dtype)
                return mx.vjp(lambda u: mx.vjp(inner, list(p), [u])[1], [u0], list(directions))[1][0]
        y = g(*primals)
        mx.eval(y)
        out.y_dot = to_numpy(y)
    elif mode == "jvp-of-vjp":
        dots = mx.jvp(first, [*primals, dy], [*directions, tdy])[1]
        mx.eval(dots)
        got = dict(zip(names, dots))
        out.grad_input_dot = to_numpy(got["x"])
        out.grad_weight_dot, out.grad_bias_dot = to_numpy(got.get("weight")), to_numpy(got.get("bias"))
    elif mode == "vjp-of-vjp":
        def l2(*p: Any) -> Any:
            return sum((a * c).sum() for a, c in zip(first(*p), directions))

        second = mx.grad(l2, argnums=list(range(len(primals) + 1)))(*primals, dy)
        mx.eval(second)
        got = dict(zip([*names, "dy"], second))
        out.grad2_input, out.grad2_output = to_numpy(got["x"]), to_numpy(got["dy"])
        out.grad2_weight, out.grad2_bias = to_numpy(got.get("weight")), to_numpy(got.get("bias"))
    return out
