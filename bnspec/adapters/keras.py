"""Keras 3 adapters: ``keras.layers.BatchNormalization`` on the ``jax``, ``torch`` and ``tensorflow`` backends.

Keras chooses its backend once per process, from ``KERAS_BACKEND`` when ``keras`` is first
imported; an adapter sets it before its import, and cannot run where keras was already imported
with another backend. The mapping (``spec/conventions.md``, 2.4): ``momentum = 1 - alpha`` (Keras
weights the old value), ``epsilon = eps``, ``axis`` = the case's channel axis, ``center`` / ``scale``
off for an absent beta / gamma. The layer runs under its own ``training=`` flag; its moving statistics
use the biased batch variance (profile ``biased-running-var``), and it has no cumulative average,
no counter and no untracked mode. The dtype policy follows the case: the input's dtype, or
``mixed_float16`` / ``mixed_bfloat16`` for a half input with float32 parameters and state.
Gradients come from the backend's own autodiff: ``jax.vjp`` over ``Layer.stateless_call``,
``torch.autograd.grad``, ``tf.GradientTape``.
"""

from __future__ import annotations

import os
import sys
from typing import Any, ClassVar

import numpy as np

from ..dtypes import dtype_name
from ..errors import AdapterUnavailable
from . import jax_derivatives, pytorch_derivatives, tensorflow_derivatives
from .contract import DERIVATIVE_MODES, Capabilities, Case, Finding, Outcome

HALF = ("float16", "bfloat16")

# Findings recorded in spec/conventions.md (section 4, Keras); each still runs and is reported.
_DEVIATIONS: tuple[tuple[str, str], ...] = (
    ("arg-one-value", "K1: one value per channel in training gives y = beta and updates the moving "
                      "statistics, no error (BN-ARG-1)"),
    ("empty-batch", "K2: an empty batch turns the moving mean and variance into NaN (BN-EMPTY-1)"),
    ("arg-negative-eps", "K3: a negative epsilon is accepted (BN-ARG-4)"),
    ("arg-momentum-range", "K3: a momentum outside [0, 1] is accepted (BN-ARG-5)"),
)


_K4 = ("K4: the torch backend's moments() compute the variance one-pass, E[x^2] - E[x]^2 without clamping, "
       "which loses precision whenever the mean is not small against the spread (BN-TRAIN-2); ")
# K8: Keras takes the decay d = 1 - alpha and blends with (1 - d); the complement carries d's rounding error
# (1 - 0.99 = 0.010000000000000009), which a fresh layer (running mean 0) shows whole in float64.
K8 = Finding(id="K8", summary="the running statistics are blended with 1 - decay, which carries the decay's rounding "
                              "error: float64, momentum 0.01, running mean 0 gives 0.0036331371259602386 for "
                              "0.003633137125960235 (4 ulps, 1.25x BN-PREC-4)",
             clauses=("BN-RUN-1", "BN-RUN-2", "BN-PREC-4"), outputs=("running_mean", "running_var"))
# K9: on the TensorFlow backend the layer runs TensorFlow's CPU kernels, which flush subnormals (as F6).
K9 = Finding(id="K9", summary="tensorflow backend: float32 subnormal inputs and results are flushed to zero on the CPU, "
                              "as TensorFlow's own kernels (F6)",
             clauses=("BN-PREC-3", "BN-PREC-5", "BN-PREC-7"), outputs=("y", "grad_input", "grad_weight", "grad_bias"))
# KH1: the TensorFlow backend's moments() is tf.nn.moments, whose variance stops the gradient of the mean (TN4):
# second and higher derivatives in training are wrong (with the stop_gradient removed, all 8 GRAD2 checks pass).
KH1 = Finding(id="KH1", summary="tensorflow backend: moments() is tf.nn.moments, which stops the gradient of the mean "
                                "inside the variance (TN4): second and higher derivatives in training are wrong",
              clauses=("BN-GRAD-5", "BN-GRAD-6", "BN-GRAD-7", "BN-PREC-8"),
              trigger_check="grad2-train", trigger=(("shape", (3, 1)), ("grad", "normal"), ("seed", 0)))
