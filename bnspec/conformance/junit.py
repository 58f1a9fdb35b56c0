"""The JUnit XML rendering of a ``RunReport`` (``bnspec run --junit PATH``), for CI systems.

One ``<testsuite>`` per run, named after the adapter; one ``<testcase>`` per check, its
``classname`` the clause area and its ``name`` the check. A failing check carries ``<failure>``;
a check the suite could not judge (error, crash, timeout) ``<error>``; an unsupported one
``<skipped>``, as is one the suite could not judge (timeout, unjudged: the message says so). A
known deviation, a stale declaration, a quality shortfall and a profile pass, as they do for the
exit status, with the note in ``<system-out>``. Properties record the seed, the clauses and the budget, so a CI page
shows what the terminal shows.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from .render import budget_text
from .results import UNJUDGED, CheckResult, RunReport, write_atomic

# XML 1.0 cannot hold most control characters, not even escaped; a backend's message may.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: object) -> str:
    return _NOT_XML.sub("?", str(value))


def _properties(parent: ET.Element, items: dict[str, object]) -> None:
    props = ET.SubElement(parent, "properties")
    for name, value in items.items():
        ET.SubElement(props, "property", name=name, value=_text(value))


def _body(r: CheckResult) -> str:
    parts = [r.message]
    if r.case:
        parts.append(f"case: {r.case}")
    if r.note:
        parts.append(r.note)
    if r.reproducer:
        parts.append("reproducer:\n" + r.reproducer)
    if r.detail:
        parts.append("detail:\n" + r.detail)
    return _text("\n\n".join(p for p in parts if p))


def testcase(r: CheckResult) -> ET.Element:
    case = ET.Element("testcase", classname=r.area, name=r.name, time=f"{r.seconds:.3f}")
    _properties(case, {"clauses": ", ".join(r.clauses), "status": r.status, "budget": budget_text(r.budget),
                       "examples": r.examples})
    first_line = _text(r.message.splitlines()[0] if r.message else r.status)
    if r.status == "fail":
        ET.SubElement(case, "failure", message=first_line, type="fail").text = _body(r)
    elif r.failed:  # error, crash: the backend broke the check's run
        ET.SubElement(case, "error", message=first_line, type=r.status).text = _body(r)
    elif r.status == "unsupported":
        ET.SubElement(case, "skipped", message=_text(r.message or "unsupported"))
    elif r.status in UNJUDGED:
        ET.SubElement(case, "skipped", message=f"could not judge ({r.status}): {first_line}").text = _body(r)
    if r.status in ("deviation", "shortfall"):
        note = f"{r.status}: {r.message}" + (f"\n{r.note}" if r.note else "")
        ET.SubElement(case, "system-out").text = _text(note)
    elif r.note and not r.failed:
        ET.SubElement(case, "system-out").text = _text(r.note)
    return case


def to_junit(report: RunReport) -> str:
    """The report as a JUnit XML document."""
    counts = report.counts()
    suites = ET.Element("testsuites", name="bnspec")
    suite = ET.SubElement(
        suites, "testsuite", name=f"bnspec.{report.adapter}", tests=str(len(report.results)),
        failures=str(counts.get("fail", 0)),
        errors=str(sum(counts.get(s, 0) for s in ("error", "crash"))),
        skipped=str(sum(counts.get(s, 0) for s in ("unsupported", *UNJUDGED))), time=f"{report.seconds:.3f}",
    )
    _properties(suite, {"adapter": report.adapter, "target": report.target, "seed": report.seed,
                        "examples": report.examples, "complete": str(report.complete).lower(),
                        "verdict": report.verdict,
                        **{f"environment.{k}": v for k, v in report.environment.items()}})
    for r in report.results:
        suite.append(testcase(r))
    if not report.complete:
        ET.SubElement(suite, "system-err").text = "the run was interrupted: checks after the last one listed did not run"
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_junit(report: RunReport, path: str | Path) -> None:
    """Write the JUnit XML atomically."""
    write_atomic(path, to_junit(report))
