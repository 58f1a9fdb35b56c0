"""The conformance matrix as one static HTML page (``conformance.html`` beside ``conformance.md``).

The same table as the Markdown: adapters as columns, checks grouped by clause area as rows, each
cell the status and the error budget used. A failing or deviating cell links to a section below
that holds its minimal case, the message, the reproducer and the text of every clause the check
cites; a few lines of inline script open that section when the link is followed (without script
every section is still on the page, closed). Everything is inline: no server, no network, no file
beside it needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from ..clauses import clauses
from .checks import CHECKS
from .differential import disagreements
from .results import Column, anchor

FINDINGS = ("fail", "error", "crash", "timeout", "unjudged", "deviation", "shortfall", "stale")
# Status, what it means: the legend under the grid, in the order of the verdict words.
LEGEND = (
    ("pass", "every case within the precision model"),
    ("profile", "conforms under a named convention the adapter declares (spec/conventions.md)"),
    ("deviation", "a known finding: departs as the adapter declares and documents"),
    ("stale", "declared as a finding, but its check now passes: the declaration is stale"),
    ("shortfall", "meets every MUST, falls short of a quality SHOULD"),
    ("fail", "an undeclared departure from a MUST"),
    ("error", "the backend returned what cannot be judged"),
    ("crash", "the backend's process died on a case"),
    ("timeout", "could not judge: a case outlived its time limit"),
    ("unjudged", "could not judge: e.g. a refusal whose valid twin also failed"),
    ("unsupported", "outside what the adapter claims"),
)

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { position: sticky; top: 0; background: #f4f4f4; }
tr.area th { background: #eaeaf2; text-align: left; }
td.clauses { color: #666; font-size: 12px; }
td.cell { white-space: nowrap; }
.pass { background: #e6f4ea; } .profile { background: #e0f2f1; } .deviation, .stale { background: #fff4d6; }
.shortfall, .timeout, .unjudged { background: #efe6f7; }
tr.verdict th, tr.verdict td { font-size: 12px; }
table.legend td { font-size: 12px; }
.fail, .error, .crash { background: #fde2e1; font-weight: 600; }
.unsupported, .not-run, .absent { background: #f2f2f2; color: #777; }
.budget { color: #555; font-weight: normal; font-size: 12px; }
details.finding { border: 1px solid #ddd; border-radius: 4px; margin: .6em 0; padding: .3em .8em; }
details.finding[open] { background: #fcfcfc; } details.finding:target { outline: 2px solid #c33; }
details.finding summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; white-space: pre-wrap; }
.clause h4 { margin: .8em 0 .2em; }
"""

# Open the finding a link points at (and any the page was opened on), then show it.
_SCRIPT = """
function openTarget() {
  var id = decodeURIComponent(location.hash.slice(1));
  var el = id && document.getElementById(id);
  if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
}
window.addEventListener("hashchange", openTarget);
document.addEventListener("DOMContentLoaded", openTarget);
"""


def _budget(c: dict[str, Any]) -> str:
    b = c.get("budget")
    if b is None:
        return ""
    return "inf" if b == "inf" else f"{b:.2f}"


def finding_id(target: str, check: str) -> str:
    return "f-" + anchor(target, check)


def cell(col: Column, check: str) -> str:
    if col.report is None:
        return '<td class="cell not-run">not run</td>'
    c = col.checks.get(check)
    if c is None:
        return '<td class="cell absent">-</td>'
    status = c["status"]
    budget = _budget(c)
    text = escape(status) + (f' <span class="budget">{budget}</span>' if budget else "")
    title = escape(c.get("message") or c.get("note") or c.get("description") or "", quote=True)
    if status in FINDINGS:
        text = f'<a href="#{finding_id(col.target, check)}">{text}</a>'
    return f'<td class="cell {escape(status)}" title="{title}" data-adapter="{escape(col.target, quote=True)}">{text}</td>'


def _versions(columns: Sequence[Column], skipped: Sequence[tuple[str, str]]) -> list[str]:
    rows = ["<table class=versions><thead><tr><th>adapter</th><th>result</th><th>versions</th></tr></thead><tbody>"]
    for col in columns:
        if col.report is None:
            rows.append(f"<tr><td>{escape(col.target)}</td><td class=not-run>not run: {escape(col.problem)}</td><td></td></tr>")
            continue
        env = col.report["environment"]
        versions = ", ".join(f"{k} {v}" for k, v in env.items() if k not in ("platform",))
        summary = col.report["summary"]
        verdict = summary.get("verdict", "")
        counts = ", ".join(f"{n} {s}" for s, n in sorted(summary["counts"].items()))
        rows.append(f"<tr><td>{escape(col.target)}</td><td>{escape(verdict)}: {escape(counts)}</td>"
                    f"<td>{escape(versions)}</td></tr>")
    for target, reason in skipped:
        rows.append(f"<tr><td>{escape(target)}</td><td class=not-run>not usable here: {escape(reason)}</td><td></td></tr>")
    return rows + ["</tbody></table>"]


