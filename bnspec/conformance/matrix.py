"""The conformance matrix: every adapter run in its own process, one Markdown table of the results
(and the same as a static HTML page, ``matrix_html.py``).

Each adapter runs as ``python -m bnspec run TARGET --json ...`` in a fresh process (Keras picks its
backend per process, JAX its precision; a crashing backend takes only its own column down). The
table has adapters as columns and checks, grouped by clause area, as rows; a failing cell links to
its minimal case below the table. Nothing here depends on timing, so a rerun with the same seed
and versions gives the same file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import matrix_html
from .checks import CHECKS
from .differential import accuracy_classes, disagreements
from .results import Column, anchor, write_atomic

STATUS_TEXT = {"pass": "pass", "profile": "profile", "deviation": "deviation", "stale": "*stale*",
               "shortfall": "*shortfall*", "fail": "**FAIL**", "error": "**ERROR**", "crash": "**CRASH**",
               "timeout": "*timeout*", "unjudged": "*unjudged*", "unsupported": "unsupported"}
LINKED = ("fail", "error", "crash", "timeout", "unjudged", "deviation", "shortfall", "stale")  # cells linking to their case


def report_path(out_dir: Path, target: str) -> Path:
    return out_dir / "reports" / f"{target.replace('/', '_').replace(':', '_')}.json"


def reusable(target: str, out_dir: Path, seed: int, examples: int) -> Column | None:
    """The column of a complete report already in ``out_dir/reports`` from the same seed, examples,
    bnspec version and list of checks (``bnspec matrix --resume``), or None."""
    from .. import __version__

    path = report_path(out_dir, target)
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = (report.get("seed"), report.get("examples"), report.get("complete"),
            report.get("environment", {}).get("bnspec")) == (seed, examples, True, __version__)
    if not same or [c.get("name") for c in report.get("checks", [])] != [c.name for c in CHECKS]:
        return None
    return Column(target, exit_code=None, report=report, checks={c["name"]: c for c in report["checks"]})


def run_column(target: str, out_dir: Path, seed: int, examples: int, timeout: float) -> Column:
    """Run one adapter in a subprocess; its report lands in ``out_dir/reports/TARGET.json``."""
    path = report_path(out_dir, target)
    path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "bnspec", "run", target, "--seed", str(seed), "--examples", str(examples),
           "--json", str(path), "-q"]
    col = Column(target)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        col.problem = f"did not finish within {timeout:.0f} s"
        return col
    col.exit_code = proc.returncode
    if path.is_file():
        col.report = json.loads(path.read_text())
        col.checks = {c["name"]: c for c in col.report["checks"]}
    else:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        col.problem = f"exit status {proc.returncode}, no report: {' / '.join(tail)}"
    return col


def _budget(c: dict[str, Any]) -> str:
    b = c.get("budget")
    if b is None:
        return ""
    return " (inf)" if b == "inf" else f" ({b:.2f})"


def _differential(columns: Sequence[Column]) -> list[str]:
    lines = []
    for fam, cols, differ in disagreements(columns):
        lines += ["", f"### {fam}: {len(cols)} forms, {len(differ)} checks where they disagree", ""]
        if not differ:
            lines.append("Every check has the same status, and budgets within a factor of 10.")
            continue
        lines += ["| check | " + " | ".join(c.target for c in cols) + " |", "|---|" + "---|" * len(cols)]
        lines += [f"| {name} | " + " | ".join(cell(c, name) for c in cols) + " |" for name in differ]
    if lines:
        lines = ["", "## Where forms of one framework disagree",
                 "", "Eager, compiled, jitted and exported forms of one framework are implementations of one "
                 "function: the checks on which their statuses differ, or their budgets differ tenfold or more.",
                 *lines]
    return lines


def _verdict(col: Column) -> str:
    return col.report["summary"].get("verdict", "") if col.report else "not run"


def cell(col: Column, check: str) -> str:
    if col.report is None:
        return "not run"
    c = col.checks.get(check)
    if c is None:
        return "-"
    text = STATUS_TEXT.get(c["status"], c["status"]) + _budget(c)
    if c["status"] in LINKED:
        text = f"[{text}](#{anchor(col.target, check)})"
    return text


def render(columns: Sequence[Column], seed: int, examples: int, command: str,
           skipped: Sequence[tuple[str, str]] = (), accuracy: dict[str, tuple[str, str]] | None = None) -> str:
    lines = [
        "# Conformance matrix",
        "",
        f"Adapters as columns, checks as rows, from `{command}` (seed {seed}, {examples} examples per check). "
        "Each cell: the status, and in parentheses the error budget used (worst error / what "
        "`spec/precision.md` allows; 1.00 is the edge). **FAIL** is an undeclared departure from a MUST; "
        "*deviation* a known finding the adapter declares (`spec/conventions.md`, section 4); *stale* a declared "
        "finding whose check passes; *shortfall* meets every MUST, misses a quality SHOULD; *timeout* and "
        "*unjudged* could not be judged; *profile* conforms under a named convention; *unsupported* lies "
        "outside what the adapter claims. Linked cells lead to their minimal case. The verdict words are "
        "those of `bnspec run` (`docs/reading-reports.md`).",
        "",
        "| check | clauses | " + " | ".join(c.target for c in columns) + " |",
        "|---|---|" + "---|" * len(columns),
        "| **verdict** | | " + " | ".join(_verdict(c) for c in columns) + " |",
    ]
    if accuracy:  # the growth of the error with m, from `bnspec accuracy` (docs/accuracy.md)
        lines.append("| **accuracy class** | BN-QUAL-1 | " + " | ".join(
            f"[{accuracy[c.target][0]}]({accuracy[c.target][1]})" if c.target in accuracy else "-" for c in columns) + " |")
    area = None
    for check in CHECKS:
        if check.area != area:
            area = check.area
            lines.append(f"| **{area}** | | " + " | ".join("" for _ in columns) + " |")
        lines.append(f"| {check.name} | {', '.join(check.clauses)} | "
                     + " | ".join(cell(col, check.name) for col in columns) + " |")
    lines += _differential(columns)
    lines += ["", "## Adapters and versions", "", "| adapter | verdict and counts | versions |", "|---|---|---|"]
    for col in columns:
        if col.report is None:
            lines.append(f"| {col.target} | not run: {col.problem} | |")
            continue
        env = col.report["environment"]
        versions = ", ".join(f"{k} {v}" for k, v in env.items() if k not in ("platform", "device_name"))
        counts = ", ".join(f"{n} {s}" for s, n in sorted(col.report["summary"]["counts"].items()))
        lines.append(f"| {col.target} | {_verdict(col)}: {counts} | {versions} |")
    for target, reason in skipped:
        lines.append(f"| {target} | not usable here: {reason} | |")
    details = []
    for col in columns:
        for name, c in col.checks.items():
            if c["status"] not in LINKED:
                continue
            details += [f'<a id="{anchor(col.target, name)}"></a>', "",
                        f"### {col.target}: {name} ({c['status']})", "", f"Clauses: {', '.join(c['clauses'])}.", ""]
            if c.get("note"):
                details += [c["note"], ""]
            details += [f"    {c['message']}", ""]
            repro = c.get("reproducer") or ""
            if repro and len(repro) <= 2500:
                details += ["```python", repro.rstrip(), "```", ""]
            elif repro:
                details += [f"The reproducer is in `reports/{col.target}.json` (too long to show here).", ""]
    if details:
        lines += ["", "## Findings, failures and open verdicts", "", *details]
    return "\n".join(lines).rstrip() + "\n"


def build(targets: Sequence[str], out_dir: Path, seed: int, examples: int, timeout: float, command: str,
          skipped: Sequence[tuple[str, str]] = (),
          progress: Callable[[str, Column], None] | None = None,
          on_start: Callable[[str], None] | None = None, resume: bool = False,
          jobs: int = 1) -> tuple[list[Column], Path]:
    """Run every target (``jobs`` adapter processes at a time; the columns keep the order of
    ``targets``) and write ``out_dir/conformance.md`` and ``out_dir/conformance.html``; return the
    columns and the Markdown's path."""
    from concurrent.futures import ThreadPoolExecutor

    (out_dir / "reports").mkdir(parents=True, exist_ok=True)

    def one(target: str) -> Column:
        if on_start:
            on_start(target)
        col = (reusable(target, out_dir, seed, examples) if resume else None) or run_column(
            target, out_dir, seed, examples, timeout)
        if progress:
            progress(target, col)
        return col

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each column is a `bnspec run` subprocess
        columns = list(pool.map(one, targets))
    md = out_dir / "conformance.md"
    accuracy = accuracy_classes(out_dir)
    write_atomic(md, render(columns, seed, examples, command, skipped, accuracy))
    write_atomic(out_dir / "conformance.html", matrix_html.render(columns, seed, examples, command, skipped, accuracy))
    return columns, md
