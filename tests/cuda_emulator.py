"""Run the ``cupy`` adapter's CUDA kernels on the CPU: the same source text, compiled by a C++ compiler.

A shim stands in for the CUDA built-ins: each thread of a block is a fiber (``ucontext``) on one
OS thread, ``__syncthreads`` switches to the next fiber until all have arrived, ``__shared__``
variables are statics (one block runs at a time), and blocks run one after another. Fibers run in
a fixed order, so a run is deterministic; a block whose threads do not all reach the same barriers
(a divergent ``__syncthreads``, undefined on a GPU) is reported as an error.

It proves the kernels' indexing, partition, merges and per-channel arithmetic, not what only a GPU
shows (concurrency between blocks, memory ordering, speed). ``EmulatedBackend`` implements
``bnspec.adapters.cupy.ops.Backend``, so the adapter itself, and the whole conformance suite, can
run on it.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np

from bnspec.adapters.cupy import CupyAdapter
from bnspec.adapters.cupy.kernels import KERNEL_PARAMS, KernelSpec, c_type, source

SHIM = r"""
#include <math.h>
#include <ucontext.h>
#include <vector>
struct dim3 { unsigned x, y, z; };
static dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(n)

namespace emu {
static const size_t STACK = 64 * 1024;
static std::vector<ucontext_t> ctx;
static std::vector<char> stacks;
static std::vector<int> state;  // 0 runnable, 1 waiting at a barrier, 2 finished
static ucontext_t main_ctx;
static unsigned current;
static void (*body)(void**);
static void** body_args;

inline void barrier() { state[current] = 1; swapcontext(&ctx[current], &main_ctx); }
static void entry() { body(body_args); state[current] = 2; }

static int run(unsigned grid, unsigned block, void (*fn)(void**), void** args) {
    body = fn; body_args = args;
    gridDim = {grid, 1, 1}; blockDim = {block, 1, 1};
    ctx.resize(block); state.assign(block, 0); stacks.resize((size_t)block * STACK);
    for (unsigned b = 0; b < grid; ++b) {
        blockIdx = {b, 0, 0};
        for (unsigned t = 0; t < block; ++t) {
            getcontext(&ctx[t]);
            ctx[t].uc_stack.ss_sp = &stacks[(size_t)t * STACK];
            ctx[t].uc_stack.ss_size = STACK;
            ctx[t].uc_link = &main_ctx;
            makecontext(&ctx[t], entry, 0);
            state[t] = 0;
        }
        for (;;) {
            for (unsigned t = 0; t < block; ++t)
                if (state[t] == 0) { current = t; threadIdx = {t, 0, 0}; swapcontext(&main_ctx, &ctx[t]); }
            unsigned waiting = 0, done = 0;
            for (unsigned t = 0; t < block; ++t) { waiting += state[t] == 1; done += state[t] == 2; }
            if (done == block) break;
            if (waiting != block) return 1;  // some threads left while others wait at a barrier
            for (unsigned t = 0; t < block; ++t) state[t] = 0;
        }
    }
    return 0;
}
}  // namespace emu

inline void __syncthreads() { emu::barrier(); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) { unsigned int old = *p; *p = old + v; return old; }
"""

_CTYPES = {"int": ctypes.c_int32, "long long": ctypes.c_int64, "float": ctypes.c_float, "double": ctypes.c_double}


def compiler() -> str | None:
    """A C++ compiler on PATH, or None."""
    return shutil.which("g++") or shutil.which("clang++")


def thunks() -> str:
    """For each kernel, ``emu_NAME(grid, block, args)``: args point at the values, as cuLaunchKernel's
    do. The casts use the source's own ``store_t`` and ``acc_t``, so one text serves every spec."""
    out = []
    for name, params in KERNEL_PARAMS.items():
        call = ", ".join(f"*({t}*)a[{i}]" for i, (t, _) in enumerate(params))
        out.append(f"static void thunk_{name}(void** a) {{ {name}({call}); }}\n"
                   f'extern "C" int emu_{name}(unsigned g, unsigned b, void** a) '
                   f"{{ return emu::run(g, b, thunk_{name}, a); }}\n")
    return "".join(out)


def load(code: str, cache: Path) -> ctypes.CDLL:
    """Compile (once per text) and load kernel source ``code`` with the shim and the launch thunks."""
    text = SHIM + code + thunks()
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    lib = cache / f"bn-{digest}.so"
    if not lib.is_file():
        cxx = compiler()
        if cxx is None:
            raise RuntimeError("no C++ compiler (g++ or clang++) to build the emulated kernels")
        src = lib.with_suffix(".cpp")
        src.write_text(text)
        tmp = lib.with_suffix(".tmp.so")
        proc = subprocess.run([cxx, "-std=c++17", "-O1", "-shared", "-fPIC", "-w", "-o", str(tmp), str(src)],
                              capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"{cxx} failed on {src}:\n{proc.stderr[-4000:]}")
        tmp.replace(lib)
    return ctypes.CDLL(str(lib))


