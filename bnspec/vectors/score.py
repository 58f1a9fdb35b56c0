"""Scoring an implementation's results against the corpus, as ``bnspec run`` would judge them.

Every output is compared with ``conformance.compare.compare``: element by element within the
exported tolerance, elements whose exact value is not finite left to BN-SPECIAL-1, and an exact
value beyond the output dtype's range met by any result of its sign at least that large
(BN-PREC-1). The result's dtype must be the one the manifest names (BN-DTYPE-1, BN-DTYPE-3).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..conformance.compare import Verdict, compare, fail
from ..dtypes import LARGEST, dtype_name
from .export import FORMAT, RESULTS_FORMAT, VERSION

RESULTS_VERSION = 1  # of results.json's layout, apart from the corpus's version

STATUSES = ("pass", "fail", "missing", "should", "unsupported")


class CorpusError(ValueError):
    """A corpus or results folder that cannot be read as one."""


@dataclass(frozen=True)
class Score:
    """The verdict on one case; ``should`` is a SHOULD clause not met (reported, not failing)."""

    id: str
    area: str
    clauses: list[str]
    status: str
    message: str = ""
    budget: float | None = None


@dataclass(frozen=True)
class Scores:
    corpus_version: int
    implementation: str
    cases: list[Score]

    def counts(self) -> dict[str, int]:
        return {s: n for s in STATUSES if (n := sum(c.status == s for c in self.cases))}

    @property
    def ok(self) -> bool:
        return not any(c.status in ("fail", "missing") for c in self.cases)


def _json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorpusError(f"{path} not found: is this the {what} folder?") from None
    except (OSError, ValueError) as exc:
        raise CorpusError(f"{path} cannot be read as JSON: {exc}") from exc


def check(corpus_dir: str | Path, results_dir: str | Path) -> Scores:
    """Score ``results_dir`` (``results.json`` and the ``.npy`` files it names) against the corpus."""
    corpus, results = Path(corpus_dir), Path(results_dir)
    manifest = _json(corpus / "manifest.json", "corpus")
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CorpusError(f"{corpus / 'manifest.json'} is {manifest.get('format')!r} version "
                          f"{manifest.get('version')!r}; this bnspec reads {FORMAT!r} version {VERSION}")
    got = _json(results / "results.json", "results")
    if got.get("format") != RESULTS_FORMAT or got.get("version", RESULTS_VERSION) != RESULTS_VERSION:
        raise CorpusError(f"{results / 'results.json'} is {got.get('format')!r} version {got.get('version')!r}; "
                          f"this bnspec reads {RESULTS_FORMAT!r} version {RESULTS_VERSION}")
    answers = got.get("cases")
    if not isinstance(answers, dict):
        raise CorpusError(f"{results / 'results.json'}: 'cases' must map each case ID to its outcome")
    counter = got.get("counter", True) is not False
    scores = [_score(case, answers.get(case["id"]), corpus, results, counter) for case in manifest["cases"]]
    return Scores(manifest["version"], str(got.get("implementation", "the implementation")), scores)


def _score(case: dict[str, Any], answer: Any, corpus: Path, results: Path, counter: bool) -> Score:
    def verdict(status: str, message: str = "", budget: float | None = None) -> Score:
        if status == "fail" and case["level"] != "MUST":
            status = "should"
        return Score(case["id"], case["area"], case["clauses"], status, message, budget)

    if not isinstance(answer, dict):
        return verdict("missing", "no outcome in results.json")
    status, said = answer.get("status"), str(answer.get("message", ""))
    if status == "unsupported":
        return verdict("unsupported", said)
    if status == "error":
        if case["expect"] == "result":
            return verdict("fail", f"raised on a valid case: {said or '(no message)'}")
        return verdict("pass")
    if status != "ok":
        return verdict("fail", f"status {status!r} is none of ok, error, unsupported")
    if case["expect"] == "error":
        return verdict("fail", f"returned a result where the spec requires an error ({', '.join(case['clauses'])})")
    total = Verdict()
    for k, step in enumerate(case["steps"]):
        where = f"step {k + 1} of {len(case['steps'])}: " if len(case["steps"]) > 1 else ""
        for name, rel in step["absent"].items():
            if (results / rel).exists():
                total = total.merge(fail(f"{where}{name} returned without running statistics ({rel}); "
                                         "expected none (BN-RUN-5)"))
        for name, out in step["outputs"].items():
            if name == "num_batches_tracked" and not counter:
                continue
            v = _output(name, out, corpus, results)
            if not v.ok:
                v = Verdict(False, v.budget, f"{where}{v.message} ({', '.join(out['clauses'])})", v.worst)
            total = total.merge(v)
    if total.ok:
        return verdict("pass", budget=total.budget)
    return verdict("fail", total.message, total.budget)


def _output(name: str, out: dict[str, Any], corpus: Path, results: Path) -> Verdict:
    path = results / out["result"]
    if not path.is_file():
        return fail(f"{name} is missing ({out['result']})")
    try:
        got = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return fail(f"{name} cannot be read as .npy ({out['result']}): {exc}")
    if out["dtype"] == "int64":  # the counter: any integer dtype, the exact value
        if got.shape != () or got.dtype.kind not in "iu" or int(got) != out["expected"]:
            return fail(f"{name} = {got!r}, expected the integer {out['expected']}")
        return Verdict()
    if dtype_name(got.dtype) != out["dtype"]:
        return fail(f"{name}.dtype = {got.dtype}, expected {out['dtype']} (BN-DTYPE-1, BN-DTYPE-3)")
    want = np.load(corpus / out["expected"], allow_pickle=False)
    tol = np.load(corpus / out["tolerance"], allow_pickle=False)
    return compare(name, got, want, tol, limit=LARGEST[out["dtype"]])


def render(scores: Scores) -> str:
    """Every case that did not pass, then one summary line."""
    lines = []
    for s in scores.cases:
        if s.status != "pass":
            lines.append(f"{s.status.upper():<12}{s.id}  ({', '.join(s.clauses)})")
            if s.message:
                lines.append(f"    {s.message}")
    counts = ", ".join(f"{n} {s}" for s, n in scores.counts().items())
    verdict = "conforms" if scores.ok else "DOES NOT CONFORM"
    lines.append(f"{scores.implementation}: {verdict} on golden vectors version {scores.corpus_version}: {counts}")
    return "\n".join(lines)


def _budget(b: float | None) -> float | str | None:
    return "inf" if b == float("inf") else b


def to_dict(scores: Scores) -> dict[str, Any]:
    """The scores as JSON data; an infinite budget (a missing or non-finite result) as "inf"."""
    return {"format": "bnspec-vector-scores", "corpus_version": scores.corpus_version,
            "implementation": scores.implementation, "ok": scores.ok, "counts": scores.counts(),
            "cases": [dict(asdict(s), budget=_budget(s.budget)) for s in scores.cases]}
