"""The order of kernel launches for each pass, on device arrays, through a small ``Backend``.

The backend owns memory and launches (``device.py``: CuPy on a GPU; the tests plug in a C++ build
of the same kernels run on the CPU). Arrays here are device arrays in the kernels' storage types
(float16 and bfloat16 as their 16 bits) and per-channel vectors in the accumulation dtype.

Passes (``Launch`` from ``plan.py`` fixes the grid; bytes are what each kernel reads and writes):

- forward with batch statistics: ``bn_stats`` (reads x) then ``bn_normalize`` (reads x, writes y);
- forward with running statistics: ``bn_eval_prepare`` (per channel) then ``bn_normalize``;
- backward: ``bn_grad_reduce`` (reads x, dy), needed for the path through the batch statistics or
  for the parameter gradients, then ``bn_grad_input`` (reads x, dy, writes dx), or
  ``bn_grad_input_const`` (reads dy, writes dx) when the statistics were constants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .kernels import ACC_DTYPE, COEF_ROWS, KERNEL_PARAMS, KernelSpec
from .plan import Launch

STORAGE_DTYPE = {"float16": np.dtype(np.uint16), "bfloat16": np.dtype(np.uint16),
                 "float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
_SCALAR = {"int": np.int32, "long long": np.int64}


class Backend(Protocol):
    """Device memory and kernel launches. ``plan_options`` are passed to ``plan.plan``; ``chunk_bytes``
    (None: off) splits channel-first passes into L2-sized channel chunks (``plan.channel_chunks``)."""

    sm_count: int
    plan_options: dict[str, Any]
    chunk_bytes: int | None

    def empty(self, n: int, dtype: np.dtype) -> Any: ...

    def upload(self, host: np.ndarray) -> Any: ...

    def download(self, device_array: Any) -> np.ndarray: ...

    def counters(self, n: int) -> Any:
        """At least ``n`` zeroed ``uint32`` block counters; the kernels leave them zero."""
        ...

    def launch(self, spec: KernelSpec, name: str, grid: int, block: int, args: tuple[Any, ...]) -> None: ...


def kernel_args(spec: KernelSpec, name: str, **values: Any) -> tuple[Any, ...]:
    """``values`` in the kernel's parameter order, scalars as NumPy scalars of the C type's width
    (CuPy passes a Python int as 64 bits and a float as a double)."""
    acc = np.dtype(ACC_DTYPE[spec.dtype]).type
    params = KERNEL_PARAMS[name]
    if set(values) != {p for _, p in params}:
        raise TypeError(f"{name} takes {[p for _, p in params]}, got {sorted(values)}")
    out = []
    for c_type, pname in params:
        v = values[pname]
        if c_type.endswith("*"):
            out.append(v)
        elif c_type == "acc_t":
            out.append(acc(v))
        else:
            out.append(_SCALAR[c_type](v))
    return tuple(out)


@dataclass(frozen=True)
class RunningUpdate:
    """The running statistics to update in place (accumulation dtype) and the update's constants."""

    mean: Any
    var: Any
    factor: float  # weight of the new batch: momentum, or 1 / (n + 1) (BN-RUN-1, BN-RUN-3)
    bessel: float  # m / (m - 1) (BN-RUN-2)


