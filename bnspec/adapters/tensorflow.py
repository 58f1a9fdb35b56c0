"""TensorFlow adapter ``tf-fused``: the fused batch-norm kernel (``FusedBatchNormV3``) that Keras 2
and ``tf.compat.v1.nn.fused_batch_norm`` call, with gradients from ``tf.GradientTape``.

The op is functional: running statistics go in as ``mean``/``variance`` and the updated ones come
out, and ``exponential_avg_factor`` is the spec's momentum in the same direction (weight of the
new batch). ``is_training`` is the training switch. The channel axis is ``data_format``: NCHW /
NCDHW for axis 1, NHWC / NDHWC for the last axis, and the op takes rank 4 and 5 only (F4).
Scale, offset and statistics are float32 whatever the input (``U`` is float), so half inputs run
with float32 parameters only, and float64 is not accepted. There is no counter, no cumulative
average, no affine-off and no untracked mode in the op (``spec/conventions.md``, 2.3).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .contract import Capabilities, Case, Finding, Outcome
from .jax_derivatives import directions_of
from .tensorflow_derivatives import MODES, derivatives

# Findings recorded in spec/conventions.md (section 4, TensorFlow); each check still runs and is reported.
_DEVIATIONS = (
    ("arg-one-value", "F1: one value per channel in training gives y = offset and updates the statistics "
                      "(the Bessel factor clamped to 1), no error (BN-ARG-1)"),
    ("empty-batch", "F2: an empty batch returns NaN mean and variance (BN-EMPTY-1)"),
    ("arg-negative-eps", "F3: a negative epsilon is accepted (BN-ARG-4)"),
    ("arg-momentum-range", "F3: an exponential_avg_factor outside [0, 1] is accepted (BN-ARG-5)"),
    ("arg-shape", "F5: with exponential_avg_factor = 1 the mean and variance inputs are not read, so a wrong "
                  "length is not rejected (BN-ARG-2)"),
)
# F6: TensorFlow's CPU threads flush subnormals to zero; its trigger is a drawn magnitude-extremes case
# (float32 data near the smallest normal, eval with a fresh layer's statistics).
F6 = Finding(
    id="F6", summary="float32 subnormal inputs and results are flushed to zero on the CPU (BN-PREC-3, BN-PREC-5)",
    clauses=("BN-PREC-3", "BN-PREC-5"),
    trigger_check="eval-output",
    trigger=(("shape", (16, 1, 8, 8)), ("training", False), ("data", "tiny"), ("state", "fresh"), ("seed", 0)),
)
# Findings on derivatives beyond the first (spec/conventions.md, section 4); filled in from measured runs.
_FH1 = ("FH1: the gradient of FusedBatchNormGradV3 (_FusedBatchNormGradGrad) is differentiated with the batch "
        "mean and variance as constants, so the third derivative is wrong, by GradientTape and by ForwardAccumulator "
        "alike (orders 1 and 2 are right) (BN-GRAD-7)")
_HIGHER_DEVIATIONS: tuple[tuple[str, str], ...] = (
    ("order3-right-or-raised", _FH1),
    ("order3-reverse-right-or-raised", _FH1),
)

_FORMATS = {(4, 1): "NCHW", (4, 3): "NHWC", (5, 1): "NCDHW", (5, 4): "NDHWC"}


def _to_tf(a: np.ndarray | None) -> Any:
    import tensorflow as tf

    return None if a is None else tf.constant(np.array(a, copy=True))


def _to_numpy(t: Any) -> np.ndarray | None:
    """A tensor as a NumPy array of its own dtype."""
    if t is None:
        return None
    return np.array(t.numpy(), copy=True)  # TensorFlow's bfloat16 is ml_dtypes' own


class TfFusedAdapter:
    """``tf.compat.v1.nn.fused_batch_norm`` (FusedBatchNormV3) under ``tf.GradientTape``."""

    name = "tf-fused"
    capabilities = Capabilities(
        dtypes=("float16", "float32", "bfloat16"),
        channel_axes=(1, -1),
        ranks=(4, 5),
        cumulative_average=False,
        counter=False,
        untracked=False,
        affine_off=False,
        stats_dtypes=("float32",),
        half_params=False,
        notes="tf.compat.v1.nn.fused_batch_norm (FusedBatchNormV3) on the CPU; exponential_avg_factor = momentum; "
              "data_format NC(D)HW / N(D)HWC; rank 4 and 5 only; float32 scale, offset and statistics",
        known_deviations=_DEVIATIONS + _HIGHER_DEVIATIONS,
        findings=(F6,),
        derivatives=MODES,
        max_order=3,
    )

    def __init__(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the report
        import tensorflow as tf

        self._tf = tf

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def function(self, case: Case) -> Any:
        """The op as ``f(x, scale, offset) -> y`` (the statistics it returns are dropped)."""
        fmt = _FORMATS.get((case.x.ndim, case.channel_axis), "NHWC")
        mean, var = _to_tf(case.running_mean), _to_tf(case.running_var)

        def f(x: Any, scale: Any, offset: Any) -> Any:
            return self._tf.compat.v1.nn.fused_batch_norm(
                x, scale, offset, mean=mean, variance=var, epsilon=case.eps, data_format=fmt,
                is_training=case.training, exponential_avg_factor=case.momentum)[0]

        return f

    def run(self, case: Case) -> Outcome:
        tf = self._tf
        if case.derivative is not None:  # BN-GRAD-4..7
            return derivatives(case, self.function(case), *directions_of(case, _to_tf))
        fmt = _FORMATS.get((case.x.ndim, case.channel_axis), "NHWC")
        x, scale, offset = _to_tf(case.x), _to_tf(case.weight), _to_tf(case.bias)
        with tf.GradientTape() as tape:
            tape.watch([t for t in (x, scale, offset) if t.dtype.is_floating])  # an integer x is the op's to reject
            y, mean, var = tf.compat.v1.nn.fused_batch_norm(
                x, scale, offset,
                mean=_to_tf(case.running_mean),
                variance=_to_tf(case.running_var),
                epsilon=case.eps,
                data_format=fmt,
                is_training=case.training,
                exponential_avg_factor=case.momentum,
            )
        # The returned statistics are the state after the call (in inference, the op returns its inputs).
        out = Outcome(y=_to_numpy(y), running_mean=_to_numpy(mean), running_var=_to_numpy(var))
        if case.grad_output is not None:
            dx, dscale, doffset = tape.gradient(y, [x, scale, offset], output_gradients=_to_tf(case.grad_output))
            out.grad_input, out.grad_weight, out.grad_bias = _to_numpy(dx), _to_numpy(dscale), _to_numpy(doffset)
        return out
