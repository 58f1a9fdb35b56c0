"""Declared findings (issue 13): one root cause declared once, matched by the clause that governs the
failing output, and judged stale by its trigger case alone, the same for every seed."""

from __future__ import annotations

import re

import pytest

from bnspec.conformance import run
from tests.adapters.variants import BiasedAndMomentum, BiasedDeclared, FixedButDeclared

SEEDS = range(5)


@pytest.mark.parametrize("seed", SEEDS)
def test_one_declaration_covers_every_check_it_shows_in(seed):
    """BN-RUN-2: the biased running variance fails running-momentum, running-cumulative and the
    scenario; each is a deviation of the one finding, and the verdict counts one finding."""
    report = run(BiasedDeclared(), examples=3, run_seed=seed, pattern="RUN,SCENARIO,special-nonfinite")
    deviations = {r.name: r for r in report.results if r.status == "deviation"}
    assert {"running-momentum", "running-cumulative"} <= set(deviations), report.counts()
    assert {r.finding for r in deviations.values()} == {"B1"}
    # Each is attributed to the clause of the check that governs the running variance (BN-RUN-3 for the
    # cumulative average), never to a clause of another output.
    assert all(re.search(r"attributed to BN-RUN-[23] via running_var", r.note) for r in deviations.values())
    assert report.verdict == "conforms except 1 known finding"


@pytest.mark.parametrize("seed", SEEDS)
def test_staleness_is_decided_by_the_trigger_alone(seed):
    """A declaration whose trigger passes is stale at every seed; checks it merely covers just pass."""
    report = run(FixedButDeclared(), examples=3, run_seed=seed, pattern="RUN")
    by = {r.name: r for r in report.results}
    assert by["running-momentum"].status == "stale" and by["running-momentum"].finding == "B1"
    assert "trigger case passed" in by["running-momentum"].note
    assert by["running-cumulative"].status == "pass"
    assert report.verdict == "conforms except 1 stale declaration"


def test_a_finding_does_not_hide_another_departure_in_the_same_check():
    """BN-ARG-5: the undeclared departure is a failure though B1 is declared."""
    report = run(BiasedAndMomentum(), examples=3, run_seed=0, pattern="arg-momentum-range,running-momentum")
    by = {r.name: r.status for r in report.results}
    assert by == {"running-momentum": "deviation", "arg-momentum-range": "fail"}
    assert report.verdict == "DOES NOT CONFORM"


def test_older_declarations_count_by_the_finding_id_their_reason_starts_with():
    """Two checks declared with the same "ID: reason" are one known finding in the verdict."""
    from bnspec.conformance.runner import finding_id

    assert finding_id("T5: the CPU kernels round") == "T5" and finding_id("GJ1: replays") == "GJ1"
    assert finding_id("PyTorch does not validate momentum") == "" and finding_id("Known: x") == ""


def test_a_missing_output_is_never_explained_by_a_declared_finding():
    """An adapter that claims a mode and returns no value for it broke the contract: a finding whose
    clauses cover the check must not turn that into a known deviation (keras-sync once did)."""
    from bnspec import Finding
    from bnspec.adapters.contract import DERIVATIVE_MODES, Capabilities, Outcome
    from bnspec.conformance import run

    from .impls.numpy_impls import NumpyBatchNorm

    class NoHigherOutputs(NumpyBatchNorm):
        capabilities = Capabilities(channel_axes=(1, -1), derivatives=DERIVATIVE_MODES, max_order=3, findings=(
            Finding(id="Z1", summary="declared for the higher orders", clauses=("BN-GRAD-4", "BN-PREC-8")),))

        def run(self, case):
            return Outcome() if case.derivative is not None else super().run(case)

    result = {r.name: r for r in run(NoHigherOutputs(), examples=2, pattern="jvp-train").results}["jvp-train"]
    assert result.status == "fail" and "y_dot is missing (None)" in result.message, (result.status, result.message)
