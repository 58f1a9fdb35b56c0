"""Golden vectors (``bnspec vectors``): export, a consumer in another language's shape, the score.

``fixtures/vectors_consumer.py`` stands for a C++ or Rust harness: it reads the manifest and the
``.npy`` files with NumPy alone and writes its results. The vectors must agree with the suite:
the correct NumPy implementations of ``impls/`` pass them and every broken one is caught, on a
clause it breaks, but the one the vectors cannot see (BN-IO-1).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bnspec import Case
from bnspec.clauses import clauses
from bnspec.cli import main
from bnspec.vectors import NOT_COVERED, VERSION, check, corpus, export

from .impls.numpy_impls import BROKEN, CORRECT

CONSUMER = Path(__file__).resolve().parent / "fixtures" / "vectors_consumer.py"
OUTPUTS = ("y", "running_mean", "running_var", "num_batches_tracked", "grad_input", "grad_weight", "grad_bias")


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vectors") / "corpus"
    export(folder)
    return folder


@pytest.fixture(scope="module")
def manifest(corpus_dir) -> dict:
    return json.loads((corpus_dir / "manifest.json").read_text())


def consume(corpus_dir: Path, results: Path, *bug: str) -> Path:
    """Run the NumPy-only consumer in its own process; it must not import bnspec."""
    results.mkdir(parents=True, exist_ok=True)
    code = ("import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); "
            "assert not [m for m in sys.modules if m.startswith('bnspec')], 'the consumer imported bnspec'")
    p = subprocess.run([sys.executable, "-c", code, str(CONSUMER), str(corpus_dir), str(results), *bug],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return results


@pytest.fixture(scope="module")
def good_results(corpus_dir, tmp_path_factory) -> Path:
    return consume(corpus_dir, tmp_path_factory.mktemp("results") / "good")


@pytest.fixture
def results(good_results, tmp_path) -> Path:
    """A private copy of the consumer's results, to plant errors in."""
    return Path(shutil.copytree(good_results, tmp_path / "results"))


def _failing(scores) -> dict[str, str]:
    return {c.id: c.message for c in scores.cases if c.status == "fail"}


def test_the_consumer_conforms(corpus_dir, good_results, capsys):
    assert main(["vectors", "check", str(corpus_dir), str(good_results)]) == 0
    out = capsys.readouterr().out
    assert f"numpy-consumer: conforms on golden vectors version {VERSION}: {len(corpus())} pass" in out


def test_export_is_fixed(corpus_dir, tmp_path):
    """The same bnspec writes the same corpus, byte for byte."""
    again = tmp_path / "again"
    export(again)

    def digest(folder: Path) -> dict[str, str]:
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    assert digest(again) == digest(corpus_dir)


def test_every_clause_has_a_vector_but_the_documented_ones(manifest):
    cited = {c for case in manifest["cases"] for c in case["clauses"]}
    cited |= {c for case in manifest["cases"] for step in case["steps"]
              for out in step["outputs"].values() for c in out["clauses"]}
    spec = set(clauses())
    assert cited <= spec
    assert spec - cited == set(NOT_COVERED), f"clauses without a vector: {sorted(spec - cited - set(NOT_COVERED))}"
    assert manifest["not_covered"] == NOT_COVERED and manifest["version"] == VERSION


def test_manifest_is_self_describing(manifest, corpus_dir):
    """Every path it names exists; expect, dtype, params and special values are as documented."""
    expects = {case["expect"] for case in manifest["cases"]}
    assert expects == {"result", "error", "result-or-error"}
    for case in manifest["cases"]:
        for step in case["steps"]:
            assert (corpus_dir / step["inputs"]["x"]).is_file()
            for out in step["outputs"].values():
                assert out["dtype"] in ("float16", "float32", "float64", "int64")
                if "tolerance" in out:
                    want = np.load(corpus_dir / out["expected"])
                    tol = np.load(corpus_dir / out["tolerance"])
                    assert want.shape == tol.shape and want.dtype == tol.dtype == np.float64
                    assert (tol[np.isfinite(want)] >= 0).all()
    momenta = {case["id"]: case["steps"][0]["params"]["momentum"] for case in manifest["cases"]}
    assert momenta["arg-momentum-nan"] == "nan" and momenta["run-cumulative"] is None
    special = next(c for c in manifest["cases"] if c["id"] == "special-nan")["steps"][0]
    assert np.isnan(np.load(corpus_dir / special["inputs"]["x"])).sum() == 1


