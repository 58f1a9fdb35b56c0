"""The runner's statuses: unsupported, profile, known deviation, stale deviation, fail; seeds; hooks,
interruption, a crash while shrinking; the JSON report against its published schema; the terminal's
progress bar, colour and area table."""

from __future__ import annotations

import io
import json
from dataclasses import fields
from pathlib import Path

import jsonschema
import pytest

from bnspec.adapters import load
from bnspec.conformance import run, select
from bnspec.conformance.render import Progress, area_table, summary, use_colour
from bnspec.conformance.results import SCHEMA_VERSION, STATUSES, CheckResult, RunReport

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


def test_a_check_keyed_declaration_that_passes_says_staleness_is_undecided():
    """Drawn cases that pass say nothing about staleness: only a Finding's trigger decides it
    (tests/test_findings.py), so an older check-keyed declaration that passes is a pass with a note."""
    report = run(StaleDeviation(), examples=3, run_seed=0, pattern="arg-momentum-range")
    r = statuses(report)["arg-momentum-range"]
    assert r.status == "pass" and "staleness is not decided" in r.note


def test_same_seed_same_cases():
    a = run(load("reference"), examples=5, run_seed=123, pattern="train-output,grad-train")
    b = run(load("reference"), examples=5, run_seed=123, pattern="train-output,grad-train")
    assert [(r.name, r.examples, r.budget) for r in a.results] == [(r.name, r.examples, r.budget) for r in b.results]


def test_select_by_name_area_and_clause():
    assert [c.name for c in select("grad-eval")] == ["grad-eval", "grad-eval-untracked"]
    assert {c.area for c in select("ARG")} == {"ARG"}
    assert "running-cumulative" in [c.name for c in select("BN-RUN-3")]


def test_on_start_and_on_result_see_every_check_in_order():
    started, landed = [], []
    report = run(load("reference"), examples=1, run_seed=0, pattern="TRAIN", on_start=lambda c: started.append(c.name),
                 on_result=lambda r: landed.append(r.name))
    assert started == landed == [r.name for r in report.results] == [c.name for c in select("TRAIN")]
    assert report.environment["device"] == "cpu" and report.timeout is None


def test_keyboard_interrupt_returns_what_finished_marked_incomplete():
    class Interrupts(MinimalReference):
        def run(self, case):
            if not case.training:
                raise KeyboardInterrupt
            return super().run(case)

    report = run(Interrupts(), examples=2, run_seed=0, pattern="train-output,eval-output,running-momentum")
    assert report.complete is False
    assert [(r.name, r.status) for r in report.results] == [("train-output", "pass"), ("running-momentum", "pass")]


def test_a_crash_while_shrinking_keeps_the_failure_found():
    """BN-RUN-6: the failure stands, with the crash that stopped its shrinking in the note."""
    from bnspec.conformance import WorkerAdapter

    with WorkerAdapter("tests/adapters/faulty.py:FailsThenCrashes") as adapter:
        report = run(adapter, examples=5, run_seed=0, pattern="eval-no-update,train-output")
        assert adapter.restarts == 0  # no check ran after the crash: no fresh worker was needed
    by = statuses(report)
    assert by["eval-no-update"].status == "fail" and "running_mean changed in eval" in by["eval-no-update"].message
    assert "shrinking stopped: crash" in by["eval-no-update"].note and "exit status 3" in by["eval-no-update"].note
    assert by["train-output"].status == "pass"


SCHEMA_FILE = Path(__file__).resolve().parents[1] / "docs" / "report.schema.json"


def test_reports_validate_against_the_published_schema():
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for report in (run(load("reference"), examples=2, run_seed=0, pattern="TRAIN,ARG"),
                   run(NoMomentumCheck(), examples=2, run_seed=0, pattern="ARG"),
                   run(MinimalReference(), examples=1, run_seed=0, pattern="GRAD")):
        data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
        jsonschema.validate(data, schema)
    broken = dict(data, checks=[dict(data["checks"][0], status="passed")])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_schema_and_its_documentation_match_the_code():
    schema = json.loads(SCHEMA_FILE.read_text())
    doc = (SCHEMA_FILE.parent / "report-schema.md").read_text()
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert f"schema version {SCHEMA_VERSION}" in doc
    assert schema["$defs"]["status"]["enum"] == list(STATUSES)
    check_fields = [f.name for f in fields(CheckResult)]
    assert schema["$defs"]["check"]["required"] == check_fields
    top = list(RunReport("a", "t", {}, {}, 0, 0).to_dict())
    assert schema["required"] == top
    for name in top + check_fields + list(STATUSES):
        assert f"`{name}`" in doc, name


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_and_colour_only_on_a_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    report = run(load("reference"), examples=1, run_seed=0, pattern="train-")
    tty, pipe = _Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(stream, len(report.results), "reference")
        for check, result in zip(select("train-"), report.results):
            bar.start(check)
            bar(result)
        bar.done()
    n, last = len(report.results), report.results[-1].name
    assert f"\r\033[K[--------------------] 0/{n} reference: train-output" in tty.getvalue()
    assert f"[####################] {n}/{n} reference: {last}: pass" in tty.getvalue()
    assert pipe.getvalue() == ""
    assert use_colour(tty) and not use_colour(pipe)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(tty)


def test_area_table_grows_crash_and_timeout_columns_only_when_needed():
    report = run(load("reference"), examples=1, run_seed=0, pattern="train-")
    assert "crash" not in area_table(report) and "timeout" not in area_table(report)
    report.results.append(CheckResult(name="x", area="EVAL", clauses=["BN-EVAL-1"], description="d", status="crash",
                                      message="the worker died (killed by signal SIGSEGV)"))
    head, _, *rows = area_table(report).splitlines()
    assert head.split() == ["area", "checks", "pass", "profile", "deviation", "fail", "error", "crash", "unsupported",
                            "budget"]
    assert rows[-1].split() == ["EVAL", "1", "0", "0", "0", "0", "0", "1", "0", "-"]
    assert "1 crash" in summary(report) and "DOES NOT CONFORM" in summary(report)