# One root cause in every output computed from the batch variance: declared once, with its minimal case
# (a float32 channel at 1e4 with spread 1: negative variance, NaN output; spec/conventions.md) as trigger.
K4 = Finding(id="K4", summary=_K4.split(": ", 1)[1].rstrip("; "),
             clauses=("BN-TRAIN-2", "BN-TRAIN-4", "BN-TRAIN-5", "BN-LAYOUT-2", "BN-RUN-2", "BN-GRAD-1", "BN-GRAD-2",
                      "BN-SPECIAL-1", "BN-SPECIAL-2", "BN-PREC-6",
                      # and every higher order: with a two-pass moments() patched in, all 8 GRAD2 checks pass
                      "BN-GRAD-4", "BN-GRAD-5", "BN-GRAD-6", "BN-GRAD-7", "BN-PREC-8"),
             trigger_check="train-output", trigger=(("shape", (256, 2)), ("data", "offset"), ("offset", 1e4), ("seed", 4)))


# Keras's type promotion maps float64 to float32 on every backend but TensorFlow
# (keras/src/backend/common/dtypes.py, BIT64_TO_BIT32_DTYPE), and the layer computes in
# result_type(x.dtype, "float32"): a float64 layer returns float64 with float32 accuracy.
_NO_FLOAT64 = ("float64 left out (K5): with dtype='float64' the layer computes in result_type(float64, float32), "
               "which Keras maps to float32 on this backend, and returns float64 at float32 accuracy")