def _results(columns: Sequence[Column], accuracy: dict[str, tuple[str, str]]) -> list[str]:
    head = "".join(f'<th scope="col" class="adapter">{escape(c.target)}</th>' for c in columns)
    verdicts = "".join(f'<td class="{_tone(c)}">{escape(_verdict(c))}</td>' for c in columns)
    rows = [f"<table class=results><thead><tr><th>check</th><th>clauses</th>{head}</tr></thead><tbody>",
            f'<tr class="verdict"><th scope="row">verdict</th><td></td>{verdicts}</tr>']
    if accuracy:  # the growth of the error with m, from `bnspec accuracy` (docs/accuracy.md), linked to its plot
        classes = "".join(f'<td><a href="{escape(accuracy[c.target][1], quote=True)}">{escape(accuracy[c.target][0])}</a></td>'
                          if c.target in accuracy else "<td>-</td>" for c in columns)
        rows.append(f'<tr class="verdict"><th scope="row">accuracy class</th><td class="clauses">BN-QUAL-1</td>{classes}</tr>')
    area = None
    for check in CHECKS:
        if check.area != area:
            area = check.area
            rows.append(f'<tr class="area"><th colspan="{len(columns) + 2}">{escape(area)}</th></tr>')
        cells = "".join(cell(col, check.name) for col in columns)
        rows.append(f'<tr><th scope="row" title="{escape(check.doc, quote=True)}">{escape(check.name)}</th>'
                    f'<td class="clauses">{escape(", ".join(check.clauses))}</td>{cells}</tr>')
    return rows + ["</tbody></table>"]


def _verdict(col: Column) -> str:
    return col.report["summary"].get("verdict", "") if col.report else f"not run: {col.problem}"


def _tone(col: Column) -> str:
    """The colour class of a verdict: pass, deviation (conforms except), fail, or unjudged."""
    verdict = _verdict(col)
    if verdict == "conforms":
        return "pass"
    if verdict.startswith("conforms"):
        return "deviation"
    return "fail" if verdict.startswith("DOES NOT") else "unjudged"


def _differential(columns: Sequence[Column]) -> list[str]:
    """Per framework with several forms, the checks on which they disagree (``matrix.disagreements``)."""
    out = []
    for fam, cols, differ in disagreements(columns):
        out.append(f"<h3>{escape(fam)}: {len(cols)} forms, {len(differ)} checks where they disagree</h3>")
        if not differ:
            out.append("<p>Every check has the same status, and budgets within a factor of 10.</p>")
            continue
        head = "".join(f'<th scope="col">{escape(c.target)}</th>' for c in cols)
        rows = "".join(f'<tr><th scope="row">{escape(n)}</th>{"".join(cell(c, n) for c in cols)}</tr>' for n in differ)
        out.append(f"<table class=differential><thead><tr><th>check</th>{head}</tr></thead><tbody>{rows}</tbody></table>")
    if out:
        out = ["<h2>Where forms of one framework disagree</h2>",
               "<p>Eager, compiled, jitted and exported forms of one framework are implementations of one function: "
               "the checks on which their statuses differ, or their budgets differ tenfold or more.</p>", *out]
    return out


def _legend() -> list[str]:
    rows = "".join(f'<tr><td class="{s}">{s}</td><td>{escape(text)}</td></tr>' for s, text in LEGEND)
    return [f"<table class=legend><tbody>{rows}</tbody></table>"]


def _clause_texts(ids: Sequence[str]) -> list[str]:
    table = clauses()
    out = []
    for cid in ids:
        c = table.get(cid)
        if c is None:
            out.append(f'<div class="clause"><h4>{escape(cid)}</h4><p>(not in the spec)</p></div>')
            continue
        out.append(f'<div class="clause"><h4>{escape(c.id)} · {escape(c.title)} ({escape(c.level)}), '
                   f'spec/{escape(c.file)}</h4><pre>{escape(c.text)}</pre></div>')
    return out


def _findings(columns: Sequence[Column]) -> list[str]:
    out = []
    for col in columns:
        for name, c in col.checks.items():
            if c["status"] not in FINDINGS:
                continue
            parts = [f'<details class="finding" id="{finding_id(col.target, name)}">',
                     f"<summary>{escape(col.target)}: {escape(name)} ({escape(c['status'])})</summary>",
                     f"<p>{escape(c.get('description', ''))}</p>"]
            if c.get("note"):
                parts.append(f"<p><em>{escape(c['note'])}</em></p>")
            parts.append(f"<p>{escape(c.get('message', ''))}</p>")
            if c.get("case"):
                parts.append(f"<p>Minimal case: <code>{escape(c['case'])}</code></p>")
            if c.get("reproducer"):
                parts += ["<p>Reproducer:</p>", f'<pre class="reproducer">{escape(c["reproducer"])}</pre>']
            if c.get("detail"):
                parts += ["<p>Detail:</p>", f'<pre class="detail">{escape(c["detail"])}</pre>']
            parts += _clause_texts(c.get("clauses", []))
            parts.append("</details>")
            out.append("\n".join(parts))
    return out


def render(columns: Sequence[Column], seed: int, examples: int, command: str,
           skipped: Sequence[tuple[str, str]] = (), accuracy: dict[str, tuple[str, str]] | None = None) -> str:
    """The whole page."""
    findings = _findings(columns)
    body = [
        "<h1>Conformance matrix</h1>",
        f"<p>Adapters as columns, checks as rows, from <code>{escape(command)}</code> (seed {seed}, {examples} "
        "examples per check). A cell is the status and the error budget used (worst error / what "
        "<code>spec/precision.md</code> allows; 1.00 is the edge). Click a coloured cell for its minimal case, "
        "reproducer and clause text.</p>",
        *_results(columns, accuracy or {}),
        *_legend(),
        *_differential(columns),
        "<h2>Adapters and versions</h2>", *_versions(columns, skipped),
    ]
    if findings:
        body += ["<h2>Findings, failures and open verdicts</h2>", *findings]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>bnspec conformance matrix</title>", f"<style>{_STYLE}</style>", f"<script>{_SCRIPT}</script>",
        "</head>", "<body>", *body, "</body>", "</html>",
    ]) + "\n"
