"""JUnit XML (``bnspec run --junit PATH``): one test case per check, as CI systems read them."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from bnspec.conformance.junit import to_junit
from bnspec.conformance.results import CheckResult, RunReport

ROOT = Path(__file__).resolve().parents[1]


def result(name: str, status: str, **kw) -> CheckResult:
    return CheckResult(name=name, area=kw.pop("area", "RUN"), clauses=["BN-RUN-2"], description="d",
                       status=status, **kw)  # type: ignore[arg-type]


def test_each_status_maps_to_its_junit_element():
    report = RunReport(adapter="a", target="a", capabilities={}, environment={"numpy": "2"}, seed=7, examples=3)
    report.results = [
        result("ok", "pass", budget=0.5),
        result("prof", "profile", note="conforms under profile biased-running-var"),
        result("dev", "deviation", message="known", note="known deviation: documented"),
        result("bad", "fail", message="running_var[0] = 1, expected 2\nsecond line", case="x float32 (2, 3)",
               reproducer="import bnspec\n"),
        result("boom", "crash", message="the worker died (killed by signal SIGSEGV)", detail="Fatal Python error"),
        result("slow", "timeout", message="no result within the timeout of 2 s"),
        result("odd", "error", message="bad \x00 byte \x1b[31m"),
        result("skip", "unsupported", message="the adapter computes no gradients", area="GRAD"),
    ]
    root = ET.fromstring(to_junit(report))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "bnspec.a"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("8", "1", "2", "2")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == ["ok", "prof", "dev", "bad", "boom", "slow", "odd", "skip"]
    assert cases["skip"].get("classname") == "GRAD" and cases["ok"].get("classname") == "RUN"
    for passed in ("ok", "prof", "dev"):
        assert not [e for e in cases[passed] if e.tag in ("failure", "error", "skipped")], passed
    assert "known deviation" in cases["dev"].findtext("system-out")
    failure = cases["bad"].find("failure")
    assert failure is not None and failure.get("message") == "running_var[0] = 1, expected 2"
    assert "x float32 (2, 3)" in failure.text and "import bnspec" in failure.text
    for name, kind in (("boom", "crash"), ("odd", "error")):
        error = cases[name].find("error")
        assert error is not None and error.get("type") == kind, name
    # A timeout is a check the suite could not judge: skipped, and saying so.
    assert cases["slow"].find("skipped").get("message").startswith("could not judge (timeout): no result")
    assert "Fatal Python error" in cases["boom"].find("error").text
    assert cases["skip"].find("skipped").get("message") == "the adapter computes no gradients"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["seed"] == "7" and props["complete"] == "true" and props["environment.numpy"] == "2"
    assert props["verdict"] == "DOES NOT CONFORM"


def test_run_writes_junit_one_testcase_per_check(tmp_path):
    out = tmp_path / "ci" / "junit.xml"
    target = "tests/adapters/variants.py:NoMomentumCheck"
    p = subprocess.run([sys.executable, "-m", "bnspec", "run", target, "--check", "ARG", "--examples", "2",
                        "--seed", "1", "--junit", str(out), "-q"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 1, p.stdout + p.stderr
    suite = ET.parse(out).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert {c.get("classname") for c in cases} == {"ARG"} and len(cases) == 5
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["arg-momentum-range"] and suite.get("failures") == "1"
    assert "BN-ARG-5" in cases[-1].find("failure").get("message")
