"""Writing the corpus: one ``.npy`` file per array, one ``manifest.json`` that names them all.

The manifest gives every path (relative to the corpus folder for inputs, expected values and
tolerances; relative to the results folder for what the implementation writes), so a consumer
in any language follows it and never builds a file name itself. ``docs/vectors.md`` is the
format's reference.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..clauses import clauses, spec_dir
from .corpus import STATE, Step, Vector, corpus, steps

VERSION = 1  # of the corpus: raised whenever the cases, their format or what they expect change
FORMAT, RESULTS_FORMAT = "bnspec-vectors", "bnspec-vector-results"
INPUTS = ("x", "weight", "bias", "running_mean", "running_var", "grad_output")
NOT_COVERED = {"BN-IO-1": "whether an implementation writes into its inputs cannot be seen in its output files"} | {
    f"BN-SYNC-{n}": "synchronized batch norm (section 10) is one step run by several replicas; a vector is one call"
    for n in range(1, 6)} | {
    f"BN-GRAD-{n}": "derivatives beyond the first need tangents and cotangents, which the vector format does not carry"
    for n in range(4, 8)} | {
    "BN-PREC-8": "the precision of derivatives beyond the first, which the vector format does not carry"} | {
    f"BN-QUAL-{n}": "the quality tier is a SHOULD judged by bnspec run and bnspec accuracy; vectors judge the MUSTs"
    for n in range(1, 4)}


def number(v: float | None) -> float | str | None:
    """A float as JSON holds it: non-finite values as the strings "nan", "inf", "-inf"."""
    if v is None or math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def spec_version() -> str:
    head = (spec_dir() / "batchnorm.md").read_text(encoding="utf-8")[:2000]
    found = re.search(r"^Version (\S+?)\.?\s", head, re.MULTILINE)
    return found.group(1) if found else "unknown"


def level(ids: tuple[str, ...]) -> str:
    """MUST when any clause a case tests is a MUST; a case of SHOULD clauses alone is SHOULD."""
    table = clauses()
    return "MUST" if any(table[c].level == "MUST" for c in ids if c in table) else "SHOULD"


def export(folder: str | Path, force: bool = False) -> Path:
    """Write the corpus into ``folder``; return the manifest's path.

    A folder that exists and is not empty is refused unless ``force``: then the corpus's files
    are written over, and nothing else in it is touched.
    """
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise FileExistsError(f"{root} is not empty; give an empty or new folder (or --force to write over it)")
    from .. import __version__

    cases = [_case(root, v) for v in corpus()]
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "spec_version": spec_version(),
        "bnspec": __version__,
        "layout": "docs/vectors.md in the bnspec repository",
        "not_covered": NOT_COVERED,
        "cases": cases,
    }
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


def _case(root: Path, v: Vector) -> dict[str, Any]:
    calls = steps(v)
    first = calls[0].case
    about = first.describe() if not v.chain else f"{v.chain} training steps, then eval; first: {first.describe()}"
    return {
        "id": v.id,
        "area": v.area,
        "clauses": list(v.clauses),
        "level": level(v.clauses),
        "about": about,
        "expect": v.expect,
        "steps": [_step(root, f"{v.id}/{k}", s) for k, s in enumerate(calls)],
    }


def _save(root: Path, rel: str, a: np.ndarray) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(a), allow_pickle=False)
    return rel


def _step(root: Path, base: str, s: Step) -> dict[str, Any]:
    c = s.case
    skip = ("running_mean", "running_var") if s.carried else ()
    inputs = {n: _save(root, f"{base}/input_{n}.npy", getattr(c, n)) for n in INPUTS
              if getattr(c, n) is not None and n not in skip}
    params: dict[str, Any] = {"axis": c.axis, "training": c.training, "eps": number(c.eps),
                              "momentum": number(c.momentum)}
    if not s.carried:
        params["num_batches_tracked"] = c.num_batches_tracked
    outputs: dict[str, Any] = {}
    for name, out in s.outputs.items():
        entry: dict[str, Any] = {"dtype": out.dtype, "clauses": list(out.clauses), "result": f"{base}/{name}.npy"}
        if out.tolerance is None:
            entry["expected"] = int(out.expected)  # type: ignore[arg-type]
        else:
            entry["expected"] = _save(root, f"{base}/expected_{name}.npy", np.asarray(out.expected, np.float64))
            entry["tolerance"] = _save(root, f"{base}/tolerance_{name}.npy", np.asarray(out.tolerance, np.float64))
        outputs[name] = entry
    return {
        "state": "carried" if s.carried else "given",
        "params": params,
        "inputs": inputs,
        "outputs": outputs,
        "absent": {n: f"{base}/{n}.npy" for n in STATE if n in s.absent},
    }
