"""NumPy batch norms for the quality tier (BN-QUAL-*, ``spec/precision.md``): good and poor algorithms.

Every variant here conforms to every MUST of the spec (the suite's MUST checks pass them). What
differs is how well their reductions and special cases fare:

* ``PairwiseRows`` and ``BlockedWelford`` are what the quality tier describes: every reduction runs
  over a contiguous row of the channel's ``m`` values, as a pairwise tree of Chan et al.'s merges,
  Welford's update inside 64-term blocks merged pairwise, or NumPy's blocked pairwise sum
  (128-term leaves);
* each poor variant is one realistic change to ``PairwiseRows`` that falls short of exactly one
  quality clause, recorded in ``bug`` as in ``numpy_impls``.

``QUALITY_CORRECT`` and ``QUALITY_POOR`` list them; ``tests/test_quality.py`` runs the quality
checks and the error measurements on each.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .numpy_impls import Bug, Forward, PairwiseMerge, bug


def as_rows(a: np.ndarray, red: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """``a`` as a C-contiguous ``(K, m)`` matrix with the reduced axes ``red`` last, and the
    keepdims shape a reduction of it has."""
    keep = tuple(d for d in range(a.ndim) if d not in red)
    out_shape = tuple(1 if d in red else a.shape[d] for d in range(a.ndim))
    moved = np.moveaxis(a, red, tuple(range(len(keep), a.ndim)))
    return np.ascontiguousarray(moved.reshape(tuple(a.shape[d] for d in keep) + (-1,))), out_shape


def chan_merge(n: np.ndarray, mean: np.ndarray, m2: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Merge groups ``(n, mean, m2)`` along the last axis pairwise until one remains (Chan, Golub
    and LeVeque 1983): returns the merged mean and sum of squared deviations, last axis of length 1."""
    zero = np.zeros(mean.shape[:-1] + (1,), dtype)
    while mean.shape[-1] > 1:
        if mean.shape[-1] % 2:  # an empty group pads an odd level
            n, mean, m2 = (np.concatenate([a, zero], axis=-1) for a in (n, mean, m2))
        na, nb = n[..., 0::2], n[..., 1::2]
        delta = mean[..., 1::2] - mean[..., 0::2]
        n = na + nb
        w = np.where(n > 0, nb / np.where(n > 0, n, 1), 0).astype(dtype)
        mean = mean[..., 0::2] + delta * w
        m2 = m2[..., 0::2] + m2[..., 1::2] + delta * delta * (na * w)
    return mean, m2


