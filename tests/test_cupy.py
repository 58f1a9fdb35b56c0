"""The ``cupy`` adapter, tested without a GPU wherever possible.

- Source generation: every variant compiles to PTX for sm_80 and sm_90 (where ``nvcc`` exists),
  keeps its register arrays in registers, and declares exactly the parameters the launches pass.
- The kernels themselves run on the CPU (``cuda_emulator.py``: the same source built by g++):
  half-precision conversions bit for bit against NumPy, the multi-split merges on ill-conditioned
  data, every dtype, layout and rank, and a short conformance run. ``-m slow`` adds the full run.
- Shape logic and launch arithmetic against NumPy; argument errors before anything reaches a device.
- On a GPU only (``-m gpu``): ``bnspec run`` of ``cupy``, ``torch-cuda`` and ``torch-cuda-native``.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bnspec import Case
from bnspec.adapters import unavailable_reason
from bnspec.adapters.cupy import CupyAdapter, device
from bnspec.adapters.cupy.kernels import (
    ITEMSIZE,
    KERNEL_PARAMS,
    MAX_SHARED_BYTES,
    KernelSpec,
    c_type,
    conversions,
    prelude,
    source,
)
from bnspec.adapters.cupy.plan import (
    INDEX_LIMIT,
    MIN_ROW_BYTES,
    TAIL_BYTES,
    Geometry,
    channel_chunks,
    geometry,
    plan,
    vector_width,
)
from bnspec.conformance import run
from bnspec.conformance.compare import compare
from bnspec.conformance.tolerance import tolerances
from bnspec.dtypes import bfloat16, has_bfloat16
from bnspec.errors import InvalidArgument, InvalidDtype
from bnspec.reference import step

from .cuda_emulator import EmulatedBackend, EmulatedCupyAdapter, compiler, fake_cupy

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ("float16", "bfloat16", "float32", "float64")
needs_cxx = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++ or clang++) to emulate the kernels")
needs_bf16 = pytest.mark.skipif(not has_bfloat16(), reason="bfloat16 needs ml_dtypes")


def variants() -> list[KernelSpec]:
    """Each dtype, both layouts, the widest vector and scalar access."""
    return [KernelSpec(d, rows, vec) for d in DTYPES for rows in (False, True)
            for vec in sorted({1, 16 // ITEMSIZE[d]})]


# -- source generation ---------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_sources_compile_to_ptx_without_local_memory(tmp_path, arch, dtype):
    """Both layouts of a dtype, at the widest vector, compile with nvcc; no register array spills to
    local memory (a runtime index into one would put it there, and every load through local memory
    costs bandwidth). The scalar variants differ only in BN_VEC; the emulator runs them all."""
    specs = [s for s in variants() if s.dtype == dtype and s.vec * ITEMSIZE[dtype] == 16]
    procs = []
    for spec in specs:
        cu = tmp_path / f"{spec.name}.cu"
        cu.write_text(source(spec))
        procs.append(subprocess.Popen(["nvcc", "-ptx", f"-arch={arch}", "-o", str(cu.with_suffix(".ptx")), str(cu)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for spec, proc in zip(specs, procs):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        ptx = (tmp_path / f"{spec.name}.ptx").read_text()
        entries = set(re.findall(r"\.entry (\w+)\(", ptx))
        assert entries == set(KERNEL_PARAMS), entries
        assert ".local" not in ptx, f"{spec.name} uses local memory"
        assert re.search(r"ld\.global(\.nc)?\.v[24]\.", ptx), f"{spec.name} has no 128-bit loads"


def test_source_needs_no_header_and_declares_what_launches_pass():
    """The parameter lists the launches are built from (KERNEL_PARAMS) are the kernels' own, type
    for type: CuPy passes each argument at the width of the type it was given, so a mismatch would
    shift every later argument on the GPU."""
    for spec in variants():
        text = source(spec)
        assert "#include" not in text
        for name, params in KERNEL_PARAMS.items():
            m = re.search(r'extern "C" __global__ void (?:__launch_bounds__\(\w+\) )?' + name + r"\(([^)]*)\)", text)
            assert m, f"{name} missing from {spec.name}"
            declared = [re.sub(r"\s+", " ", p.replace("__restrict__", "")).strip() for p in m.group(1).split(",")]
            assert [" ".join(d.split()) for d in declared] == [f"{t} {p}" for t, p in params], name
        # ... and store_t, acc_t are the C types the launches pack their values as.
        assert f"typedef {c_type('store_t', spec)} store_t;" in text
        assert f"typedef {c_type('acc_t', spec)} acc_t;" in text


@pytest.mark.parametrize("kwargs,match", [
    (dict(dtype="int8", rows=False), "dtype='int8'"),
    (dict(dtype="float32", rows=False, vec=8), "vec=8"),
    (dict(dtype="float32", rows=False, vec=3), "vec=3"),
    (dict(dtype="float32", rows=False, block=96), "block=96"),
    (dict(dtype="float32", rows=False, unroll=0), "unroll=0"),
    (dict(dtype="float16", rows=True, vec=8, block=1024), "shared memory"),
])
def test_kernel_spec_rejects_what_cannot_compile(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KernelSpec(**kwargs)


def test_shared_memory_fits_every_default_variant():
    assert all(s.shared_bytes <= MAX_SHARED_BYTES for s in variants())
    assert "typedef float acc_t" in prelude(KernelSpec("bfloat16", True, 8))
    assert "typedef double acc_t" in prelude(KernelSpec("float64", False, 2))


# -- half-precision conversions, bit for bit ---------------------------------------------------

def _conversion_lib(tmp_path: Path, dtype: str):
    import ctypes

    code = ("#include <math.h>\n#define __device__\n#define __forceinline__ inline\n"
            "typedef float acc_t;\n"
            "inline unsigned int bn_float_bits(float f) { union { float f; unsigned int u; } c; c.f = f; return c.u; }\n"
            "inline float bn_bits_float(unsigned int u) { union { float f; unsigned int u; } c; c.u = u; return c.f; }\n"
            + conversions(dtype) +
            'extern "C" void load_all(const unsigned short* h, float* f, long n) { for (long i = 0; i < n; ++i) f[i] = bn_load(h[i]); }\n'
            'extern "C" void store_all(const float* f, unsigned short* h, long n) { for (long i = 0; i < n; ++i) h[i] = bn_store(f[i]); }\n')
    src, lib = tmp_path / f"conv_{dtype}.cpp", tmp_path / f"conv_{dtype}.so"
    src.write_text(code)
    subprocess.run([compiler(), "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return ctypes.CDLL(str(lib))


def _float32_probes() -> np.ndarray:
    """Random bit patterns plus the edges: every exponent's ties and neighbours, subnormals, overflow."""
    rng = np.random.default_rng(0)
    lows = {0, 0x7FFFFF}
    for k in range(23):  # each bit position's tie, its neighbours, and the tie above an odd value
        lows |= {1 << k, (1 << k) - 1, (1 << k) + 1, (3 << k) & 0x7FFFFF}
    edges = np.array([(e << 23) | low for e in range(256) for low in sorted(lows)], dtype=np.uint64)
    bits = np.concatenate([rng.integers(0, 2**32, 200_000, dtype=np.uint64), edges, edges | 0x80000000])
    return bits.astype(np.uint32).view(np.float32)


