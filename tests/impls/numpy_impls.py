"""Batch normalization in plain NumPy, as suite adapters: correct variants and broken ones.

``NumpyBatchNorm`` is a small vectorized implementation of ``spec/batchnorm.md`` written without
the reference (``bnspec.reference``), so that it can disagree with it. Every step of the
operation is one method, and every variant below overrides one or two of them:

* the correct variants compute the same function differently: float64 or the input's own
  precision, two-pass moments or a pairwise (Chan) merge, channel-first arrays or channel-last
  rows, ``gamma * x_hat + beta`` or ``x * scale + shift``;
* each broken variant is one small, realistic deviation from the correct one, and records in
  ``bug`` the clauses it breaks and the spec areas whose checks must catch it.

``CORRECT`` and ``BROKEN`` list them; ``tests/test_suite_catches_bugs.py`` runs the suite on each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from bnspec.adapters.contract import Capabilities, Case, Outcome

CAPABILITIES = Capabilities(dtypes=("float32", "float64"), channel_axes=(1, -1), notes="tests/impls: plain NumPy",
                            derivatives=("jvp", "vjp-nested", "jvp-of-vjp", "vjp-of-vjp"), max_order=3)  # higher_order_impls.py
PER_CHANNEL = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class Bug:
    """What a broken variant gets wrong: the clauses it breaks, the areas whose checks must fail."""

    what: str
    clauses: tuple[str, ...]
    areas: frozenset[str]


def bug(what: str, clauses: tuple[str, ...], *areas: str) -> Bug:
    return Bug(what, clauses, frozenset(areas))


@dataclass
class Forward:
    """What the forward pass computed, in the working dtype; shapes broadcast against ``x``."""

    case: Case
    x: np.ndarray
    ax: int  # the channel axis, non-negative
    red: tuple[int, ...]  # the axes the statistics reduce
    chan: tuple[int, ...]  # every axis but the channel axis: what parameter gradients sum
    vec: Callable[[np.ndarray | None, float], np.ndarray]  # a per-channel vector, broadcastable
    gamma: np.ndarray
    beta: np.ndarray
    batch: bool  # whether batch statistics normalize (else the running ones)
    mean: np.ndarray = None  # type: ignore[assignment]
    var: np.ndarray = None  # type: ignore[assignment]
    invstd: np.ndarray = None  # type: ignore[assignment]
    xhat: np.ndarray = None  # type: ignore[assignment]


class NumpyBatchNorm:
    """Correct: float64 arithmetic, two-pass mean and variance, channel-first."""

    name: ClassVar[str] = "numpy-f64-two-pass"
    capabilities: ClassVar[Capabilities] = CAPABILITIES
    bug: ClassVar[Bug | None] = None

    # -- the call --------------------------------------------------------------------------------

    def run(self, case: Case) -> Outcome:
        ax = self.channel_axis(case)
        self.validate(case, ax)
        if self.is_empty(case, ax):
            return self.empty(case)
        with np.errstate(all="ignore"):  # NaN and inf propagate, within their channel
            out = self.compute(case, ax)
            if case.derivative is not None:  # BN-GRAD-4..7, by Taylor mode: higher_order_impls.py
                from .higher_order_impls import derivatives

                out = derivatives(self, case, ax, out)
            return out

    def channel_axis(self, case: Case) -> int:
        nd = case.x.ndim
        if isinstance(case.axis, bool) or not -nd <= case.axis < nd:
            raise ValueError(f"axis={case.axis} is out of range for rank {nd}")
        return int(case.axis) % nd

    # -- validation (BN-ARG-*) -------------------------------------------------------------------

    def validate(self, case: Case, ax: int) -> None:
        x = case.x
        self.check_dtype(x)
        if x.ndim < 2:
            raise ValueError(f"x must have rank >= 2, got shape {x.shape}")
        c = x.shape[ax]
        m = x.size // c if c else 0
        for name in PER_CHANNEL:
            v = getattr(case, name)
            if v is not None and not self.shape_ok(v, c):
                raise ValueError(f"{name}.shape={v.shape}, expected ({c},)")
        if (case.running_mean is None) != (case.running_var is None):
            raise ValueError("running_mean and running_var go together")
        self.check_eps(case.eps)
        self.check_momentum(case.momentum)
        self.check_batch(case.training, m)

    def check_dtype(self, x: np.ndarray) -> None:
        if x.dtype.kind != "f":
            raise TypeError(f"x.dtype={x.dtype} is not floating-point")

    def shape_ok(self, v: np.ndarray, c: int) -> bool:
        return v.shape == (c,)

    def check_eps(self, eps: float) -> None:
        if not eps >= 0:
            raise ValueError(f"eps={eps} must be >= 0")

    def check_momentum(self, momentum: float | None) -> None:
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum={momentum} must lie in [0, 1] or be None")

    def check_batch(self, training: bool, m: int) -> None:
        if training and m == 1:
            raise ValueError("training needs more than one value per channel")

    # -- empty batches (BN-EMPTY-1) ----------------------------------------------------------------

    def is_empty(self, case: Case, ax: int) -> bool:
        return case.x.size == 0

    def empty(self, case: Case) -> Outcome:
        tracked = case.running_mean is not None
        grads = case.grad_output is not None
        return Outcome(
            y=np.zeros(case.x.shape, case.x.dtype),
            running_mean=case.running_mean.copy() if tracked else None,
            running_var=case.running_var.copy() if tracked else None,
            num_batches_tracked=case.num_batches_tracked if tracked else None,
            grad_input=np.zeros(case.x.shape, case.x.dtype) if grads else None,
            grad_weight=np.zeros_like(case.weight) if grads and case.weight is not None else None,
            grad_bias=np.zeros_like(case.bias) if grads and case.bias is not None else None,
        )

    # -- the computation -------------------------------------------------------------------------

    def compute(self, case: Case, ax: int) -> Outcome:
        wd = self.work_dtype(case.x.dtype)
        x = self.load(case.x, wd)
        nd, c = x.ndim, x.shape[ax]
        m = x.size // c
        shape = tuple(c if d == ax else 1 for d in range(nd))

        def vec(v: np.ndarray | None, fill: float) -> np.ndarray:
            if v is None:
                return np.full(shape, fill, wd)
            return np.broadcast_to(v.astype(wd), (c,)).reshape(shape)

        f = Forward(case=case, x=x, ax=ax, red=self.stat_axes(nd, ax), chan=tuple(d for d in range(nd) if d != ax),
                    vec=vec, gamma=vec(case.weight, 1.0), beta=vec(case.bias, 0.0),
                    batch=self.uses_batch_stats(case))
        if f.batch:
            f.mean, f.var = self.moments(x, f.red)
        else:
            f.mean, f.var = vec(case.running_mean, 0.0), vec(case.running_var, 1.0)
        f.invstd = self.inv_std(f.var, wd.type(case.eps))
        self.keep_statistics(f)
        f.xhat = self.normalize(x, f.mean, f.invstd)
        y = self.affine(f)

        rm, rv, n = self.untracked_state(f)
        if case.running_mean is not None:
            rm, rv = case.running_mean.copy(), case.running_var.copy()
            if self.updates_state(case):
                mean, var = (f.mean, f.var) if f.batch else self.moments(x, f.red)
                rm, rv = self.update_running(case, self.per_channel(mean, f), self.per_channel(var, f), m)
            n = self.next_count(case)

        dx = dw = db = None
        if case.grad_output is not None:
            dy = case.grad_output.astype(wd)
            dx = self.grad_input(f, dy).astype(self.output_dtype(case))
            if case.weight is not None:
                dw = self.grad_weight(f, dy).astype(case.weight.dtype)
            if case.bias is not None:
                db = self.grad_bias(f, dy).astype(case.bias.dtype)
        return Outcome(y=y.astype(self.output_dtype(case)), running_mean=rm, running_var=rv, num_batches_tracked=n,
                       grad_input=dx, grad_weight=dw, grad_bias=db)

    def work_dtype(self, dtype: np.dtype) -> np.dtype:
        return np.dtype(np.float64)

    def output_dtype(self, case: Case) -> np.dtype:
        return case.x.dtype

    def load(self, x: np.ndarray, wd: np.dtype) -> np.ndarray:
        return x.astype(wd)  # a copy

    def stat_axes(self, nd: int, ax: int) -> tuple[int, ...]:
        """BN-LAYOUT-1: every axis but the channel axis."""
        return tuple(d for d in range(nd) if d != ax)

    def uses_batch_stats(self, case: Case) -> bool:
        """BN-TRAIN-5, BN-EVAL-1, BN-EVAL-2."""
        return case.training or case.running_mean is None

    def moments(self, x: np.ndarray, red: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """BN-TRAIN-1, BN-TRAIN-2: the mean, then the biased variance about it (two passes)."""
        mean = x.mean(axis=red, keepdims=True, dtype=x.dtype)
        d = x - mean
        return mean, (d * d).mean(axis=red, keepdims=True, dtype=x.dtype)

    def inv_std(self, var: np.ndarray, eps: np.floating) -> np.ndarray:
        """BN-TRAIN-3: epsilon inside the square root."""
        return 1.0 / np.sqrt(var + eps)

    def keep_statistics(self, f: Forward) -> None:
        """A hook: the forward pass has ``f.mean`` and ``f.invstd``; a variant may replace them with
        the values it stores (rounded, say) before they normalize and reach the backward pass."""

    def normalize(self, x: np.ndarray, mean: np.ndarray, invstd: np.ndarray) -> np.ndarray:
        return (x - mean) * invstd

    def affine(self, f: Forward) -> np.ndarray:
        """BN-TRAIN-4."""
        return f.gamma * f.xhat + f.beta

    def per_channel(self, stat: np.ndarray, f: Forward) -> np.ndarray:
        """A statistic as a ``(C,)`` vector (averaging away any axis it was not reduced over)."""
        return np.broadcast_to(stat.mean(axis=f.chan), (f.x.shape[f.ax],))

    # -- running statistics (BN-RUN-*) -----------------------------------------------------------

    def untracked_state(self, f: Forward) -> tuple[np.ndarray | None, np.ndarray | None, int | None]:
        """BN-RUN-5: no running statistics, no counter."""
        return None, None, None

    def updates_state(self, case: Case) -> bool:
        """BN-RUN-6: only training steps update."""
        return case.training

    def next_count(self, case: Case) -> int:
        """BN-RUN-4: one more per training step (an empty batch never gets here)."""
        return case.num_batches_tracked + (1 if case.training else 0)

    def blend_weight(self, case: Case) -> float:
        """BN-RUN-1, BN-RUN-3: the weight of the new batch."""
        return 1.0 / (case.num_batches_tracked + 1) if case.momentum is None else float(case.momentum)

    def bessel(self, m: int) -> float:
        """BN-RUN-2: the unbiased factor."""
        return m / (m - 1)

    def blend(self, old: np.ndarray, new: np.ndarray, a: float) -> np.ndarray:
        return (1.0 - a) * old + a * new

    def update_running(self, case: Case, mean: np.ndarray, var: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        assert case.running_mean is not None and case.running_var is not None
        a = self.blend_weight(case)
        old_m, old_v = case.running_mean.astype(mean.dtype), case.running_var.astype(var.dtype)
        new_m = self.blend(old_m, mean, a)
        new_v = self.blend(old_v, var * var.dtype.type(self.bessel(m)), a)
        return new_m.astype(case.running_mean.dtype), new_v.astype(case.running_var.dtype)

    # -- gradients (BN-GRAD-*) -------------------------------------------------------------------

    def grad_input(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        """BN-GRAD-1 through the batch statistics; BN-GRAD-3 with the running ones."""
        scale = f.gamma * f.invstd
        if not f.batch:
            return scale * dy
        mean_dy = dy.mean(axis=f.red, keepdims=True, dtype=dy.dtype)
        mean_dyx = (dy * f.xhat).mean(axis=f.red, keepdims=True, dtype=dy.dtype)
        return scale * (dy - mean_dy - f.xhat * mean_dyx)

    def grad_weight(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        """BN-GRAD-2: sum(dy * x_hat)."""
        return (dy * f.xhat).sum(axis=f.chan, dtype=dy.dtype)

    def grad_bias(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        """BN-GRAD-2: sum(dy)."""
        return dy.sum(axis=f.chan, dtype=dy.dtype)


# =================================================================================================
# Correct variants: the same function, computed differently.
# =================================================================================================

class InputPrecision(NumpyBatchNorm):
    """Correct: arithmetic in the input's own dtype (float32 throughout for float32), two-pass."""

    name = "numpy-input-precision"

    def work_dtype(self, dtype: np.dtype) -> np.dtype:
        return np.dtype(dtype) if dtype.kind == "f" else np.dtype(np.float64)

    def load(self, x: np.ndarray, wd: np.dtype) -> np.ndarray:
        return x.astype(wd, copy=False)  # read only: nothing below writes into it


