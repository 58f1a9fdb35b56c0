"""The runner's statuses: unsupported, profile, known deviation, stale deviation, fail; seeds."""

from __future__ import annotations

from bnspec.adapters import load
from bnspec.conformance import run, select

from .adapters.variants import BiasedReference, MinimalReference, NoMomentumCheck, StaleDeviation


def statuses(report):
    return {r.name: r for r in report.results}


def test_profile_is_reported_as_conforming_under_it():
    """BN-RUN-2 under the biased-running-var profile."""
    report = run(BiasedReference(), examples=5, run_seed=0, pattern="RUN")
    by = statuses(report)
    assert by["running-momentum"].status == "profile" and "biased-running-var" in by["running-momentum"].note
    assert report.ok


def test_spec_estimator_rejects_the_biased_adapter_without_the_profile():
    """BN-RUN-2: the same adapter, not declaring the profile, fails."""
    adapter = BiasedReference()
    adapter.capabilities = MinimalReference.capabilities.__class__(dtypes=("float32", "float64"), channel_axes=(1, -1))
    report = run(adapter, examples=10, run_seed=0, pattern="running-momentum")
    assert statuses(report)["running-momentum"].status == "fail"


def test_unsupported_is_never_passed():
    report = run(MinimalReference(), examples=3, run_seed=0)
    by = statuses(report)
    for name in ("grad-train", "grad-eval", "running-untracked", "running-cumulative", "eval-untracked",
                 "layout-channel-last", "dtype-half"):
        assert by[name].status == "unsupported", name
        assert by[name].message
    assert report.ok


def test_failure_carries_clause_case_and_reproducer():
    """BN-ARG-5"""
    report = run(NoMomentumCheck(), examples=5, run_seed=0, pattern="arg-momentum-range")
    r = statuses(report)["arg-momentum-range"]
    assert r.status == "fail" and "BN-ARG-5" in r.message and r.case
    assert "bnspec.Case(" in r.reproducer and not report.ok


def test_stale_known_deviation_is_flagged():
    report = run(StaleDeviation(), examples=3, run_seed=0, pattern="arg-momentum-range")
    r = statuses(report)["arg-momentum-range"]
    assert r.status == "pass" and "stale" in r.note


def test_same_seed_same_cases():
    a = run(load("reference"), examples=5, run_seed=123, pattern="train-output,grad-train")
    b = run(load("reference"), examples=5, run_seed=123, pattern="train-output,grad-train")
    assert [(r.name, r.examples, r.budget) for r in a.results] == [(r.name, r.examples, r.budget) for r in b.results]


def test_select_by_name_area_and_clause():
    assert [c.name for c in select("grad-eval")] == ["grad-eval", "grad-eval-untracked"]
    assert {c.area for c in select("ARG")} == {"ARG"}
    assert "running-cumulative" in [c.name for c in select("BN-RUN-3")]
