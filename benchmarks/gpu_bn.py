"""GPU batch-norm throughput: bnspec's ``cupy`` kernels against PyTorch's two CUDA paths, in one process.

    python benchmarks/gpu_bn.py [--out docs/results/gpu-bn.md] [--repeat N] [--warmup N] [--dtypes ...]

For every shape, layout and dtype below it times forward-train (batch statistics, running
statistics updated), eval (running statistics) and backward (dx, dgamma, dbeta from a training
forward) for ``cupy`` (``bnspec.adapters.cupy.ops`` on device arrays), ``cupy-l2`` (the same,
channel-first passes run in channel chunks of ``--l2-fraction`` of L2 so that their second read
hits L2; channel-last runs as ``cupy``), ``torch-cuda`` (``F.batch_norm`` as PyTorch dispatches
it, cuDNN where it chooses) and ``torch-cuda-native`` (the same with
``torch.backends.cudnn.enabled = False``). Each time is the median of ``--repeat``
runs, each between two CUDA events, after ``--warmup`` runs.

Bytes that must move (the minimum reads and writes; N elements of s bytes, C channels, float32
parameters and statistics of 4 bytes):

- forward-train: read x, write y: 2 N s; per channel read gamma, beta, running mean and variance,
  write running mean and variance: 6 C 4.
- eval: read x, write y: 2 N s; per channel read gamma, beta, running mean and variance: 4 C 4.
- backward: read x and dy, write dx: 3 N s; per channel read gamma and the saved mean and inverse
  deviation, write dgamma and dbeta: 5 C 4.

The copy bandwidth is a device-to-device ``cudaMemcpy`` of ``--copy-mib`` MiB (far beyond L2),
counted as it reads and writes every byte: 2 x size / time. "of copy" is achieved GB/s over it.

The minimum is not what a two-pass algorithm moves: a training forward reads x twice (3 N s) and a
backward reads x and dy twice (5 N s) unless the second read hits L2. So on shapes much larger
than L2, forward-train can reach at most about 2/3 of the copy bandwidth on the minimum count and
backward about 3/5; the "two-pass GB/s" column counts the bytes the passes actually request, to
show how close each pass runs to the hardware. Fails fast (exit status 2) without a CUDA device.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# (shape, layout): rank 4 in channel-first (NCHW) and channel-last (NHWC); rank 2 has one layout.
SHAPES = (((256, 64, 56, 56), "NCHW"), ((256, 64, 56, 56), "NHWC"), ((64, 256, 28, 28), "NCHW"),
          ((64, 256, 28, 28), "NHWC"), ((32, 1024), "NC"))
PASSES = ("forward-train", "eval", "backward")
IMPLS = ("cupy", "cupy-l2", "torch-cuda", "torch-cuda-native")
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4}
PARAM_BYTES = 4


def must_move(pass_name: str, elements: int, itemsize: int, channels: int) -> int:
    """The minimum bytes a pass reads and writes (see the module docstring)."""
    per_element = {"forward-train": 2, "eval": 2, "backward": 3}[pass_name]
    per_channel = {"forward-train": 6, "eval": 4, "backward": 5}[pass_name]
    return per_element * elements * itemsize + per_channel * channels * PARAM_BYTES


def two_pass_bytes(pass_name: str, elements: int, itemsize: int, channels: int) -> int:
    """Bytes a two-pass implementation requests: x read twice in training, x and dy twice backward."""
    per_element = {"forward-train": 3, "eval": 2, "backward": 5}[pass_name]
    return per_element * elements * itemsize + must_move(pass_name, 0, itemsize, channels)


def gpu_unavailable() -> str | None:
    """Why this benchmark cannot run here, or None."""
    try:
        import cupy
    except ImportError as exc:
        return f"cupy is not importable ({exc}); pip install 'bnspec[cupy]'"
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return "no CUDA device (cupy found none)"
    except Exception as exc:  # noqa: BLE001 - no driver, no device: all the same here
        return f"no CUDA device ({type(exc).__name__}: {exc})"
    try:
        import torch
    except ImportError:
        return "torch is not installed; install a CUDA build of torch"
    if not torch.cuda.is_available():
        return f"no CUDA device for torch {torch.__version__} (a CPU build?)"
    return None


@dataclass
class Row:
    shape: tuple[int, ...]
    layout: str
    dtype: str
    pass_name: str
    impl: str
    ms: float
    min_bytes: int
    algo_bytes: int


class Timer:
    """Median milliseconds of ``fn`` between CUDA events on the current stream."""

    def __init__(self, warmup: int, repeat: int) -> None:
        import torch

        self.torch, self.warmup, self.repeat = torch, warmup, repeat

    def __call__(self, fn: Any) -> float:
        torch = self.torch
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.repeat):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)


def copy_gbps(mib: int, timer: Timer) -> float:
    """Device-to-device memcpy bandwidth, reads plus writes."""
    import cupy

    n = mib * 2**20
    src, dst = cupy.ones(n, dtype=cupy.uint8), cupy.empty(n, dtype=cupy.uint8)
    rt = cupy.cuda.runtime
    stream = cupy.cuda.get_current_stream().ptr

    def copy() -> None:
        rt.memcpyAsync(dst.data.ptr, src.data.ptr, n, rt.memcpyDeviceToDevice, stream)

    return 2 * n / (timer(copy) * 1e-3) / 1e9


class Case:
    """One shape, layout and dtype: the same data as torch tensors and as CuPy arrays."""

    def __init__(self, shape: tuple[int, ...], layout: str, dtype: str) -> None:
        import torch

        tdtype = getattr(torch, dtype)
        self.shape, self.layout, self.dtype = shape, layout, dtype
        self.channels = shape[1]
        gen = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn(shape, device="cuda", generator=gen) * 2 + 0.5
        dy = torch.randn(shape, device="cuda", generator=gen)
        if layout == "NHWC":
            x, dy = (t.contiguous(memory_format=torch.channels_last) for t in (x, dy))
        self.x, self.dy = x.to(tdtype), dy.to(tdtype)
        c = self.channels
        self.weight = torch.rand(c, device="cuda", generator=gen) + 0.5
        self.bias = torch.randn(c, device="cuda", generator=gen)
        self.running_mean = torch.zeros(c, device="cuda")
        self.running_var = torch.ones(c, device="cuda")

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def physical(self, t: Any) -> Any:
        """A CuPy array of ``t``'s memory in order (channel-last: NHWC), halves as their 16 bits."""
        import cupy
        import torch

        if self.layout == "NHWC":
            t = t.permute(0, 2, 3, 1)
        assert t.is_contiguous()
        if t.element_size() == 2:  # CuPy has no bfloat16: pass the bits
            t = t.view(torch.int16)
        a = cupy.from_dlpack(t)
        return a.view(cupy.uint16) if a.dtype.itemsize == 2 else a