class PairwiseRows(PairwiseMerge):
    """Quality: moments by a pairwise tree of Chan merges, every gradient sum by NumPy's blocked
    pairwise summation over a contiguous row, in the input's precision."""

    name: ClassVar[str] = "numpy-pairwise-rows"

    def row_sum(self, a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        """The sum over ``axes`` (keepdims), by ``np.add.reduce`` along a contiguous last axis:
        NumPy's pairwise summation with 128-term leaves."""
        rows, shape = as_rows(a, axes)
        return np.add.reduce(rows, axis=-1, dtype=a.dtype).reshape(shape)

    def row_mean(self, a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        m = int(np.prod([a.shape[d] for d in axes]))
        return self.row_sum(a, axes) / a.dtype.type(m)

    def grad_input(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        scale = f.gamma * f.invstd
        if not f.batch:
            return scale * dy
        return scale * (dy - self.row_mean(dy, f.red) - f.xhat * self.row_mean(dy * f.xhat, f.red))

    def grad_weight(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        return self.row_sum(dy * f.xhat, f.chan).reshape(-1)

    def grad_bias(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        return self.row_sum(dy, f.chan).reshape(-1)


class BlockedWelford(PairwiseRows):
    """Quality: Welford's sequential update inside blocks of 64 values, the blocks merged pairwise
    (Chan et al.), in the input's precision."""

    name = "numpy-blocked-welford"
    block: ClassVar[int] = 64

    def moments(self, x: np.ndarray, red: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        rows, shape = as_rows(x, red)
        m, b, dt = rows.shape[-1], self.block, x.dtype
        nb = -(-m // b)
        padded = np.zeros(rows.shape[:-1] + (nb * b,), dt)
        padded[..., :m] = rows
        blocks = padded.reshape(rows.shape[:-1] + (nb, b))
        valid = (np.arange(nb * b) < m).reshape(nb, b)
        n = np.zeros(blocks.shape[:-1], dt)
        mean = np.zeros(blocks.shape[:-1], dt)
        m2 = np.zeros(blocks.shape[:-1], dt)
        for k in range(b):  # Welford: mean += (x - mean) / n; M2 += (x - mean_old) (x - mean_new)
            v = valid[:, k]
            xk = blocks[..., k]
            n_new = np.where(v, n + dt.type(1), n)
            d = xk - mean
            mean_new = np.where(v, mean + d / np.where(v, n_new, 1).astype(dt), mean)
            m2 = np.where(v, m2 + d * (xk - mean_new), m2)
            n, mean = n_new, mean_new
        mean, m2 = chan_merge(n, mean, m2, dt)
        return mean.reshape(shape), (m2 / dt.type(m)).reshape(shape)


QUALITY_CORRECT: tuple[type[PairwiseRows], ...] = (PairwiseRows, BlockedWelford)


# -- poor variants: each falls short of one quality clause ------------------------------------------

class SequentialFloat32(PairwiseRows):
    """Poor: every reduction a sequential loop with one accumulator in the input's precision
    (``np.cumsum`` adds in order), two-pass moments."""

    name = "numpy-sequential-f32"
    bug: ClassVar[Bug | None] = bug("sequential accumulation in the input's precision: error grows like m",
                                    ("BN-QUAL-1",), "QUAL")

    def row_sum(self, a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        rows, shape = as_rows(a, axes)
        if rows.shape[-1] == 0:
            return np.zeros(shape, a.dtype)
        return np.cumsum(rows, axis=-1, dtype=a.dtype)[..., -1].reshape(shape)

    def moments(self, x: np.ndarray, red: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        mean = self.row_mean(x, red)
        d = x - mean
        return mean, self.row_mean(d * d, red)


class ScaleShiftLarge(PairwiseRows):
    """Poor: exact statistics, then ``y = x * scale + shift`` with ``shift = beta - mean * scale``:
    on a large constant channel ``x * scale`` and ``mean * scale`` round apart and beta is lost."""

    name = "numpy-scale-shift-exact-mean"
    bug: ClassVar[Bug | None] = bug("x * scale + shift on a large constant channel misses beta",
                                    ("BN-QUAL-2",), "QUAL")

    def affine(self, f: Forward) -> np.ndarray:
        scale = f.gamma * f.invstd
        return f.x * scale + (f.beta - f.mean * scale)


class SortedMerge(PairwiseRows):
    """Poor: each channel's values sorted in increasing order before the pairwise merge (ordering
    is an accuracy device for sums, Higham 2002, section 4.2): the order now depends on the values,
    and ``-x`` is merged in the reverse order of ``x``."""

    name = "numpy-sorted-merge"
    bug: ClassVar[Bug | None] = bug("merge order chosen by the values: not odd in x", ("BN-QUAL-3",), "QUAL")

    def moments(self, x: np.ndarray, red: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        rows, shape = as_rows(x, red)
        rows = np.sort(rows, axis=-1)
        mean, m2 = chan_merge(np.ones_like(rows), rows, np.zeros_like(rows), x.dtype)
        return mean.reshape(shape), (m2 / x.dtype.type(rows.shape[-1])).reshape(shape)


QUALITY_POOR: tuple[type[PairwiseRows], ...] = (SequentialFloat32, ScaleShiftLarge, SortedMerge)
