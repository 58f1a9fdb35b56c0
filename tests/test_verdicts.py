"""Verdict words (issue 12): the summary's first words say what the run found, and the exit status
follows them (``bnspec/cli.py``'s docstring, ``docs/reading-reports.md``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bnspec.adapters import load
from bnspec.conformance import run
from bnspec.conformance.render import details, summary
from bnspec.conformance.results import CheckResult, RunReport

ROOT = Path(__file__).resolve().parents[1]
DECLARES = "tests/adapters/variants.py:DeclaresMomentum"  # a real, declared BN-ARG-5 finding


def bnspec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bnspec", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def test_plain_conformance_says_conforms_and_exits_zero_even_when_strict():
    p = bnspec("run", "reference", "--seed", "0", "--examples", "2", "--check", "train,arg", "--strict")
    last = p.stdout.strip().splitlines()[-1]
    assert p.returncode == 0, p.stdout + p.stderr
    assert last.startswith("reference: conforms: ") and "except" not in last


def test_declared_findings_come_first_and_strict_makes_them_exit_one(tmp_path):
    out = tmp_path / "r.json"
    p = bnspec("run", DECLARES, "--seed", "0", "--examples", "2", "--check", "arg", "--json", str(out))
    last = p.stdout.strip().splitlines()[-2]  # the last says where the report went
    assert p.returncode == 0, p.stdout + p.stderr
    assert last.startswith("declares-momentum: conforms except 1 known finding: 4 pass, 1 deviation"), last
    data = json.loads(out.read_text())
    assert data["summary"]["ok"] is True and data["summary"]["verdict"] == "conforms except 1 known finding"
    strict = bnspec("run", DECLARES, "--seed", "0", "--examples", "2", "--check", "arg", "--strict", "-q")
    assert strict.returncode == 1 and "conforms except 1 known finding" in strict.stdout


def test_a_departure_does_not_conform_and_exits_one():
    p = bnspec("run", "tests/adapters/variants.py:NoMomentumCheck", "--seed", "0", "--examples", "2",
               "--check", "arg-momentum-range", "-q")
    assert p.returncode == 1 and ": DOES NOT CONFORM: 1 fail" in p.stdout


def test_a_run_that_judges_nothing_never_conforms():
    p = bnspec("run", "reference", "--check", "sync", "--seed", "0")
    assert p.returncode == 3, p.stdout + p.stderr
    assert "reference: nothing judged" in p.stdout and "conforms" not in p.stdout


def test_an_interrupted_empty_run_says_so_and_is_not_ok(tmp_path):
    report = RunReport(adapter="torch", target="torch", capabilities={}, environment={}, seed=0, examples=20,
                       complete=False, planned=35)
    assert report.verdict == "incomplete: 0 of 35 checks ran (interrupted)"
    assert summary(report).startswith("torch: incomplete: 0 of 35 checks ran (interrupted): no check ran")
    assert report.to_dict()["summary"]["ok"] is False


def test_unsupported_checks_sharing_a_reason_are_one_line_unless_verbose():
    report = run(load("reference"), examples=0, run_seed=0, pattern="sync")
    text = details(report)
    assert text.count("\n") == 0 and text.startswith("UNSUPPORTED 7 checks of section 10 (synchronized): ")
    assert details(report, verbose=True).count("UNSUPPORTED") == 7


@pytest.mark.parametrize("status, words", [("timeout", "not fully judged: 1 check could not be judged"),
                                            ("shortfall", "conforms except 1 quality shortfall"),
                                            ("stale", "conforms except 1 stale declaration")])
def test_each_status_has_its_words(status, words):
    report = RunReport(adapter="a", target="a", capabilities={}, environment={}, seed=0, examples=1, planned=2,
                       results=[CheckResult("x", "TRAIN", ["BN-TRAIN-1"], "", "pass"),
                                CheckResult("y", "TRAIN", ["BN-TRAIN-1"], "", status)])  # type: ignore[arg-type]
    assert report.verdict == words


def test_argument_errors_name_the_option_and_value():
    p = bnspec("run", "torch", "--seed", "abc")
    assert p.returncode == 2 and "argument --seed: expected a whole number of 0 or more, got 'abc'" in p.stderr
    assert "_count" not in p.stderr and "_positive" not in p.stderr


def test_matrix_exits_two_and_writes_nothing_when_a_target_cannot_load(tmp_path):
    p = bnspec("matrix", "nope", "--out", str(tmp_path / "D"))
    assert p.returncode == 2 and "no adapter named 'nope'" in p.stderr
    assert not (tmp_path / "D").exists()


def test_zero_examples_says_only_the_fixed_cases_ran():
    p = bnspec("run", "reference", "--examples", "0", "--check", "train-output", "--seed", "0")
    assert "0 examples: only the fixed cases ran" in p.stdout


def test_an_adapter_that_raises_on_everything_passes_no_refusal_check():
    """BN-ARG-1 BN-ARG-5 BN-EMPTY-1: a refusal counts only when the valid twin runs; the guide's first
    adapter, which raises NotImplementedError for everything, is unjudged on every such check."""
    from tests.adapters.variants import Raiser

    report = run(Raiser(), examples=3, run_seed=0, pattern="ARG,EMPTY")
    judged = {r.name: r.status for r in report.results if r.status != "unsupported"}
    assert judged and set(judged.values()) == {"unjudged"}, judged
    assert not report.ok and report.verdict.startswith("nothing judged")
    assert all("valid twin" in r.message for r in report.results if r.status == "unjudged")


def test_a_refusal_after_changing_state_fails_section_8():
    """BN-RUN-4: PyTorch's module counts a step before it validates (finding T3); an adapter that says
    what state its backend was left in (contract.with_state) has that found by the checks."""
    from tests.adapters.variants import CounterBeforeCheck

    report = run(CounterBeforeCheck(), examples=3, run_seed=0, pattern="arg-one-value,arg-momentum-range")
    for r in report.results:
        assert r.status == "fail" and "num_batches_tracked from 0 to 1" in r.message, r


def test_reproducers_of_refusals_and_scenarios_run_from_another_directory(tmp_path):
    """The reproducer of a must-raise check reaches the backend (not bnspec's own validation), and a
    file target is absolute, so the script runs from any directory."""
    from tests.adapters.variants import NoMomentumCheck

    report = run(NoMomentumCheck(), examples=2, run_seed=0, pattern="arg-momentum-range",
                 target="tests/adapters/variants.py:NoMomentumCheck")
    script = report.results[0].reproducer
    (tmp_path / "repro.py").write_text(script)
    p = subprocess.run([sys.executable, "repro.py"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "returned without raising" in p.stdout