def cupy_passes(case: Case, backend: Any, chunk_bytes: int | None = None) -> dict[str, Any]:
    """The three passes on ``ops``; with ``chunk_bytes``, channel-first passes in L2-sized channel chunks."""
    import cupy

    from bnspec.adapters.cupy import ops
    from bnspec.adapters.cupy.plan import channel_chunks, geometry

    axis = -1 if case.layout == "NHWC" else 1
    shape = case.shape if case.layout != "NHWC" else (case.shape[0], *case.shape[2:], case.shape[1])
    geo = geometry(shape, axis)
    launch = channel_chunks(case.dtype, geo, backend.sm_count, chunk_bytes, arrays=1)
    grad_launch = channel_chunks(case.dtype, geo, backend.sm_count, chunk_bytes, arrays=2)
    x, dy = case.physical(case.x), case.physical(case.dy)
    w, b = cupy.from_dlpack(case.weight), cupy.from_dlpack(case.bias)
    rm, rv = cupy.from_dlpack(case.running_mean.clone()), cupy.from_dlpack(case.running_var.clone())
    m = case.elements // case.channels
    update = ops.RunningUpdate(rm, rv, 0.1, m / (m - 1))
    _, coef = ops.forward(backend, launch, x, w, b, 1e-5, batch_stats=True)
    return {
        "forward-train": lambda: ops.forward(backend, launch, x, w, b, 1e-5, batch_stats=True, update=update),
        "eval": lambda: ops.forward(backend, launch, x, w, b, 1e-5, batch_stats=False, running_mean=rm,
                                    running_var=rv),
        "backward": lambda: ops.backward(backend, grad_launch, x, dy, coef, batch_stats=True, param_grads=True),
    }


