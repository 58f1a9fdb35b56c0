"""TensorFlow forms: the fused kernel and the ``tf.nn`` composite, eagerly and under XLA."""

from __future__ import annotations

import os
from typing import Any

from ..contract import DERIVATIVE_MODES, Capabilities, Case, Finding, Outcome
from ..jax_derivatives import directions_of
from ..tensorflow import _FORMATS as _TF_FORMATS
from ..tensorflow import TfFusedAdapter, _to_tf
from ..tensorflow import _to_numpy as _tf_numpy
from ..tensorflow_derivatives import derivatives
from ._common import _first_order_only

# -- TensorFlow: the kernels under XLA -------------------------------------------------------------

_FX1 = ("FX1: XLA lowers FusedBatchNormV3 through its batch-norm expander, which takes the batch variance one-pass, "
        "E[x^2] - E[x]^2, unclamped: a float32 channel at 1e4 with spread 1 gets variance -27.8 and NaN output "
        "(BN-TRAIN-2; tensorflow#118701); ")


# FX3: under XLA the derivative of rsqrt(var + eps) underflows float32 for very large spreads (eager TensorFlow keeps
# it), so dx loses its path through the variance; the mechanism of Flax's X10 and Keras's K6. Trigger: the drawn
# magnitude-extremes case (m = 2, x = [-3.8e14, -7.7e14]) that showed it, 66% of dx's scale off.
FX3 = Finding(
    id="FX3", summary="under XLA, float32 gradients through the variance are lost for spreads above about 1e12: the "
                      "derivative of rsqrt(var + eps) underflows float32 (eager TensorFlow is right) (BN-GRAD-1)",
    clauses=("BN-GRAD-1", "BN-PREC-5"), outputs=("grad_input",),
    trigger_check="grad-train", trigger=(("shape", (2, 1)), ("data", "huge"), ("grad", "normal"), ("seed", 2)),
)


class TfFusedXlaAdapter(TfFusedAdapter):
    """``fused_batch_norm`` and its gradient inside ``tf.function(jit_compile=True)`` (XLA on the CPU).

    One traced function per (training, data format, eps, momentum, gradient asked): the float
    attributes are trace-time constants, and tf.function retraces per input shape and dtype itself.
    """

    name = "tf-fused-xla"
    capabilities = _first_order_only(
        TfFusedAdapter.capabilities,
        "tf.function(jit_compile=True) around tf.compat.v1.nn.fused_batch_norm and its tf.GradientTape "
        "gradient (XLA's lowering of FusedBatchNormV3, CPU); higher-order derivatives not claimed; "
        + TfFusedAdapter.capabilities.notes,
        known_deviations=TfFusedAdapter.capabilities.known_deviations + (
            ("eval-output", "FX2: XLA's CPU code flushes results below the float32 normal range to zero (y = 0 where "
                            "the exact value is -1.17e-38), as TensorFlow's eager CPU kernels do not (BN-EVAL-1, "
                            "BN-PREC-3)"),) + tuple((check, _FX1 + what) for check, what in (
            ("train-output", "the output (NaN once the variance goes negative)"), ("train-batch-stats", "the output"),
            ("layout-channel-last", "the running variance"), ("running-momentum", "the running variance"),
            ("grad-train", "the gradients (NaN)"), ("special-nonfinite", "the finite channels' outputs"),
            ("special-constant", "a constant channel's variance is not exactly 0, so dx is off"),
            ("scenario-multistep", "the running variance"), ("dtype-half", "the output and running variance"))),
    )

    def __init__(self) -> None:
        super().__init__()
        self._fns: dict[tuple[Any, ...], Any] = {}

    def _fn(self, training: bool, fmt: str, eps: float, momentum: float | None, grad: bool) -> Any:
        key = (training, fmt, eps, momentum, grad)
        if key not in self._fns:
            tf = self._tf

            def step(x: Any, scale: Any, offset: Any, mean: Any, var: Any, dy: Any) -> Any:
                with tf.GradientTape() as tape:
                    tape.watch([x, scale, offset])
                    y, m, v = tf.compat.v1.nn.fused_batch_norm(
                        x, scale, offset, mean=mean, variance=var, epsilon=eps, data_format=fmt,
                        is_training=training, exponential_avg_factor=momentum)
                grads = tape.gradient(y, [x, scale, offset], output_gradients=dy) if grad else []
                return [y, m, v, *grads]

            self._fns[key] = tf.function(step, jit_compile=True)
        return self._fns[key]

    def run(self, case: Case) -> Outcome:
        fmt = _TF_FORMATS.get((case.x.ndim, case.channel_axis), "NHWC")
        grad = case.grad_output is not None
        args = [_to_tf(a) for a in (case.x, case.weight, case.bias, case.running_mean, case.running_var)]
        dy = _to_tf(case.grad_output) if grad else self._tf.zeros([0])
        res = [_tf_numpy(t) for t in self._fn(case.training, fmt, case.eps, case.momentum, grad)(*args, dy)]
        out = Outcome(y=res[0], running_mean=res[1], running_var=res[2])
        if grad:
            out.grad_input, out.grad_weight, out.grad_bias = res[3:6]
        return out


