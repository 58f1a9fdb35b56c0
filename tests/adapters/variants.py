"""Adapters that declare things: a profile, missing capabilities, a stale known deviation."""

from __future__ import annotations

from dataclasses import replace

from bnspec import Capabilities, Case, Finding, Outcome
from bnspec.adapters.contract import with_state
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


class DeclaresMomentum(NoMomentumCheck):
    """Accepts any momentum, and declares it: a known finding (BN-ARG-5)."""

    name = "declares-momentum"
    capabilities = replace(ReferenceAdapter.capabilities,
                           known_deviations=(("arg-momentum-range", "accepts any momentum, like PyTorch"),))


class Raiser(ReferenceAdapter):
    """The adapter guide's first step: raises for everything. Its refusals prove nothing (issue 13)."""

    name = "raiser"

    def run(self, case: Case) -> Outcome:
        raise NotImplementedError("not written yet")


class CounterBeforeCheck(ReferenceAdapter):
    """Raises on invalid use, but only after counting the step, as PyTorch's module does (T3)."""

    name = "counter-before-check"

    def run(self, case: Case) -> Outcome:
        try:
            return super().run(case)
        except Exception as exc:
            if case.training and case.tracked and case.num_batches_tracked is not None:
                raise with_state(exc, Outcome(running_mean=case.running_mean, running_var=case.running_var,
                                              num_batches_tracked=case.num_batches_tracked + 1)) from None
            raise


BIASED = Finding(id="B1", summary="the running variance is fed the biased batch variance", clauses=("BN-RUN-2",),
                 outputs=("running_var",), trigger_check="running-momentum", trigger=(("shape", (2, 3)),))


class BiasedDeclared(BiasedReference):
    """The biased running variance without its profile, declared once as finding B1 with a trigger."""

    name = "biased-declared"
    capabilities = replace(ReferenceAdapter.capabilities, findings=(BIASED,))


class FixedButDeclared(ReferenceAdapter):
    """Declares finding B1, but computes the unbiased running variance: the declaration is stale."""

    name = "fixed-but-declared"
    capabilities = replace(ReferenceAdapter.capabilities, findings=(BIASED,))


class BiasedAndMomentum(BiasedDeclared):
    """Finding B1 declared, and an undeclared departure besides: any momentum accepted (BN-ARG-5)."""

    name = "biased-and-momentum"

    def run(self, case: Case) -> Outcome:
        if case.momentum is not None and not 0 <= case.momentum <= 1:
            case = replace(case, momentum=0.5)
        return super().run(case)


biased = BiasedReference()
