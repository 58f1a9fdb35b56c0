"""Synchronized batch norm (section 10 of the spec): one batch split over replicas.

The reference has nothing to merge: a step split over replicas is, by BN-SYNC-1 to BN-SYNC-5,
the step of the concatenated batch, which ``step`` already computes exactly. This module holds
what the split itself means (which rows each replica holds) and the one step that says so, so
that a sharded case and its concatenated twin provably meet the same judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidArgument


def check_shards(shards: Any, batch: int) -> tuple[int, ...]:
    """The shard sizes as a tuple of ints, or an error naming ``shards`` (section 10).

    Sizes are non-negative (an empty replica is allowed, BN-SYNC-5) and add up to the batch size
    along axis 0; at least one replica.
    """
    if isinstance(shards, (str, bytes)) or not isinstance(shards, Sequence):
        raise InvalidArgument(f"shards={shards!r} must be a sequence of non-negative integers", "BN-SYNC-5")
    sizes = tuple(shards)
    if not sizes:
        raise InvalidArgument("shards=() names no replica; give at least one size", "BN-SYNC-5")
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise InvalidArgument(f"shards={shards!r}: every size must be a non-negative integer, got {s!r}",
                                  "BN-SYNC-5")
    if sum(sizes) != batch:
        raise InvalidArgument(f"shards={shards!r} add up to {sum(sizes)}, but the batch (axis 0) has {batch}",
                              "BN-SYNC-5")
    return tuple(int(s) for s in sizes)


def bounds(shards: Sequence[int]) -> list[tuple[int, int]]:
    """``[start, stop)`` of each replica's rows along axis 0, in replica order."""
    stops = np.cumsum(shards).tolist()
    return [(int(stop - size), int(stop)) for size, stop in zip(shards, stops)]


def split(a: np.ndarray, shards: Sequence[int]) -> list[np.ndarray]:
    """Replica ``r``'s shard of ``a`` (views along axis 0); concatenated in order they give ``a``."""
    return [a[start:stop] for start, stop in bounds(shards)]


def step(x: np.ndarray, shards: Sequence[int], **kwargs: Any) -> Any:
    """A step split over ``len(shards)`` replicas: the step of the concatenated batch ``x``.

    BN-SYNC-1: the statistics are the concatenated batch's, count-weighted by construction.
    BN-SYNC-2: the running statistics are updated once, with the global count's unbiased factor.
    BN-SYNC-3: there is one state, which is every replica's.
    BN-SYNC-4: the gradients are those of the concatenated computation, dgamma and dbeta summed.
    BN-SYNC-5: empty shards add nothing; the argument rules apply to the concatenated batch.
    """
    from . import step as concatenated

    check_shards(shards, x.shape[0] if x.ndim else 0)
    return concatenated(x, **kwargs)
