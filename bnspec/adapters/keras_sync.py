"""``keras-sync``: Keras 3 ``BatchNormalization(synchronized=True)`` under ``tf.distribute.MirroredStrategy``.

Keras implements ``synchronized=True`` on the TensorFlow backend only (the others raise), and there
it all-reduces per-replica sums inside a ``tf.distribute`` replica context. Here the replicas are
logical CPU devices: TensorFlow splits its one physical CPU into three
(``tf.config.set_logical_device_configuration``, possible only before TensorFlow starts its
runtime, so the adapter reports itself unavailable where it started with fewer), and a
``MirroredStrategy`` over the first R of them runs replica ``r``'s shard on device ``r``.
``experimental_distribute_values_from_function`` hands each replica its own shard, so shards of
unequal size and empty shards need no padding. Each replica's step runs in a ``tf.function`` with
a ``GradientTape`` on its own ``dy`` shard; the layer's moving statistics are mirrored variables,
read replica by replica. The parameter gradients are per-replica contributions (the strategy's
optimizer would all-reduce them), summed here: the gradient of the sum of the replicas' losses
(BN-SYNC-4; float64 sum, rounded once). An unsharded case is one replica of the same strategy
machinery, so every check runs the synchronized code path. Otherwise the mapping is
``keras-tensorflow``'s (``spec/conventions.md``, 2.4).
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import AdapterUnavailable
from .contract import DERIVATIVE_MODES, Case, Outcome, ReplicaState
from .keras import KerasTensorflowAdapter

REPLICAS = (2, 3)

# Measured with this adapter (spec/conventions.md, Keras, KS1 and KS2); each still runs and is reported.
_KS1 = ("KS1: with synchronized=True the variance is E[x^2] - E[x]^2 from all-reduced sums (clamped at 0), one-pass "
       "where the unsynchronized layer's tf.nn.moments is two-pass, so it loses precision whenever the mean is not "
       "small against the spread (BN-TRAIN-2, BN-SYNC-1); ")
_KS2 = ("KS2: an empty batch gives mean 0 and variance 0 (divide_no_nan of all-reduced zero sums), which the moving "
       "statistics blend in: no NaN, but changed (BN-EMPTY-1)")
_SYNC_DEVIATIONS = (
    ("train-output", _KS1 + "the output"),
    ("train-affine-off", _KS1 + "the output"),
    ("train-batch-stats", _KS1 + "the output"),
    ("layout-channel-last", _KS1 + "outputs and gradients"),
    ("running-momentum", _KS1 + "the running variance"),
    ("grad-train", _KS1 + "the gradients"),
    ("grad-affine-off", _KS1 + "the gradients"),
    ("dtype-half", _KS1 + "the running variance"),
    ("dtype-half-params", _KS1 + "outputs and gradients"),
    ("special-nonfinite", _KS1 + "the finite channels' outputs and gradients"),
    ("special-constant", _KS1 + "a constant channel's variance is not exactly 0, so dx is off"),
    ("empty-batch", _KS2),
    ("scenario-multistep", _KS1 + "the running variance"),
    ("sync-equal-shards", _KS1 + "over the concatenated batch"),
    ("sync-unequal-shards", _KS1 + "over the concatenated batch"),
    ("sync-empty-shard", _KS1 + "over the concatenated batch"),
    ("sync-one-value", "K1 over the concatenated batch: one value per channel across the replicas gives y = beta, "
                       "no error (BN-SYNC-5, BN-ARG-1)"),
    ("sync-empty-batch", _KS2 + " (BN-SYNC-5)"),
)


def tf_runtime_started() -> bool:
    """Whether TensorFlow's eager context exists in this process (its devices are then fixed)."""
    if "tensorflow" not in sys.modules:
        return False
    from tensorflow.python.eager import context

    return context.context()._context_handle is not None  # noqa: SLF001 - no public probe exists


