"""Sections 1 and 2 of the spec: the channel axis and layouts, and the training forward pass
(BN-LAYOUT-*, BN-TRAIN-*)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ...adapters.contract import Capabilities, Case
from ..cases import WITH_EXTREMES, Recipe, Space
from ..check import (
    ALL,
    CompareCheck,
)


class TrainOutput(CompareCheck):
    """The training output normalizes with the batch mean and biased variance, epsilon inside the root."""

    name = "train-output"
    area = "TRAIN"
    clauses = ("BN-LAYOUT-1", "BN-TRAIN-1", "BN-TRAIN-2", "BN-TRAIN-3", "BN-TRAIN-4", "BN-PREC-1", "BN-PREC-2",
               "BN-PREC-3")
    space = Space(training=True, affine=True, data=WITH_EXTREMES)
    fixed = (
        Recipe(shape=(2, 3), seed=1),  # m = 2, the smallest training batch
        Recipe(shape=(5, 1, 3), seed=2),  # one channel, odd sizes
        Recipe(shape=(3, 2, 5), dtype="float64", data="offset", offset=1e6, seed=3),  # 1e6 mean, spread ~1
        Recipe(shape=(4, 3, 2, 2), eps=1e-1, data="integers", seed=4),
        Recipe(shape=(64, 2, 8, 8), data="offset", offset=1e4, seed=5),  # large m, ill-conditioned float32
    )


class TrainAffineOff(CompareCheck):
    """With affine off, the training output is the normalized input itself."""

    name = "train-affine-off"
    area = "TRAIN"
    clauses = ("BN-TRAIN-4", "BN-PREC-3")
    space = Space(training=True, affine=False, data=WITH_EXTREMES)
    fixed = (Recipe(shape=(6, 4), affine=False, seed=6),)

    def unsupported(self, caps: Capabilities) -> str | None:
        return None if caps.affine_off else "the adapter does not support affine off"


class TrainBatchStatsOnly(CompareCheck):
    """A training step normalizes with batch statistics, never with (or blended with) running ones."""

    name = "train-batch-stats"
    area = "TRAIN"
    clauses = ("BN-TRAIN-5", "BN-PREC-3")
    space = Space(training=True, tracked=True, data=WITH_EXTREMES)

    def prepare(self, case: Case, extra: Any) -> Case:
        # Running statistics far from the batch's own expose any blending.
        c = case.channels
        dt = case.running_mean.dtype if case.running_mean is not None else case.x.dtype
        return replace(case, running_mean=np.full(c, 50.0, dt), running_var=np.full(c, 100.0, dt))


# -- layout ----------------------------------------------------------------------------------------

class ChannelLast(CompareCheck):
    """Channel-last input gives the same results as channel-first, outputs, state and gradients."""

    name = "layout-channel-last"
    area = "LAYOUT"
    clauses = ("BN-LAYOUT-1", "BN-LAYOUT-2")
    # BN-LAYOUT-2.1: ranks 2 to 5 in each layout claimed, equal results; BN-LAYOUT-2.2 (SHOULD): an adapter
    # without channel-last is reported unsupported here, with the reason.
    outputs = ALL
    space = Space(axes=(-1,), grad=True, data=WITH_EXTREMES)
    fixed = (Recipe(shape=(2, 3, 3, 5), axis=-1, grad="normal", seed=7),)

    def unsupported(self, caps: Capabilities) -> str | None:
        return None if -1 in caps.channel_axes else "the adapter supports channel axis 1 only"