def loaded_backend() -> str | None:
    """The backend of the keras already imported in this process, or None if it is not imported."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return str(keras.config.backend())
    except Exception:  # noqa: BLE001 - a half-imported keras: read what it would have read
        return os.environ.get("KERAS_BACKEND")

# K6 and K7 (jax backend), found by the magnitude-extremes cases: the derivative of rsqrt underflows float32 for
# very large spreads, and XLA flushes subnormal results to zero on CPU. Triggers are drawn cases.
K6 = Finding(
    id="K6", summary="jax backend: float32 training gradients through the variance are lost for spreads above about "
                     "1e12 (the derivative of rsqrt(var + eps) underflows float32) (BN-GRAD-1)",
    clauses=("BN-GRAD-1", "BN-PREC-5"), outputs=("grad_input",),
    trigger_check="grad-train", trigger=(("shape", (2, 1)), ("data", "huge"), ("grad", "normal"), ("seed", 2)),
)
K7 = Finding(
    id="K7", summary="jax backend: XLA flushes float32 and bfloat16 subnormal results to zero on CPU (BN-PREC-3, BN-PREC-5)",
    clauses=("BN-PREC-3", "BN-PREC-5"),
    trigger_check="train-output", trigger=(("shape", (2, 1)), ("data", "tiny"), ("state", "fresh"), ("seed", 0)),
)


class _KerasAdapter:
    """``keras.layers.BatchNormalization`` on the backend named by ``backend``."""

    name: ClassVar[str]
    backend: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    @classmethod
    def unavailable_reason(cls) -> str | None:
        current = loaded_backend()
        if current is not None and current != cls.backend:
            return (f"keras is already imported in this process with the {current!r} backend; Keras picks its "
                    f"backend once per process (KERAS_BACKEND), so {cls.name} needs a process of its own")
        return None

    def __init__(self) -> None:
        reason = self.unavailable_reason()
        if reason:
            raise AdapterUnavailable(reason)
        if "keras" not in sys.modules:
            os.environ["KERAS_BACKEND"] = self.backend
        import keras

        if keras.config.backend() != self.backend:  # keras.json or a racing import won
            raise AdapterUnavailable(f"keras runs on the {keras.config.backend()!r} backend in this process, "
                                     f"not {self.backend!r}")
        self.keras = keras

    # -- per-backend pieces ----------------------------------------------------------------------

    def to_tensor(self, a: np.ndarray) -> Any:
        return self.keras.ops.convert_to_tensor(np.array(a, copy=True))

    def forward(self, layer: Any, x: Any, case: Case) -> tuple[Any, tuple[Any, Any, Any] | None]:
        """y, and (dx, dgamma, dbeta) when the case asks for gradients."""
        raise NotImplementedError

    def higher(self, f: Any, case: Case) -> Outcome:
        """BN-GRAD-4..7: the case's derivative of ``f(x, *params) -> y`` by the backend's own transforms."""
        raise NotImplementedError

    def function(self, layer: Any, case: Case) -> Any:
        """The built layer as ``f(x, *params) -> y`` through ``Layer.stateless_call``; ``params`` are the
        case's weight and bias (those present), in the order Keras creates gamma and beta."""
        frozen = [v.value for v in layer.non_trainable_variables]

        def f(x: Any, *params: Any) -> Any:
            return layer.stateless_call(list(params), frozen, x, training=case.training)[0]

        return f

    def tensor_or_none(self, a: np.ndarray | None) -> Any:
        return None if a is None else self.to_tensor(a)

    # -- the run ---------------------------------------------------------------------------------

    def policy(self, case: Case) -> str:
        """The dtype policy a Keras user would configure for this case's dtypes."""
        xdt = dtype_name(case.x.dtype)
        state = next((a for a in (case.running_mean, case.weight, case.bias) if a is not None), None)
        sdt = dtype_name(state.dtype) if state is not None else None
        if xdt is None or sdt is None or xdt == sdt:
            return xdt or sdt or "float32"
        if xdt in HALF and sdt == "float32":
            return f"mixed_{xdt}"
        return sdt  # no policy keeps both: the variables keep theirs, the output shows the rest

    def run(self, case: Case) -> Outcome:
        keras = self.keras
        momentum = 1.0 - case.momentum if case.momentum is not None else None  # None: float() raises
        layer = keras.layers.BatchNormalization(
            axis=case.axis, momentum=momentum, epsilon=case.eps, center=case.bias is not None,
            scale=case.weight is not None, dtype=self.policy(case),
        )
        layer.build(case.x.shape)
        for var, value in ((layer.gamma, case.weight), (layer.beta, case.bias),
                           (layer.moving_mean, case.running_mean), (layer.moving_variance, case.running_var)):
            if var is not None and value is not None:
                var.assign(self.to_tensor(value))
        if case.derivative is not None:  # BN-GRAD-4..7
            return self.higher(self.function(layer, case), case)
        y, grads = self.forward(layer, self.to_tensor(case.x), case)
        return self.outcome(layer, y, grads)

    def outcome(self, layer: Any, y: Any, grads: tuple[Any, Any, Any] | None) -> Outcome:
        """The step's results as NumPy: y, the layer's moving statistics after it, and (dx, dgamma, dbeta)."""
        numpy = self.keras.ops.convert_to_numpy
        out = Outcome(y=numpy(y), running_mean=numpy(layer.moving_mean), running_var=numpy(layer.moving_variance))
        if grads is not None:
            dx, dgamma, dbeta = grads
            out.grad_input = numpy(dx)
            out.grad_weight = numpy(dgamma) if dgamma is not None else None
            out.grad_bias = numpy(dbeta) if dbeta is not None else None
        return out


def _capabilities(notes: str, deviations: tuple[tuple[str, str], ...] = (), float64: bool = True,
                  findings: tuple[Finding, ...] = ()) -> Capabilities:
    return Capabilities(
        dtypes=("float16", "float32") + (("float64",) if float64 else ()) + ("bfloat16",),
        channel_axes=(1, -1),
        ranks=(2, 3, 4, 5),
        cumulative_average=False,  # momentum=None: TypeError from float()
        counter=False,
        untracked=False,  # the layer always owns moving_mean and moving_variance
        running_var="biased",
        dtype_rule="promoted",  # an integer input is converted to the policy's compute dtype
        stats_dtypes=("float32",),  # mixed_float16 / mixed_bfloat16 policies
        notes="keras.layers.BatchNormalization(axis, momentum=1-alpha, epsilon, center, scale, dtype policy), "
              "called with training=True/False; " + notes,
        known_deviations=_DEVIATIONS + deviations,
        findings=findings + (K8,),
        derivatives=DERIVATIVE_MODES,
        max_order=3,
    )