@needs_cxx
@pytest.mark.parametrize("dtype", ["float16", pytest.param("bfloat16", marks=needs_bf16)])
def test_half_conversions_match_numpy_bit_for_bit(tmp_path, dtype):
    """bn_load is exact on all 65536 patterns; bn_store rounds to nearest even exactly as NumPy (ml_dtypes
    for bfloat16) does, subnormals, ties and overflow included; a NaN stays a NaN."""
    import ctypes

    lib = _conversion_lib(tmp_path, dtype)
    np_dtype = np.dtype(np.float16) if dtype == "float16" else bfloat16()
    every = np.arange(2**16, dtype=np.uint16)
    got = np.empty(every.size, np.float32)
    lib.load_all(every.ctypes.data_as(ctypes.c_void_p), got.ctypes.data_as(ctypes.c_void_p), ctypes.c_long(every.size))
    want = every.view(np_dtype).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan) and np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))
    f = _float32_probes()
    out = np.empty(f.size, np.uint16)
    lib.store_all(f.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_long(f.size))
    with np.errstate(over="ignore", invalid="ignore"):
        ref = f.astype(np_dtype)
    ref_nan = np.isnan(ref.astype(np.float32))
    assert np.array_equal(np.isnan(out.view(np_dtype).astype(np.float32)), ref_nan)
    assert np.array_equal(out[~ref_nan], ref.view(np.uint16)[~ref_nan])


