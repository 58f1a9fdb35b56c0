"""``flax-sync``: Flax ``linen.BatchNorm(axis_name=...)`` synchronized over R CPU devices by ``jax.shard_map``.

Each replica is one XLA CPU device; the process gets several by
``XLA_FLAGS=--xla_force_host_platform_device_count=3``, which must be set before JAX starts its
CPU backend, so the adapter sets it when instantiated (``bnspec run`` does that before anything
starts JAX), and reports itself unavailable where JAX was already started with fewer devices. Replica ``r``'s shard runs on
device ``r`` inside ``jax.shard_map`` over a one-axis mesh named ``"replica"``, the name the layer
is given as ``axis_name``: Flax then averages the per-device statistics with ``lax.pmean``, which is
the synchronization under test.

``shard_map`` needs every device's block to have one shape, so shards of unequal size are padded
with zero rows to the largest, and the layer is given ``mask=`` marking the real rows, which is how
Flax users run a ragged last batch. What that computes is the finding this adapter reports: each
device's masked mean is over its own rows, and ``pmean`` then weighs every device equally
(``spec/conventions.md``, Flax, XS1). Equal shards take no mask. An unsharded case is one replica
through the same code.

Gradients follow the pmap recipe: inside the map, ``jax.vjp`` of each replica's own output with its
own ``dy`` shard, the parameters held as per-replica copies; the copies' gradients are then summed
(the loss is the sum of the replicas' losses, BN-SYNC-4; the float64 sum is rounded once). Every
other mapping is the ``flax-linen`` adapter's: momentum ``1 - alpha``, ``use_fast_variance`` left at
Flax's default, the biased running variance, ``jax_enable_x64`` on.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import AdapterUnavailable
from .contract import Case, Outcome, ReplicaState
from .flax import _LINEN_DEVIATIONS, FlaxLinenAdapter, _to_jax, layer_options

REPLICAS = (2, 3)
_FLAG = "--xla_force_host_platform_device_count"
AXIS = "replica"

_XS1 = ("XS1: with shards of unequal size (padded, mask=), lax.pmean weighs each device's masked mean equally, "
       "not by its count (BN-SYNC-1)")
_XS2 = ("XS2: an empty shard (all rows masked) has a NaN mean, which pmean spreads to every replica's output, "
       "gradients and running statistics (BN-SYNC-5)")
# The higher-order declarations of flax-linen do not apply: this adapter offers first order only.
_DEVIATIONS = tuple(d for d in _LINEN_DEVIATIONS if not d[0].startswith(("jvp", "grad2", "order3"))) + (
    ("sync-equal-shards", "X4 over the concatenated batch: use_fast_variance=True computes E[x^2] - E[x]^2 from the "
                          "pmean'd moments (BN-TRAIN-2, BN-SYNC-1)"),
    ("sync-unequal-shards", _XS1),
    ("sync-empty-shard", _XS2),
    ("sync-merge-by-count", _XS1),
    ("sync-one-value", "X1 over the concatenated batch: one value per channel across the replicas gives y = beta, "
                       "no error (BN-SYNC-5, BN-ARG-1)"),
    ("sync-empty-batch", "X2 over the concatenated batch: every shard empty turns the running statistics into NaN "
                         "(BN-SYNC-5, BN-EMPTY-1)"),
)


def device_flag(flags: str) -> int | None:
    """The device count ``XLA_FLAGS`` already asks the CPU backend for, if any."""
    found = re.findall(rf"{_FLAG}=(\d+)", flags)
    return int(found[-1]) if found else None


def jax_started() -> bool:
    """Whether JAX's backends are initialized in this process (its device count is then fixed)."""
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def request_devices(count: int = max(REPLICAS)) -> None:
    """Ask for ``count`` host devices, unless JAX already started or ``XLA_FLAGS`` asks for as many."""
    flags = os.environ.get("XLA_FLAGS", "")
    have = device_flag(flags)
    if jax_started() or (have is not None and have >= count):
        return
    flags = re.sub(rf"\s*{_FLAG}=\d+", "", flags)
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={count}".strip()


