"""The terminal rendering of a ``RunReport``: a table per clause area, then what did not pass;
and the progress bar shown while the checks run.

Colour only when the stream is a terminal (and ``NO_COLOR`` is unset).
"""

from __future__ import annotations

import os
import shutil
from typing import TextIO

from ..adapters.contract import profiles_of
from .check import Check
from .checks import SECTIONS
from .results import FAILING, STATUSES, UNJUDGED, CheckResult, RunReport

_COLOURS = {"pass": "32", "profile": "36", "stale": "33", "deviation": "33", "shortfall": "35", "fail": "31",
            "error": "31", "crash": "31", "timeout": "35", "unjudged": "35", "unsupported": "90"}
_COLUMNS = ("pass", "profile", "deviation", "fail", "error", "unsupported")  # the rest only when some check has it


def use_colour(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ


def _paint(text: str, status: str, colour: bool) -> str:
    return f"\033[{_COLOURS[status]}m{text}\033[0m" if colour and status in _COLOURS else text


def budget_text(budget: float | None) -> str:
    if budget is None:
        return "-"
    if budget == float("inf"):
        return "inf"
    return f"{budget:.2f}" if budget < 1e4 else f"{budget:.2g}"  # at most 6 characters either way


def header(report: RunReport) -> str:
    caps = report.capabilities
    profiles = ", ".join(profiles_of(caps.get("running_var", "unbiased"), caps.get("dtype_rule", "input"),
                                     caps.get("running_average", "plain"))) or "none"
    examples = (f"{report.examples} examples per check" if report.examples else
                "0 examples: only the fixed cases ran, nothing was drawn")
    return f"bnspec: adapter {report.adapter} ({report.target}); seed {report.seed}; {examples}; profiles: {profiles}"


def area_table(report: RunReport, colour: bool = False) -> str:
    """One row per clause area: counts by status and the worst budget used."""
    areas: dict[str, list[CheckResult]] = {}
    for r in report.results:
        areas.setdefault(r.area, []).append(r)
    seen = {r.status for r in report.results}
    columns = [c for c in STATUSES if c in _COLUMNS or c in seen]
    head = f"{'area':<10}{'checks':>7}" + "".join(f"{c:>12}" for c in columns) + f"{'budget':>9}"
    lines = [head, "-" * len(head)]
    for area, results in areas.items():
        counts = {c: sum(r.status == c for r in results) for c in columns}
        budgets = [r.budget for r in results if r.budget is not None]
        cells = "".join(_paint(f"{counts[c]:>12}", c, colour and counts[c] > 0) for c in columns)
        lines.append(f"{area:<10}{len(results):>7}{cells}{budget_text(max(budgets) if budgets else None):>9}")
    return "\n".join(lines)


def check_line(r: CheckResult, colour: bool = False) -> str:
    tag = _paint(f"{r.status.upper():<11}", r.status, colour)
    return f"{tag} {r.name:<22} budget {budget_text(r.budget):>6}  {', '.join(r.clauses)}"


def details(report: RunReport, colour: bool = False, verbose: bool = False) -> str:
    """Every check that did not plainly pass, with its message; all checks when ``verbose``.

    Unsupported checks that share a reason are one line (each its own with ``verbose``)."""
    out = []
    groups: dict[str, list[CheckResult]] = {}
    for r in report.results:
        if r.status == "unsupported" and not verbose:
            groups.setdefault(r.message, []).append(r)
    for r in report.results:
        if r.status == "pass" and not verbose and not r.note:
            continue
        if r.status == "unsupported" and not verbose:
            group = groups.get(r.message)
            if group is None:
                continue  # its group's line is out already
            if len(group) > 1:
                out.append(f"{_paint(f'{r.status.upper():<11}', r.status, colour)} {_where(group)}: {r.message}")
                del groups[r.message]
                continue
        out.append(check_line(r, colour))
        for text in (r.message, r.note):
            if text:
                out.append(f"    {text}")
        if r.status in (*FAILING, *UNJUDGED) and r.reproducer and len(r.reproducer) <= 2500:
            out.append("    reproducer:")
            out.extend(f"      {line}" for line in r.reproducer.rstrip().splitlines())
        elif r.status in (*FAILING, *UNJUDGED) and r.reproducer:
            out.append("    reproducer: too long to show here; it is in the JSON report (--json)")
    return "\n".join(out)


def _where(group: list[CheckResult]) -> str:
    """``7 checks of section 10 (synchronized)``, or of several areas."""
    areas = list(dict.fromkeys(r.area for r in group))
    if len(areas) == 1:
        return f"{len(group)} checks of {SECTIONS.get(areas[0], areas[0])}"
    return f"{len(group)} checks ({', '.join(areas)})"


def summary(report: RunReport, colour: bool = False) -> str:
    """``ADAPTER: VERDICT: counts in T s (seed N)``; the verdict's first words say what it found."""
    counts = report.counts()
    parts = [f"{counts[c]} {c}" for c in STATUSES if counts.get(c)] or ["no check ran"]
    verdict = report.verdict
    tone = "pass" if report.strict_ok else "deviation" if report.ok else "fail"
    word = _paint(verdict, tone, colour)
    return f"{report.adapter}: {word}: {', '.join(parts)} in {report.seconds:.1f} s (seed {report.seed})"


def render(report: RunReport, colour: bool = False, verbose: bool = False) -> str:
    parts = [header(report), "", area_table(report, colour)]
    body = details(report, colour, verbose)
    if body:
        parts += ["", body]
    parts += ["", summary(report, colour)]
    return "\n".join(parts)


class Progress:
    """A progress bar on a terminal: the checks done of ``total``, and the one running.

    Nothing at all when ``stream`` is not a terminal: logs get the final table instead.
    """

    def __init__(self, stream: TextIO, total: int, label: str, colour: bool = False) -> None:
        self.stream, self.total, self.label, self.colour = stream, max(total, 1), label, colour
        self.done_count, self.bad = 0, 0
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def start(self, check: Check) -> None:
        self._draw(check.name)

    def __call__(self, result: CheckResult) -> None:
        self.done_count += 1
        self.bad += result.status in FAILING
        self._draw(f"{result.name}: {result.status}")

    def _draw(self, text: str) -> None:
        if not self.tty:
            return
        width = shutil.get_terminal_size((80, 20)).columns
        cells = 20
        filled = cells * self.done_count // self.total
        bar = "#" * filled + "-" * (cells - filled)
        bad = f", {self.bad} failing" if self.bad else ""
        line = f"[{bar}] {self.done_count}/{self.total} {self.label}{bad}: {text}"[: max(width - 1, 10)]
        if self.colour and self.bad:
            line = _paint(line, "fail", True)
        self.stream.write(f"\r\033[K{line}")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()
