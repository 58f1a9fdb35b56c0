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
from .contract import Capabilities, Case, Finding, Outcome, with_state
from .pytorch_derivatives import MODES, derivatives, inputs_of

# Findings recorded in spec/conventions.md ("Findings"); each still runs and is reported.
_DEVIATIONS = (
    ("dtype-half", "T5: the CPU kernels round intermediates to float16/bfloat16 when the parameters are half "
                   "or absent, and in the backward pass (BN-DTYPE-2)"),
    ("dtype-half-params", "T5: with half-precision parameters the CPU kernels round the batch mean and "
                          "inverse deviation to half before normalizing (BN-DTYPE-2)"),
)
# Root causes declared once, each with the minimal case that shows it (spec/conventions.md, PyTorch).
T1 = Finding(id="T1", summary="PyTorch does not validate momentum", clauses=("BN-ARG-5",),
             trigger_check="arg-momentum-range", trigger=(("shape", (2, 1)),))
T4 = Finding(id="T4", summary="a weight or bias of shape (1, C) is accepted: only the element count is checked",
             clauses=("BN-ARG-2",))  # no trigger: the arg-shape check draws the (1, C) form; staleness undecided
T2 = Finding(id="T2", summary="nn.BatchNorm adds 1 to num_batches_tracked before F.batch_norm validates: on an empty "
                              "batch (T2) and on a step that then raises (T3)",
             clauses=("BN-EMPTY-1", "BN-RUN-4"), outputs=("num_batches_tracked",),
             trigger_check="empty-batch", trigger=(("shape", (0, 3)),))

# Findings on derivatives beyond the first (spec/conventions.md, section 4, TH1-TH2); each still runs.
_TH1 = ("TH1: nested forward mode (torch.func.jvp of jvp) in training differentiates batch_norm's JVP rule with "
        "the saved mean and inverse deviation as constants: the second and higher directional derivatives are wrong "
        "(pytorch#196699) ")
_HIGHER_DEVIATIONS: tuple[tuple[str, str], ...] = (
    ("jvp-over-jvp", _TH1 + "(BN-GRAD-6)"),
    ("order3-right-or-raised", _TH1 + "(BN-GRAD-7)"),
    ("order3-reverse-right-or-raised",
     "TH2: nested reverse mode in training differentiates the fused double backward with the saved statistics as "
     "constants: any derivative that differentiates it again (the third derivative of a loss; J t of a VJP "
     "from order 2) is wrong, and nothing is raised (pytorch#186256) (BN-GRAD-7)"),
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
        known_deviations=_DEVIATIONS + _HIGHER_DEVIATIONS,
        findings=(T1, T2, T4),
        derivatives=MODES,
        max_order=3,
    )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def call(self, bn: Any, x: Any) -> Any:
        """The module applied to ``x`` (channel axis 1); compiled forms override it (``compiled.py``)."""
        return bn(x)

    def run(self, case: Case) -> Outcome:
        import torch

        if case.derivative is not None:  # BN-GRAD-4..7
            return self.run_derivatives(case)
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
        try:
            y = self.call(bn, x.permute(perm))
        except Exception as exc:  # say what state the module was left in (section 8: before changing any)
            if not case.tracked:
                raise
            raise with_state(exc, Outcome(running_mean=to_numpy(bn.running_mean), running_var=to_numpy(bn.running_var),
                                          num_batches_tracked=int(bn.num_batches_tracked.item()))) from None
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


    def function(self, case: Case) -> Any:
        """``f(x, *params) -> y`` in the case's layout: the module through ``torch.func.functional_call``,
        its running statistics fresh copies (a transform must not mutate captured tensors)."""
        import torch
        from torch.func import functional_call

        perm, inverse = _channel_first(case.x.ndim, case.channel_axis)
        module_cls = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}
        bn = module_cls.get(case.x.ndim, torch.nn.BatchNorm1d)(
            case.channels, eps=case.eps, momentum=case.momentum, affine=case.affine,
            track_running_stats=case.tracked, device=self.device)
        bn.train(case.training)
        names = [n for n, v in (("weight", case.weight), ("bias", case.bias)) if v is not None]
        state = {}
        if case.tracked:
            state = {"running_mean": to_torch(case.running_mean, self.device),
                     "running_var": to_torch(case.running_var, self.device),
                     "num_batches_tracked": torch.tensor(case.num_batches_tracked, device=self.device)}

        def f(x: Any, *params: Any) -> Any:
            fresh = {k: v.clone() for k, v in state.items()}
            return functional_call(bn, {**dict(zip(names, params)), **fresh}, (x.permute(perm),)).permute(inverse)

        return f

    def run_derivatives(self, case: Case) -> Outcome:
        """BN-GRAD-4..7 through ``pytorch_derivatives``: forward mode by ``torch.func``, reverse by autograd."""
        return derivatives(case, self.function(case), *inputs_of(case, lambda a: to_torch(a, self.device)), to_numpy)


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
        known_deviations=_DEVIATIONS + _HIGHER_DEVIATIONS,
        findings=(T1, T4),
        derivatives=MODES,
        max_order=3,
    )

    def function(self, case: Case) -> Any:
        """``F.batch_norm`` as ``f(x, *params) -> y`` in the case's layout (running statistics copied)."""
        import torch.nn.functional as F

        perm, inverse = _channel_first(case.x.ndim, case.channel_axis)
        names = [n for n, v in (("weight", case.weight), ("bias", case.bias)) if v is not None]
        rm, rv = to_torch(case.running_mean, self.device), to_torch(case.running_var, self.device)

        def f(x: Any, *params: Any) -> Any:
            p = dict(zip(names, params))
            return F.batch_norm(x.permute(perm), rm.clone() if rm is not None else None,
                                rv.clone() if rv is not None else None, p.get("weight"), p.get("bias"),
                                training=case.training or not case.tracked,
                                momentum=case.momentum if case.momentum is not None else 0.0,
                                eps=case.eps).permute(inverse)

        return f

    def run(self, case: Case) -> Outcome:
        import torch.nn.functional as F

        if case.derivative is not None:  # BN-GRAD-4..7
            return self.run_derivatives(case)
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
        findings=(T1, T2, T4),
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
        findings=(T1, T2, T4),
    )

    def run(self, case: Case) -> Outcome:
        import torch

        before = torch.backends.cudnn.enabled
        torch.backends.cudnn.enabled = False  # only this flag; cudnn.flags() would reset the others too
        try:
            return super().run(case)
        finally:
            torch.backends.cudnn.enabled = before