class PairwiseMerge(InputPrecision):
    """Correct: mean and variance by a pairwise tree of Chan et al.'s merges, in the input's precision.

    Each value starts as a group of one (count 1, mean x, M2 0); neighbouring groups merge,
    level by level, until one group per channel remains.
    """

    name = "numpy-pairwise-chan"

    def moments(self, x: np.ndarray, red: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        keep = tuple(d for d in range(x.ndim) if d not in red)
        out_shape = tuple(1 if d in red else x.shape[d] for d in range(x.ndim))
        rows = np.moveaxis(x, red, tuple(range(len(keep), x.ndim)))
        rows = rows.reshape(tuple(x.shape[d] for d in keep) + (-1,))
        m = rows.shape[-1]
        zero = np.zeros(rows.shape[:-1] + (1,), x.dtype)
        n, mean, m2 = np.ones_like(rows), rows, np.zeros_like(rows)
        while mean.shape[-1] > 1:
            if mean.shape[-1] % 2:  # an empty group pads an odd level
                n, mean, m2 = (np.concatenate([a, zero], axis=-1) for a in (n, mean, m2))
            na, nb = n[..., 0::2], n[..., 1::2]
            delta = mean[..., 1::2] - mean[..., 0::2]
            n = na + nb
            w = np.where(n > 0, nb / n, 0).astype(x.dtype)
            mean = mean[..., 0::2] + delta * w
            m2 = m2[..., 0::2] + m2[..., 1::2] + delta * delta * (na * w)
        return mean.reshape(out_shape), (m2 / x.dtype.type(m)).reshape(out_shape)


class ChannelLastRows(InputPrecision):
    """Correct: channel axis moved last, the input flattened to ``(m, C)`` rows, statistics summed
    down the rows (NumPy's sequential order over axis 0), in the input's precision."""

    name = "numpy-channel-last-rows"

    def compute(self, case: Case, ax: int) -> Outcome:
        moved_shape = np.moveaxis(case.x, ax, -1).shape
        c = moved_shape[-1]

        def rows(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.ascontiguousarray(np.moveaxis(a, ax, -1)).reshape(-1, c)

        def back(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.ascontiguousarray(np.moveaxis(a.reshape(moved_shape), -1, ax))

        flat = replace(case, x=rows(case.x), axis=1, grad_output=rows(case.grad_output))
        out = super().compute(flat, 1)
        return replace(out, y=back(out.y), grad_input=back(out.grad_input))


class ScaleShift(InputPrecision):
    """Correct: ``y = x * scale + shift`` with ``scale = gamma * invstd``, ``shift = beta - mean * scale``,
    in the input's precision (how fused kernels apply batch norm)."""

    name = "numpy-scale-shift"

    def affine(self, f: Forward) -> np.ndarray:
        scale = f.gamma * f.invstd
        return f.x * scale + (f.beta - f.mean * scale)


CORRECT: tuple[type[NumpyBatchNorm], ...] = (NumpyBatchNorm, InputPrecision, PairwiseMerge, ChannelLastRows, ScaleShift)


# =================================================================================================
# Broken variants: one small deviation each.
# =================================================================================================

class EpsOutsideSqrt(NumpyBatchNorm):
    name = "broken-eps-outside-sqrt"
    bug = bug("x_hat = (x - mean) / (sqrt(var) + eps)", ("BN-TRAIN-3", "BN-EVAL-1"), "TRAIN", "EVAL", "GRAD")

    def inv_std(self, var: np.ndarray, eps: np.floating) -> np.ndarray:
        return 1.0 / (np.sqrt(var) + eps)


class UnbiasedNormalize(NumpyBatchNorm):
    name = "broken-unbiased-normalize"
    bug = bug("normalizes with the unbiased m/(m-1) variance", ("BN-TRAIN-2",), "TRAIN", "EVAL", "GRAD")

    def moments(self, x: np.ndarray, red: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        mean = x.mean(axis=red, keepdims=True)
        d = x - mean
        return mean, (d * d).sum(axis=red, keepdims=True) / (x.size // mean.size - 1)


class OnePassVariance(InputPrecision):
    name = "broken-one-pass-variance"
    bug = bug("variance as E[x^2] - E[x]^2 in the input's precision", ("BN-TRAIN-2",), "TRAIN", "EVAL", "GRAD")

    def moments(self, x: np.ndarray, red: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        mean = x.mean(axis=red, keepdims=True, dtype=x.dtype)
        return mean, (x * x).mean(axis=red, keepdims=True, dtype=x.dtype) - mean * mean


class PerPositionStats(NumpyBatchNorm):
    name = "broken-per-position-stats"
    bug = bug("statistics over the batch axis only, per spatial position (BatchNorm1d on rank >= 3)",
              ("BN-LAYOUT-1", "BN-TRAIN-1", "BN-TRAIN-2"), "TRAIN", "EVAL", "GRAD", "LAYOUT", "RUN")

    def stat_axes(self, nd: int, ax: int) -> tuple[int, ...]:
        return (0,) if ax != 0 else (1,)


class PooledChannels(NumpyBatchNorm):
    name = "broken-pooled-channels"
    bug = bug("statistics over every axis, the channel axis included", ("BN-LAYOUT-1", "BN-TRAIN-1"),
              "TRAIN", "EVAL", "GRAD", "LAYOUT", "RUN")

    def stat_axes(self, nd: int, ax: int) -> tuple[int, ...]:
        return tuple(range(nd))


class AxisIgnored(NumpyBatchNorm):
    name = "broken-axis-ignored"
    bug = bug("always treats axis 1 as the channel axis, whatever axis says", ("BN-LAYOUT-1", "BN-LAYOUT-2"),
              "LAYOUT")

    def channel_axis(self, case: Case) -> int:
        return 1


class AxisByReshape(NumpyBatchNorm):
    name = "broken-axis-by-reshape"
    bug = bug("channel-last input made channel-first with reshape instead of a transpose", ("BN-LAYOUT-1", "BN-LAYOUT-2"),
              "LAYOUT")

    def compute(self, case: Case, ax: int) -> Outcome:
        if ax == 1:
            return super().compute(case, ax)
        shape = case.x.shape
        first = (shape[0], shape[ax]) + tuple(n for d, n in enumerate(shape) if d not in (0, ax))
        dy = None if case.grad_output is None else case.grad_output.reshape(first)
        out = super().compute(replace(case, x=case.x.reshape(first), axis=1, grad_output=dy), 1)
        return replace(out, y=out.y.reshape(shape),
                       grad_input=None if out.grad_input is None else out.grad_input.reshape(shape))


class EvalBatchStats(NumpyBatchNorm):
    name = "broken-eval-batch-stats"
    bug = bug("eval normalizes with the batch statistics though running ones are tracked",
              ("BN-EVAL-1", "BN-GRAD-3"), "EVAL", "GRAD", "SCENARIO")

    def uses_batch_stats(self, case: Case) -> bool:
        return True


class EvalUntrackedDefaults(NumpyBatchNorm):
    name = "broken-eval-untracked-defaults"
    bug = bug("untracked eval normalizes with mean 0, variance 1 instead of the batch statistics",
              ("BN-EVAL-2",), "EVAL", "GRAD")

    def uses_batch_stats(self, case: Case) -> bool:
        return case.training


class MomentumReversed(NumpyBatchNorm):
    name = "broken-momentum-reversed"
    bug = bug("momentum weights the old value: (1 - a) * batch + a * old", ("BN-RUN-1",), "RUN", "SCENARIO")

    def blend(self, old: np.ndarray, new: np.ndarray, a: float) -> np.ndarray:
        return a * old + (1.0 - a) * new


class BiasedRunningVar(NumpyBatchNorm):
    name = "broken-biased-running-var"
    bug = bug("running variance without m/(m-1), profile not declared", ("BN-RUN-2",), "RUN", "SCENARIO")

    def bessel(self, m: int) -> float:
        return 1.0


class CumulativeOneOverN(NumpyBatchNorm):
    name = "broken-cumulative-1-over-n"
    bug = bug("cumulative average with alpha = 1/n instead of 1/(n+1)", ("BN-RUN-3",), "RUN", "SCENARIO")

    def blend_weight(self, case: Case) -> float:
        return 1.0 / max(case.num_batches_tracked, 1) if case.momentum is None else float(case.momentum)


class CumulativeIgnored(NumpyBatchNorm):
    name = "broken-cumulative-ignored"
    bug = bug("momentum None treated as the default momentum 0.1", ("BN-RUN-3",), "RUN", "SCENARIO")

    def blend_weight(self, case: Case) -> float:
        return 0.1 if case.momentum is None else float(case.momentum)


class CounterFrozen(NumpyBatchNorm):
    name = "broken-counter-frozen"
    bug = bug("num_batches_tracked never incremented", ("BN-RUN-4",), "RUN", "SCENARIO")

    def next_count(self, case: Case) -> int:
        return case.num_batches_tracked


class CounterCountsEval(NumpyBatchNorm):
    name = "broken-counter-counts-eval"
    bug = bug("num_batches_tracked incremented in eval too", ("BN-RUN-4", "BN-RUN-6"), "RUN")

    def next_count(self, case: Case) -> int:
        return case.num_batches_tracked + 1


class EvalUpdatesStats(NumpyBatchNorm):
    name = "broken-eval-updates-stats"
    bug = bug("eval folds the batch statistics into the running ones", ("BN-RUN-6",), "RUN")

    def updates_state(self, case: Case) -> bool:
        return True


class UntrackedCreatesStats(NumpyBatchNorm):
    name = "broken-untracked-creates-stats"
    bug = bug("an untracked step returns its batch statistics as running statistics", ("BN-RUN-5",), "RUN")

    def untracked_state(self, f: Forward) -> tuple[np.ndarray | None, np.ndarray | None, int | None]:
        return (self.per_channel(f.mean, f).astype(f.case.x.dtype), self.per_channel(f.var, f).astype(f.case.x.dtype),
                1)


class NoGradThroughStats(NumpyBatchNorm):
    name = "broken-no-grad-through-stats"
    bug = bug("training dx = dy * gamma * invstd, no path through the batch mean and variance", ("BN-GRAD-1",),
              "GRAD")

    def grad_input(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        return f.gamma * f.invstd * dy


class DgammaRunningStats(NumpyBatchNorm):
    name = "broken-dgamma-running-stats"
    bug = bug("dgamma in training uses x_hat of the running statistics", ("BN-GRAD-2",), "GRAD")

    def grad_weight(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        if f.case.running_mean is None:
            return super().grad_weight(f, dy)
        rm, rv = f.vec(f.case.running_mean, 0.0), f.vec(f.case.running_var, 1.0)
        return (dy * (f.x - rm) / np.sqrt(rv + f.case.eps)).sum(axis=f.chan)


class DbetaMean(NumpyBatchNorm):
    name = "broken-dbeta-mean"
    bug = bug("dbeta = mean(dy) instead of sum(dy)", ("BN-GRAD-2",), "GRAD")

    def grad_bias(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        return dy.mean(axis=f.chan)


class NonFinitePoisons(NumpyBatchNorm):
    name = "broken-nonfinite-poisons-all"
    bug = bug("any NaN or inf in x sets every output of every channel to NaN", ("BN-SPECIAL-1",), "SPECIAL")

    def compute(self, case: Case, ax: int) -> Outcome:
        out = super().compute(case, ax)
        if not np.isfinite(case.x).all():
            for a in (out.y, out.running_mean, out.running_var, out.grad_input, out.grad_weight, out.grad_bias):
                if a is not None:
                    a[...] = np.nan
        return out


class MutatesInput(NumpyBatchNorm):
    name = "broken-mutates-input"
    bug = bug("normalizes in place, into x itself when no dtype conversion copies it", ("BN-IO-1",), "IO")

    def load(self, x: np.ndarray, wd: np.dtype) -> np.ndarray:
        return np.asarray(x, dtype=wd)

    def normalize(self, x: np.ndarray, mean: np.ndarray, invstd: np.ndarray) -> np.ndarray:
        x -= mean
        x *= invstd
        return x


class NoMomentumCheck(NumpyBatchNorm):
    name = "broken-no-momentum-check"
    bug = bug("accepts a momentum outside [0, 1]", ("BN-ARG-5",), "ARG")

    def check_momentum(self, momentum: float | None) -> None:
        pass


class NoOneValueCheck(NumpyBatchNorm):
    name = "broken-no-one-value-check"
    bug = bug("accepts a training step with one value per channel", ("BN-ARG-1",), "ARG")

    def check_batch(self, training: bool, m: int) -> None:
        pass


class NoEpsCheck(NumpyBatchNorm):
    name = "broken-no-eps-check"
    bug = bug("accepts a negative epsilon", ("BN-ARG-4",), "ARG")

    def check_eps(self, eps: float) -> None:
        pass


class AcceptsIntegers(NumpyBatchNorm):
    name = "broken-accepts-integers"
    bug = bug("accepts an integer input (and returns integers)", ("BN-ARG-3",), "ARG")

    def check_dtype(self, x: np.ndarray) -> None:
        pass


class BroadcastsLengthOne(NumpyBatchNorm):
    name = "broken-broadcasts-length-one"
    bug = bug("silently broadcasts a length-1 weight, bias or running statistic", ("BN-ARG-2", "BN-LAYOUT-3"), "ARG")

    def shape_ok(self, v: np.ndarray, c: int) -> bool:
        return v.shape in ((c,), (1,))


class EmptyBatchNaN(NumpyBatchNorm):
    name = "broken-empty-batch-nan"
    bug = bug("an empty batch runs the ordinary path: NaN statistics folded into the running ones",
              ("BN-EMPTY-1",), "EMPTY")

    def is_empty(self, case: Case, ax: int) -> bool:
        return False


class Float64Output(NumpyBatchNorm):
    name = "broken-float64-output"
    bug = bug("y and dx returned in float64 for a float32 input", ("BN-DTYPE-1",), "DTYPE")

    def output_dtype(self, case: Case) -> np.dtype:
        return np.dtype(np.float64)


BROKEN: tuple[type[NumpyBatchNorm], ...] = (
    EpsOutsideSqrt, UnbiasedNormalize, OnePassVariance, PerPositionStats, PooledChannels, AxisIgnored, AxisByReshape,
    EvalBatchStats, EvalUntrackedDefaults,
    MomentumReversed, BiasedRunningVar, CumulativeOneOverN, CumulativeIgnored, CounterFrozen, CounterCountsEval,
    EvalUpdatesStats, UntrackedCreatesStats,
    NoGradThroughStats, DgammaRunningStats, DbetaMean,
    NonFinitePoisons, MutatesInput,
    NoMomentumCheck, NoOneValueCheck, NoEpsCheck, AcceptsIntegers, BroadcastsLengthOne,
    EmptyBatchNaN, Float64Output,
)