def test_a_planted_bug_is_caught_on_its_clause(corpus_dir, tmp_path):
    """BN-RUN-2: a biased running variance fails every tracked training case, naming BN-RUN-2."""
    scores = check(corpus_dir, consume(corpus_dir, tmp_path / "biased", "--bug", "biased-running-var"))
    failing = _failing(scores)
    assert "run-momentum-0.1" in failing and "chain-momentum" in failing and "eval-rank4" not in failing
    assert all("running_var" in m and "BN-RUN-2" in m for m in failing.values())

    scores = check(corpus_dir, consume(corpus_dir, tmp_path / "momentum", "--bug", "no-momentum-check"))
    assert set(_failing(scores)) == {"arg-momentum-above-one", "arg-momentum-below-zero", "arg-momentum-nan"}


def test_one_element_twice_its_tolerance_off_is_caught(corpus_dir, manifest, results):
    out = next(c for c in manifest["cases"] if c["id"] == "train-large-m-offset")["steps"][0]["outputs"]["y"]
    want, tol = np.load(corpus_dir / out["expected"]), np.load(corpus_dir / out["tolerance"])
    got = np.load(results / out["result"])
    where = (7, 1, 3, 5)
    got[where] = np.float32(want[where] + 2 * tol[where])
    np.save(results / out["result"], got)
    scores = check(corpus_dir, results)
    failing = _failing(scores)
    assert list(failing) == ["train-large-m-offset"]
    assert failing["train-large-m-offset"].startswith("y[7, 1, 3, 5] = ") and "1 of 8192 elements" in failing[
        "train-large-m-offset"]
    assert 1.5 < next(c.budget for c in scores.cases if c.id == "train-large-m-offset") < 2.5


def _edit(results: Path, **cases) -> None:
    path = results / "results.json"
    data = json.loads(path.read_text())
    for cid, outcome in cases.items():
        if outcome is None:
            del data["cases"][cid]
        else:
            data["cases"][cid] = outcome
    path.write_text(json.dumps(data))


def test_outcomes_errors_missing_and_unsupported(corpus_dir, results):
    (results / "arg-rank-1/0").mkdir(parents=True)
    np.save(results / "arg-rank-1/0/y.npy", np.zeros(5, np.float32))  # a SHOULD clause: reported, not failing
    _edit(results, **{"arg-negative-eps": {"status": "ok"}, "train-m2": {"status": "error", "message": "boom"},
                      "dtype-float16-large-m": {"status": "unsupported", "message": "no float16 here"},
                      "eval-rank4": None, "arg-rank-1": {"status": "ok"}})
    scores = check(corpus_dir, results)
    status = {c.id: (c.status, c.message) for c in scores.cases}
    assert status["arg-negative-eps"] == ("fail", "returned a result where the spec requires an error (BN-ARG-4)")
    assert status["train-m2"] == ("fail", "raised on a valid case: boom")
    assert status["dtype-float16-large-m"] == ("unsupported", "no float16 here")
    assert status["eval-rank4"][0] == "missing" and status["arg-rank-1"][0] == "should"
    assert scores.counts() == {"pass": len(corpus()) - 5, "fail": 2, "missing": 1, "should": 1, "unsupported": 1}
    assert not scores.ok


def test_dtype_leak_and_missing_file_are_caught(corpus_dir, results):
    y = results / "train-m2/0/y.npy"
    np.save(y, np.load(y).astype(np.float64))
    np.save(results / "run-untracked/0/running_mean.npy", np.zeros(3, np.float32))
    (results / "grad-eval/0/grad_bias.npy").unlink()
    failing = _failing(check(corpus_dir, results))
    assert failing["train-m2"] == "y.dtype = float64, expected float32 (BN-DTYPE-1, BN-DTYPE-3) (BN-TRAIN-1, " \
        "BN-TRAIN-2, BN-TRAIN-3, BN-TRAIN-4, BN-PREC-3)"
    assert "running_mean returned without running statistics" in failing["run-untracked"]
    assert "grad_bias is missing" in failing["grad-eval"] and len(failing) == 3


def test_the_command_exits_2_on_misuse(corpus_dir, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep me")
    assert main(["vectors", "export", str(tmp_path / "full")]) == 2
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep me"
    assert main(["vectors", "check", str(corpus_dir), str(tmp_path / "nothing")]) == 2
    assert "results.json not found" in capsys.readouterr().err
    old = tmp_path / "old"
    shutil.copytree(corpus_dir, old)
    data = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps(dict(data, version=VERSION + 1)))
    assert main(["vectors", "check", str(old), str(tmp_path)]) == 2
    assert f"this bnspec reads 'bnspec-vectors' version {VERSION}" in capsys.readouterr().err
    (tmp_path / "results.json").write_text(json.dumps({"format": "bnspec-vector-results", "version": 2, "cases": {}}))
    assert main(["vectors", "check", str(corpus_dir), str(tmp_path)]) == 2
    assert "this bnspec reads 'bnspec-vector-results' version 1" in capsys.readouterr().err