class KerasJaxAdapter(_KerasAdapter):
    """The JAX backend; gradients by ``jax.vjp`` over ``stateless_call`` (Keras's functional form on JAX)."""

    name = "keras-jax"
    backend = "jax"
    capabilities = _capabilities(
        "JAX backend (default jax config); gradients by jax.vjp over Layer.stateless_call. " + _NO_FLOAT64, float64=False,
        findings=(K6, K7))

    def forward(self, layer: Any, x: Any, case: Case) -> tuple[Any, tuple[Any, Any, Any] | None]:
        import jax

        if case.grad_output is None:
            return layer(x, training=case.training), None
        trainable = [v.value for v in layer.trainable_variables]
        frozen = [v.value for v in layer.non_trainable_variables]

        def f(x: Any, trainable: list[Any]) -> tuple[Any, list[Any]]:
            return layer.stateless_call(trainable, frozen, x, training=case.training)

        y, vjp, new_state = jax.vjp(f, x, trainable, has_aux=True)
        dx, dtrain = vjp(self.to_tensor(case.grad_output))
        for var, value in zip(layer.non_trainable_variables, new_state):
            var.assign(value)
        by_var = {id(v): g for v, g in zip(layer.trainable_variables, dtrain)}
        return y, (dx, by_var.get(id(layer.gamma)), by_var.get(id(layer.beta)))

    def higher(self, f: Any, case: Case) -> Outcome:
        return jax_derivatives.derivatives(case, f, *jax_derivatives.directions_of(case, self.to_tensor))


class KerasTorchAdapter(_KerasAdapter):
    """The PyTorch backend; gradients by ``torch.autograd.grad``."""

    name = "keras-torch"
    backend = "torch"
    capabilities = _capabilities(
        "PyTorch backend; its moments() take a one-pass E[x^2]-E[x]^2 variance (finding K4). " + _NO_FLOAT64,
        tuple((check, _K4 + what) for check, what in (
            ("dtype-half", "the running variance"), ("dtype-half-params", "outputs and gradients"))),
        float64=False,
        findings=(K4,),
    )

    def to_tensor(self, a: np.ndarray) -> Any:
        from .pytorch import to_torch

        return self.keras.ops.convert_to_tensor(to_torch(a, "cpu"))  # bfloat16 through its bits

    def forward(self, layer: Any, x: Any, case: Case) -> tuple[Any, tuple[Any, Any, Any] | None]:
        import torch

        if case.grad_output is None:
            return layer(x, training=case.training), None
        x.requires_grad_(True)
        params = [v.value for v in (layer.gamma, layer.beta) if v is not None]
        y = layer(x, training=case.training)
        grads = list(torch.autograd.grad(y, [x, *params], self.to_tensor(case.grad_output), allow_unused=True))
        dx = grads.pop(0)
        dgamma = grads.pop(0) if layer.gamma is not None else None
        dbeta = grads.pop(0) if layer.beta is not None else None
        return y, (dx, dgamma, dbeta)

    def higher(self, f: Any, case: Case) -> Outcome:
        from .pytorch import to_numpy

        inputs = pytorch_derivatives.inputs_of(case, self.tensor_or_none)
        return pytorch_derivatives.derivatives(case, f, *inputs, to_numpy)


class KerasTensorflowAdapter(_KerasAdapter):
    """The TensorFlow backend; gradients by ``tf.GradientTape``."""

    name = "keras-tensorflow"
    backend = "tensorflow"
    capabilities = _capabilities("TensorFlow backend; gradients by tf.GradientTape", findings=(K9, KH1))

    def __init__(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ log lines on every error
        super().__init__()

    def forward(self, layer: Any, x: Any, case: Case) -> tuple[Any, tuple[Any, Any, Any] | None]:
        import tensorflow as tf

        if case.grad_output is None:
            return layer(x, training=case.training), None
        params = [v for v in (layer.gamma, layer.beta) if v is not None]
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=case.training)
        grads = tape.gradient(y, [x, *params], output_gradients=self.to_tensor(case.grad_output))
        dx = grads.pop(0)
        dgamma = grads.pop(0) if layer.gamma is not None else None
        dbeta = grads.pop(0) if layer.beta is not None else None
        return y, (dx, dgamma, dbeta)

    def higher(self, f: Any, case: Case) -> Outcome:
        return tensorflow_derivatives.derivatives(case, f, *jax_derivatives.directions_of(case, self.to_tensor))
