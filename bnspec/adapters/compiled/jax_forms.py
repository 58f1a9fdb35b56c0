"""JAX forms: Flax linen under ``jax.jit``, and the Keras layer compiled on the JAX and TensorFlow backends."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..contract import Case, Outcome
from ..flax import FlaxLinenAdapter, layer_options
from ..flax import _to_jax as _jax
from ..flax import _to_numpy as _jax_numpy
from ..keras import KerasJaxAdapter, KerasTensorflowAdapter
from ._common import _first_order_only
from .tf_forms import FX3

# -- JAX: Flax linen under jax.jit -------------------------------------------------------------------

class FlaxLinenJitAdapter(FlaxLinenAdapter):
    """``flax.linen.BatchNorm`` applied, and differentiated, inside one ``jax.jit``.

    The eager ``flax-linen`` adapter runs JAX op by op (each primitive its own small XLA
    computation); a training step under ``jax.jit`` is one XLA computation that fuses and
    reorders them. One jitted function per layer configuration; jax.jit retraces per shape and dtype.
    """

    name = "flax-linen-jit"
    capabilities = _first_order_only(
        FlaxLinenAdapter.capabilities,
        "jax.jit around linen.BatchNorm.apply and its jax.vjp (one XLA computation per step); higher-order "
        "derivatives not claimed; " + FlaxLinenAdapter.capabilities.notes)

    def __init__(self) -> None:
        super().__init__()
        self.capabilities = replace(self.capabilities, derivatives=(), max_order=1)
        self._fns: dict[tuple[Any, ...], Any] = {}

    def _fn(self, case: Case) -> Any:
        import jax
        from flax import linen as nn

        options = layer_options(case)
        key = (tuple(sorted((k, str(v)) for k, v in options.items())), case.training, case.grad_output is not None)
        if key not in self._fns:
            module = nn.BatchNorm(use_running_average=not case.training, **options)
            training, grad = case.training, case.grad_output is not None

            def step(x: Any, params: Any, stats: Any, dy: Any) -> Any:
                def forward(x: Any, params: Any) -> Any:
                    variables = {"params": params, "batch_stats": stats}
                    if training:
                        y, updates = module.apply(variables, x, mutable=["batch_stats"])
                        return y, updates["batch_stats"]
                    return module.apply(variables, x), stats

                if not grad:
                    y, new_stats = forward(x, params)
                    return y, new_stats, None, {}
                y, vjp, new_stats = jax.vjp(forward, x, params, has_aux=True)
                dx, dparams = vjp(dy)
                return y, new_stats, dx, dparams

            self._fns[key] = jax.jit(step)
        return self._fns[key]

    def run(self, case: Case) -> Outcome:
        if getattr(case, "derivative", None) is not None:
            return super().run(case)  # not claimed (capabilities); kept eager if a caller asks anyway
        params = {k: _jax(v) for k, v in (("scale", case.weight), ("bias", case.bias)) if v is not None}
        stats = {"mean": _jax(case.running_mean), "var": _jax(case.running_var)}
        dy = _jax(case.grad_output) if case.grad_output is not None else None
        y, new_stats, dx, dparams = self._fn(case)(_jax(case.x), params, stats, dy)
        return Outcome(y=_jax_numpy(y), running_mean=_jax_numpy(new_stats["mean"]),
                       running_var=_jax_numpy(new_stats["var"]), grad_input=_jax_numpy(dx),
                       grad_weight=_jax_numpy(dparams.get("scale")), grad_bias=_jax_numpy(dparams.get("bias")))


# -- Keras 3: the layer under compiled execution -------------------------------------------------------

class _KerasCompiled:
    """The layer as ``Model.fit(jit_compile=True)`` runs it: one layer per configuration, kept for the
    process (its variables take each case's values), its step compiled once per layer and retraced per
    shape and dtype by the backend's compiler. Mixed into an eager Keras adapter; ``compile_step``
    is the backend's part."""

    def _cached_layer(self, case: Case) -> Any:
        keras = self.keras  # type: ignore[attr-defined]
        momentum = 1.0 - case.momentum if case.momentum is not None else None
        key = (case.axis, case.x.ndim, case.channels, momentum, case.eps, case.bias is not None,
               case.weight is not None, self.policy(case), case.training, case.grad_output is not None)  # type: ignore[attr-defined]
        cache = self.__dict__.setdefault("_layers", {})
        if key not in cache:
            layer = keras.layers.BatchNormalization(axis=case.axis, momentum=momentum, epsilon=case.eps,
                                                    center=case.bias is not None, scale=case.weight is not None,
                                                    dtype=self.policy(case))  # type: ignore[attr-defined]
            layer.build(case.x.shape)
            cache[key] = (layer, self.compile_step(layer, case.training, case.grad_output is not None))
        return cache[key]

    def compile_step(self, layer: Any, training: bool, grad: bool) -> Any:
        raise NotImplementedError

    def run(self, case: Case) -> Outcome:
        layer, step = self._cached_layer(case)
        for var, value in ((layer.gamma, case.weight), (layer.beta, case.bias),
                           (layer.moving_mean, case.running_mean), (layer.moving_variance, case.running_var)):
            if var is not None and value is not None:
                var.assign(self.to_tensor(value))  # type: ignore[attr-defined]
        dy = self.to_tensor(case.grad_output) if case.grad_output is not None else None  # type: ignore[attr-defined]
        y, grads = step(self.to_tensor(case.x), dy)  # type: ignore[attr-defined]
        return self.outcome(layer, y, grads)  # type: ignore[attr-defined]


class KerasJaxJitAdapter(_KerasCompiled, KerasJaxAdapter):
    """The JAX backend's compiled path: ``jax.jit`` of ``Layer.stateless_call`` (and its ``jax.vjp``), the
    form Keras's JAX trainer jits; the new non-trainable state is written back after the call."""

    name = "keras-jax-jit"
    capabilities = _first_order_only(KerasJaxAdapter.capabilities, "jax.jit of Layer.stateless_call and its jax.vjp, as "
                           "the JAX trainer compiles a step; " + KerasJaxAdapter.capabilities.notes)

    def compile_step(self, layer: Any, training: bool, grad: bool) -> Any:
        import jax

        def step(trainable: Any, frozen: Any, x: Any, dy: Any) -> Any:
            def f(x: Any, trainable: Any) -> Any:
                return layer.stateless_call(trainable, frozen, x, training=training)

            if not grad:
                y, new_state = f(x, trainable)
                return y, new_state, None, None
            y, vjp, new_state = jax.vjp(f, x, trainable, has_aux=True)
            dx, dtrain = vjp(dy)
            return y, new_state, dx, dtrain

        jitted = jax.jit(step)

        def call(x: Any, dy: Any) -> Any:
            y, new_state, dx, dtrain = jitted([v.value for v in layer.trainable_variables],
                                              [v.value for v in layer.non_trainable_variables], x, dy)
            for var, value in zip(layer.non_trainable_variables, new_state):
                var.assign(value)
            if not grad:
                return y, None
            by_var = {id(v): g for v, g in zip(layer.trainable_variables, dtrain)}
            return y, (dx, by_var.get(id(layer.gamma)), by_var.get(id(layer.beta)))

        return call


class KerasTensorflowXlaAdapter(_KerasCompiled, KerasTensorflowAdapter):
    """The TensorFlow backend's compiled path: the layer call (and its ``tf.GradientTape`` gradient)
    inside ``tf.function(jit_compile=True)``, as ``Model.fit(jit_compile=True)`` traces a step; the
    moving statistics are updated by the variables' assignments inside the XLA computation."""

    name = "keras-tensorflow-xla"
    capabilities = _first_order_only(KerasTensorflowAdapter.capabilities, "tf.function(jit_compile=True) around the "
                           "layer call and its tf.GradientTape gradient; " + KerasTensorflowAdapter.capabilities.notes,
                           findings=KerasTensorflowAdapter.capabilities.findings + (FX3,))

    def compile_step(self, layer: Any, training: bool, grad: bool) -> Any:
        import tensorflow as tf

        params = [v for v in (layer.gamma, layer.beta) if v is not None]

        def step(x: Any, dy: Any) -> Any:
            if not grad:
                return layer(x, training=training), None
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=training)
            grads = tape.gradient(y, [x, *params], output_gradients=dy)
            dx = grads.pop(0)
            dgamma = grads.pop(0) if layer.gamma is not None else None
            dbeta = grads.pop(0) if layer.beta is not None else None
            return y, (dx, dgamma, dbeta)

        return tf.function(step, jit_compile=True)


