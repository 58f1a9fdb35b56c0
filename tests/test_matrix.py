"""The conformance matrix: one process per adapter, a Markdown table, links to failing cases."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def matrix(*args):
    return subprocess.run([sys.executable, "-m", "bnspec", "matrix", *args], capture_output=True, text=True,
                          timeout=900, cwd=ROOT)


def test_matrix_table_links_failures_to_their_case(tmp_path):
    bad = "tests/adapters/variants.py:NoMomentumCheck"
    p = matrix("reference", bad, "--examples", "3", "--out", str(tmp_path))
    assert p.returncode == 1, p.stderr
    md = (tmp_path / "conformance.md").read_text()
    assert "| check | clauses | reference | " + bad + " |" in md
    link = re.search(r"\[\*\*FAIL\*\* \(inf\)\]\(#([^)]+)\)", md)
    assert link and f'<a id="{link.group(1)}"></a>' in md
    assert "BN-ARG-5" in md and "bnspec.Case(" in md
    assert (tmp_path / "reports" / "reference.json").is_file()
    assert bad in (tmp_path / "conformance.html").read_text()  # the HTML page beside it (tests/test_html.py)


def test_crash_and_timeout_cells_link_to_their_case():
    """A crashed or timed-out check is a failure cell like any other, linked to the case that caused it."""
    from bnspec.conformance.matrix import Column, anchor, cell, render

    checks = {"eval-output": {"name": "eval-output", "status": "crash", "budget": None, "clauses": ["BN-EVAL-1"],
                              "message": "the worker died (killed by signal SIGSEGV)", "reproducer": "import bnspec\n"},
              "train-output": {"name": "train-output", "status": "timeout", "budget": 0.25, "clauses": ["BN-TRAIN-1"],
                               "message": "no result within the timeout of 2 s"}}
    report = {"environment": {"python": "3"}, "summary": {"ok": False, "counts": {"crash": 1, "timeout": 1}},
              "checks": list(checks.values())}
    col = Column("t", 1, report, checks=checks)
    assert cell(col, "eval-output") == f"[**CRASH**](#{anchor('t', 'eval-output')})"
    # A timeout is a check the suite could not judge: set apart from the failures, still linked.
    assert cell(col, "train-output") == f"[*timeout* (0.25)](#{anchor('t', 'train-output')})"
    md = render([col], 0, 1, "bnspec matrix t")
    assert f'<a id="{anchor("t", "eval-output")}"></a>' in md and "killed by signal SIGSEGV" in md


def test_a_target_that_cannot_load_exits_two_as_run_does(tmp_path):
    """An unknown name is refused before anything runs or is written; a file target that fails to load
    is a column saying so, and the command still exits 2."""
    p = matrix("reference", "no-such-adapter", "--examples", "2", "--out", str(tmp_path / "a"))
    assert p.returncode == 2 and "no adapter named 'no-such-adapter'" in p.stderr
    assert not (tmp_path / "a").exists()
    p = matrix("reference", "tests/adapters/variants.py:NoSuchClass", "--examples", "2", "--out", str(tmp_path / "b"))
    assert p.returncode == 2, p.stdout + p.stderr
    md = (tmp_path / "b" / "conformance.md").read_text()
    assert "tests/adapters/variants.py:NoSuchClass | not run: exit status 2" in md


def cells(md: str, column: str) -> dict[str, str]:
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| check |"))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    rows = [line for line in lines[start:end] if line.startswith("| ")]
    header = rows[0]
    names = [h.strip() for h in header.strip("|").split("|")]
    if column not in names:
        return {}
    i = names.index(column)
    out = {}
    for r in rows:
        parts = [p.strip() for p in r.strip("|").split("|")]
        if len(parts) == len(names) and not parts[0].startswith("**") and parts[0] != "check":
            out[parts[0]] = re.sub(r"\]\(#[^)]*\)", "]", parts[i])
    return out


# The columns rerun against the committed matrix: the reference (budgets exact) and one adapter per
# kind of backend that runs in a minute (eager module, graph runtime, exported graph). Rerunning every column would
# cost CI as long as the matrix itself (about 25 minutes); the rest are regenerated with the matrix.
FRESH = ("reference", "torch", "onnxruntime", "onnxruntime-exported")


def _committed_columns() -> list[str]:
    header = next(line for line in (ROOT / "docs" / "conformance.md").read_text().splitlines()
                  if line.startswith("| check |"))
    return [h for h in (h.strip() for h in header.strip("|").split("|")[2:]) if h in FRESH]


@pytest.mark.parametrize("target", _committed_columns())
def test_committed_matrix_matches_a_fresh_run(tmp_path, target):
    """The committed docs/conformance.md column equals a fresh run with its seed and examples.

    The reference's budgets are exact and compared too. A framework's are measurements: the same
    cases give torch's vectorized reductions another summation order when the arrays sit at another
    memory alignment (seen: train-output 0.33 in one process layout, 0.20 in another), so for the
    frameworks the statuses are compared, and passing budgets only to be within the model (at most 1).
    Each column is skipped, saying why, where its framework is not installed."""
    # Asked in a fresh process: Keras can tell whether it is usable only before keras is imported.
    ask = f"from bnspec.adapters.registry import unavailable_reason as u; print(u({target!r}) or '')"
    reason = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True, timeout=300).stdout.strip()
    if reason:
        pytest.skip(f"{target}: {reason}")
    committed = (ROOT / "docs" / "conformance.md").read_text()
    seed = re.search(r"\(seed (\d+), (\d+) examples per check\)", committed)
    assert seed, "docs/conformance.md does not say its seed"
    want = cells(committed, target)
    assert want, f"docs/conformance.md has no {target} column"
    p = matrix(target, "--seed", seed.group(1), "--examples", seed.group(2), "--out", str(tmp_path))
    assert p.returncode in (0, 1, 3), p.stderr
    got = cells((tmp_path / "conformance.md").read_text(), target)
    if target != "reference":
        budgets = [float(b) for c in got.values() for b in re.findall(r"\((\d+\.\d+)\)", c) if "pass" in c]
        assert all(b <= 1.0 for b in budgets), got
        got, want = ({k: re.sub(r" \([^)]*\)", "", v) for k, v in d.items()} for d in (got, want))
    assert got == want


def test_resume_reuses_complete_reports_of_the_same_run_and_reruns_the_rest(tmp_path):
    """Nothing already computed is lost: --resume keeps each matching report and runs only the missing."""
    assert matrix("reference", "--examples", "2", "--out", str(tmp_path)).returncode == 0
    kept = tmp_path / "reports" / "reference.json"
    stamp = kept.stat().st_mtime_ns
    p = matrix("reference", "tests/adapters/variants.py:NoMomentumCheck", "--examples", "2", "--out", str(tmp_path),
               "--resume")
    assert p.returncode == 1, p.stderr
    assert kept.stat().st_mtime_ns == stamp  # reused, not rerun
    assert "DOES NOT CONFORM" in (tmp_path / "conformance.md").read_text()
    # Another example count is another run: the report is not reused.
    assert matrix("reference", "--examples", "3", "--out", str(tmp_path), "--resume").returncode == 0
    assert kept.stat().st_mtime_ns != stamp


def test_jobs_run_adapters_side_by_side_with_the_same_table_in_the_same_order(tmp_path):
    """--jobs 2 runs two adapter processes at a time; the columns keep the order given and every cell is
    the one a single job writes (the verdicts depend on the seed, not on what runs beside them)."""
    targets = ("tests/adapters/variants.py:NoMomentumCheck", "reference")
    one = matrix(*targets, "--examples", "2", "--jobs", "1", "--out", str(tmp_path / "one"))
    two = matrix(*targets, "--examples", "2", "--jobs", "2", "--out", str(tmp_path / "two"))
    assert one.returncode == two.returncode == 1, two.stderr
    md1, md2 = ((tmp_path / d / "conformance.md").read_text() for d in ("one", "two"))
    body = (lambda md: md[md.index("| check |"):].split("\n\n")[0])  # noqa: E731 - the grid, not the timings
    assert body(md1) == body(md2)
    header = md2[md2.index("| check |"):].splitlines()[0]
    assert header.index("NoMomentumCheck") < header.index("reference")
    assert matrix("reference", "--jobs", "0", "--out", str(tmp_path / "z")).returncode == 2
