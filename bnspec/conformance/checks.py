"""The conformance checks, grouped by spec area; each cites the clauses it tests.

A check's docstring is the sentence the report prints. ``CHECKS`` lists them in report order.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..adapters.contract import Capabilities, Case, Outcome
from .cases import Recipe, Space
from .check import Check, CompareCheck, Context, not_run
from .compare import Verdict, fail

ALL = ("y", "running_mean", "running_var", "grad_input", "grad_weight", "grad_bias")
GRADS = ("grad_input", "grad_weight", "grad_bias")


# -- training forward ----------------------------------------------------------------------------

class TrainOutput(CompareCheck):
    """The training output normalizes with the batch mean and biased variance, epsilon inside the root."""

    name = "train-output"
    area = "TRAIN"
    clauses = ("BN-LAYOUT-1", "BN-TRAIN-1", "BN-TRAIN-2", "BN-TRAIN-3", "BN-TRAIN-4", "BN-PREC-1", "BN-PREC-2",
               "BN-PREC-3")
    space = Space(training=True, affine=True)
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
    space = Space(training=True, affine=False)
    fixed = (Recipe(shape=(6, 4), affine=False, seed=6),)

    def unsupported(self, caps: Capabilities) -> str | None:
        return None if caps.affine_off else "the adapter does not support affine off"


class TrainBatchStatsOnly(CompareCheck):
    """A training step normalizes with batch statistics, never with (or blended with) running ones."""

    name = "train-batch-stats"
    area = "TRAIN"
    clauses = ("BN-TRAIN-5", "BN-PREC-3")
    space = Space(training=True, tracked=True)

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
    outputs = ALL
    space = Space(axes=(-1,), grad=True)
    fixed = (Recipe(shape=(2, 3, 3, 5), axis=-1, grad="normal", seed=7),)

    def unsupported(self, caps: Capabilities) -> str | None:
        return None if -1 in caps.channel_axes else "the adapter supports channel axis 1 only"


# -- running statistics -------------------------------------------------------------------------

class RunningMomentum(CompareCheck):
    """A training step blends the batch statistics into the running ones with weight momentum."""

    name = "running-momentum"
    area = "RUN"
    clauses = ("BN-RUN-1", "BN-RUN-2", "BN-PREC-4")
    outputs = ("running_mean", "running_var")
    space = Space(training=True, tracked=True, cumulative=False)
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
    space = Space(training=True, tracked=True, cumulative=True)
    fixed = (Recipe(shape=(3, 2), momentum=None, num_batches_tracked=3, seed=10),)

    def unsupported(self, caps: Capabilities) -> str | None:
        return None if caps.cumulative_average else "the adapter has no cumulative average (momentum None)"


class RunningCounter(Check):
    """The batch counter rises by one per training step and stays put in eval."""

    name = "running-counter"
    area = "RUN"
    clauses = ("BN-RUN-4", "BN-RUN-6")
    space = Space(tracked=True)

    def unsupported(self, caps: Capabilities) -> str | None:
        return None if caps.counter else "the adapter keeps no batch counter"

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


# -- eval forward ----------------------------------------------------------------------------------

class EvalOutput(CompareCheck):
    """In eval, the output normalizes with the running statistics."""

    name = "eval-output"
    area = "EVAL"
    clauses = ("BN-EVAL-1", "BN-PREC-3")
    space = Space(training=False, tracked=True)
    fixed = (Recipe(shape=(1, 3), training=False, seed=11),)  # one value per channel is fine in eval


class EvalUntracked(CompareCheck):
    """In eval without running statistics, the output normalizes with the batch statistics."""

    name = "eval-untracked"
    area = "EVAL"
    clauses = ("BN-EVAL-2", "BN-PREC-3")
    space = Space(training=False, tracked=False)

    def unsupported(self, caps: Capabilities) -> str | None:
        return None if caps.untracked else "the adapter always tracks running statistics"


# -- gradients -------------------------------------------------------------------------------------

class _GradCheck(CompareCheck):
    outputs = GRADS

    def unsupported(self, caps: Capabilities) -> str | None:
        return None if caps.gradients else "the adapter computes no gradients"


class GradTrain(_GradCheck):
    """Training gradients: dx through the batch mean and variance, dgamma and dbeta."""

    name = "grad-train"
    area = "GRAD"
    clauses = ("BN-GRAD-1", "BN-GRAD-2", "BN-PREC-5")
    space = Space(training=True, affine=True, grad=True)
    fixed = (
        Recipe(shape=(2, 3), grad="normal", seed=12),
        Recipe(shape=(16, 2, 4, 4), grad="correlated", data="offset", offset=1e3, seed=13),
    )


class GradEval(_GradCheck):
    """Eval gradients treat the running statistics as constants."""

    name = "grad-eval"
    area = "GRAD"
    clauses = ("BN-GRAD-3", "BN-GRAD-2", "BN-PREC-5")
    space = Space(training=False, tracked=True, affine=True, grad=True)


class GradUntrackedEval(_GradCheck):
    """Eval without running statistics differentiates through the batch statistics."""

    name = "grad-eval-untracked"
    area = "GRAD"
    clauses = ("BN-GRAD-1", "BN-EVAL-2", "BN-PREC-5")
    space = Space(training=False, tracked=False, grad=True)

    def unsupported(self, caps: Capabilities) -> str | None:
        if not caps.untracked:
            return "the adapter always tracks running statistics"
        return super().unsupported(caps)


class GradAffineOff(_GradCheck):
    """With affine off, dx is the gradient of the normalized input alone."""

    name = "grad-affine-off"
    area = "GRAD"
    clauses = ("BN-GRAD-1", "BN-GRAD-2", "BN-PREC-5")
    outputs = ("grad_input",)
    space = Space(affine=False, grad=True)

    def unsupported(self, caps: Capabilities) -> str | None:
        if not caps.affine_off:
            return "the adapter does not support affine off"
        return super().unsupported(caps)
