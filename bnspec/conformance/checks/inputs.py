"""Section 9 of the spec: inputs are not mutated, and empty batches (BN-IO-1, BN-EMPTY-1)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ...adapters.contract import Case, Outcome
from ..cases import Recipe, Space
from ..check import Check, Context, RefusalCheck, describe_error, snapshot
from ..compare import Verdict, fail


class InputsUnmutated(Check):
    """The backend leaves every array it was given unchanged."""

    name = "io-unmutated"
    area = "IO"
    clauses = ("BN-IO-1",)
    space = Space(grad=True, large=False)

    def evaluate(self, run: Any, case: Case, ctx: Context) -> Verdict:
        before = snapshot(case)
        try:
            run(case)
        except Exception as exc:  # noqa: BLE001
            return fail(f"raised {describe_error(exc)} on a valid case")
        for name, old in before.items():
            new = getattr(case, name)
            if new.shape != old.shape or not np.array_equal(new, old, equal_nan=True):
                return fail(f"the case's {name} was modified in place", output=name)
        return Verdict()


class EmptyBatch(RefusalCheck):
    """An empty batch raises or returns an empty output, and leaves the state untouched."""

    name = "empty-batch"
    area = "EMPTY"
    clauses = ("BN-EMPTY-1",)
    space = None
    fixed = (Recipe(shape=(0, 3), seed=20), Recipe(shape=(0, 2, 4, 4), seed=21),
             Recipe(shape=(0, 3, 5), momentum=None, num_batches_tracked=2, seed=22),
             Recipe(shape=(0, 4, 4, 2), axis=-1, seed=23))

    def twin(self, case: Case) -> Case:
        """Two rows of data in place of none."""
        shape = (2, *case.x.shape[1:])
        x = np.random.default_rng(0).normal(size=shape).astype(case.x.dtype)
        return replace(case, x=x, grad_output=None, shards=None)

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if outcome is None:
            return fail("no outcome and no error")
        y = outcome.y
        if not isinstance(y, np.ndarray) or y.shape != case.x.shape:
            return fail(f"y has shape {getattr(y, 'shape', type(y).__name__)}, expected {case.x.shape}")
        for name in ("running_mean", "running_var"):
            got, want = getattr(outcome, name), getattr(case, name)
            if want is not None and (not isinstance(got, np.ndarray) or not np.array_equal(got, want)):
                return fail(f"{name} changed on an empty batch: {got!r}, was {want!r}", output=name)
        if ctx.capabilities.counter and case.tracked and outcome.num_batches_tracked != case.num_batches_tracked:
            return fail(f"num_batches_tracked = {outcome.num_batches_tracked!r} after an empty batch, "
                        f"expected {case.num_batches_tracked}", output="num_batches_tracked")
        return Verdict()