def launch(lib: ctypes.CDLL, name: str, grid: int, block: int, args: tuple[Any, ...], c_types: list[str]) -> None:
    """Run kernel ``name`` over ``grid`` blocks of ``block`` threads; ``c_types``: each argument's C type."""
    holders = []
    for t, value in zip(c_types, args, strict=True):
        if t.endswith("*"):
            if not isinstance(value, np.ndarray) or not value.flags.c_contiguous:
                raise TypeError(f"{name}: a {t} argument must be a C-contiguous array, got {type(value).__name__}")
            holders.append(ctypes.c_void_p(value.ctypes.data))
        else:
            holders.append(_CTYPES[t](value.item() if hasattr(value, "item") else value))
    argv = (ctypes.c_void_p * len(holders))(*[ctypes.addressof(h) for h in holders])
    if getattr(lib, f"emu_{name}")(ctypes.c_uint(grid), ctypes.c_uint(block), argv):
        raise RuntimeError(f"{name}: the threads of a block did not all reach the same __syncthreads")


def default_cache() -> Path:
    cache = Path(tempfile.gettempdir()) / "bnspec-cuda-emulator"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


class EmulatedBackend:
    """``ops.Backend`` on the CPU: NumPy arrays for device memory, kernels from ``load``.

    Fresh buffers are filled with NaN (or NaN's bits) so that an output a kernel forgot to write
    shows; ``launches`` records every launch; ``plan_options`` reach ``plan`` (small blocks keep
    the emulation fast), ``chunk_bytes`` turns on channel chunks.
    """

    def __init__(self, sm_count: int = 2, cache: Path | None = None, chunk_bytes: int | None = None,
                 **plan_options: Any) -> None:
        self.sm_count = sm_count
        self.plan_options = plan_options
        self.chunk_bytes = chunk_bytes
        self.launches: list[tuple[str, int, int]] = []
        self._cache = cache or default_cache()
        self._libs: dict[KernelSpec, ctypes.CDLL] = {}
        self._counters = np.zeros(0, np.uint32)

    def empty(self, n: int, dtype: np.dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        if dtype == np.uint16:
            return np.full(n, 0x7E00, dtype)  # a float16 NaN
        return np.full(n, np.nan, dtype)

    def upload(self, host: np.ndarray) -> np.ndarray:
        return np.array(host, copy=True, order="C")

    def download(self, device_array: np.ndarray) -> np.ndarray:
        return device_array.copy()

    def counters(self, n: int) -> np.ndarray:
        if self._counters.size < n:
            self._counters = np.zeros(max(n, 1024), np.uint32)
        return self._counters

    def launch(self, spec: KernelSpec, name: str, grid: int, block: int, args: tuple[Any, ...]) -> None:
        lib = self._libs.get(spec)
        if lib is None:
            lib = self._libs[spec] = load(source(spec), self._cache)
        self.launches.append((name, grid, block))
        launch(lib, name, grid, block, args, [c_type(t, spec) for t, _ in KERNEL_PARAMS[name]])


class EmulatedCupyAdapter(CupyAdapter):
    """The ``cupy`` adapter on an ``EmulatedBackend`` (64-thread blocks unless told otherwise), so
    that ``bnspec run tests/cuda_emulator.py:EmulatedCupyAdapter`` judges the kernels on a CPU."""

    name = "cupy-emulated"

    def __init__(self, **options: Any) -> None:
        super().__init__(EmulatedBackend(**{"block": 64, **options}))


def fake_cupy(sm_count: int = 3) -> types.ModuleType:
    """A stand-in ``cupy`` module, enough for ``bnspec.adapters.cupy.device.CupyBackend``: NumPy arrays,
    and ``RawModule(code=...)`` whose kernels run on the emulator. A kernel call checks what CuPy
    would otherwise silently get wrong: the grid and block as tuples, every scalar a NumPy scalar of
    its parameter's width (CuPy passes a Python int as 64 bits, a float as a double)."""
    cache = default_cache()
    widths = {"int": np.int32, "long long": np.int64}

    class Kernel:
        def __init__(self, lib: ctypes.CDLL, name: str, acc: str) -> None:
            self.lib, self.name = lib, name
            self.c_types = [t.replace("acc_t", acc) for t, _ in KERNEL_PARAMS[name]]

        def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...]) -> None:
            assert isinstance(grid, tuple) and isinstance(block, tuple), (grid, block)
            for t, value in zip(self.c_types, args, strict=True):
                want = {**widths, "float": np.float32, "double": np.float64}.get(t)
                if want is not None and type(value) is not want:
                    raise TypeError(f"{self.name}: a {t} parameter got {type(value).__name__}")
            launch(self.lib, self.name, grid[0], block[0], args, self.c_types)

    class RawModule:
        def __init__(self, code: str) -> None:
            self.lib = load(code, cache)
            self.acc = "double" if "typedef double acc_t;" in code else "float"

        def get_function(self, name: str) -> Kernel:
            return Kernel(self.lib, name, self.acc)

    class Device:
        id = 0
        attributes = {"MultiProcessorCount": sm_count}

    cupy = types.ModuleType("cupy")
    cupy.__version__ = "0-emulated"
    cupy.RawModule = RawModule
    cupy.empty = lambda n, dtype: np.full(n, np.nan if np.dtype(dtype).kind == "f" else 0x7E00, dtype)
    cupy.zeros = lambda n, dtype: np.zeros(n, dtype)
    cupy.asarray = lambda a: np.array(a, copy=True, order="C")
    cupy.asnumpy = lambda a: np.array(a, copy=True)
    cupy.cuda = types.SimpleNamespace(Device=Device, runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    return cupy
