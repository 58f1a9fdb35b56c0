"""``torch-sync``: PyTorch ``nn.SyncBatchNorm`` over ``torch.distributed`` (gloo), one process per replica.

A case split over R replicas runs in a pool of R worker processes (``replica_pool.Pool``, one pool per
R, started on first use and kept): they join one gloo process group through a ``FileStore`` in a
private temporary folder, so no rendezvous port is opened, and gloo's own sockets are bound to the
loopback interface (``GLOO_SOCKET_IFNAME``), on ports the system picks free. Worker ``r`` builds the
module with the case's parameters and state, runs its shard, and, when gradients are asked for,
calls ``backward`` with its ``dy`` shard; outputs come back to the parent and are concatenated in
replica order. SyncBatchNorm leaves the parameter gradients local (its backward says the
data-parallel wrapper all-reduces them; DDP averages them over R), so the adapter sums the
replicas' ``weight.grad`` and ``bias.grad``: the gradient of the sum of the replicas' losses
(BN-SYNC-4; DDP's average is that sum divided by R). An unsharded case is one replica: the module
in this process with no process group, which is SyncBatchNorm's own single-process path.

SyncBatchNorm does not run on CPU tensors, so this adapter needs CUDA (see ``CPU_REFUSAL``). With
one GPU, every worker uses it: gloo carries CUDA tensors, and NCCL would refuse two ranks on one
device. ``TorchSyncAdapter(device="cpu")`` exists to show the refusal with PyTorch's own error.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from datetime import timedelta
from typing import Any

import numpy as np

from ..errors import AdapterUnavailable
from .contract import Capabilities, Case, Outcome, ReplicaState
from .pytorch import T1, T2, _channel_first, to_numpy, to_torch
from .replica_pool import Pool

REPLICAS = (2, 3, 4)
COLLECTIVE_TIMEOUT = 30.0  # gloo gives up on a peer after this long ...
CALL_TIMEOUT = 90.0  # ... and the parent on a worker after this long (first calls start CUDA)
START_TIMEOUT = 180.0

CPU_REFUSAL = (
    "nn.SyncBatchNorm does not run on CPU tensors: once a process group is initialized, torch {version}'s "
    "SyncBatchNorm.forward raises ValueError('SyncBatchNorm expected input tensor to be on GPU or XPU or "
    "privateuseone') (torch/nn/modules/batchnorm.py, SyncBatchNorm.forward), and the kernels its autograd "
    "function calls (torch.batch_norm_stats, batch_norm_gather_stats_with_counts, batch_norm_elemt, "
    "batch_norm_backward_reduce, batch_norm_backward_elemt) have no CPU implementation (NotImplementedError: "
    "Could not run 'aten::batch_norm_stats' with arguments from the 'CPU' backend); no CUDA device here"
)



def _loopback() -> str:
    return "lo0" if sys.platform == "darwin" else "lo"


class TorchSyncAdapter:
    """``nn.SyncBatchNorm`` in R gloo worker processes; the parameter gradients summed over replicas."""

    name = "torch-sync"
    capabilities = Capabilities(
        dtypes=("float32", "float64"),
        channel_axes=(1, -1),
        replicas=REPLICAS,
        device="cuda",
        notes=("nn.SyncBatchNorm, one gloo process per replica on the CUDA device (FileStore rendezvous, loopback "
               "sockets); weight.grad and bias.grad summed over replicas; unsharded cases on one process"),
        findings=(T1, T2),
    )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        import torch
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_gloo_available():
            return f"torch {torch.__version__} was built without torch.distributed's gloo backend"
        if not torch.cuda.is_available():
            return CPU_REFUSAL.format(version=torch.__version__)
        return None

    def __init__(self, device: str = "cuda") -> None:
        if device == "cuda" and (reason := self.unavailable_reason()):
            raise AdapterUnavailable(reason)
        self.device = device
        self._pools: dict[int, tuple[Pool, str]] = {}
        atexit.register(self.close)

    def close(self) -> None:
        """Stop every worker pool and remove its rendezvous folder."""
        for pool, folder in self._pools.values():
            pool.close()
            shutil.rmtree(folder, ignore_errors=True)
        self._pools.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit modules may already be gone
            pass

    def pool(self, replicas: int) -> Pool:
        """The live pool of ``replicas`` workers, started if there is none (or the last one failed)."""
        pool, folder = self._pools.get(replicas, (None, ""))
        if pool is not None and pool.alive():
            return pool
        if pool is not None:
            pool.close()
            shutil.rmtree(folder, ignore_errors=True)
        folder = tempfile.mkdtemp(prefix="bnspec-torch-sync-")
        env = {"GLOO_SOCKET_IFNAME": _loopback(), "OMP_NUM_THREADS": "1"}
        try:
            pool = Pool(replicas, f"{__name__}:replica_init", (os.path.join(folder, "store"), self.device),
                        env=env, start_timeout=START_TIMEOUT)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._pools[replicas] = (pool, folder)
        return pool

    def run(self, case: Case) -> Outcome:
        if case.shards is None:
            return _as_outcome(case, [replica_step({"device": self.device, "rank": 0}, _payload(case, 0))])
        payloads = [_payload(case, r) for r in range(case.replicas)]
        return _as_outcome(case, self.pool(case.replicas).call(f"{__name__}:replica_step", payloads,
                                                               timeout=CALL_TIMEOUT))


def _payload(case: Case, rank: int) -> dict[str, Any]:
    """What replica ``rank`` needs: its shards of x and dy, and the shared parameters and state."""
    fields = {k: getattr(case, k) for k in ("axis", "training", "eps", "momentum", "weight", "bias",
                                            "running_mean", "running_var", "num_batches_tracked")}
    fields["x"] = case.split(case.x)[rank]
    fields["grad_output"] = case.split(case.grad_output)[rank] if case.grad_output is not None else None
    fields["channels"] = case.channels
    return fields


def _as_outcome(case: Case, results: list[dict[str, Any]]) -> Outcome:
    """The replicas' results as one Outcome: rows concatenated, parameter gradients summed."""
    out = Outcome(y=np.concatenate([r["y"] for r in results]))
    if case.tracked:
        first = results[0]
        out.running_mean, out.running_var = first["running_mean"], first["running_var"]
        out.num_batches_tracked = first["num_batches_tracked"]
        if case.shards is not None:
            out.replica_stats = tuple(ReplicaState(r["running_mean"], r["running_var"], r["num_batches_tracked"])
                                      for r in results)
    if case.grad_output is not None:
        out.grad_input = np.concatenate([r["grad_input"] for r in results])
        for name in ("grad_weight", "grad_bias"):
            parts = [r[name] for r in results]
            like = case.weight if name == "grad_weight" else case.bias
            if like is None:
                continue
            # A replica whose shard was empty gets None (autograd's zeros); float64 sum, rounded once.
            total = sum((p.astype(np.float64) for p in parts if p is not None), np.zeros(case.channels))
            setattr(out, name, total.astype(like.dtype))
    return out


