"""Flax adapters: ``flax-linen`` (``flax.linen.BatchNorm``) and ``flax-nnx`` (``flax.nnx.BatchNorm``).

Flax's ``momentum`` weights the *old* running value, so the spec's alpha is passed as
``1 - alpha``. The channel axis is Flax's own ``axis`` argument. The output dtype is Flax's
``dtype`` argument, set to the input's floating dtype (what mixed-precision Flax code configures;
left to Flax's promotion for a non-floating input), and ``param_dtype`` to the parameters'.
``use_fast_variance`` keeps Flax's default, True: the batch variance is the one-pass
E[x^2] - E[x]^2, clamped at 0. Float64 needs ``jax_enable_x64``, which instantiating an adapter
turns on for the whole process. Flax keeps no batch counter, has no cumulative average and no
untracked mode (linen raises without the ``batch_stats`` collection; nnx always owns its stats).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..dtypes import dtype_name
from .contract import Capabilities, Case, Finding, Outcome
from .jax_derivatives import MODES, derivatives, directions_of

# Findings of spec/conventions.md, section 4 ("Flax 0.12.8"), and the ones measured while writing these
# adapters (reasons without an ID); each check still runs and is reported.
_X4 = ("X4: the default use_fast_variance=True computes the batch variance as E[x^2] - E[x]^2 (clamped at 0), "
       "which loses precision whenever the mean is not small against the spread (BN-TRAIN-2); ")
# X4 is one root cause that shows in every output computed from the batch variance: declared once,
# with its minimal case (a float32 channel at 1e4 with spread 1, spec/conventions.md) as the trigger.
X4 = Finding(
    id="X4", summary=_X4.split(": ", 1)[1].rstrip("; "),
    clauses=("BN-TRAIN-2", "BN-TRAIN-4", "BN-TRAIN-5", "BN-LAYOUT-2", "BN-RUN-2", "BN-GRAD-1", "BN-GRAD-2",
             "BN-SPECIAL-1", "BN-SPECIAL-2", "BN-PREC-6"),
    trigger_check="train-output",
    trigger=(("shape", (256, 2)), ("data", "offset"), ("offset", 1e4), ("seed", 4)),
)
# X10: a float32 spread above about 1e12 loses dx's path through the variance (the derivative of rsqrt
# underflows float32 and is flushed to zero); its trigger is a drawn magnitude-extremes case (spread 4.5e14).
X10 = Finding(
    id="X10", summary="float32 training gradients through the variance are lost for spreads above about 1e12: "
                      "JAX's derivative of rsqrt(var + eps), -(var + eps)**-1.5 / 2, underflows float32 (BN-GRAD-1)",
    clauses=("BN-GRAD-1", "BN-PREC-5"), outputs=("grad_input",),
    trigger_check="grad-train",
    trigger=(("shape", (12, 1)), ("data", "huge"), ("grad", "normal"), ("seed", 2)),
)
# X11: XLA's CPU runtime flushes subnormal results to zero; data near float32's smallest normal (the
# magnitude-extremes "tiny" cases) lose the products that fall below it.
X11 = Finding(
    id="X11", summary="XLA on CPU flushes subnormal results to zero, so float32 products below 1.2e-38 vanish "
                      "(BN-PREC-3, BN-PREC-5)",
    clauses=("BN-PREC-3", "BN-PREC-5"),
    trigger_check="grad-train",
    trigger=(("shape", (24, 1)), ("data", "tiny"), ("grad", "normal"), ("seed", 0)),
)
_SHARED = (
    ("arg-one-value", "X1: one value per channel in training gives y = beta and updates the stats, no error (BN-ARG-1)"),
    ("empty-batch", "X2: an empty batch turns the running mean and variance into NaN (BN-EMPTY-1)"),
    ("arg-negative-eps", "X3: a negative epsilon is accepted (BN-ARG-4)"),
    ("arg-momentum-range", "X3: a momentum outside [0, 1] is accepted (BN-ARG-5)"),
    ("arg-shape", "X6: with one channel, running statistics of another length broadcast instead of raising (linen eval: "
                  "y takes their length; nnx training: the stored mean keeps it) (BN-ARG-2)"),
    ("dtype-half-params", "X7: with float16/bfloat16 parameters and state, eval normalizes in the half dtype "
                          "(x - mean and rsqrt(var + eps) are not promoted), up to 2.5 ulps against 0.5 "
                          "(BN-DTYPE-2); X4 in training"),
)
# X4 carried to higher orders (BN-GRAD-4..7), measured on flax-linen at seed 0: the one-pass variance's lost digits
# are amplified by each differentiation; XH1: its clamp max(0, var) passes half the variance's tangent at a tie.
_X4_HIGHER = ("X4 at higher orders: derivatives of the one-pass variance E[x^2] - E[x]^2 carry its lost digits, "
              "amplified at each order; XH1: at a constant channel the clamp max(0, var) ties and JAX passes half "
              "of the variance's tangent, so the third derivative is halved")
_HIGHER = tuple((name, _X4_HIGHER) for name in ("jvp-train", "grad2-train", "jvp-over-vjp", "order3-right-or-raised",
                                                "order3-reverse-right-or-raised"))
_LINEN_DEVIATIONS = _SHARED + _HIGHER + (
    ("dtype-half", "X8: the backward pass of a float16/bfloat16 x rounds each use's cotangent to the half dtype "
                   "before summing them, so dx cancels in half precision (x = [0, 0.5]: dx = 0 instead of +-6.4e-4) "
                   "(BN-DTYPE-2); X4 for the running variance"),
    ("dtype-output", "X5: a training step returns half-precision running statistics as float32, the "
                     "dtype of the update's promotion, not the state's own (BN-DTYPE-3)"),
)
_NNX_DEVIATIONS = _SHARED + (
    ("dtype-half", "X9: with dtype=float16/bfloat16, nnx casts the float32 parameters and statistics to it "
                   "(promote_dtype), so dgamma and dbeta carry half precision though they are float32; X8: dx "
                   "cancels in half precision as in linen (BN-DTYPE-2); X4 for the running variance"),
)

_NOTES = (
    "use_fast_variance=True (Flax's default: one-pass E[x^2]-E[x]^2 batch variance, clamped at 0); "
    "momentum passed as 1 - alpha; dtype= the input's dtype, param_dtype= the parameters'; "
    "jax_enable_x64 is turned on when the adapter is instantiated; no counter, no cumulative average, "
    "no untracked mode"
)


def _to_jax(a: np.ndarray | None) -> Any:
    import jax.numpy as jnp

    return None if a is None else jnp.array(a, copy=True)


def _to_numpy(a: Any) -> np.ndarray | None:
    """A JAX array as a NumPy array of the same dtype (bfloat16 is ml_dtypes' in both)."""
    return None if a is None else np.array(a, copy=True)


def _compute_dtype(x: np.ndarray) -> Any:
    """Flax's ``dtype`` argument: the input's dtype where it is floating, else Flax's own promotion."""
    return x.dtype if np.issubdtype(x.dtype, np.floating) or dtype_name(x.dtype) == "bfloat16" else None


def _flax_momentum(case: Case) -> float | None:
    """Flax's momentum weights the old value: 1 - alpha (None passes through for Flax to reject)."""
    return None if case.momentum is None else 1.0 - case.momentum


def layer_options(case: Case) -> dict[str, Any]:
    """The ``BatchNorm`` arguments linen and nnx share, mapped from the case (module docstring)."""
    return dict(
        axis=case.axis,
        momentum=_flax_momentum(case),
        epsilon=case.eps,
        dtype=_compute_dtype(case.x),
        param_dtype=case.weight.dtype if case.weight is not None else np.float32,
        use_scale=case.weight is not None,
        use_bias=case.bias is not None,
    )


class FlaxLinenAdapter:
    """``flax.linen.BatchNorm`` applied to the case's variables; gradients by ``jax.vjp``."""

    name = "flax-linen"
    capabilities = Capabilities(
        dtypes=("float16", "bfloat16", "float32", "float64"),
        channel_axes=(1, -1),
        ranks=(2, 3, 4, 5),
        cumulative_average=False,
        counter=False,
        untracked=False,
        running_var="biased",
        dtype_rule="promoted",  # an integer input is promoted with the parameters (Flax's dtype=None)
        stats_dtypes=("float32",),
        notes="flax.linen.BatchNorm (use_running_average for eval, mutable batch_stats, gradients by jax.vjp); " + _NOTES,
        known_deviations=_LINEN_DEVIATIONS,
        findings=(X4, X10, X11),
        derivatives=MODES,
        max_order=3,
    )

    def __init__(self) -> None:
        import jax

        jax.config.update("jax_enable_x64", True)
        self.capabilities = replace(type(self).capabilities, device=jax.default_backend())

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def function(self, case: Case) -> Any:
        """The layer as a pure ``f(x, *params) -> y`` (params: scale, bias, those present)."""
        from flax import linen as nn

        module = nn.BatchNorm(use_running_average=not case.training, **layer_options(case))
        names = [k for k, v in (("scale", case.weight), ("bias", case.bias)) if v is not None]
        stats = {"mean": _to_jax(case.running_mean), "var": _to_jax(case.running_var)}

        def f(x: Any, *params: Any) -> Any:
            variables = {"params": dict(zip(names, params)), "batch_stats": stats}
            if case.training:
                return module.apply(variables, x, mutable=["batch_stats"])[0]
            return module.apply(variables, x)

        return f

    def run(self, case: Case) -> Outcome:
        import jax
        from flax import linen as nn

        if case.derivative is not None:  # BN-GRAD-4..7
            return derivatives(case, self.function(case), *directions_of(case, _to_jax))
        module = nn.BatchNorm(use_running_average=not case.training, **layer_options(case))
        params = {k: _to_jax(v) for k, v in (("scale", case.weight), ("bias", case.bias)) if v is not None}
        stats = {"mean": _to_jax(case.running_mean), "var": _to_jax(case.running_var)}

        def forward(x: Any, params: Any) -> tuple[Any, Any]:
            variables = {"params": params, "batch_stats": stats}
            if case.training:
                y, updates = module.apply(variables, x, mutable=["batch_stats"])
                return y, updates["batch_stats"]
            return module.apply(variables, x), stats

        x = _to_jax(case.x)
        if case.grad_output is None:
            y, new_stats = forward(x, params)
            grads: tuple[Any, Any] = (None, {})
        else:
            y, vjp, new_stats = jax.vjp(forward, x, params, has_aux=True)
            grads = vjp(_to_jax(case.grad_output))
        return Outcome(
            y=_to_numpy(y),
            running_mean=_to_numpy(new_stats["mean"]),
            running_var=_to_numpy(new_stats["var"]),
            grad_input=_to_numpy(grads[0]),
            grad_weight=_to_numpy(grads[1].get("scale")),
            grad_bias=_to_numpy(grads[1].get("bias")),
        )


class FlaxNnxAdapter(FlaxLinenAdapter):
    """``flax.nnx.BatchNorm`` with the case's state loaded; gradients by ``nnx.vjp``."""

    name = "flax-nnx"
    capabilities = replace(
        FlaxLinenAdapter.capabilities,
        notes="flax.nnx.BatchNorm (.train()/.eval(), gradients by nnx.vjp); " + _NOTES,
        known_deviations=_NNX_DEVIATIONS + _HIGHER,
        findings=(X4,),
    )

    def function(self, case: Case) -> Any:
        """The layer as a pure ``f(x, *params) -> y``: a module built inside each call (nnx refuses to set a
        Param created outside the transform: TraceContextError)."""
        from flax import nnx

        names = [k for k, v in (("scale", case.weight), ("bias", case.bias)) if v is not None]

        def f(x: Any, *params: Any) -> Any:
            bn = nnx.BatchNorm(case.channels, rngs=nnx.Rngs(0), **layer_options(case))
            bn.mean.set_value(_to_jax(case.running_mean))
            bn.var.set_value(_to_jax(case.running_var))
            bn.train() if case.training else bn.eval()
            for name, value in zip(names, params):
                getattr(bn, name).set_value(value)
            return bn(x)

        return f

    def run(self, case: Case) -> Outcome:
        from flax import nnx

        if case.derivative is not None:  # BN-GRAD-4..7
            return derivatives(case, self.function(case), *directions_of(case, _to_jax))
        bn = nnx.BatchNorm(case.channels, rngs=nnx.Rngs(0), **layer_options(case))
        if case.weight is not None:
            bn.scale.set_value(_to_jax(case.weight))
        if case.bias is not None:
            bn.bias.set_value(_to_jax(case.bias))
        bn.mean.set_value(_to_jax(case.running_mean))
        bn.var.set_value(_to_jax(case.running_var))
        if case.training:
            bn.train()
        else:
            bn.eval()

        x = _to_jax(case.x)
        out = Outcome()
        if case.grad_output is None:
            y = bn(x)
        else:
            y, vjp = nnx.vjp(lambda m, x: m(x), bn, x, graph=False)
            grad_bn, grad_x = vjp(_to_jax(case.grad_output))
            out.grad_input = _to_numpy(grad_x)
            if case.weight is not None:
                out.grad_weight = _to_numpy(grad_bn.scale[...])
            if case.bias is not None:
                out.grad_bias = _to_numpy(grad_bn.bias[...])
        out.y = _to_numpy(y)
        out.running_mean = _to_numpy(bn.mean[...])
        out.running_var = _to_numpy(bn.var[...])
        return out
