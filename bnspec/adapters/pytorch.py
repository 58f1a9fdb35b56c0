"""PyTorch adapters: ``torch`` (the ``nn.BatchNorm1d/2d/3d`` modules users run), ``torch-functional``
(``torch.nn.functional.batch_norm``), ``torch-cuda`` (the modules on a CUDA device, cuDNN where
PyTorch picks it) and ``torch-cuda-native`` (the same with cuDNN disabled: PyTorch's own kernels).

PyTorch's momentum is already the spec's (weight of the new batch), so it maps one to one.
Channel-last cases run on a permuted view, which for rank 4 and 5 is exactly the
``channels_last`` / ``channels_last_3d`` memory format.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import bfloat16, dtype_name
from .contract import Capabilities, Case, Outcome

# Findings recorded in spec/conventions.md ("Findings"); each still runs and is reported.
_DEVIATIONS = (
    ("arg-momentum-range", "PyTorch does not validate momentum (BN-ARG-5)"),
    ("empty-batch", "nn.BatchNorm increments num_batches_tracked on an empty batch (BN-EMPTY-1)"),
    ("dtype-half", "the CPU kernels round intermediates to float16/bfloat16 when the parameters are half "
                   "or absent, and in the backward pass (BN-DTYPE-2)"),
    ("dtype-half-params", "with half-precision parameters the CPU kernels round the batch mean and "
                          "inverse deviation to half before normalizing (BN-DTYPE-2)"),
)


def to_torch(a: np.ndarray | None, device: str) -> Any:
    """A NumPy array as a new torch tensor (bfloat16 through its bits; NumPy has none)."""
    import torch

    if a is None:
        return None
    if dtype_name(a.dtype) == "bfloat16":
        return torch.from_numpy(a.view(np.uint16).copy()).view(torch.bfloat16).to(device)
    return torch.from_numpy(np.array(a, copy=True)).to(device)


def to_numpy(t: Any) -> np.ndarray | None:
    """A torch tensor back as a NumPy array (bfloat16 through ml_dtypes: ImportError without it)."""
    import torch

    if t is None:
        return None
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy().view(bfloat16())
    return t.numpy()


def _channel_first(ndim: int, axis: int) -> tuple[list[int], list[int]]:
    """The permutation putting ``axis`` at position 1, and its inverse."""
    rest = [d for d in range(ndim) if d != axis]
    perm = rest[:1] + [axis] + rest[1:]
    return perm, list(np.argsort(perm))


class TorchAdapter:
    """``nn.BatchNorm1d/2d/3d``: the modules carry the cumulative average and untracked modes."""

    name = "torch"
    device = "cpu"
    capabilities = Capabilities(
        dtypes=("float16", "float32", "float64", "bfloat16"),
        channel_axes=(1, -1),
        stats_dtypes=("float32",),
        notes="nn.BatchNorm1d/2d/3d; channel-last as a permuted view (channels_last memory format for rank 4, 5)",
        known_deviations=_DEVIATIONS,
    )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def run(self, case: Case) -> Outcome:
        import torch

        ax = case.channel_axis
        perm, inverse = _channel_first(case.x.ndim, ax)
        x = to_torch(case.x, self.device)
        want_grad = case.grad_output is not None
        if want_grad:
            x.requires_grad_(True)
        module_cls = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}
        cls = module_cls.get(case.x.ndim, torch.nn.BatchNorm1d)
        bn = cls(case.channels, eps=case.eps, momentum=case.momentum, affine=case.affine,
                 track_running_stats=case.tracked, device=self.device)
        params = []
        if case.affine:
            for name, value, fill in (("weight", case.weight, 1.0), ("bias", case.bias, 0.0)):
                arr = value if value is not None else np.full(case.channels, fill, dtype=case.x.dtype)
                p = torch.nn.Parameter(to_torch(arr, self.device), requires_grad=want_grad)
                setattr(bn, name, p)
                params.append(p if value is not None else None)
        if case.tracked:
            bn.running_mean = to_torch(case.running_mean, self.device)
            bn.running_var = to_torch(case.running_var, self.device)
            bn.num_batches_tracked.fill_(case.num_batches_tracked)
        bn.train(case.training)
        y = bn(x.permute(perm))
        out = Outcome(y=to_numpy(y.permute(inverse)))
        if case.tracked:
            out.running_mean = to_numpy(bn.running_mean)
            out.running_var = to_numpy(bn.running_var)
            out.num_batches_tracked = int(bn.num_batches_tracked.item())
        if want_grad:
            y.backward(to_torch(case.grad_output, self.device).permute(perm))
            out.grad_input = to_numpy(x.grad)
            if params:
                out.grad_weight = to_numpy(params[0].grad) if params[0] is not None else None
                out.grad_bias = to_numpy(params[1].grad) if params[1] is not None else None
        return out


class TorchFunctionalAdapter(TorchAdapter):
    """``torch.nn.functional.batch_norm``: no counter, so no cumulative average."""

    name = "torch-functional"
    capabilities = Capabilities(
        dtypes=TorchAdapter.capabilities.dtypes,
        channel_axes=(1, -1),
        stats_dtypes=("float32",),
        cumulative_average=False,
        counter=False,
        notes="torch.nn.functional.batch_norm: the caller keeps the counter, so it has none",
        known_deviations=tuple(d for d in _DEVIATIONS if d[0] != "empty-batch"),
    )

    def run(self, case: Case) -> Outcome:
        import torch.nn.functional as F

        perm, inverse = _channel_first(case.x.ndim, case.channel_axis)
        want_grad = case.grad_output is not None
        x, w, b = (to_torch(a, self.device) for a in (case.x, case.weight, case.bias))
        for t in (x, w, b):
            if want_grad and t is not None:
                t.requires_grad_(True)
        rm, rv = to_torch(case.running_mean, self.device), to_torch(case.running_var, self.device)
        training = case.training or not case.tracked  # F.batch_norm needs stats to run in eval
        y = F.batch_norm(x.permute(perm), rm, rv, w, b, training=training,
                         momentum=case.momentum if case.momentum is not None else 0.0, eps=case.eps)
        out = Outcome(y=to_numpy(y.permute(inverse)), running_mean=to_numpy(rm), running_var=to_numpy(rv))
        if want_grad:
            y.backward(to_torch(case.grad_output, self.device).permute(perm))
            out.grad_input, out.grad_weight, out.grad_bias = (
                to_numpy(t.grad) if t is not None else None for t in (x, w, b)
            )
        return out


class TorchCudaAdapter(TorchAdapter):
    """The modules on the first CUDA device, as PyTorch dispatches them (cuDNN where it chooses)."""

    name = "torch-cuda"
    device = "cuda"
    capabilities = Capabilities(
        dtypes=TorchAdapter.capabilities.dtypes,
        channel_axes=(1, -1),
        stats_dtypes=("float32",),
        device="cuda",
        notes="nn.BatchNorm1d/2d/3d on CUDA, cuDNN as PyTorch chooses",
        known_deviations=_DEVIATIONS,
    )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        import torch

        if not torch.cuda.is_available():
            return f"no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False)"
        return None


class TorchCudaNativeAdapter(TorchCudaAdapter):
    """The modules on CUDA with cuDNN disabled, so PyTorch's own CUDA kernels run every call."""

    name = "torch-cuda-native"
    capabilities = Capabilities(
        dtypes=TorchAdapter.capabilities.dtypes,
        channel_axes=(1, -1),
        stats_dtypes=("float32",),
        device="cuda",
        notes="nn.BatchNorm1d/2d/3d on CUDA with torch.backends.cudnn.enabled = False around each call",
        known_deviations=_DEVIATIONS,
    )

    def run(self, case: Case) -> Outcome:
        import torch

        before = torch.backends.cudnn.enabled
        torch.backends.cudnn.enabled = False  # only this flag; cudnn.flags() would reset the others too
        try:
            return super().run(case)
        finally:
            torch.backends.cudnn.enabled = before
