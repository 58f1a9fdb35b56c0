"""Replicated NumPy batch norms: each replica sees only its shard, and they exchange sums.

``Replicated`` is a correct synchronized batch norm written the way a distributed one is: every
replica reduces its own rows to (count, mean, centred sum of squares), the replicas' triples are
gathered and merged weighted by their counts (Chan et al.'s pairwise formula), each replica
normalizes its rows, and the backward pass all-reduces the two per-channel sums it needs. The
broken variants each change one step the way real implementations have: equal weights in the
merge, no synchronization at all, the local count in the unbiased factor, a backward pass that
does not all-reduce, running statistics updated from the local shard, a counter bumped per replica.
They exist to prove that the SYNC checks catch each bug (tests/test_sync.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnspec import Capabilities, Case, Outcome
from bnspec.adapters.contract import ReplicaState


@dataclass
class Local:
    """One replica's per-channel statistics of its own rows."""

    count: int
    mean: np.ndarray
    m2: np.ndarray  # sum of squared deviations from ``mean``


def _rows(a: np.ndarray, ax: int) -> np.ndarray:
    moved = np.moveaxis(a.astype(np.float64), ax, 0)
    return moved.reshape(moved.shape[0], -1)


def _back(rows: np.ndarray, like: np.ndarray, ax: int) -> np.ndarray:
    moved_shape = (like.shape[ax],) + tuple(s for i, s in enumerate(like.shape) if i != ax)
    return np.moveaxis(rows.reshape(moved_shape), 0, ax)


class Replicated:
    """A correct synchronized batch norm over ``len(case.shards)`` simulated replicas."""

    name = "replicated-numpy"
    capabilities = Capabilities(dtypes=("float32", "float64"), channel_axes=(1, -1), replicas=(2, 3),
                                notes="tests/adapters/replicated.py: a NumPy model of a synchronized batch norm")

    # -- the steps a broken variant overrides -----------------------------------------------------

    def local(self, rows: np.ndarray) -> Local:
        n = rows.shape[1]
        with np.errstate(all="ignore"):
            mean = rows.mean(axis=1) if n else np.full(rows.shape[0], np.nan)
        m2 = ((rows - mean[:, None]) ** 2).sum(axis=1) if n else np.zeros(rows.shape[0])
        return Local(n, mean, m2)

    def merge(self, gathered: list[Local]) -> Local:
        """Count-weighted: the concatenated batch's statistics (BN-SYNC-1)."""
        total = Local(0, np.zeros_like(gathered[0].m2), np.zeros_like(gathered[0].m2))
        for part in gathered:
            if part.count == 0:
                continue
            n = total.count + part.count
            delta = part.mean - total.mean
            total = Local(n, total.mean + delta * part.count / n,
                          total.m2 + part.m2 + delta**2 * total.count * part.count / n)
        return total

    def normalize_stats(self, merged: Local, own: Local) -> Local:
        """The statistics a replica normalizes its rows with."""
        return merged

    def unbiased_count(self, merged: Local, own: Local) -> int:
        return merged.count

    def state_stats(self, merged: Local, own: Local) -> Local:
        """The statistics a replica's running state is updated with."""
        return self.normalize_stats(merged, own)

    def reduce_sums(self, sums: list[np.ndarray], r: int) -> np.ndarray:
        """The backward pass's all-reduce of per-replica sums, as replica ``r`` sees it."""
        return np.sum(sums, axis=0)

    def counter_step(self, replicas: int) -> int:
        return 1

    # -- the run ----------------------------------------------------------------------------------

    def run(self, case: Case) -> Outcome:
        ax = case.channel_axis
        shards = case.split(case.x)
        rows = [_rows(s, ax) for s in shards]
        gathered = [self.local(r) for r in rows]  # the all-gather
        merged = self.merge(gathered)
        batch_stats = case.training or not case.tracked
        if case.training and merged.count == 1:
            raise ValueError("expected more than 1 value per channel when training (all replicas together)")
        states: list[ReplicaState] = []
        ys, dxs, dws, dbs = [], [], [], []
        w = np.ones(case.channels) if case.weight is None else case.weight.astype(np.float64)
        b = np.zeros(case.channels) if case.bias is None else case.bias.astype(np.float64)
        dys = case.split(case.grad_output) if case.grad_output is not None else [None] * len(shards)
        sum_dy = []
        sum_dy_xhat = []
        xhats = []
        counts = []
        for r, (shard_rows, own) in enumerate(zip(rows, gathered)):
            stats = self.state_stats(merged, own)
            norm = self.normalize_stats(merged, own)
            counts.append(norm.count)
            if batch_stats:
                with np.errstate(all="ignore"):
                    mean, var = norm.mean, norm.m2 / norm.count if norm.count else norm.m2
            else:
                mean, var = case.running_mean.astype(np.float64), case.running_var.astype(np.float64)
            inv = 1.0 / np.sqrt(var + case.eps)
            xhat = (shard_rows - mean[:, None]) * inv[:, None]
            xhats.append((xhat, inv))
            ys.append(_back(w[:, None] * xhat + b[:, None], shards[r], ax).astype(case.x.dtype))
            states.append(self.update(case, stats, self.unbiased_count(merged, own)))
            if dys[r] is not None:
                dy = _rows(dys[r], ax)
                sum_dy.append(dy.sum(axis=1))
                sum_dy_xhat.append((dy * xhat).sum(axis=1))
        out = Outcome(y=np.concatenate(ys, axis=0))
        if case.tracked:
            out.running_mean, out.running_var = states[0].running_mean, states[0].running_var
            out.num_batches_tracked = states[0].num_batches_tracked
            out.replica_stats = tuple(states)
        if case.grad_output is not None:
            for r, ((xhat, inv), dy_shard) in enumerate(zip(xhats, dys)):
                dy = _rows(dy_shard, ax)
                if batch_stats and counts[r] == 0:  # an empty replica: nothing to differentiate
                    dx = dy
                elif batch_stats:
                    s1, s2 = self.reduce_sums(sum_dy, r), self.reduce_sums(sum_dy_xhat, r)
                    m = counts[r]
                    dx = (w * inv)[:, None] * (dy - s1[:, None] / m - xhat * s2[:, None] / m)
                else:
                    dx = (w * inv)[:, None] * dy
                dxs.append(_back(dx, shards[r], ax).astype(case.x.dtype))
                dws.append((dy * xhat).sum(axis=1))
                dbs.append(dy.sum(axis=1))
            out.grad_input = np.concatenate(dxs, axis=0)
            if case.weight is not None:
                out.grad_weight = np.sum(dws, axis=0).astype(case.weight.dtype)
            if case.bias is not None:
                out.grad_bias = np.sum(dbs, axis=0).astype(case.bias.dtype)
        return out

    def update(self, case: Case, stats: Local, count: int) -> ReplicaState:
        if not case.tracked:
            return ReplicaState()
        if not case.training or stats.count == 0:  # BN-RUN-6, BN-EMPTY-1
            return ReplicaState(case.running_mean.copy(), case.running_var.copy(), case.num_batches_tracked)
        n = case.num_batches_tracked
        alpha = case.momentum if case.momentum is not None else 1.0 / (n + 1)
        var = stats.m2 / stats.count * count / max(count - 1, 1)
        dt = case.running_mean.dtype
        mean = ((1 - alpha) * case.running_mean.astype(np.float64) + alpha * stats.mean).astype(dt)
        new_var = ((1 - alpha) * case.running_var.astype(np.float64) + alpha * var).astype(dt)
        return ReplicaState(mean, new_var, n + self.counter_step(case.replicas))


