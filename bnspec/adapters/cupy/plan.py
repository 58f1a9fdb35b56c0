"""Shape logic and launch arithmetic of the ``cupy`` adapter: plain Python, testable without a GPU.

Every input, whatever its rank and channel axis, is a C-contiguous array viewed as
``(outer, C, inner)``: ``outer`` is the product of the axes before the channel axis, ``inner`` of
those after it (BN-LAYOUT-1). Channel-first data (axis 1 of rank 3 to 5) has ``inner`` > 1 (unless
its trailing axes are all 1); channel-last data (axis -1), and every rank-2 input, has ``inner`` = 1.

``plan`` picks the kernels' layout and vector width and splits each channel's values into
contiguous ranges, one block each, so that the grid fills the device a few blocks per
multiprocessor deep while each thread still streams several vectors. ``channel_chunks`` splits a
channel-first pass into launches over channel ranges small enough for L2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .kernels import ITEMSIZE, MAX_VECTOR_BYTES, STATS_WIDTH, KernelSpec

MAX_SPLITS = 1024  # partials per channel; the last block of a channel merges them all
TAIL_BYTES = 64 * 1024  # partials the last block of a rows tile may have to merge
MIN_ROW_BYTES = 64  # a rows tile reads at least this much of each row (two 32-byte sectors)
INDEX_LIMIT = 2**31 - 1  # the kernels number a channel's items and a grid's blocks in 32 bits


@dataclass(frozen=True)
class Geometry:
    """An input seen as ``(outer, channels, inner)``, channel ``c``'s values at ``[:, c, :]``."""

    outer: int
    channels: int
    inner: int

    @property
    def values_per_channel(self) -> int:
        """m of the spec."""
        return self.outer * self.inner

    @property
    def size(self) -> int:
        return self.outer * self.channels * self.inner


def geometry(shape: tuple[int, ...], axis: int) -> Geometry:
    """The ``(outer, C, inner)`` view of a C-contiguous array of ``shape`` with channel axis ``axis``."""
    rank = len(shape)
    if not -rank <= axis < rank:
        raise ValueError(f"axis={axis} is out of range for shape {shape}")
    ax = axis % rank
    return Geometry(math.prod(shape[:ax]), shape[ax], math.prod(shape[ax + 1:]))


def vector_width(dtype: str, geo: Geometry) -> int:
    """Elements per vector access: the widest power of two within 16 bytes dividing the contiguous run
    that belongs to one channel (``inner``, planar) or one row of channels (``C``, rows)."""
    run = geo.channels if geo.inner == 1 else geo.inner
    vec = MAX_VECTOR_BYTES // ITEMSIZE[dtype]
    while vec > 1 and run % vec:
        vec //= 2
    return vec


