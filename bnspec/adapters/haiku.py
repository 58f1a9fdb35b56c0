"""The ``haiku`` adapter: ``hk.BatchNorm`` under ``hk.transform_with_state``, gradients by ``jax.vjp``.

Haiku keeps each running statistic as an ``hk.ExponentialMovingAverage`` state with ``counter``,
``hidden`` and ``average``; ``decay_rate`` weights the *old* value, so it is ``1 - alpha``, and the
average is debiased by the number of steps (``zero_debias=True``, which ``hk.BatchNorm`` does not
let a user change): ``average = hidden / (1 - decay^counter)``. Eval normalizes with ``average``.
The adapter builds that state as a layer that had taken ``num_batches_tracked`` steps would hold it:
``counter = n``, ``average`` the case's running statistic, ``hidden = average * (1 - decay^n)``, and
returns ``average`` as the spec's running statistic: the profile ``debiased-running-average``
(``spec/conventions.md``, section 3), declared with ``running_average="debiased"``. The channel
axis is ``data_format`` (``channels_first`` for axis 1, ``channels_last`` for -1); scale and offset are passed at call time (``create_scale=False``),
so affine off is passing neither. The untracked mode is Haiku's ``test_local_stats=True`` in eval
(batch statistics, no update). Haiku keeps no batch counter of the spec's kind and no cumulative
average. Float64 needs ``jax_enable_x64``, turned on when the adapter is instantiated.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .contract import DERIVATIVE_MODES, Capabilities, Case, Finding, Outcome
from .flax import X10, X11

H1 = Finding(
    id="H1", summary="the batch variance is the one-pass E[x^2] - E[x]^2 in the input's dtype, unclamped: at a "
                     "large mean it loses every digit and turns negative, and y becomes NaN (BN-TRAIN-2)",
    clauses=("BN-TRAIN-2", "BN-TRAIN-4", "BN-TRAIN-5", "BN-LAYOUT-1", "BN-LAYOUT-2", "BN-GRAD-1", "BN-GRAD-2",
             "BN-SPECIAL-1", "BN-SPECIAL-2", "BN-QUAL-1", "BN-QUAL-2", "BN-PREC-6", "BN-RUN-2"),
    outputs=("y", "grad_input", "grad_weight", "grad_bias", "running_var"),  # the running variance averages it
    trigger_check="train-output", trigger=(("shape", (256, 2)), ("data", "offset"), ("offset", 1e4), ("seed", 4)))
H2 = Finding(
    id="H2", summary="decay_rate 1 (alpha 0): the debiased average divides by 1 - 1^n = 0, so the running "
                     "statistics become inf or NaN after a training step (BN-RUN-1, BN-RUN-2)",
    clauses=("BN-RUN-1", "BN-RUN-2"), outputs=("running_mean", "running_var"),
    trigger_check="running-momentum", trigger=(("shape", (4, 2)), ("momentum", 0.0)))
H3 = Finding(
    id="H3", summary="one value per channel in training gives y = offset and updates the statistics, no error "
                     "(BN-ARG-1)", clauses=("BN-ARG-1",), trigger_check="arg-one-value", trigger=(("shape", (1, 2)),))
H4 = Finding(
    id="H4", summary="scale, offset and running statistics are broadcast against x, their length never checked "
                     "(BN-ARG-2)", clauses=("BN-ARG-2",), trigger_check="arg-shape", trigger=(("shape", (2, 1)),))
H5 = Finding(
    id="H5", summary="a negative eps and a decay_rate outside [0, 1] are accepted (BN-ARG-4, BN-ARG-5)",
    clauses=("BN-ARG-4", "BN-ARG-5"), trigger_check="arg-momentum-range", trigger=(("shape", (2, 1)),))
H6 = Finding(
    id="H6", summary="an empty batch turns the running statistics into NaN (the mean of nothing enters the "
                     "moving averages) (BN-EMPTY-1)",
    clauses=("BN-EMPTY-1",), trigger_check="empty-batch", trigger=(("shape", (0, 3)),))
# X10 and X11 are XLA's on the CPU (spec/conventions.md, Flax): Haiku runs on the same runtime.
FINDINGS = (H6, H1, H2, X10, X11, H3, H4, H5)


def _to_numpy(a: Any) -> np.ndarray | None:
    return None if a is None else np.array(a, copy=True)



# Derivatives beyond the first (BN-GRAD-4..7), for each mode: why this adapter does not offer them.
_WHY_FIRST_ORDER = (
    "not wired: hk.BatchNorm is pure JAX, so jax.jvp and nested jax.vjp apply as in flax-linen; this "
    "adapter computes first derivatives only (its default run is kept under 60 s)")
HIGHER_ORDER_GAPS = tuple((mode, _WHY_FIRST_ORDER) for mode in DERIVATIVE_MODES)


class HaikuAdapter:
    """``hk.BatchNorm(create_scale=False, create_offset=False, decay_rate=1 - alpha)``."""

    name = "haiku"
    capabilities = Capabilities(
        derivative_gaps=HIGHER_ORDER_GAPS,
        dtypes=("float32", "float64"),
        channel_axes=(1, -1),
        ranks=(2, 3, 4, 5),
        cumulative_average=False,
        counter=False,
        running_var="biased",
        running_average="debiased",  # profile debiased-running-average: ExponentialMovingAverage(zero_debias=True)
        dtype_rule="promoted",
        notes="hk.BatchNorm under hk.transform_with_state; decay_rate = 1 - alpha; data_format for the channel axis; "
              "scale and offset passed at call time; EMA state built from num_batches_tracked (counter = n, hidden = "
              "average * (1 - decay^n)); untracked = test_local_stats in eval; jax_enable_x64 on",
        findings=FINDINGS,
    )

    def __init__(self) -> None:
        import jax

        jax.config.update("jax_enable_x64", True)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def run(self, case: Case) -> Outcome:
        import jax.numpy as jnp

        rank, ax = case.x.ndim, case.channel_axis
        fmt = "channels_last" if ax == rank - 1 and rank > 2 else "channels_first" if ax == 1 else None
        if fmt is None:
            raise ValueError(f"axis={case.axis}: hk.BatchNorm's data_format puts the channel at axis 1 or -1")
        decay = 1.0 - (0.9 if case.momentum is None else case.momentum)
        bshape = [case.channels if i == ax else 1 for i in range(rank)]
        x = jnp.asarray(case.x)
        scale = None if case.weight is None else jnp.asarray(case.weight).reshape(bshape)
        offset = None if case.bias is None else jnp.asarray(case.bias).reshape(bshape)
        # The EMA states as hk.BatchNorm names them; untracked: a fresh one (its update is discarded).
        n = (case.num_batches_tracked or 0) if case.tracked else 0
        state = {}
        for key, value in (("mean_ema", case.running_mean), ("var_ema", case.running_var)):
            avg = jnp.zeros(bshape, x.dtype) if value is None else jnp.asarray(value).reshape(bshape)
            state[f"batch_norm/~/{key}"] = {"counter": jnp.asarray(n, jnp.int32), "average": avg,
                                            "hidden": avg * (1 - jnp.asarray(decay, avg.dtype) ** n)}
        fn = _compiled(case.eps, decay, fmt, case.training, not case.training and not case.tracked,
                       case.grad_output is not None)
        out = Outcome()
        if case.grad_output is None:
            y, new_state = fn(x, scale, offset, state)
        else:
            y, new_state, (dx, dscale, doffset) = fn(x, scale, offset, state, jnp.asarray(case.grad_output))
            out.grad_input = _to_numpy(dx)
            if scale is not None:
                out.grad_weight = _to_numpy(dscale).reshape(-1)
            if offset is not None:
                out.grad_bias = _to_numpy(doffset).reshape(-1)
        out.y = _to_numpy(y)
        if case.tracked:
            mean, var = new_state["batch_norm/~/mean_ema"]["average"], new_state["batch_norm/~/var_ema"]["average"]
            out.running_mean, out.running_var = _to_numpy(mean).reshape(-1), _to_numpy(var).reshape(-1)
            # The EMA's step count, so that a caller chaining steps hands it back (the debiasing needs it).
            out.num_batches_tracked = int(new_state["batch_norm/~/mean_ema"]["counter"])
        return out


@functools.lru_cache(maxsize=256)
def _compiled(eps: float, decay: float, fmt: str, training: bool, local: bool, grad: bool) -> Any:
    """The layer's apply (with its VJP when ``grad``), under ``jax.jit``: one XLA compilation per
    configuration and shape instead of one per eager primitive (8 s a new shape under load)."""
    import haiku as hk
    import jax

    def forward(x: Any, scale: Any, offset: Any) -> Any:
        bn = hk.BatchNorm(False, False, decay, eps=eps, data_format=fmt)
        return bn(x, is_training=training, test_local_stats=local, scale=scale, offset=offset)

    f = hk.transform_with_state(forward)

    def g(x: Any, scale: Any, offset: Any, state: Any) -> Any:
        return f.apply({}, state, None, x, scale, offset)

    if not grad:
        return jax.jit(g)

    def with_vjp(x: Any, scale: Any, offset: Any, state: Any, dy: Any) -> Any:
        y, vjp_fn, new_state = jax.vjp(lambda *a: g(*a, state), x, scale, offset, has_aux=True)
        return y, new_state, vjp_fn(dy)

    return jax.jit(with_vjp)