def forward(backend: Backend, launches: Launch | Sequence[Launch], x: Any, weight: Any, bias: Any, eps: float, *,
            batch_stats: bool, running_mean: Any = None, running_var: Any = None,
            update: RunningUpdate | None = None) -> tuple[Any, Any]:
    """``(y, coef)``: the output and the per-channel coefficients the backward pass reuses.

    With ``batch_stats`` the batch mean and variance normalize (and ``update``, if given, folds
    them into the running statistics); otherwise ``running_mean`` and ``running_var`` do. Several
    ``launches`` (``plan.channel_chunks``) run both kernels chunk by chunk.
    """
    chunks = _as_list(launches)
    spec, geo = chunks[0].spec, chunks[0].geo
    acc = np.dtype(ACC_DTYPE[spec.dtype])
    coef = backend.empty(COEF_ROWS * geo.channels, acc)
    y = backend.empty(geo.size, STORAGE_DTYPE[spec.dtype])
    if not batch_stats:
        if running_mean is None or running_var is None:
            raise ValueError("forward without batch statistics needs running_mean and running_var")
        args = kernel_args(spec, "bn_eval_prepare", channels=geo.channels, coef=coef, weight=weight, bias=bias,
                           running_mean=running_mean, running_var=running_var, eps=eps)
        backend.launch(spec, "bn_eval_prepare", -(-geo.channels // 256), 256, args)
    part = backend.empty(max(c.partial_count for c in chunks), acc) if batch_stats else None
    dummy = coef  # never read or written when update_running is 0
    for launch in chunks:
        if batch_stats:
            args = kernel_args(
                spec, "bn_stats", x=x, **_geometry(launch), part=part, counters=backend.counters(launch.groups),
                coef=coef, weight=weight, bias=bias,
                running_mean=update.mean if update else dummy, running_var=update.var if update else dummy,
                update_running=int(update is not None), factor=update.factor if update else 0.0,
                keep=1.0 - update.factor if update else 1.0, bessel=update.bessel if update else 1.0, eps=eps)
            backend.launch(spec, "bn_stats", launch.grid, spec.block, args)
        args = kernel_args(spec, "bn_normalize", x=x, y=y, **_geometry(launch), coef=coef)
        backend.launch(spec, "bn_normalize", launch.grid, spec.block, args)
    return y, coef


def backward(backend: Backend, launches: Launch | Sequence[Launch], x: Any, dy: Any, coef: Any, *,
             batch_stats: bool, param_grads: bool) -> tuple[Any, Any, Any]:
    """``(dx, grad_weight, grad_bias)``; the parameter gradients are None unless ``param_grads``.

    ``coef`` is what ``forward`` returned for the same x; it is updated with the gradient's
    per-channel terms.
    """
    chunks = _as_list(launches)
    spec, geo = chunks[0].spec, chunks[0].geo
    acc = np.dtype(ACC_DTYPE[spec.dtype])
    reduce = batch_stats or param_grads
    grad_weight = grad_bias = part = None
    if reduce:
        part = backend.empty(max(c.partial_count for c in chunks), acc)
        grad_weight, grad_bias = backend.empty(geo.channels, acc), backend.empty(geo.channels, acc)
    dx = backend.empty(geo.size, STORAGE_DTYPE[spec.dtype])
    for launch in chunks:
        if reduce:
            args = kernel_args(spec, "bn_grad_reduce", x=x, dy=dy, **_geometry(launch), part=part,
                               counters=backend.counters(launch.groups), coef=coef, grad_weight=grad_weight,
                               grad_bias=grad_bias, through_stats=int(batch_stats),
                               count=float(geo.values_per_channel))
            backend.launch(spec, "bn_grad_reduce", launch.grid, spec.block, args)
        if batch_stats:
            args = kernel_args(spec, "bn_grad_input", x=x, dy=dy, dx=dx, **_geometry(launch), coef=coef)
            backend.launch(spec, "bn_grad_input", launch.grid, spec.block, args)
        else:
            args = kernel_args(spec, "bn_grad_input_const", dy=dy, dx=dx, **_geometry(launch), coef=coef)
            backend.launch(spec, "bn_grad_input_const", launch.grid, spec.block, args)
    if not param_grads:
        grad_weight = grad_bias = None
    return dx, grad_weight, grad_bias


def _as_list(launches: Launch | Sequence[Launch]) -> list[Launch]:
    chunks = [launches] if isinstance(launches, Launch) else list(launches)
    if not chunks or len({(c.spec, c.geo) for c in chunks}) != 1:
        raise ValueError("launches must be one or more chunks of the same input")
    return chunks


def _geometry(launch: Launch) -> dict[str, int]:
    names = ("outer", "channels", "inner", "splits", "chunk", "tx_count", "c0")
    return dict(zip(names, launch.geometry_args()))