class KerasSyncAdapter(KerasTensorflowAdapter):
    """``BatchNormalization(synchronized=True)`` in a ``MirroredStrategy`` over R logical CPU devices."""

    name = "keras-sync"
    capabilities = replace(
        KerasTensorflowAdapter.capabilities,
        replicas=REPLICAS,
        notes=("keras.layers.BatchNormalization(synchronized=True) under tf.distribute.MirroredStrategy over logical "
               "CPU devices, one per replica, each with its own shard; parameter gradients summed over replicas; "
               "unsharded cases on one replica; otherwise as keras-tensorflow"),
        known_deviations=tuple(d for d in KerasTensorflowAdapter.capabilities.known_deviations
                               if d[0] not in dict(_SYNC_DEVIATIONS)) + _SYNC_DEVIATIONS,
        # The replicas run first-order gradients only; the eager twin's higher-order finding (KH1) does not apply.
        findings=tuple(f for f in KerasTensorflowAdapter.capabilities.findings if f.id != "KH1"),
        derivatives=(), max_order=1,
        derivative_gaps=tuple((mode, "the synchronized adapter runs first-order gradients over the replicas only")
                              for mode in DERIVATIVE_MODES),
    )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        reason = super().unavailable_reason()
        if reason or not tf_runtime_started():
            return reason
        import tensorflow as tf

        n = len(tf.config.list_logical_devices("CPU"))
        if n < min(REPLICAS):
            return (f"TensorFlow's runtime was already started in this process with {n} CPU device(s); keras-sync "
                    f"splits the CPU into {max(REPLICAS)} logical devices, which is possible only before it starts: "
                    "run it in a process of its own (bnspec run keras-sync does)")
        return None

    def __init__(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        reason = self.unavailable_reason()
        if reason:
            raise AdapterUnavailable(reason)
        import tensorflow as tf

        if not tf_runtime_started():
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * max(REPLICAS))
        super().__init__()
        self.tf = tf
        self.device_names = [d.name for d in tf.config.list_logical_devices("CPU")]
        replicas = tuple(r for r in REPLICAS if r <= len(self.device_names))
        self.capabilities = replace(type(self).capabilities, replicas=replicas,
                                    device=f"cpu x {len(self.device_names)} (logical)")
        self._strategies: dict[int, Any] = {}

    def strategy(self, replicas: int) -> Any:
        if replicas not in self._strategies:
            # Reduction through one device: collective all-reduce keys groups by a counter that strategies
            # of different sizes in one process share ("joining a group with size 3, but that group has size 2").
            self._strategies[replicas] = self.tf.distribute.MirroredStrategy(
                self.device_names[:replicas], cross_device_ops=self.tf.distribute.ReductionToOneDevice())
        return self._strategies[replicas]

    def run(self, case: Case) -> Outcome:
        tf, keras = self.tf, self.keras
        shards = case.shards if case.shards is not None else (case.x.shape[0],)
        replicas = len(shards)
        if replicas > len(self.device_names):
            raise AdapterUnavailable(f"shards={shards} needs {replicas} devices; TensorFlow has "
                                     f"{len(self.device_names)}")
        strategy = self.strategy(replicas)
        momentum = 1.0 - case.momentum if case.momentum is not None else None  # None: float() raises
        with strategy.scope():
            layer = keras.layers.BatchNormalization(
                axis=case.axis, momentum=momentum, epsilon=case.eps, center=case.bias is not None,
                scale=case.weight is not None, synchronized=True, dtype=self.policy(case),
            )
            layer.build(case.x.shape)
            for var, value in ((layer.gamma, case.weight), (layer.beta, case.bias),
                               (layer.moving_mean, case.running_mean), (layer.moving_variance, case.running_var)):
                if var is not None and value is not None:
                    var.assign(self.to_tensor(value))
        xs = case.split(case.x)
        dys = case.split(case.grad_output) if case.grad_output is not None else None

        def shard_of(parts: list[np.ndarray]) -> Any:
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: self.to_tensor(parts[ctx.replica_id_in_sync_group]))

        params = [v for v in (layer.gamma, layer.beta) if v is not None]
        training = case.training

        @tf.function
        def step(x: Any, dy: Any) -> Any:
            if dy is None:
                return layer(x, training=training), ()
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=training)
            return y, tuple(tape.gradient(y, [x, *params], output_gradients=dy))

        result = strategy.run(step, args=(shard_of(xs), shard_of(dys) if dys is not None else None))
        local = strategy.experimental_local_results
        numpy = keras.ops.convert_to_numpy
        y_parts, grads = local(result[0]), [local(g) for g in result[1]]
        means = [numpy(v) for v in local(layer.moving_mean.value)]
        variances = [numpy(v) for v in local(layer.moving_variance.value)]
        out = Outcome(y=np.concatenate([numpy(t) for t in y_parts]), running_mean=means[0], running_var=variances[0],
                      replica_stats=tuple(ReplicaState(m, v) for m, v in zip(means, variances)))
        if grads:
            out.grad_input = np.concatenate([numpy(t) for t in grads[0]])
            per_param = iter(grads[1:])
            if layer.gamma is not None:
                out.grad_weight = _summed([numpy(t) for t in next(per_param)])
            if layer.beta is not None:
                out.grad_bias = _summed([numpy(t) for t in next(per_param)])
        return out


def _summed(parts: list[np.ndarray]) -> np.ndarray:
    """Per-replica gradient contributions summed (float64, rounded once to their dtype)."""
    return np.sum([p.astype(np.float64) for p in parts], axis=0).astype(parts[0].dtype)