_TN1 = ("TN1: tf.nn.batch_normalization computes x * inv + (beta - mean * inv) with inv = gamma * rsqrt(var + eps), "
        "not (x - mean) * inv + beta: where |mean| is large against |x - mean| the two products cancel, and results "
        "below the float32 normal range come back as 0 (BN-TRAIN-1, BN-EVAL-1, BN-PREC-3; tensorflow#117318)")
# TN4: tf.nn.moments takes the variance as mean((x - stop_gradient(mean))^2) (tensorflow/python/ops/nn_impl.py). The
# mean's path through the variance has derivative 2 mean(x - mean) = 0, so first derivatives are right; its derivative
# is not 0, so second and higher derivatives lose the term. Minimal case in spec/conventions.md.
TN4 = Finding(
    id="TN4", summary="tf.nn.moments stops the gradient of the mean inside the variance: first derivatives are right, "
                      "second and higher derivatives in training drop the mean's path through the variance",
    clauses=("BN-GRAD-5", "BN-GRAD-6", "BN-GRAD-7", "BN-PREC-8"),
    trigger_check="grad2-train", trigger=(("shape", (3, 1)), ("grad", "normal"), ("seed", 0)),
)
_TN2 = ("TN2: a float16/bfloat16 x is normalized in the half dtype (batch_normalization does not promote; moments "
        "promotes float16 only) (BN-DTYPE-2)")


