"""Derivatives beyond the first (BN-GRAD-4..7) through TensorFlow's tapes, for ``tf-fused`` and Keras.

``derivatives(case, f, primals, directions, dy, tdy)`` answers the case's mode with ``f(*p) -> y``:

* ``jvp``: ``tf.autodiff.ForwardAccumulator`` nested ``order`` times;
* ``vjp-nested``: ``tf.GradientTape`` only; each order is ``J t = d<J^T u, t>/du``, nested
  ``order`` times (tapes record the gradients computed inside them);
* ``jvp-of-vjp``: a ``ForwardAccumulator`` around a ``GradientTape`` (forward over reverse);
* ``vjp-of-vjp``: a ``GradientTape`` around a ``GradientTape`` (double backward).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .contract import DERIVATIVE_MODES, Case, Outcome

MODES = DERIVATIVE_MODES


def _jvp(f: Callable[..., Any], tangents: list[Any]) -> Callable[..., Any]:
    import tensorflow as tf

    def g(*p: Any) -> Any:
        with tf.autodiff.ForwardAccumulator(list(p), list(tangents)) as acc:
            y = f(*p)
        return acc.jvp(y, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return g


def _transposed_vjp(f: Callable[..., Any], tangents: list[Any]) -> Callable[..., Any]:
    import tensorflow as tf

    def g(*p: Any) -> Any:
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(list(p))
                y = f(*p)
            u = tf.zeros_like(y)
            outer.watch(u)
            vj = inner.gradient(y, list(p), output_gradients=u, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            s = tf.add_n([tf.reduce_sum(a * t) for a, t in zip(vj, tangents)])
        return outer.gradient(s, u, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return g


def derivatives(case: Case, f: Callable[..., Any], primals: list[Any], directions: list[Any],
                dy: Any = None, tdy: Any = None) -> Outcome:
    """The higher-order outputs of ``case``; ``primals`` ``[x, (weight), (bias)]``, ``directions`` the
    tangents (cotangents for ``vjp-of-vjp``) in the same order, TensorFlow tensors."""
    import tensorflow as tf

    zero = tf.UnconnectedGradients.ZERO
    mode, k = case.derivative, int(case.order)
    names = ["x"] + [n for n, v in (("weight", case.weight), ("bias", case.bias)) if v is not None]
    as_np = (lambda t: None if t is None else np.array(t.numpy(), copy=True))  # noqa: E731
    out = Outcome()
    if mode in ("jvp", "vjp-nested"):
        g = f
        for _ in range(k):
            g = (_jvp if mode == "jvp" else _transposed_vjp)(g, directions)
        out.y_dot = as_np(g(*primals))
    elif mode == "jvp-of-vjp":
        with tf.autodiff.ForwardAccumulator([*primals, dy], [*directions, tdy]) as acc:
            with tf.GradientTape() as tape:
                tape.watch(primals)
                y = f(*primals)
            first = tape.gradient(y, primals, output_gradients=dy, unconnected_gradients=zero)
        got = dict(zip(names, [acc.jvp(a, unconnected_gradients=zero) for a in first]))
        out.grad_input_dot = as_np(got["x"])
        out.grad_weight_dot, out.grad_bias_dot = as_np(got.get("weight")), as_np(got.get("bias"))
    elif mode == "vjp-of-vjp":
        with tf.GradientTape() as outer:
            outer.watch([*primals, dy])
            with tf.GradientTape() as inner:
                inner.watch(primals)
                y = f(*primals)
            first = inner.gradient(y, primals, output_gradients=dy, unconnected_gradients=zero)
            l2 = tf.add_n([tf.reduce_sum(a * c) for a, c in zip(first, directions)])
        got = dict(zip([*names, "dy"], outer.gradient(l2, [*primals, dy])))
        out.grad2_input, out.grad2_output = as_np(got["x"]), as_np(got["dy"])
        out.grad2_weight, out.grad2_bias = as_np(got.get("weight")), as_np(got.get("bias"))
    return out