class EqualWeighted(Replicated):
    """Broken: every replica's mean and variance weigh 1/R, whatever its count (BN-SYNC-1)."""

    name = "equal-weighted"

    def merge(self, gathered: list[Local]) -> Local:
        with np.errstate(all="ignore"):
            mean = np.mean([g.mean for g in gathered], axis=0)
            var = np.mean([g.m2 / g.count + (g.mean - mean) ** 2 if g.count else np.full_like(mean, np.nan)
                           for g in gathered], axis=0)
        total = sum(g.count for g in gathered)
        return Local(total, mean, var * total)


class Unsynchronized(Replicated):
    """Broken: each replica normalizes with, and keeps, its own shard's statistics (BN-SYNC-1)."""

    name = "unsynchronized"

    def normalize_stats(self, merged: Local, own: Local) -> Local:
        return own

    def unbiased_count(self, merged: Local, own: Local) -> int:
        return own.count

    def reduce_sums(self, sums: list[np.ndarray], r: int) -> np.ndarray:
        return sums[r]


class LocalUnbiasedCount(Replicated):
    """Broken: the unbiased factor uses the replica's own count m_r, not the global m (BN-SYNC-2)."""

    name = "local-unbiased-count"

    def unbiased_count(self, merged: Local, own: Local) -> int:
        return own.count


class LocalBackward(Replicated):
    """Broken: the backward pass uses only the replica's own sums of dy (no all-reduce) (BN-SYNC-4)."""

    name = "local-backward"

    def reduce_sums(self, sums: list[np.ndarray], r: int) -> np.ndarray:
        return sums[r] * len(sums)  # scaled to a global-looking magnitude, still local


class LocalRunningStats(Replicated):
    """Broken: normalizes with the merged statistics but updates each replica's state from its own
    shard, so the replicas' running statistics part ways (BN-SYNC-2, BN-SYNC-3)."""

    name = "local-running-stats"

    def state_stats(self, merged: Local, own: Local) -> Local:
        return own

    def unbiased_count(self, merged: Local, own: Local) -> int:
        return own.count


class CounterPerReplica(Replicated):
    """Broken: each replica's counter rises by R, as if every replica's step counted (BN-SYNC-2)."""

    name = "counter-per-replica"

    def counter_step(self, replicas: int) -> int:
        return replicas


BROKEN = (EqualWeighted, Unsynchronized, LocalUnbiasedCount, LocalBackward, LocalRunningStats, CounterPerReplica)