def test_scores_as_json(corpus_dir, good_results, tmp_path):
    out = tmp_path / "scores.json"
    assert main(["vectors", "check", str(corpus_dir), str(good_results), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["ok"] is True and data["counts"] == {"pass": len(corpus())}
    assert {c["id"] for c in data["cases"]} == {v.id for v in corpus()}


# -- the vectors agree with the suite on the implementations it was proven on ------------------

def run_adapter(adapter, corpus_dir: Path, results: Path) -> Path:
    """Results of a suite adapter on the vectors; cases outside its dtypes are unsupported."""
    manifest = json.loads((corpus_dir / "manifest.json").read_text())
    outcomes = {}
    for case in manifest["cases"]:
        state: dict = {}
        try:
            for k, step in enumerate(case["steps"]):
                a = {n: np.load(corpus_dir / r) for n, r in step["inputs"].items()}
                if a["x"].dtype.kind == "f" and a["x"].dtype.name not in adapter.capabilities.dtypes:
                    raise LookupError(f"{a['x'].dtype} is not among the adapter's dtypes")
                p = step["params"]
                if step["state"] == "given":
                    state = {"running_mean": a.get("running_mean"), "running_var": a.get("running_var"),
                             "num_batches_tracked": p["num_batches_tracked"]}
                number = (lambda v: None if v is None else float(v))  # noqa: E731
                out = adapter.run(Case(x=a["x"], axis=p["axis"], training=p["training"], eps=number(p["eps"]),
                                       momentum=number(p["momentum"]), weight=a.get("weight"), bias=a.get("bias"),
                                       grad_output=a.get("grad_output"), **state))
                if out.running_mean is not None:
                    state = {"running_mean": out.running_mean, "running_var": out.running_var,
                             "num_batches_tracked": out.num_batches_tracked}
                for name in OUTPUTS:
                    if getattr(out, name) is not None:
                        (results / case["id"] / str(k)).mkdir(parents=True, exist_ok=True)
                        np.save(results / case["id"] / str(k) / f"{name}.npy", np.asarray(getattr(out, name)))
            outcomes[case["id"]] = {"status": "ok"}
        except LookupError as exc:
            outcomes[case["id"]] = {"status": "unsupported", "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the implementation's own error for invalid use
            outcomes[case["id"]] = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
    results.mkdir(parents=True, exist_ok=True)
    (results / "results.json").write_text(json.dumps({"format": "bnspec-vector-results", "version": 1,
                                                      "implementation": adapter.name, "cases": outcomes}))
    return results


@pytest.mark.parametrize("impl", CORRECT, ids=lambda c: c.name)
def test_correct_implementations_pass(impl, corpus_dir, tmp_path):
    scores = check(corpus_dir, run_adapter(impl(), corpus_dir, tmp_path))
    assert scores.ok, _failing(scores)
    assert {c.area for c in scores.cases if c.status == "unsupported"} <= {"DTYPE"}


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")  # broken-empty-batch-nan's own
@pytest.mark.parametrize("impl", BROKEN, ids=lambda c: c.name)
def test_broken_implementations_are_caught_on_a_clause_they_break(impl, corpus_dir, tmp_path):
    bug = impl.bug
    scores = check(corpus_dir, run_adapter(impl(), corpus_dir, tmp_path))
    if set(bug.clauses) <= set(NOT_COVERED):
        pytest.skip(f"{impl.name} breaks only {', '.join(bug.clauses)}, which vectors cannot express")
    named = [c.id for c in scores.cases if c.status == "fail"
             and any(cl in c.message or cl in c.clauses for cl in bug.clauses)]
    assert named, f"{impl.name} ({bug.what}) passed every vector citing {bug.clauses}: {_failing(scores)}"


# What version 1 of the corpus is: its cases, their clauses, parameters, shapes and dtypes (not
# the data, whose last bits may differ between platforms' math libraries).
PINNED = {1: "b4842226895ecf4ef4116481b9bf5d548645eb533bdc60f3bbd9f3ac393728bc"}


def test_a_changed_corpus_has_a_new_version(manifest, corpus_dir):
    def shape(rel: str) -> list:
        a = np.load(corpus_dir / rel)
        return [list(a.shape), a.dtype.str]

    structure = [[case["id"], case["clauses"], case["expect"],
                  [[s["state"], s["params"], {n: shape(r) for n, r in s["inputs"].items()},
                    {n: [o["dtype"], o["clauses"], o.get("expected") if "tolerance" not in o else shape(o["expected"])]
                     for n, o in s["outputs"].items()}, sorted(s["absent"])] for s in case["steps"]]]
                 for case in manifest["cases"]]
    digest = hashlib.sha256(json.dumps(structure, sort_keys=True).encode()).hexdigest()
    assert PINNED.get(VERSION) == digest, (
        f"the corpus of version {VERSION} changed (structure digest {digest}): raise bnspec.vectors.export.VERSION "
        "and pin the new digest here, so that no two corpora share a version")