class FlaxSyncAdapter:
    """``flax.linen.BatchNorm(axis_name="replica")`` under ``jax.shard_map`` over R CPU devices."""

    name = "flax-sync"
    capabilities = replace(
        FlaxLinenAdapter.capabilities,
        replicas=REPLICAS,
        notes=("flax.linen.BatchNorm(axis_name=...) under jax.shard_map, one CPU device per replica "
               f"(XLA_FLAGS {_FLAG}={max(REPLICAS)}); unequal shards padded and masked (mask=); "
               "parameter gradients summed over the replicas' copies; otherwise as flax-linen"),
        known_deviations=_DEVIATIONS,
        derivatives=(), max_order=1,  # the replicas run first-order autodiff only
        derivative_gaps=(("jvp", "the synchronized adapter runs first-order gradients over the replicas only"),
                         ("vjp-nested", "the synchronized adapter runs first-order gradients over the replicas only"),
                         ("jvp-of-vjp", "the synchronized adapter runs first-order gradients over the replicas only"),
                         ("vjp-of-vjp", "the synchronized adapter runs first-order gradients over the replicas only")),
    )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if not jax_started():
            return None
        import jax

        n = len(jax.devices("cpu"))
        if n < min(REPLICAS):
            return (f"JAX was already started in this process with {n} CPU device(s); flax-sync needs at least "
                    f"{min(REPLICAS)}, which XLA_FLAGS={_FLAG}={max(REPLICAS)} gives only if set before JAX "
                    "starts: run it in a process of its own (bnspec run flax-sync does)")
        return None

    def __init__(self) -> None:
        request_devices()
        reason = self.unavailable_reason()
        if reason:
            raise AdapterUnavailable(reason)
        import jax

        jax.config.update("jax_enable_x64", True)
        self.devices = jax.devices("cpu")
        self._cache: dict[tuple[Any, ...], Any] = {}
        replicas = tuple(r for r in REPLICAS if r <= len(self.devices))
        self.capabilities = replace(type(self).capabilities, replicas=replicas,
                                    device=f"cpu x {len(self.devices)}")

    def run(self, case: Case) -> Outcome:
        shards = case.shards if case.shards is not None else (case.x.shape[0],)
        replicas, rows = len(shards), max(shards)
        if replicas > len(self.devices):
            raise AdapterUnavailable(f"shards={shards} needs {replicas} devices; this process has {len(self.devices)}")
        want_grad = case.grad_output is not None
        params = {k: _copies(v, replicas) for k, v in (("scale", case.weight), ("bias", case.bias)) if v is not None}
        stats = {"mean": _copies(case.running_mean, replicas), "var": _copies(case.running_var, replicas)}
        mapped = self._mapped(case, replicas, masked=len(set(shards)) > 1)
        mask = np.ones((case.x.shape[0],) + (1,) * (case.x.ndim - 1), bool)
        y, dx, new_stats, dparams = mapped(
            _to_jax(_padded(case, case.x, rows)), _to_jax(_padded(case, mask, rows)),
            _to_jax(_padded(case, case.grad_output, rows)) if want_grad else None,
            _tree_to_jax(params), _tree_to_jax(stats))
        means, variances = np.asarray(new_stats["mean"]), np.asarray(new_stats["var"])
        out = Outcome(
            y=_unpadded(np.asarray(y), shards, rows),
            running_mean=means[0].copy(),
            running_var=variances[0].copy(),
            replica_stats=tuple(ReplicaState(means[r].copy(), variances[r].copy()) for r in range(replicas)),
        )
        if want_grad:
            out.grad_input = _unpadded(np.asarray(dx), shards, rows)
            out.grad_weight = _summed(dparams.get("scale"))
            out.grad_bias = _summed(dparams.get("bias"))
        return out

    def _mapped(self, case: Case, replicas: int, masked: bool) -> Any:
        """The jitted ``shard_map`` of one replica's step for this case's configuration (cached:
        outside ``jit``, ``shard_map`` dispatches op by op, seconds per call)."""
        key = (replicas, masked, case.training, case.axis, case.momentum, case.eps, str(case.x.dtype),
               None if case.weight is None else str(case.weight.dtype), case.weight is not None,
               case.bias is not None, case.grad_output is not None)
        if key not in self._cache:
            self._cache[key] = _build(case, self.devices[:replicas], masked)
        return self._cache[key]


def _build(case: Case, devices: list[Any], masked: bool) -> Any:
    """``jit(shard_map(replica))``: each device runs ``flax.linen.BatchNorm(axis_name=AXIS)`` on its block."""
    import jax
    from flax import linen as nn
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    module = nn.BatchNorm(use_running_average=not case.training, axis_name=AXIS, **layer_options(case))
    training = case.training

    def replica(x: Any, mask: Any, dy: Any, params: Any, stats: Any) -> Any:
        params, stats = jax.tree.map(lambda a: a[0], (params, stats))  # this replica's copy

        def forward(x: Any, params: Any) -> tuple[Any, Any]:
            variables = {"params": params, "batch_stats": stats}
            kwargs = {"mask": mask} if masked else {}
            if training:
                y, updates = module.apply(variables, x, mutable=["batch_stats"], **kwargs)
                return y, updates["batch_stats"]
            return module.apply(variables, x, **kwargs), stats

        if dy is None:
            y, new_stats = forward(x, params)
            return y, None, jax.tree.map(lambda a: a[None], new_stats), {}
        y, vjp, new_stats = jax.vjp(forward, x, params, has_aux=True)
        dx, dparams = vjp(dy)
        return y, dx, jax.tree.map(lambda a: a[None], new_stats), jax.tree.map(lambda a: a[None], dparams)

    spec = P(AXIS)
    mesh = Mesh(np.array(devices), (AXIS,))
    return jax.jit(jax.shard_map(replica, mesh=mesh, in_specs=(spec,) * 5, out_specs=(spec,) * 4))


def _copies(a: np.ndarray | None, replicas: int) -> np.ndarray | None:
    """One copy of a per-channel array per replica, stacked on a leading replica axis."""
    return None if a is None else np.stack([a] * replicas)


def _padded(case: Case, a: np.ndarray, rows: int) -> np.ndarray:
    """Each replica's shard of ``a`` padded with zero rows to ``rows``, concatenated along axis 0."""
    return np.concatenate([np.concatenate([s, np.zeros((rows - s.shape[0],) + s.shape[1:], s.dtype)])
                           for s in case.split(a)])


def _unpadded(a: np.ndarray, shards: tuple[int, ...], rows: int) -> np.ndarray:
    """Inverse of ``_padded``: each replica's real rows, concatenated in replica order."""
    return np.concatenate([a[r * rows : r * rows + n] for r, n in enumerate(shards)])


def _summed(copies: Any) -> np.ndarray | None:
    """The replicas' gradient copies summed (float64, rounded once to their dtype)."""
    if copies is None:
        return None
    a = np.asarray(copies)
    return a.astype(np.float64).sum(axis=0).astype(a.dtype)


def _tree_to_jax(tree: dict[str, np.ndarray | None]) -> dict[str, Any]:
    return {k: _to_jax(v) for k, v in tree.items() if v is not None}
