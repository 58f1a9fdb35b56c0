"""The profile ``debiased-running-average`` (``spec/conventions.md``, section 3): running averages
zero-debiased by the step count, as Haiku's ``ExponentialMovingAverage`` keeps them. An adapter that
declares it (``Capabilities(running_average="debiased")``) is judged by the profile's update and reported
as conforming under it; the same behaviour undeclared fails, a plain average declared as debiased fails,
and a debiasing off by one step fails even when declared."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bnspec.adapters.contract import Case, Outcome
from bnspec.adapters.reference import ReferenceAdapter
from bnspec.conformance.checks import CHECKS
from bnspec.conformance.runner import run_check
from bnspec.reference import step


def _debiased(old: np.ndarray, new: np.ndarray, alpha: float, n: int, shift: int = 0) -> np.ndarray:
    """Haiku's recurrence, written out: hidden = old (1 - d^n); hidden' = d hidden + alpha new;
    average = hidden' / (1 - d^(n+1)). alpha = 0: the limit (n old + new) / (n + 1)."""
    if alpha == 0.0:
        return (n * old + new) / (n + 1)
    d = 1.0 - alpha
    hidden = d * old * (1.0 - d ** n) + alpha * new
    return hidden / (1.0 - d ** (n + 1 - shift)) if n + 1 - shift > 0 else hidden


class Debiasing(ReferenceAdapter):
    """The reference with its running statistics replaced by the debiased recurrence, in float64."""

    name = "debiasing"

    def __init__(self, declare: bool = True, shift: int = 0) -> None:
        self.capabilities = replace(ReferenceAdapter.capabilities, cumulative_average=False, counter=False,
                                    running_average="debiased" if declare else "plain")
        self.shift = shift

    def run(self, case: Case) -> Outcome:
        out = super().run(case)
        if case.training and case.tracked and case.values_per_channel > 0:
            batch = step(np.asarray(case.x, np.float64), axis=case.axis, momentum=1.0,
                         running_mean=np.zeros(case.channels), running_var=np.zeros(case.channels))
            n = case.num_batches_tracked
            for name, new in (("running_mean", batch.running_mean), ("running_var", batch.running_var)):
                old = np.asarray(getattr(case, name), np.float64)
                value = _debiased(old, new, case.momentum, n, self.shift)
                setattr(out, name, value.astype(getattr(case, name).dtype))
        return out


def _status(adapter, name: str) -> str:
    check = next(c for c in CHECKS if c.name == name)
    return run_check(adapter, check, 20, 0, adapter.name).status


@pytest.mark.parametrize("name", ["running-momentum", "scenario-multistep"])
def test_debiased_averages_conform_under_the_profile_and_only_when_declared(name):
    assert _status(Debiasing(declare=True), name) == "profile"
    assert _status(Debiasing(declare=False), name) == "fail"


def test_a_plain_average_declared_debiased_fails():
    plain = ReferenceAdapter()
    plain.capabilities = replace(ReferenceAdapter.capabilities, cumulative_average=False, running_average="debiased")
    assert _status(plain, "running-momentum") == "fail"


def test_a_debiasing_off_by_one_step_fails_even_when_declared():
    assert _status(Debiasing(declare=True, shift=1), "running-momentum") == "fail"


def test_the_first_step_from_zero_steps_stores_the_batch_statistics():
    """n = 0: (d * old * 0 + alpha * b) / (1 - d) = b, whatever the old value (Haiku's first step)."""
    x = np.array([[0.0], [2.0]])
    s = step(x, momentum=0.1, running_mean=np.full(1, 7.0), running_var=np.full(1, 7.0), running_average="debiased")
    assert s.running_mean.tolist() == [1.0] and s.running_var.tolist() == [2.0]
    s = step(x, momentum=0.0, running_mean=np.full(1, 4.0), running_var=np.full(1, 4.0), num_batches_tracked=3,
             running_average="debiased")
    assert s.running_mean.tolist() == [(3 * 4.0 + 1.0) / 4]