# -- shape logic and launch arithmetic ----------------------------------------------------------

@given(st.lists(st.integers(1, 5), min_size=2, max_size=5), st.data())
def test_geometry_views_each_channel_exactly(dims, data):
    """(outer, C, inner) of a C-contiguous array holds channel c's values at [:, c, :], the same
    values in the same order as NumPy's moveaxis of the channel axis to the front."""
    shape = tuple(dims)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.arange(np.prod(shape)).reshape(shape)
    g = geometry(shape, axis)
    view = x.reshape(g.outer, g.channels, g.inner)
    moved = np.moveaxis(x, axis, 0).reshape(shape[axis], -1)
    for c in range(g.channels):
        assert np.array_equal(view[:, c, :].reshape(-1), moved[c])
    assert g.values_per_channel == x.size // shape[axis] and g.size == x.size


def test_geometry_of_each_layout():
    assert geometry((8, 3, 5, 7), 1) == Geometry(8, 3, 35)  # channel-first: planar
    assert geometry((8, 5, 7, 3), -1) == Geometry(280, 3, 1)  # channel-last: rows
    assert geometry((32, 1024), 1) == geometry((32, 1024), -1) == Geometry(32, 1024, 1)
    with pytest.raises(ValueError, match="axis=2"):
        geometry((4, 3), 2)


@given(outer=st.integers(1, 5000), channels=st.integers(1, 600), inner=st.sampled_from([1, 1, 2, 3, 4, 8, 49, 784]),
       dtype=st.sampled_from(DTYPES), sms=st.sampled_from([1, 2, 108, 132]), block=st.sampled_from([64, 256]))
