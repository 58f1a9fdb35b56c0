"""The CuPy backend: device memory, NVRTC-compiled modules, launches. The only module that imports CuPy."""

from __future__ import annotations

from typing import Any

import numpy as np

from .kernels import KernelSpec, source


def unavailable_reason() -> str | None:
    """Why the kernels cannot run here, or None: CuPy missing or broken, or no CUDA device."""
    try:
        import cupy
    except ImportError as exc:  # installed but unusable (a missing CUDA library, say)
        return f"no CUDA device: cupy cannot be imported ({exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError without a driver; anything else means the same
        return f"no CUDA device (cupy {cupy.__version__}: {type(exc).__name__}: {exc})"
    if count == 0:
        return f"no CUDA device (cupy {cupy.__version__} found none)"
    return None


class CupyBackend:
    """Kernels compiled once per ``KernelSpec`` and device (CuPy caches the binaries on disk too)."""

    def __init__(self) -> None:
        import cupy

        self._cupy = cupy
        self._modules: dict[tuple[int, KernelSpec], Any] = {}
        self._kernels: dict[tuple[int, KernelSpec, str], Any] = {}
        self._counters: dict[int, Any] = {}
        device = cupy.cuda.Device()
        self.sm_count = int(device.attributes["MultiProcessorCount"])
        self.plan_options: dict[str, Any] = {}
        self.chunk_bytes: int | None = None  # L2 chunking off until measured on a GPU

    def empty(self, n: int, dtype: np.dtype) -> Any:
        return self._cupy.empty(n, dtype=dtype)

    def upload(self, host: np.ndarray) -> Any:
        return self._cupy.asarray(np.ascontiguousarray(host))

    def download(self, device_array: Any) -> np.ndarray:
        return self._cupy.asnumpy(device_array)

    def counters(self, n: int) -> Any:
        dev = self._cupy.cuda.Device().id
        have = self._counters.get(dev)
        if have is None or have.size < n:
            have = self._counters[dev] = self._cupy.zeros(max(n, 1024), dtype=np.uint32)
        return have

    def launch(self, spec: KernelSpec, name: str, grid: int, block: int, args: tuple[Any, ...]) -> None:
        key = (self._cupy.cuda.Device().id, spec, name)
        kernel = self._kernels.get(key)
        if kernel is None:
            module = self._modules.get(key[:2])
            if module is None:
                module = self._modules[key[:2]] = self._cupy.RawModule(code=source(spec))
            kernel = self._kernels[key] = module.get_function(name)
        kernel((grid,), (block,), args)
