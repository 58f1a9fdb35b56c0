"""Section 3 of the spec: running statistics, the batch counter, and no update outside training
(BN-RUN-*)."""

from __future__ import annotations

import numpy as np

from ...adapters.contract import Capabilities, Case, Outcome
from ..cases import WITH_EXTREMES, Recipe, Space
from ..check import (
    Check,
    CompareCheck,
    Context,
    modes_unsupported,
    not_run,
)
from ..compare import Verdict, fail


class RunningMomentum(CompareCheck):
    """A training step blends the batch statistics into the running ones with weight momentum."""

    name = "running-momentum"
    area = "RUN"
    clauses = ("BN-RUN-1", "BN-RUN-2", "BN-PREC-4")
    outputs = ("running_mean", "running_var")
    space = Space(training=True, tracked=True, cumulative=False, data=WITH_EXTREMES)
    fixed = (
        Recipe(shape=(2, 3), momentum=0.1, seed=8),  # m = 2: the unbiased factor is 2
        Recipe(shape=(4, 2, 3), momentum=1.0, seed=9),  # momentum 1: the batch estimate alone
    )


class RunningCumulative(CompareCheck):
    """With momentum None, the running statistics are the cumulative average over the counter."""

    name = "running-cumulative"
    area = "RUN"
    clauses = ("BN-RUN-3", "BN-RUN-2", "BN-PREC-4")
    outputs = ("running_mean", "running_var")
    space = Space(training=True, tracked=True, cumulative=True, data=WITH_EXTREMES)
    fixed = (Recipe(shape=(3, 2), momentum=None, num_batches_tracked=3, seed=10),)

    def unsupported(self, caps: Capabilities) -> str | None:
        if not caps.cumulative_average:
            return "the adapter has no cumulative average (momentum None)"
        return modes_unsupported(caps, self.space)


class RunningCounter(Check):
    """The batch counter rises by one per training step and stays put in eval."""

    name = "running-counter"
    area = "RUN"
    clauses = ("BN-RUN-4", "BN-RUN-6")
    space = Space(tracked=True)

    def unsupported(self, caps: Capabilities) -> str | None:
        if not caps.counter:
            return "the adapter keeps no batch counter"
        return None if caps.training else "needs training steps; the adapter declares no training mode (inference only)"

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if (bad := not_run(outcome, error)) is not None:
            return bad
        assert outcome is not None
        want = case.num_batches_tracked + (1 if case.training else 0)
        got = outcome.num_batches_tracked
        if not isinstance(got, (int, np.integer)) or int(got) != want:
            return fail(f"num_batches_tracked = {got!r}, expected {want}", output="num_batches_tracked",
                        got=repr(got), expected=want)
        return Verdict()


class RunningUntracked(Check):
    """Without running statistics, a training step creates, returns and updates none."""

    name = "running-untracked"
    area = "RUN"
    clauses = ("BN-RUN-5",)
    space = Space(tracked=False, training=True)

    def unsupported(self, caps: Capabilities) -> str | None:
        return None if caps.untracked else "the adapter always tracks running statistics"

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if (bad := not_run(outcome, error)) is not None:
            return bad
        assert outcome is not None
        leaked = [n for n in ("running_mean", "running_var", "num_batches_tracked") if getattr(outcome, n) is not None]
        if leaked:
            return fail(f"untracked step returned {', '.join(leaked)}; expected none")
        return Verdict()


class EvalNoUpdate(Check):
    """An eval call leaves the running statistics and the counter exactly as they were."""

    name = "eval-no-update"
    area = "RUN"
    clauses = ("BN-RUN-6",)
    space = Space(training=False, tracked=True)

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if (bad := not_run(outcome, error)) is not None:
            return bad
        assert outcome is not None
        for name in ("running_mean", "running_var"):
            got, want = getattr(outcome, name), getattr(case, name)
            if not isinstance(got, np.ndarray) or got.shape != want.shape or not np.array_equal(got, want):
                return fail(f"{name} changed in eval: {got!r} from {want!r}", output=name)
        if ctx.capabilities.counter and outcome.num_batches_tracked != case.num_batches_tracked:
            return fail(f"num_batches_tracked = {outcome.num_batches_tracked!r} after eval, "
                        f"expected {case.num_batches_tracked}", output="num_batches_tracked")
        return Verdict()