def test_launch_partitions_every_item_once(outer, channels, inner, dtype, sms, block):
    """Splits cover each group's items exactly once, none empty, each thread at least one full batch
    where there are items enough; rows tiles cover every channel; vectors divide their contiguous run
    and fit 16 bytes; the grid is groups x splits."""
    g = Geometry(outer, channels, inner)
    launch = plan(dtype, g, sms, block=block)
    spec = launch.spec
    assert spec.rows == (inner == 1)
    run_len = channels if spec.rows else inner
    assert run_len % spec.vec == 0 and spec.vec * ITEMSIZE[dtype] <= 16
    if spec.vec < 16 // ITEMSIZE[dtype]:
        assert run_len % (2 * spec.vec) != 0  # the widest that divides
    items = outer if spec.rows else outer * inner // spec.vec
    assert launch.items == items
    assert (launch.splits - 1) * launch.chunk < items <= launch.splits * launch.chunk
    assert launch.grid == launch.groups * launch.splits
    if launch.splits > 1:
        assert launch.chunk >= (block // launch.tx_count) * spec.unroll
    if spec.rows:
        vectors = channels // spec.vec
        assert launch.groups == -(-vectors // launch.tx_count) and launch.tx_count <= 32
        assert launch.tail_bytes <= TAIL_BYTES or launch.tx_count * spec.vec * ITEMSIZE[dtype] <= MIN_ROW_BYTES \
            or launch.tx_count == 1
    else:
        assert launch.tx_count == 1 and launch.groups == channels


def test_launch_of_the_benchmark_shapes_on_132_multiprocessors():
    """The plans an H100 gets: 16-byte vectors, a few blocks per multiprocessor, small tails."""
    for shape, axis, dtype in [((256, 64, 56, 56), 1, "float32"), ((256, 56, 56, 64), -1, "float32"),
                               ((64, 256, 28, 28), 1, "bfloat16"), ((64, 28, 28, 256), -1, "bfloat16")]:
        launch = plan(dtype, geometry(shape, axis), 132)
        assert launch.spec.vec * ITEMSIZE[dtype] == 16
        assert 132 * 2 <= launch.grid <= 132 * 8, (shape, launch.grid)
        assert launch.tail_bytes <= TAIL_BYTES


@given(outer=st.integers(1, 64), channels=st.integers(1, 40), inner=st.sampled_from([1, 4, 9, 64]),
       chunk_bytes=st.sampled_from([None, 1, 100, 2000, 10**6]), arrays=st.sampled_from([1, 2]))
def test_channel_chunks_cover_each_channel_once(outer, channels, inner, chunk_bytes, arrays):
    """Chunks tile the channels in order, each within chunk_bytes of the arrays read twice unless one
    channel alone is larger; channel-last inputs, and inputs that fit, stay one launch."""
    g = Geometry(outer, channels, inner)
    chunks = channel_chunks("float32", g, 4, chunk_bytes, arrays=arrays)
    covered = [c for launch in chunks for c in range(launch.c0, launch.c0 + launch.groups) if not launch.spec.rows]
    per_channel = outer * inner * 4 * arrays
    if inner == 1 or chunk_bytes is None or per_channel * channels <= chunk_bytes:
        assert len(chunks) == 1 and chunks[0].c0 == 0
    else:
        assert covered == list(range(channels))
        assert all(launch.groups * per_channel <= chunk_bytes or launch.groups == 1 for launch in chunks)


def test_launch_refuses_empty_and_oversized_inputs():
    with pytest.raises(ValueError, match="empty"):
        plan("float32", Geometry(0, 3, 4), 4)
    with pytest.raises(ValueError, match="32-bit"):
        plan("float32", Geometry(INDEX_LIMIT + 1, 2, 1), 4)
    assert vector_width("float32", Geometry(2, 3, 6)) == 2 and vector_width("float16", Geometry(2, 24, 1)) == 8
    with pytest.raises(ValueError, match="not a range"):
        plan("float32", Geometry(2, 3, 6), 4, c0=2, channels=2)
    with pytest.raises(ValueError, match="channel-last"):
        plan("float32", Geometry(2, 3, 1), 4, c0=1, channels=1)


# -- argument checks come first ----------------------------------------------------------------

class NoDevice:
    """A backend that fails the test if anything reaches it."""

    sm_count = 1
    plan_options: dict = {}

    def __getattr__(self, name):
        raise AssertionError(f"the backend was used ({name}) for an invalid call")


@pytest.mark.parametrize("change,error,match", [
    (dict(x=np.zeros((4, 3), np.int32)), InvalidDtype, "x.dtype=int32"),
    (dict(eps=-1e-5), InvalidArgument, "eps=-1e-05"),
    (dict(momentum=1.5), InvalidArgument, "momentum=1.5"),
    (dict(momentum=float("nan")), InvalidArgument, "momentum=nan"),
    (dict(weight=np.ones(2, np.float32)), InvalidArgument, "weight.shape=.2,."),
    (dict(running_var=np.ones(1, np.float32)), InvalidArgument, "running_var.shape=.1,."),
    (dict(x=np.zeros((1, 3), np.float32)), InvalidArgument, "one value per channel"),
    (dict(x=np.zeros(3, np.float32)), InvalidArgument, "rank 1"),
    (dict(axis=2), InvalidArgument, "axis=2"),
    (dict(grad_output=np.zeros((4, 2), np.float32)), InvalidArgument, "grad_output shape"),
    (dict(num_batches_tracked=-1), InvalidArgument, "num_batches_tracked=-1"),
])
def test_invalid_use_raises_before_the_device_is_touched(change, error, match):
    """The adapter validates like the reference (its own implementation must conform to the argument
    clauses) and raises, naming the parameter, before uploading or launching anything."""
    base = Case(x=np.zeros((4, 3), np.float32), weight=np.ones(3, np.float32), bias=np.zeros(3, np.float32),
                running_mean=np.zeros(3, np.float32), running_var=np.ones(3, np.float32))
    with pytest.raises(error, match=match):
        CupyAdapter(NoDevice()).run(replace(base, **change))


def test_unavailable_says_no_cuda_device(monkeypatch):
    """Without CuPy the registry says how to install it; with a CuPy that finds no device, or that
    cannot import, the adapter says "no CUDA device"; importing the adapter imports no CuPy."""
    if importlib.util.find_spec("cupy") is None:
        assert unavailable_reason("cupy") == "cupy is not installed (pip install 'bnspec[cupy]')"

    class Runtime:
        class CUDARuntimeError(RuntimeError):
            pass

        @classmethod
        def getDeviceCount(cls):
            raise cls.CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = type(sys)("cupy")
    fake.__version__ = "0-test"
    fake.cuda = type(sys)("cupy.cuda")
    fake.cuda.runtime = Runtime
    monkeypatch.setitem(sys.modules, "cupy", fake)
    assert device.unavailable_reason().startswith("no CUDA device (cupy 0-test: CUDARuntimeError")
    Runtime.getDeviceCount = classmethod(lambda cls: 0)
    assert device.unavailable_reason() == "no CUDA device (cupy 0-test found none)"
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert device.unavailable_reason().startswith("no CUDA device: cupy cannot be imported")
    out = subprocess.run([sys.executable, "-c", "import sys, bnspec.adapters.cupy; print('cupy' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- the kernels, emulated on the CPU ------------------------------------------------------------

def _within_model(case: Case, out, *, names=("y", "running_mean", "running_var", "grad_input", "grad_weight",
                                              "grad_bias")) -> float:
    """The worst error / tolerance (spec/precision.md) over the outputs; asserts each is within."""
    want = step(case.x, axis=case.axis, training=case.training, eps=case.eps, momentum=case.momentum,
                weight=case.weight, bias=case.bias, running_mean=case.running_mean, running_var=case.running_var,
                num_batches_tracked=case.num_batches_tracked, grad_output=case.grad_output)
    tol = tolerances(case, want)
    worst = 0.0
    for name in names:
        got, exact = getattr(out, name), getattr(want, name)
        if exact is None:
            assert got is None, name
            continue
        verdict = compare(name, got, exact, tol[name])
        assert verdict.ok, f"{verdict.message} ({case.describe()})"
        worst = max(worst, verdict.budget)
    return worst


@needs_cxx
@pytest.mark.parametrize("axis", [1, -1])
def test_many_splits_merge_ill_conditioned_data(axis):
    """Welford batches, the block's tree and the last block's merge of 30-odd partials keep a
    float32 batch of mean 1e4 and spread 1 within the precision model (a one-pass E[x^2] - E[x]^2
    in float32 would lose every digit), and two runs agree bit for bit; the counters end at zero."""
    rng = np.random.default_rng(7)
    shape = (96, 3, 41) if axis == 1 else (96, 41, 3)
    x = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    case = Case(x=x, axis=axis, weight=rng.normal(1, 0.5, 3).astype(np.float32),
                bias=rng.normal(0, 1, 3).astype(np.float32), running_mean=np.zeros(3, np.float32),
                running_var=np.ones(3, np.float32), grad_output=rng.standard_normal(shape).astype(np.float32))
    be = EmulatedBackend(sm_count=64, block=64, unroll=1)  # ~1 block per 64 items: many splits
    adapter = CupyAdapter(be)
    first, second = adapter.run(case), adapter.run(case)
    launch = plan("float32", geometry(shape, axis), 64, block=64, unroll=1)
    assert launch.splits >= 30, launch
    _within_model(case, first)
    for name in ("y", "running_mean", "running_var", "grad_input", "grad_weight", "grad_bias"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert not be.counters(1).any()
    assert [n for n, _, _ in be.launches[:4]] == ["bn_stats", "bn_normalize", "bn_grad_reduce", "bn_grad_input"]


@needs_cxx
@pytest.mark.parametrize("dtype", ["float16", pytest.param("bfloat16", marks=needs_bf16), "float32", "float64"])
def test_every_rank_layout_and_mode(dtype):
    """Ranks 2 to 5 in both layouts, training (tracked, cumulative, untracked), eval and eval untracked,
    affine on and off, with gradients: within the precision model; state and counter as the spec says."""
    rng = np.random.default_rng(3)
    dt = np.dtype(dtype) if dtype != "bfloat16" else bfloat16()
    be = EmulatedBackend(block=64)
    adapter = CupyAdapter(be)
    modes = [dict(training=True), dict(training=True, momentum=None, num_batches_tracked=3),
             dict(training=True, tracked=False), dict(training=False), dict(training=False, tracked=False),
             dict(training=True, affine=False)]
    shapes = {2: (9, 5), 3: (3, 5, 7), 4: (2, 5, 3, 4), 5: (2, 5, 2, 3, 2)}
    for i, mode_i in enumerate(modes):
        for shape in shapes.values():
            for axis in (1, -1):
                mode = dict(mode_i)
                tracked, affine = mode.pop("tracked", True), mode.pop("affine", True)
                sh = shape if axis == 1 else shape[:1] + shape[2:] + shape[1:2]  # channel moved last
                c = sh[axis]
                pdt = np.float32 if dtype in ("float16", "bfloat16") and i % 2 else dt
                case = Case(x=(rng.standard_normal(sh) * 3 + 2).astype(dt), axis=axis,
                            weight=rng.normal(1, 0.5, c).astype(pdt) if affine else None,
                            bias=rng.normal(0, 1, c).astype(pdt) if affine else None,
                            running_mean=rng.normal(0, 1, c).astype(pdt) if tracked else None,
                            running_var=rng.uniform(0.5, 2, c).astype(pdt) if tracked else None,
                            grad_output=rng.standard_normal(sh).astype(dt), **mode)
                out = adapter.run(case)
                _within_model(case, out)
                assert out.y.dtype == case.x.dtype and out.grad_input.dtype == case.x.dtype
                if tracked:
                    assert out.running_mean.dtype == case.running_mean.dtype
                    assert out.num_batches_tracked == case.num_batches_tracked + int(case.training)
                    if not case.training:
                        assert out.running_mean is not case.running_mean
                        assert np.array_equal(out.running_mean, case.running_mean)
                else:
                    assert out.running_mean is None and out.num_batches_tracked is None


@needs_cxx
def test_empty_batch_and_constant_channel():
    """An empty batch returns an empty y and leaves the state alone, without launching; a constant
    channel gives y = beta and finite gradients."""
    be = EmulatedBackend(block=64)
    adapter = CupyAdapter(be)
    rm, rv = np.array([1.0, 2.0], np.float32), np.array([3.0, 4.0], np.float32)
    out = adapter.run(Case(x=np.zeros((0, 2, 3), np.float32), running_mean=rm, running_var=rv, num_batches_tracked=2))
    assert out.y.shape == (0, 2, 3) and np.array_equal(out.running_mean, rm) and out.num_batches_tracked == 2
    assert be.launches == []
    x = np.stack([np.full((4, 3), 7.25), np.arange(12.0).reshape(4, 3)], axis=1).astype(np.float32)
    beta = np.array([0.5, -1.0], np.float32)
    case = Case(x=x, eps=1e-8, weight=np.array([2.0, 1.0], np.float32), bias=beta,
                grad_output=np.random.default_rng(0).standard_normal(x.shape).astype(np.float32))
    out = adapter.run(case)
    assert np.all(out.y[:, 0] == beta[0]) and np.all(np.isfinite(out.grad_input)) and out.grad_weight[0] == 0
    _within_model(case, out)


@needs_cxx
def test_nonfinite_values_stay_in_their_channel():
    x = np.random.default_rng(1).standard_normal((6, 4, 5)).astype(np.float32)
    x[2, 1, 3] = np.nan
    case = Case(x=x, axis=1, running_mean=np.zeros(4, np.float32), running_var=np.ones(4, np.float32),
                grad_output=np.ones_like(x), weight=np.ones(4, np.float32), bias=np.zeros(4, np.float32))
    out = CupyAdapter(EmulatedBackend(block=64)).run(case)
    assert np.isnan(out.y[:, 1]).all() and np.isfinite(np.delete(out.y, 1, axis=1)).all()
    assert np.isfinite(np.delete(out.running_mean, 1)).all() and np.isfinite(np.delete(out.grad_input, 1, axis=1)).all()


@needs_cxx
def test_cupy_backend_glue_on_a_stand_in_cupy(monkeypatch):
    """The real CupyBackend (device.py) over a stand-in cupy whose RawModule runs the emulator and
    rejects arguments CuPy would pass at the wrong width: the adapter's default path end to end."""
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(sm_count=3))
    assert device.unavailable_reason() is None
    adapter = CupyAdapter()
    assert isinstance(adapter.backend, device.CupyBackend) and adapter.backend.sm_count == 3
    rng = np.random.default_rng(5)
    for shape, axis, dt in [((5, 3, 4, 4), 1, np.float32), ((5, 4, 4, 3), -1, np.float64), ((7, 6), 1, np.float16)]:
        c = shape[axis]
        case = Case(x=rng.standard_normal(shape).astype(dt), axis=axis, momentum=None, num_batches_tracked=1,
                    weight=rng.normal(1, 0.5, c).astype(np.float32 if dt == np.float16 else dt),
                    bias=rng.normal(0, 1, c).astype(np.float32 if dt == np.float16 else dt),
                    running_mean=np.zeros(c, np.float32 if dt == np.float16 else dt),
                    running_var=np.ones(c, np.float32 if dt == np.float16 else dt),
                    grad_output=rng.standard_normal(shape).astype(dt))
        _within_model(case, adapter.run(case))
        _within_model(replace(case, training=False), adapter.run(replace(case, training=False)))


@needs_cxx
@pytest.mark.parametrize("chunk_bytes", [None, 256])
def test_conformance_run_on_the_emulated_kernels(chunk_bytes):
    """The whole suite, default examples, on 64-thread blocks, in one launch per pass and in channel
    chunks of 256 bytes (several launches for most channel-first cases): every check it can take passes."""
    report = run(EmulatedCupyAdapter(chunk_bytes=chunk_bytes), run_seed=0)
    assert report.ok, [(r.name, r.message) for r in report.results if r.failed]
    # Only the SYNC checks (several replicas; this is one device) and the GRAD2 ones (its kernels
    # compute first-order gradients only) are outside its capabilities.
    assert {r.area for r in report.results if r.status == "unsupported"} <= {"SYNC", "GRAD2"}


@pytest.mark.slow
@needs_cxx
def test_conformance_run_at_the_gpus_block_size():
    """The same at 256-thread blocks (what a GPU runs), on another seed."""
    report = run(EmulatedCupyAdapter(block=256, sm_count=4), run_seed=1)
    assert report.ok, [(r.name, r.message) for r in report.results if r.failed]


# -- the benchmark, and the GPU ----------------------------------------------------------------------

def _benchmark():
    spec = importlib.util.spec_from_file_location("gpu_bn", ROOT / "benchmarks" / "gpu_bn.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_bn", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_benchmark_counts_the_minimum_bytes():
    """Forward passes read x and write y, backward reads x and dy and writes dx; plus the per-channel vectors."""
    bench = _benchmark()
    n, c = 256 * 64 * 56 * 56, 64
    assert bench.must_move("forward-train", n, 4, c) == 2 * n * 4 + 6 * c * 4
    assert bench.must_move("eval", n, 2, c) == 2 * n * 2 + 4 * c * 4
    assert bench.must_move("backward", n, 2, c) == 3 * n * 2 + 5 * c * 4
    assert bench.two_pass_bytes("forward-train", n, 4, c) - bench.must_move("forward-train", n, 4, c) == n * 4
    assert bench.two_pass_bytes("backward", n, 4, c) - bench.must_move("backward", n, 4, c) == 2 * n * 4


def test_benchmark_fails_fast_without_a_gpu():
    if _benchmark().gpu_unavailable() is None:
        pytest.skip("a GPU is here: the benchmark would run")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_bn.py")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "gpu_bn: cannot run:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.gpu
@pytest.mark.parametrize("target", ["cupy", "torch-cuda", "torch-cuda-native"])
def test_conformance_on_the_gpu(target, tmp_path):
    reason = unavailable_reason(target)
    if reason:
        pytest.skip(reason)  # "no CUDA device (...)", or the package to install
    proc = subprocess.run([sys.executable, "-m", "bnspec", "run", target, "--seed", "0",
                           "--json", str(tmp_path / f"{target}.json")], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