class TfNnAdapter:
    """``tf.nn.moments`` + ``tf.nn.batch_normalization``, the composite a TensorFlow user writes by hand.

    Training normalizes with the batch moments and, when tracked, updates the running statistics
    as Keras 2 did: ``(1 - alpha) * running + alpha * batch``, the variance the biased one that
    ``tf.nn.moments`` returns (profile ``biased-running-var``). Eval normalizes with the running
    statistics, or with the batch moments when none are tracked. Parameters and state are in the
    input's dtype (``batch_normalization`` does not mix dtypes). Gradients by ``tf.GradientTape``.
    ``jit``: the step inside ``tf.function(jit_compile=True)``, one traced function per structure.
    """

    name = "tf-nn"
    jit = False
    capabilities = Capabilities(
        dtypes=("float16", "float32", "float64", "bfloat16"),
        channel_axes=(1, -1),
        ranks=(2, 3, 4, 5),
        cumulative_average=False,
        counter=False,
        running_var="biased",
        notes="tf.nn.moments(x, all axes but the channel) and tf.nn.batch_normalization(x, mean, var, beta, gamma, eps); "
              "running update (1 - alpha) * running + alpha * batch with the biased variance; parameters and state in "
              "the input's dtype; gradients by tf.GradientTape (higher orders: tf.GradientTape nested and "
              "tf.autodiff.ForwardAccumulator); eager",
        known_deviations=tuple((check, _TN1) for check in (
            "train-output", "train-affine-off", "train-batch-stats", "eval-output", "eval-untracked",
            "layout-channel-last", "special-nonfinite", "special-constant", "grad-train")) + tuple(
            (check, _TN2) for check in ("dtype-half", "dtype-half-params")) + tuple(
            (check, "TN3: the tf.nn composite validates nothing: " + what) for check, what in (
                ("arg-one-value", "one value per channel gives y = beta (BN-ARG-1)"),
                ("arg-shape", "parameters of another length broadcast (BN-ARG-2)"),
                ("arg-non-floating", "an integer x is normalized in integer arithmetic (BN-ARG-3)"),
                ("arg-negative-eps", "a negative epsilon is accepted (BN-ARG-4)"),
                ("arg-momentum-range", "a momentum outside [0, 1] is accepted (BN-ARG-5)"),
                ("empty-batch", "an empty batch turns the running statistics into NaN (BN-EMPTY-1)"))),
        findings=(TN4,),
        derivatives=DERIVATIVE_MODES,
        max_order=3,
    )

    def __init__(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        self._tf = tf
        self._fns: dict[tuple[Any, ...], Any] = {}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def _fn(self, case: Case) -> Any:
        tf = self._tf
        key = (case.channel_axis, case.x.ndim, case.training, case.tracked, case.eps, case.momentum,
               case.weight is not None, case.bias is not None, case.grad_output is not None)
        if key in self._fns:
            return self._fns[key]
        axes = [d for d in range(case.x.ndim) if d != case.channel_axis]
        shape = [1] * case.x.ndim
        shape[case.channel_axis] = -1
        training, tracked, eps, alpha, grad = case.training, case.tracked, case.eps, case.momentum, case.grad_output is not None

        def step(x: Any, params: list[Any], rm: Any, rv: Any, dy: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch([x, *(p for p in params if p is not None)])
                scale, offset = (tf.reshape(p, shape) if p is not None else None for p in params)
                if training or not tracked:
                    mean, var = tf.nn.moments(x, axes=axes)
                else:
                    mean, var = rm, rv
                y = tf.nn.batch_normalization(x, tf.reshape(mean, shape), tf.reshape(var, shape), offset, scale, eps)
            outs = [y]
            if tracked:
                outs += [rm * (1 - alpha) + mean * alpha, rv * (1 - alpha) + var * alpha] if training else [rm, rv]
            else:
                outs += [None, None]
            if grad:
                present = [p for p in params if p is not None]
                g = tape.gradient(y, [x, *present], output_gradients=dy)
                outs += [g[0]] + [g.pop(1) if p is not None else None for p in params]
            return outs

        self._fns[key] = tf.function(step, jit_compile=True) if self.jit else step
        return self._fns[key]

    def function(self, case: Case) -> Any:
        """The composite as ``f(x, *params) -> y``, ``params`` the case's weight and bias (those present)."""
        tf = self._tf
        axes = [d for d in range(case.x.ndim) if d != case.channel_axis]
        shape = [1] * case.x.ndim
        shape[case.channel_axis] = -1
        names = [n for n, v in (("weight", case.weight), ("bias", case.bias)) if v is not None]
        rm, rv = _to_tf(case.running_mean), _to_tf(case.running_var)
        batch = case.training or not case.tracked

        def f(x: Any, *params: Any) -> Any:
            p = {n: tf.reshape(v, shape) for n, v in zip(names, params)}
            mean, var = tf.nn.moments(x, axes=axes) if batch else (rm, rv)
            return tf.nn.batch_normalization(x, tf.reshape(mean, shape), tf.reshape(var, shape), p.get("bias"),
                                             p.get("weight"), case.eps)

        return f

    def run(self, case: Case) -> Outcome:
        tf = self._tf
        if case.derivative is not None:  # BN-GRAD-4..7, eagerly (the XLA form claims none)
            return derivatives(case, self.function(case), *directions_of(case, _to_tf))
        x = _to_tf(case.x)
        params = [_to_tf(case.weight), _to_tf(case.bias)]
        rm, rv = _to_tf(case.running_mean), _to_tf(case.running_var)
        dy = _to_tf(case.grad_output) if case.grad_output is not None else tf.zeros([0])
        res = [_tf_numpy(t) for t in self._fn(case)(x, params, rm, rv, dy)]
        out = Outcome(y=res[0], running_mean=res[1], running_var=res[2])
        if case.grad_output is not None:
            out.grad_input, out.grad_weight, out.grad_bias = res[3:6]
        return out


class TfNnXlaAdapter(TfNnAdapter):
    name = "tf-nn-xla"
    jit = True
    capabilities = _first_order_only(
        TfNnAdapter.capabilities,
        TfNnAdapter.capabilities.notes.replace("; eager", "; inside tf.function(jit_compile=True) (XLA, CPU); "
                                                          "higher-order derivatives not claimed"),
        findings=(FX3,))