def torch_passes(case: Case, cudnn: bool) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    rm, rv = case.running_mean.clone(), case.running_var.clone()
    xg = case.x.detach().clone().requires_grad_(True)
    wg, bg = case.weight.clone().requires_grad_(True), case.bias.clone().requires_grad_(True)

    def flag(fn: Any) -> Any:
        """``fn`` with cuDNN enabled or not; the flag is read when PyTorch dispatches each call."""
        def run() -> Any:
            before = torch.backends.cudnn.enabled
            torch.backends.cudnn.enabled = cudnn
            try:
                return fn()
            finally:
                torch.backends.cudnn.enabled = before
        return run

    # The graph the backward pass differentiates: built once, on the same path.
    y = flag(lambda: F.batch_norm(xg, rm.clone(), rv.clone(), wg, bg, training=True, momentum=0.1, eps=1e-5))()

    def forward_train() -> Any:
        with torch.no_grad():
            return F.batch_norm(case.x, rm, rv, case.weight, case.bias, training=True, momentum=0.1, eps=1e-5)

    def evaluate() -> Any:
        with torch.no_grad():
            return F.batch_norm(case.x, rm, rv, case.weight, case.bias, training=False, momentum=0.1, eps=1e-5)

    def backward() -> Any:
        return torch.autograd.grad(y, (xg, wg, bg), case.dy, retain_graph=True)

    return {"forward-train": flag(forward_train), "eval": flag(evaluate), "backward": flag(backward)}


def check_outputs(case: Case, backend: Any) -> float:
    """Largest |y_cupy - y_torch| / max|y_torch| of a training forward: a guard against timing garbage."""
    import cupy
    import torch
    import torch.nn.functional as F

    fwd = cupy_passes(case, backend)["forward-train"]
    y_cupy, _ = fwd()
    with torch.no_grad():
        y_t = F.batch_norm(case.x, None, None, case.weight, case.bias, training=True, eps=1e-5)
    if case.layout == "NHWC":
        y_t = y_t.permute(0, 2, 3, 1)
    y_t = y_t.contiguous().float().reshape(-1)
    if case.x.element_size() == 2:  # cupy holds the bits: rebuild the values through torch
        bits = torch.from_dlpack(y_cupy.view(cupy.int16)).reshape(-1)
        y_c = bits.view(case.x.dtype).float()
    else:
        y_c = torch.from_dlpack(y_cupy).reshape(-1).float()
    return float((y_c - y_t).abs().max() / y_t.abs().max())


