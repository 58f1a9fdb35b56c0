"""The differential view of the matrix: forms of one framework (eager, compiled, jitted, exported)
are implementations of one function, so where their results differ is worth a reader's look."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .checks import CHECKS
from .results import Column


def family(target: str) -> str:
    """The framework an adapter belongs to: its registry entry's ``family`` where it has one, else
    the part of its name before the first dash (``torch-compile`` -> ``torch``)."""
    from ..adapters.registry import BUILTIN

    entry = BUILTIN.get(target)
    return getattr(entry, "family", "") or target.split("-", 1)[0]


def disagreements(columns: Sequence[Column]) -> list[tuple[str, list[Column], list[str]]]:
    """Per framework with two or more forms in the matrix (eager, compiled, exported...): the forms,
    and the checks on which their statuses differ, or their budgets differ tenfold or more."""
    groups: dict[str, list[Column]] = {}
    for col in columns:
        if col.report is not None:
            groups.setdefault(family(col.target), []).append(col)
    out = []
    for fam, cols in groups.items():
        if len(cols) < 2:
            continue
        differ = []
        for check in CHECKS:
            cells = [col.checks.get(check.name) for col in cols]
            statuses = {c["status"] if c else "-" for c in cells}
            budgets = [c["budget"] for c in cells if c and isinstance(c.get("budget"), (int, float))]
            spread = max(budgets) / max(min(budgets), 1e-3) if len(budgets) > 1 else 1.0
            if len(statuses) > 1 or spread >= 10.0:
                differ.append(check.name)
        out.append((fam, cols, differ))
    return out


def accuracy_classes(out_dir: Path) -> dict[str, tuple[str, str]]:
    """``{target: (accuracy class, relative link to its plot)}`` from the sweep committed beside the
    matrix (``OUT/accuracy/accuracy.json``, written by ``bnspec accuracy --out OUT/accuracy``); empty
    where there is none."""
    path = out_dir / "accuracy" / "accuracy.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    out = {}
    for target, summary in data.get("summary", {}).items():
        dtypes = data.get("targets", {}).get(target, {}).get("dtypes", ["float32"])
        dtype = "float32" if "float32" in dtypes else dtypes[0]
        group = data.get("targets", {}).get(target, {}).get("group", "")  # bnspec accuracy --by-group
        out[target] = (summary.get("class", "-"), f"accuracy/{group + '/' if group else ''}error-vs-m-{dtype}.png")
    return out
