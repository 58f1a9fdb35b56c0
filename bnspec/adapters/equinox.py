"""Equinox adapters: ``eqx.nn.BatchNorm`` with its ``State``, under ``jax.vmap(axis_name="batch")``.

Equinox's layer sees one example of shape ``(C, *spatial)`` and averages over the vmapped batch by
``lax.pmean``, so the channel axis is 1 of the batched input. ``momentum`` weights the *old* running
value: it is ``1 - alpha``. The batch variance is the biased two-pass one, clamped at 0, and the
running variance averages it (profile ``biased-running-var``). Its two approaches to the running
statistics (``mode``) are two adapters (``spec/conventions.md``, "Equinox"):

- ``equinox`` maps ``mode="batch"``, the mode Equinox recommends for new code and the one whose
  training normalizes with the batch statistics, as the spec does. It keeps ``hidden`` averages and a
  step counter and debiases in eval: ``mean = hidden / (1 - momentum^counter)`` (``hidden`` itself
  while ``counter`` is 0). The adapter builds ``counter = num_batches_tracked`` and ``hidden =
  R * (1 - momentum^n)`` (``R`` itself for n = 0), so eval uses the case's statistics, and returns what
  eval would use next, ``hidden / (1 - momentum^counter)``, as the running statistics.
- ``equinox-ema`` maps ``mode="ema"``, the default (``mode`` unspecified is ``"ema"`` with a warning).
  Its state is the running statistics themselves plus a first-step flag; the adapter sets the flag
  to False (the case's statistics are populated) and returns the state.

Neither mode has an untracked form, a counter of the spec's kind or a cumulative average.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .contract import DERIVATIVE_MODES, Capabilities, Case, Finding, Outcome
from .flax import X10, X11

E1 = Finding(
    id="E1", summary="mode='batch' from a fresh layer (n = 0): eval reads hidden itself, starting at (0, 1), but "
                     "the first step divides hidden by 1 - momentum, so the initial variance 1 is inflated with it: "
                     "eval then uses var = momentum / (1 - momentum) + batch var (99 + v at the default 0.99) "
                     "(BN-RUN-2, BN-EVAL-1); from n = 1 on it is the profile debiased-running-average",
    clauses=("BN-RUN-1", "BN-RUN-2", "BN-EVAL-1"), outputs=("running_mean", "running_var", "y"),
    trigger_check="running-momentum", trigger=(("shape", (4, 2)),))
E2 = Finding(
    id="E2", summary="mode='ema': training normalizes with (1 - momentum) * batch + momentum * running "
                     "statistics, not the batch's (BN-TRAIN-2, BN-TRAIN-3), and stores that blend",
    clauses=("BN-TRAIN-1", "BN-TRAIN-2", "BN-TRAIN-3", "BN-TRAIN-4", "BN-TRAIN-5", "BN-LAYOUT-1", "BN-LAYOUT-2",
             "BN-GRAD-1", "BN-GRAD-2", "BN-SPECIAL-1", "BN-SPECIAL-2", "BN-QUAL-1", "BN-QUAL-2", "BN-ARG-3",
             "BN-PREC-6"),
    trigger_check="train-output", trigger=(("shape", (4, 2)),))
E3 = Finding(
    id="E3", summary="one value per channel in training is accepted: y = beta, statistics updated (BN-ARG-1)",
    clauses=("BN-ARG-1",), trigger_check="arg-one-value", trigger=(("shape", (1, 2)),))
E4 = Finding(
    id="E4", summary="a negative eps and a momentum outside [0, 1] are accepted (BN-ARG-4, BN-ARG-5)",
    clauses=("BN-ARG-4", "BN-ARG-5"), trigger_check="arg-momentum-range", trigger=(("shape", (2, 1)),))

E5 = Finding(
    id="E5", summary="mode='batch' with momentum 1 (alpha 0) after a step: eval divides by 1 - 1^n = 0 and gives "
                     "NaN (Equinox documents momentum in (0, 1) exclusive, but accepts 1) (BN-EVAL-1, BN-GRAD-3)",
    clauses=("BN-EVAL-1", "BN-GRAD-3", "BN-SPECIAL-1"), outputs=("y", "grad_input", "grad_weight", "grad_bias"),
    trigger_check="eval-output",
    trigger=(("shape", (2, 1)), ("training", False), ("momentum", 0.0), ("num_batches_tracked", 1)))
E6 = Finding(
    id="E6", summary="an empty batch turns the running statistics into NaN (BN-EMPTY-1)",
    clauses=("BN-EMPTY-1",), trigger_check="empty-batch", trigger=(("shape", (0, 3)),))

_NOTES = ("eqx.nn.BatchNorm under jax.vmap(axis_name='batch'), channel axis 1; momentum passed as 1 - alpha; "
          "weight and bias set with eqx.tree_at; gradients by jax.vjp; jax_enable_x64 on; no untracked mode, "
          "no counter, no cumulative average")


def _to_numpy(a: Any) -> np.ndarray | None:
    return None if a is None else np.array(a, copy=True)


def _forward(bn: Any, state: Any, inference: bool, x: Any, w: Any, b: Any) -> Any:
    """y and the new state for the batch ``x``, with weight ``w`` and bias ``b`` (None: affine off)."""
    import equinox as eqx
    import jax

    if w is not None:
        bn = eqx.tree_at(lambda m: (m.weight, m.bias), bn, (w, b))
    return jax.vmap(lambda xi: bn(xi, state, inference=inference), axis_name="batch", out_axes=(0, None))(x)


def _with_vjp(bn: Any, state: Any, inference: bool, x: Any, w: Any, b: Any, dy: Any) -> Any:
    import jax

    y, vjp_fn, new_state = jax.vjp(lambda *a: _forward(bn, state, inference, *a), x, w, b, has_aux=True)
    return y, new_state, vjp_fn(dy)



# Derivatives beyond the first (BN-GRAD-4..7), for each mode: why this adapter does not offer them.
_WHY_FIRST_ORDER = (
    "not wired: eqx.nn.BatchNorm is pure JAX, so jax.jvp and nested jax.vjp apply as in flax-linen; "
    "this adapter computes first derivatives only (its default run is kept under 60 s)")
HIGHER_ORDER_GAPS = tuple((mode, _WHY_FIRST_ORDER) for mode in DERIVATIVE_MODES)


class EquinoxAdapter:
    """``eqx.nn.BatchNorm(mode="batch")``: batch statistics in training, debiased averages in eval."""

    name = "equinox"
    mode = "batch"
    capabilities = Capabilities(
        derivative_gaps=HIGHER_ORDER_GAPS,
        dtypes=("float32", "float64"),
        channel_axes=(1,),
        ranks=(2, 3, 4, 5),
        cumulative_average=False,
        counter=False,
        untracked=False,
        running_var="biased",
        running_average="debiased",  # profile debiased-running-average (E1 at n = 0)
        dtype_rule="promoted",
        notes="mode='batch'; state built from num_batches_tracked (counter = n, hidden = R (1 - momentum^n)); " + _NOTES,
        findings=(E6, E5, E1, X10, X11, E3, E4),
    )

    def __init__(self) -> None:
        import jax

        jax.config.update("jax_enable_x64", True)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def _state(self, bn: Any, state: Any, case: Case) -> Any:
        import jax.numpy as jnp

        n = case.num_batches_tracked or 0
        m = jnp.asarray(case.running_mean)
        v = jnp.asarray(case.running_var)
        scale = 1.0 if n == 0 else 1.0 - (1.0 - case.momentum) ** n
        state = state.set(bn.batch_counter, jnp.asarray(n))
        return state.set(bn.batch_state_index, (m * scale, v * scale))

    def _stats(self, bn: Any, state: Any, momentum: float) -> tuple[Any, Any, int]:
        counter = int(state.get(bn.batch_counter))
        hm, hv = state.get(bn.batch_state_index)
        scale = 1.0 if counter == 0 else 1.0 - momentum ** counter
        return hm / scale, hv / scale, counter

    def run(self, case: Case) -> Outcome:
        import equinox as eqx
        import jax.numpy as jnp

        if case.channel_axis != 1:
            raise ValueError(f"axis={case.axis}: eqx.nn.BatchNorm normalizes axis 0 of each example (batch axis 1)")
        momentum = 1.0 - (0.9 if case.momentum is None else case.momentum)
        dtype = case.weight.dtype if case.weight is not None else case.x.dtype
        bn, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(
            case.channels, axis_name="batch", eps=case.eps, channelwise_affine=case.affine, momentum=momentum,
            dtype=dtype, mode=self.mode)
        state = self._state(bn, state, case)
        w = b = None
        if case.affine:
            w, b = jnp.asarray(case.weight), jnp.asarray(case.bias)
        fn = eqx.filter_jit(_with_vjp if case.grad_output is not None else _forward)
        out = Outcome()
        if case.grad_output is None:
            y, new_state = fn(bn, state, not case.training, jnp.asarray(case.x), w, b)
        else:
            y, new_state, (dx, dw, db) = fn(bn, state, not case.training, jnp.asarray(case.x), w, b,
                                            jnp.asarray(case.grad_output))
            out.grad_input = _to_numpy(dx)
            if case.affine:
                out.grad_weight, out.grad_bias = _to_numpy(dw), _to_numpy(db)
        out.y = _to_numpy(y)
        mean, var, counter = self._stats(bn, new_state, momentum)
        out.num_batches_tracked = counter
        if case.training:
            out.running_mean, out.running_var = _to_numpy(mean), _to_numpy(var)
        else:  # eval sets no state (S: the inference branch of __call__); hidden / scale would not round-trip
            out.running_mean, out.running_var = np.array(case.running_mean, copy=True), np.array(case.running_var, copy=True)
        return out


class EquinoxEmaAdapter(EquinoxAdapter):
    """``eqx.nn.BatchNorm(mode="ema")``, Equinox's default: running statistics blended into training."""

    name = "equinox-ema"
    mode = "ema"
    capabilities = Capabilities(
        derivative_gaps=HIGHER_ORDER_GAPS,
        dtypes=("float32", "float64"),
        channel_axes=(1,),
        ranks=(2, 3, 4, 5),
        cumulative_average=False,
        counter=False,
        untracked=False,
        running_var="biased",
        dtype_rule="promoted",
        notes="mode='ema' (Equinox's default); first-step flag set False, the case's statistics as the state; " + _NOTES,
        findings=(E6, E2, X10, X11, E3, E4),
    )

    def _state(self, bn: Any, state: Any, case: Case) -> Any:
        import jax.numpy as jnp

        state = state.set(bn.ema_first_time_index, jnp.array(False))
        return state.set(bn.ema_state_index, (jnp.asarray(case.running_mean), jnp.asarray(case.running_var)))

    def _stats(self, bn: Any, state: Any, momentum: float) -> tuple[Any, Any, int]:
        mean, var = state.get(bn.ema_state_index)
        return mean, var, None  # type: ignore[return-value]
