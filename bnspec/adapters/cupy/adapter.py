"""``CupyAdapter``: bnspec's own GPU implementation, judged like any other backend.

Unlike the framework adapters it validates its arguments itself, with the reference's checks
(``bnspec.reference.validate``, BN-ARG-*), before anything reaches the device. Parameters and
running statistics travel to the device in the accumulation dtype (float32, or float64 for float64
input) and come back rounded once to their own dtype (BN-DTYPE-3); statistics that a call must
not change come back as the caller's own values, bit for bit (BN-RUN-6, BN-EMPTY-1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...dtypes import dtype_name
from ...reference.validate import check_arguments
from ..contract import Capabilities, Case, Outcome
from . import device, ops
from .kernels import ACC_DTYPE
from .plan import channel_chunks, geometry


def to_storage(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy in the kernels' storage type: float16 and bfloat16 as their 16 bits."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint16) if a.dtype.itemsize == 2 else a


def from_storage(bits: np.ndarray, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    return bits.view(dtype).reshape(shape)


class CupyAdapter:
    """The spec in the project's own CUDA kernels, run through CuPy (``kernels.py``, ``ops.py``)."""

    name = "cupy"
    capabilities = Capabilities(
        dtypes=("float16", "float32", "float64", "bfloat16"),
        channel_axes=(1, -1),
        stats_dtypes=("float32",),
        device="cuda",
        notes="bnspec's CUDA kernels through CuPy RawModule: one-read Welford statistics with Chan merging, "
              "float32 accumulation for half input, fused backward reductions; validates its arguments",
    )

    def __init__(self, backend: ops.Backend | None = None) -> None:
        self._backend = backend

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return device.unavailable_reason()

    @property
    def backend(self) -> ops.Backend:
        if self._backend is None:
            self._backend = device.CupyBackend()
        return self._backend

    def run(self, case: Case) -> Outcome:
        ax = check_arguments(
            case.x, axis=case.axis, training=case.training, eps=case.eps, momentum=case.momentum,
            weight=case.weight, bias=case.bias, running_mean=case.running_mean, running_var=case.running_var,
            num_batches_tracked=case.num_batches_tracked, grad_output=case.grad_output,
        )
        x, name = case.x, dtype_name(case.x.dtype)
        assert name is not None  # check_arguments rejected anything else
        geo = geometry(x.shape, ax)
        tracked = case.tracked
        batch_stats = case.training or not tracked  # BN-TRAIN-5, BN-EVAL-1, BN-EVAL-2
        update = case.training and tracked and geo.values_per_channel > 0  # BN-RUN-6, BN-EMPTY-1
        out = Outcome()
        if tracked:
            out.num_batches_tracked = case.num_batches_tracked + int(update)  # BN-RUN-4
        if geo.size == 0:
            return self._empty(case, out)
        acc = np.dtype(ACC_DTYPE[name])
        be = self.backend
        launches = channel_chunks(name, geo, be.sm_count, be.chunk_bytes, arrays=1, **be.plan_options)
        xd = be.upload(to_storage(x))
        weight = be.upload(_acc(case.weight, 1.0, geo.channels, acc))
        bias = be.upload(_acc(case.bias, 0.0, geo.channels, acc))
        rm = rv = running = None
        if tracked:
            rm, rv = be.upload(_acc(case.running_mean, 0.0, geo.channels, acc)), be.upload(
                _acc(case.running_var, 1.0, geo.channels, acc))
        if update:
            m = geo.values_per_channel
            factor = case.momentum if case.momentum is not None else 1.0 / (case.num_batches_tracked + 1)
            running = ops.RunningUpdate(rm, rv, float(factor), m / (m - 1))
        y, coef = ops.forward(be, launches, xd, weight, bias, float(case.eps), batch_stats=batch_stats,
                              running_mean=rm, running_var=rv, update=running)
        out.y = from_storage(be.download(y), x.dtype, x.shape)
        if tracked:
            out.running_mean, out.running_var = _state(be, case.running_mean, rm, update), _state(
                be, case.running_var, rv, update)
        if case.grad_output is not None:
            dy = be.upload(to_storage(case.grad_output.astype(x.dtype, copy=False)))
            launches = channel_chunks(name, geo, be.sm_count, be.chunk_bytes, arrays=2, **be.plan_options)
            dx, gw, gb = ops.backward(be, launches, xd, dy, coef, batch_stats=batch_stats, param_grads=case.affine)
            out.grad_input = from_storage(be.download(dx), x.dtype, x.shape)
            if case.weight is not None:
                out.grad_weight = _round(be.download(gw), case.weight.dtype)
            if case.bias is not None:
                out.grad_bias = _round(be.download(gb), case.bias.dtype)
        return out

    @staticmethod
    def _empty(case: Case, out: Outcome) -> Outcome:
        """No values (m = 0 or C = 0): an empty y, the state untouched, zero parameter gradients."""
        out.y = np.empty_like(case.x)
        if case.tracked:
            out.running_mean, out.running_var = np.copy(case.running_mean), np.copy(case.running_var)
        if case.grad_output is not None:
            out.grad_input = np.empty_like(case.x)
            out.grad_weight = None if case.weight is None else np.zeros_like(case.weight)
            out.grad_bias = None if case.bias is None else np.zeros_like(case.bias)
        return out


def _acc(v: np.ndarray | None, fill: float, channels: int, acc: np.dtype) -> np.ndarray:
    """A per-channel vector in the accumulation dtype; ``fill`` where it is absent (affine off)."""
    if v is None:
        return np.full(channels, fill, dtype=acc)
    return np.asarray(v).astype(acc)


def _round(v: np.ndarray, dtype: np.dtype) -> np.ndarray:
    with np.errstate(over="ignore"):  # beyond the dtype's range the rounded value is +-inf
        return v.astype(dtype)


def _state(be: Any, given: np.ndarray | None, device_copy: Any, updated: bool) -> np.ndarray | None:
    """A running statistic after the call: rounded once from the update, or the caller's own value."""
    assert given is not None
    return _round(be.download(device_copy), given.dtype) if updated else np.copy(given)
