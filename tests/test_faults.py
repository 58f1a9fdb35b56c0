"""The runner keeps its head whatever the backend does: each fault, done for real by an adapter in
``tests/adapters/faulty.py``, ends as a result of the check it happened in, the other checks still
run and pass, the exit status is 1, the report is complete, and no traceback reaches the terminal.
Ctrl-C and SIGTERM stop a run and leave a valid report marked incomplete.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from bnspec.conformance import run
from bnspec.conformance.isolation import WorkerAdapter, WorkerLoadError

ROOT = Path(__file__).resolve().parents[1]
FAULTY = "tests/adapters/faulty.py"
CHECKS = "train-output,eval-output,running-momentum"  # the fault hits eval-output only
SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())

# adapter -> (status of eval-output, words its one-line message must hold)
FAULTS = {
    "Segfault": ("crash", "SIGSEGV"),
    "Exit": ("crash", "exit status 3"),
    "OutOfMemory": ("fail", "raised MemoryError: could not allocate"),
    "UnprintableError": ("fail", "raised _Unprintable: <str() of the exception raised>"),
    "Hang": ("timeout", "timeout of 2 s"),
    "WrongShape": ("fail", "y.shape = (2,), expected (1, 3)"),
    "WrongDtype": ("fail", "y[0, 0] = "),
    "ReturnsList": ("fail", "run() returned list, not an Outcome"),
    "ReturnsNone": ("fail", "run() returned NoneType, not an Outcome"),
    "AllNan": ("fail", "= nan, expected"),
    "ReturnsForeign": ("error", "_Handle; an adapter returns an Outcome of NumPy arrays"),
}


def bnspec_run(target: str, *args: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "report.json"
    p = subprocess.run([sys.executable, "-m", "bnspec", "run", target, "--check", CHECKS, "--examples", "2",
                        "--seed", "1", "--json", str(out), *args],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    return p, json.loads(out.read_text())


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_ends_as_the_checks_result_and_the_run_goes_on(fault, tmp_path):
    status, words = FAULTS[fault]
    # A short limit for the hang only: on a busy machine an honest case may take a while.
    p, report = bnspec_run(f"{FAULTY}:{fault}", *(["--timeout", "2"] if fault == "Hang" else []), tmp_path=tmp_path)
    jsonschema.validate(report, SCHEMA)
    by = {c["name"]: c for c in report["checks"]}
    # A hang is a check the suite could not judge (exit 3, "not fully judged"); the rest do not conform.
    assert p.returncode == (3 if status == "timeout" else 1), p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    assert report["complete"] is True
    assert set(by) == {"train-output", "eval-output", "running-momentum"}
    assert by["train-output"]["status"] == "pass" and by["running-momentum"]["status"] == "pass"
    bad = by["eval-output"]
    assert bad["status"] == status and words in bad["message"], bad["message"]
    assert "training=False" in bad["case"] and "bnspec.Case(" in bad["reproducer"]
    # The terminal has the one-line reason under the check's line.
    assert f"{status.upper():<11} eval-output" in p.stdout and bad["message"] in p.stdout
    if status in ("crash", "timeout"):
        assert report["summary"]["counts"] == {"pass": 2, status: 1}
    if fault == "Segfault":  # the worker's own account of the crash is kept, in the JSON only
        assert "Segmentation fault" in bad["detail"] and "Segmentation fault" not in p.stdout + p.stderr


def test_each_check_after_a_crash_gets_a_fresh_worker(tmp_path):
    """Two crashing checks in one run: both recorded as crashes, the passing ones between them pass."""
    p2 = subprocess.run([sys.executable, "-m", "bnspec", "run", f"{FAULTY}:Exit", "--check",
                         "eval-output,train-output,eval-no-update", "--examples", "2", "--seed", "1", "--json",
                         str(tmp_path / "two.json")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    by = {c["name"]: c["status"] for c in json.loads((tmp_path / "two.json").read_text())["checks"]}
    assert p2.returncode == 1
    assert by == {"train-output": "pass", "eval-no-update": "crash", "eval-output": "crash"}, p2.stdout
    assert "Traceback" not in p2.stdout + p2.stderr


def test_backend_errors_keep_their_type_name_for_the_checks_that_expect_them():
    """BN-ARG-5: through the worker, a raised exception still counts as raising."""
    with WorkerAdapter("reference") as adapter:
        report = run(adapter, examples=3, run_seed=0, pattern="ARG")
        assert report.timeout == adapter.timeout and report.environment["device"] == "cpu"
    assert report.ok and {r.status for r in report.results} == {"pass"}, [(r.name, r.message) for r in report.results]


def test_mutation_in_the_worker_is_seen_by_the_check():
    """BN-IO-1: an adapter that normalizes into its input is caught through the worker too."""
    with WorkerAdapter("tests.impls.numpy_impls:MutatesInput") as adapter:
        report = run(adapter, examples=5, run_seed=0, pattern="io-unmutated")
    assert [r.status for r in report.results] == ["fail"], report.results[0].message
    assert "modified in place" in report.results[0].message


def test_unloadable_target_is_a_load_error():
    with pytest.raises(WorkerLoadError, match="available:"):
        WorkerAdapter("no-such-adapter")
    with pytest.raises(ValueError, match="timeout=0"):
        WorkerAdapter("reference", timeout=0)


def _interrupt(tmp_path: Path, signum: int) -> tuple[subprocess.Popen[str], str, str, float]:
    marker = tmp_path / "hanging"
    env = dict(os.environ, BNSPEC_TEST_MARKER=str(marker))
    proc = subprocess.Popen([sys.executable, "-m", "bnspec", "run", f"{FAULTY}:Hang", "--check", CHECKS,
                             "--examples", "2", "--seed", "1", "--json", str(tmp_path / "report.json"),
                             "--junit", str(tmp_path / "junit.xml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while not marker.exists():  # the worker is now stuck in eval-output, the last of CHECKS to run
        assert proc.poll() is None and time.monotonic() < deadline, "the run never reached the hanging case"
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    return proc, out, err, time.monotonic() - sent


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_a_valid_incomplete_report(tmp_path, signum):
    proc, out, err, took = _interrupt(tmp_path, signum)
    assert proc.returncode == 128 + signum, out + err
    assert took < 5, f"took {took:.1f} s to stop"
    assert "Traceback" not in out + err and "interrupted" in out
    report = json.loads((tmp_path / "report.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["complete"] is False
    # What finished, and only that: eval-output was running when the signal came.
    assert [(c["name"], c["status"]) for c in report["checks"]] == [("train-output", "pass"), ("running-momentum", "pass")]
    assert 'name="complete" value="false"' in (tmp_path / "junit.xml").read_text()
    assert not list(tmp_path.glob(".report.json.*")), "a temporary file was left behind"


def test_timeout_option_states_its_default_and_needs_the_worker(capsys):
    from bnspec.cli import main
    from bnspec.conformance.isolation import DEFAULT_TIMEOUT

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert f"(default: {DEFAULT_TIMEOUT:g})" in " ".join(capsys.readouterr().out.split())
    assert main(["run", "reference", "--in-process", "--timeout", "5"]) == 2
    assert "--timeout needs the worker process" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "reference", "--timeout", "0"])
    assert "argument --timeout: expected a positive, finite number of seconds, got '0'" in capsys.readouterr().err


def test_replica_statistics_come_back_from_the_worker():
    """A synchronized adapter's per-replica state (BN-SYNC-3) is part of the contract and crosses the
    process boundary; an object of the adapter's own classes there still does not."""
    import numpy as np

    from bnspec.adapters.contract import Outcome, ReplicaState
    from bnspec.conformance.isolated_process import plain

    ok = Outcome(y=np.zeros(2), replica_stats=[ReplicaState(np.zeros(1), np.ones(1), 3)])
    assert plain(ok) is None
    assert "replica_stats" in (plain(Outcome(replica_stats=[object()])) or "")