# -- in the worker processes ----------------------------------------------------------------------

def replica_init(rank: int, size: int, store_path: str, device: str) -> dict[str, Any]:
    """Join the gloo group of ``size`` processes through the file store at ``store_path``."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    store = dist.FileStore(store_path, size)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=size,
                            timeout=timedelta(seconds=COLLECTIVE_TIMEOUT))
    if device == "cuda":
        torch.cuda.set_device(rank % torch.cuda.device_count())
    return {"rank": rank, "device": device}


def replica_step(state: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """One replica's SyncBatchNorm step on its shard; NumPy results."""
    import torch

    device = state["device"]
    x_np = p["x"]
    perm, inverse = _channel_first(x_np.ndim, p["axis"] % x_np.ndim)
    want_grad = p["grad_output"] is not None
    x = to_torch(x_np, device)
    if want_grad:
        x.requires_grad_(True)
    affine = p["weight"] is not None or p["bias"] is not None
    tracked = p["running_mean"] is not None
    bn = torch.nn.SyncBatchNorm(p["channels"], eps=p["eps"], momentum=p["momentum"], affine=affine,
                                track_running_stats=tracked, device=device, dtype=x.dtype)
    params = []
    if affine:
        for name, value, fill in (("weight", p["weight"], 1.0), ("bias", p["bias"], 0.0)):
            arr = value if value is not None else np.full(p["channels"], fill, dtype=x_np.dtype)
            param = torch.nn.Parameter(to_torch(arr, device), requires_grad=want_grad)
            setattr(bn, name, param)
            params.append(param if value is not None else None)
    if tracked:
        bn.running_mean = to_torch(p["running_mean"], device)
        bn.running_var = to_torch(p["running_var"], device)
        bn.num_batches_tracked.fill_(p["num_batches_tracked"])
    bn.train(p["training"])
    y = bn(x.permute(perm))
    out: dict[str, Any] = {"y": to_numpy(y.permute(inverse)), "running_mean": None, "running_var": None,
                           "num_batches_tracked": None}
    if tracked:
        out.update(running_mean=to_numpy(bn.running_mean), running_var=to_numpy(bn.running_var),
                   num_batches_tracked=int(bn.num_batches_tracked.item()))
    if want_grad:
        y.backward(to_torch(p["grad_output"], device).permute(perm))
        out["grad_input"] = to_numpy(x.grad) if x.grad is not None else np.zeros_like(x_np)
        for name, param in zip(("grad_weight", "grad_bias"), params or (None, None)):
            out[name] = to_numpy(param.grad) if param is not None and param.grad is not None else None
    return out
