"""Adapters that declare things: a profile, missing capabilities, a stale known deviation."""

from __future__ import annotations

from dataclasses import replace

from bnspec import Capabilities, Case, Outcome
from bnspec.adapters.reference import ReferenceAdapter
from bnspec.reference import step


class BiasedReference(ReferenceAdapter):
    """The reference with the biased running variance: conforms under biased-running-var."""

    name = "biased-reference"
    capabilities = replace(ReferenceAdapter.capabilities, running_var="biased")

    def run(self, case: Case) -> Outcome:
        out = super().run(case)
        if case.training and case.running_var is not None and case.values_per_channel > 1:
            s = step(case.x, axis=case.axis, momentum=case.momentum, running_mean=case.running_mean,
                     running_var=case.running_var, num_batches_tracked=case.num_batches_tracked,
                     eps=case.eps, running_var_estimator="biased")
            out.running_var = s.running_var.astype(case.running_var.dtype)
        return out


class MinimalReference(ReferenceAdapter):
    """Claims little: float64 only, no gradients, no untracked mode, no cumulative average."""

    name = "minimal"
    capabilities = Capabilities(dtypes=("float64",), gradients=False, untracked=False, cumulative_average=False)


class StaleDeviation(ReferenceAdapter):
    """Declares a deviation it does not have."""

    name = "stale"
    capabilities = replace(ReferenceAdapter.capabilities, known_deviations=(("arg-momentum-range", "thought so"),))


class NoMomentumCheck(ReferenceAdapter):
    """Accepts any momentum: fails BN-ARG-5."""

    name = "no-momentum-check"

    def run(self, case: Case) -> Outcome:
        if case.momentum is not None and not 0 <= case.momentum <= 1:
            case = replace(case, momentum=0.5)
        return super().run(case)


biased = BiasedReference()