@dataclass(frozen=True)
class Launch:
    """How the kernels run on one input: the compiled variant, the block decomposition, the grid."""

    spec: KernelSpec
    geo: Geometry
    tx_count: int  # threads across channel vectors (rows); 1 for planar
    groups: int  # channels (planar) or channel tiles (rows) this launch covers
    splits: int  # blocks per group, each a contiguous range of items
    chunk: int  # items per split (the last may hold fewer)
    c0: int = 0  # the first channel this launch covers

    @property
    def grid(self) -> int:
        return self.groups * self.splits

    @property
    def items(self) -> int:
        """Items per group: vectors of one channel (planar) or rows (rows)."""
        if self.spec.rows:
            return self.geo.outer
        return self.geo.outer * (self.geo.inner // self.spec.vec)

    @property
    def tail_bytes(self) -> int:
        """Bytes of partials the last block of a group merges alone."""
        lanes = self.tx_count * self.spec.vec if self.spec.rows else 1
        return self.splits * lanes * STATS_WIDTH * ITEMSIZE[self.spec.acc_dtype]

    @property
    def partial_count(self) -> int:
        """Accumulation-type values in the partials buffer (Welford states, the widest), which is
        indexed by split and absolute channel."""
        return self.splits * self.geo.channels * STATS_WIDTH

    def geometry_args(self) -> tuple[int, int, int, int, int, int, int]:
        """outer, channels, inner, splits, chunk, tx_count, c0: the kernels' shared parameters."""
        g = self.geo
        return g.outer, g.channels, g.inner, self.splits, self.chunk, self.tx_count, self.c0


def _pow2_at_least(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _splits(items: int, per_split_min: int, target: int, max_splits: int) -> tuple[int, int]:
    """(splits, chunk): about ``target`` splits, each at least ``per_split_min`` items, none empty."""
    splits = max(1, min(target, items // per_split_min, max_splits))
    chunk = -(-items // splits)
    return -(-items // chunk), chunk


def plan(dtype: str, geo: Geometry, sm_count: int, *, block: int = 256, unroll: int = 4, blocks_per_sm: int = 4,
         max_splits: int = MAX_SPLITS, tail_bytes: int = TAIL_BYTES, c0: int = 0, channels: int | None = None) -> Launch:
    """The launch for ``geo`` (channels ``c0`` to ``c0 + channels``, planar only; default all) on a
    device with ``sm_count`` multiprocessors.

    Splits per group: enough for about ``blocks_per_sm * sm_count`` blocks in all, but never so
    many that a thread gets less than one full batch (``unroll`` items), and at most ``max_splits``.
    Rows layout: the widest channel tile (``tx_count`` vectors) whose last block merges at most
    ``tail_bytes`` of partials, but no narrower than ``MIN_ROW_BYTES`` of a row where C allows:
    one block merges a tile's partials alone, so a wide tile with many splits would leave the
    whole device waiting on one multiprocessor. Raises ``ValueError`` for an empty input or one
    too large for the kernels' 32-bit item numbering.
    """
    if geo.values_per_channel == 0 or geo.channels == 0:
        raise ValueError(f"geometry {geo} is empty: there is nothing to launch")
    if sm_count < 1:
        raise ValueError(f"sm_count={sm_count} must be positive")
    count = geo.channels - c0 if channels is None else channels
    if not (0 <= c0 and 0 < count and c0 + count <= geo.channels):
        raise ValueError(f"channels {c0} to {c0 + count} are not a range of the {geo.channels} channels")
    rows = geo.inner == 1
    if rows and (c0, count) != (0, geo.channels):
        raise ValueError("a channel-last (rows) launch covers every channel")
    vec = vector_width(dtype, geo)
    spec = KernelSpec(dtype, rows, vec, block, unroll)
    target = blocks_per_sm * sm_count
    acc_bytes = ITEMSIZE[spec.acc_dtype]
    if rows:
        vectors = geo.channels // vec  # channel vectors per row
        items = geo.outer
        tx_count = min(32, _pow2_at_least(vectors))
        min_tx = min(tx_count, max(1, MIN_ROW_BYTES // (vec * ITEMSIZE[dtype])))
        while True:
            groups = -(-vectors // tx_count)
            splits, chunk = _splits(items, (block // tx_count) * unroll, max(1, -(-target // groups)), max_splits)
            tail = splits * tx_count * vec * STATS_WIDTH * acc_bytes
            if tail <= tail_bytes or tx_count <= min_tx:
                break
            tx_count //= 2
    else:
        tx_count, groups = 1, count
        items = geo.values_per_channel // vec
        splits, chunk = _splits(items, block * unroll, max(1, -(-target // groups)), max_splits)
    if items > INDEX_LIMIT or groups * splits > INDEX_LIMIT:
        raise ValueError(f"geometry {geo} is too large for the kernels' 32-bit item numbering "
                         f"({items} items per group, {groups * splits} blocks)")
    return Launch(spec, geo, tx_count, groups, splits, chunk, c0)


def channel_chunks(dtype: str, geo: Geometry, sm_count: int, chunk_bytes: int | None, arrays: int = 1,
                   **options: int) -> list[Launch]:
    """Launches covering the channels in chunks of at most ``chunk_bytes`` of the ``arrays`` inputs a
    pass reads twice (x for the forward pass, x and dy backward), so that its second read finds
    them in L2; one launch where ``chunk_bytes`` is None, the input fits, or the layout is
    channel-last (there a channel chunk would be a strided slice of every row)."""
    first = plan(dtype, geo, sm_count, **options)
    per_channel = geo.values_per_channel * ITEMSIZE[dtype] * arrays
    if chunk_bytes is None or first.spec.rows or per_channel * geo.channels <= chunk_bytes:
        return [first]
    step = max(1, chunk_bytes // per_channel)
    return [plan(dtype, geo, sm_count, c0=c, channels=min(step, geo.channels - c), **options)
            for c in range(0, geo.channels, step)]