def run(args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    import cupy
    import torch

    from bnspec.adapters.cupy.device import CupyBackend

    timer = Timer(args.warmup, args.repeat)
    backend = CupyBackend()
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    info = {
        "device": props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"]),
        "sms": backend.sm_count,
        "l2_mib": props.get("l2CacheSize", 0) / 2**20,
        "copy_gbps": copy_gbps(args.copy_mib, timer),
        "cupy": cupy.__version__, "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "date": datetime.date.today().isoformat(),
        "checks": {},
    }
    rows: list[Row] = []
    for shape, layout in SHAPES:
        for dtype in args.dtypes:
            case = Case(shape, layout, dtype)
            info["checks"][(shape, layout, dtype)] = check_outputs(case, backend)
            chunk = int(args.l2_fraction * info["l2_mib"] * 2**20)
            passes = {"cupy": cupy_passes(case, backend), "cupy-l2": cupy_passes(case, backend, chunk),
                      "torch-cuda": torch_passes(case, cudnn=True), "torch-cuda-native": torch_passes(case, cudnn=False)}
            for pass_name in PASSES:
                for impl in IMPLS:
                    ms = timer(passes[impl][pass_name])
                    s = ITEMSIZE[dtype]
                    rows.append(Row(shape, layout, dtype, pass_name, impl, ms,
                                    must_move(pass_name, case.elements, s, case.channels),
                                    two_pass_bytes(pass_name, case.elements, s, case.channels)))
                    print(f"{shape} {layout} {dtype} {pass_name} {impl}: {ms * 1e3:.1f} us", file=sys.stderr)
            del case, passes
    return rows, info


def render(rows: list[Row], info: dict[str, Any], args: argparse.Namespace) -> str:
    copy = info["copy_gbps"]
    out = [
        "# GPU batch-norm throughput",
        "",
        f"Device: {info['device']} ({info['sms']} SMs, {info['l2_mib']:.0f} MiB L2); CUDA runtime "
        f"{info['cuda_runtime']}, CuPy {info['cupy']}, PyTorch {info['torch']}, cuDNN {info['cudnn']}. "
        f"Date: {info['date']}.",
        "",
        f"Copy bandwidth (device-to-device memcpy of {args.copy_mib} MiB, reads + writes): **{copy:.0f} GB/s**. "
        f"Times: median of {args.repeat} runs after {args.warmup} warm-up runs, CUDA events. "
        "GB/s counts the minimum bytes (`benchmarks/gpu_bn.py` docstring); \"of copy\" is that over the copy "
        "bandwidth; \"two-pass GB/s\" counts the bytes a two-pass algorithm requests.",
        "",
        "| shape | layout | dtype | pass | implementation | time (us) | GB/s | of copy | two-pass GB/s |",
        "|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r.ms * 1e-3
        out.append(f"| {r.shape} | {r.layout} | {r.dtype} | {r.pass_name} | {r.impl} | {r.ms * 1e3:.1f} | "
                   f"{r.min_bytes / s / 1e9:.0f} | {r.min_bytes / s / 1e9 / copy:.0%} | {r.algo_bytes / s / 1e9:.0f} |")
    torch_ms = {(r.shape, r.layout, r.dtype, r.pass_name): r.ms for r in rows if r.impl == "torch-cuda"}
    out.append("")
    for impl in ("cupy", "cupy-l2"):
        mine = [r for r in rows if r.impl == impl]
        wins = sum(r.ms < torch_ms[(r.shape, r.layout, r.dtype, r.pass_name)] for r in mine)
        out.append(f"- {impl} faster than torch-cuda in {wins} of {len(mine)} (shape, layout, dtype, pass) rows.")
    out += ["", "Output check (largest |y_cupy - y_torch| / max |y_torch|, training forward):", ""]
    for (shape, layout, dtype), err in info["checks"].items():
        out.append(f"- {shape} {layout} {dtype}: {err:.2e}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="also write the Markdown table here (e.g. docs/results/gpu-bn.md)")
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--copy-mib", type=int, default=1024)
    p.add_argument("--l2-fraction", type=float, default=0.4,
                   help="cupy-l2: channel chunks of at most this fraction of L2 (default 0.4)")
    # float32 parameters and statistics throughout, as mixed precision runs them (PyTorch takes
    # float32 parameters with half inputs only), so no float64 here.
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["bfloat16", "float16", "float32"])
    args = p.parse_args(argv)
    reason = gpu_unavailable()
    if reason:
        print(f"gpu_bn: cannot run: {reason}", file=sys.stderr)
        return 2
    rows, info = run(args)
    text = render(rows, info, args)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
