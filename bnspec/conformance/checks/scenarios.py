"""Scenarios across sections: several training steps, then eval, against the reference chained the same way
(BN-RUN-*, BN-EVAL-1, BN-PREC-6)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ...adapters.contract import Capabilities, Case
from ..cases import Space, recipes
from ..check import (
    Check,
    Context,
    describe_error,
    expected,
)
from ..compare import Verdict, compare, fail
from ..tolerance import StatError, tolerances


class MultiStep(Check):
    """Several training steps then eval agree with the reference chained the same way."""

    name = "scenario-multistep"
    area = "SCENARIO"
    clauses = ("BN-RUN-1", "BN-RUN-2", "BN-RUN-3", "BN-RUN-4", "BN-EVAL-1", "BN-PREC-6")
    space = Space(training=True, tracked=True, large=False)

    def strategy(self, caps: Capabilities) -> Any:
        assert self.space is not None
        first = recipes(caps, self.space).map(lambda r: replace(r.build(), grad_output=None, num_batches_tracked=0))
        return st.builds(_Scenario, first, st.integers(2, 4), st.integers(0, 2**32 - 1))

    def evaluate(self, run: Any, scenario: Any, ctx: Context) -> Verdict:
        case, steps, seed = scenario.case, scenario.steps, scenario.seed
        rng = np.random.default_rng(seed)
        got_state = want_state = (case.running_mean, case.running_var, 0)
        err = StatError(np.zeros(case.channels), np.zeros(case.channels))
        for k in range(steps + 1):
            training = k < steps
            x = case.x if k == 0 else (case.x.astype(np.float64) * rng.uniform(0.5, 2.0)
                                        + rng.normal(0, 1)).astype(case.x.dtype)
            step_case = replace(case, x=x, training=training, running_mean=got_state[0],
                                running_var=got_state[1], num_batches_tracked=got_state[2])
            ref_case = replace(step_case, running_mean=want_state[0], running_var=want_state[1],
                               num_batches_tracked=want_state[2])
            try:
                out = run(step_case)
            except Exception as exc:  # noqa: BLE001
                return fail(f"step {k + 1} raised {describe_error(exc)}")
            want = expected(ref_case, ctx)
            if training:
                # The tolerance is charged in the backend's state dtype, at the exact chain's values.
                tol_case = replace(ref_case, running_mean=want_state[0].astype(case.running_mean.dtype),
                                   running_var=want_state[1].astype(case.running_var.dtype))
                tol = tolerances(tol_case, want, estimator=ctx.estimator, average=ctx.average)
                alpha = ref_case.momentum if ref_case.momentum is not None else 1.0 / (want_state[2] + 1)
                err = StatError((1 - alpha) * err.mean + tol["running_mean"], (1 - alpha) * err.var + tol["running_var"])
                want_state = (want.running_mean, want.running_var, want.num_batches_tracked)
                got_state = (out.running_mean, out.running_var, out.num_batches_tracked)
                verdict = compare("running_mean", out.running_mean, want.running_mean, err.mean)
                verdict = verdict.merge(compare("running_var", out.running_var, want.running_var, err.var))
                if ctx.capabilities.counter and out.num_batches_tracked != k + 1:
                    verdict = verdict.merge(fail(f"num_batches_tracked = {out.num_batches_tracked!r} after "
                                                 f"{k + 1} steps, expected {k + 1}"))
            else:
                tol = tolerances(ref_case, want, stat_error=err, estimator=ctx.estimator, average=ctx.average)
                verdict = compare("y", out.y, want.y, tol["y"])
            if not verdict.ok:
                verdict.message = f"after {k + 1} of {steps} training steps + eval: {verdict.message}"
                return verdict
        return verdict


class _Scenario:
    """A scenario's first case, its step count and the seed of its later batches."""

    def __init__(self, case: Case, steps: int, seed: int) -> None:
        self.case, self.steps, self.seed = case, steps, seed

    def describe(self) -> str:
        return f"{self.steps} training steps then eval, first: {self.case.describe()}"
