"""A missing, old or broken optional package only makes cases unsupported; it never changes a verdict.

ml_dtypes (NumPy's bfloat16) is the optional package the suite itself uses. Without it bfloat16
arrays cannot be made, so bfloat16 cases are not drawn and a check that could draw nothing else
is unsupported, saying what to install. Issue 13 was the other outcome: ``a.dtype == bfloat16()``
with ``bfloat16()`` None is True for every float64 array (NumPy reads ``np.dtype(None)`` as
float64), and ``bnspec run torch`` failed 20 checks. These tests run the suite in processes where
ml_dtypes cannot be imported (a ``sitecustomize`` meta-path hook, inherited by the adapter's worker
process) and compare every check's status with a normal run.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bnspec

# The bnspec under test: the tree this test imported, not whatever an installed copy points at.
ROOT = Path(bnspec.__file__).resolve().parents[1]

BLOCK = '''\
import sys


class _NoMlDtypes:
    """ml_dtypes cannot be imported in this process (tests/test_optional_deps.py)."""

    def find_spec(self, name, path=None, target=None):
        if name == "ml_dtypes" or name.startswith("ml_dtypes."):
            raise ModuleNotFoundError("No module named 'ml_dtypes' (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, _NoMlDtypes())
'''

# Installed but unusable: what an ml_dtypes built for another NumPy does on import.
BROKEN = "raise AttributeError('_ARRAY_API not found')\n"
# Importable but wrong: bfloat16 that is really float16 (the same size, another encoding).
WRONG = "import numpy as np\n__version__ = '0.0.wrong'\nbfloat16 = np.float16\n"


def _env(tmp: Path, ml_dtypes: str | None) -> dict[str, str]:
    """The environment of a child process: ``ml_dtypes`` None blocks it, else it is that module's
    source (put first on the path); "" leaves the installed one."""
    paths = [str(ROOT)]
    if ml_dtypes is None:
        (tmp / "sitecustomize.py").write_text(BLOCK)
        paths.insert(0, str(tmp))
    elif ml_dtypes:
        (tmp / "ml_dtypes").mkdir()
        (tmp / "ml_dtypes" / "__init__.py").write_text(ml_dtypes)
        paths.insert(0, str(tmp))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)


def _have_ml_dtypes() -> bool:
    try:
        import ml_dtypes  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def test_the_hook_blocks_ml_dtypes(tmp_path):
    """The tests below mean something only if ml_dtypes really cannot be imported in the child."""
    proc = _python("import ml_dtypes", _env(tmp_path, None))
    assert proc.returncode != 0 and "blocked by the test" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("module, why", [
    (None, "ModuleNotFoundError"),
    (BROKEN, "AttributeError: _ARRAY_API not found"),
    (WRONG, "ml_dtypes 0.0.wrong does not round or encode bfloat16 correctly"),
])
def test_bfloat16_unavailable_says_why_and_never_stands_for_another_dtype(tmp_path, module, why):
    """BN-DTYPE-1: without a working ml_dtypes, bfloat16 is unavailable, with the reason and what to
    install; ``bfloat16()`` raises instead of returning None, and the other dtypes are untouched."""
    code = """
import json
import numpy as np
from bnspec import dtypes
try:
    dtypes.bfloat16()
    raised = None
except ImportError as exc:
    raised = str(exc)
print(json.dumps({"has": dtypes.has_bfloat16(), "why": dtypes.unavailable("bfloat16"), "raised": raised,
                  "others": [dtypes.unavailable(n) for n in ("float16", "float32", "float64")],
                  "names": [dtypes.dtype_name(dtypes.numpy_dtype(n)) for n in ("float16", "float32", "float64")]}))
"""
    proc = _python(code, _env(tmp_path, module))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert got["has"] is False
    assert "pip install ml_dtypes" in got["why"] and why in got["why"], got["why"]
    assert got["raised"] == got["why"]
    assert got["others"] == [None, None, None]
    assert got["names"] == ["float16", "float32", "float64"]


def test_bfloat16_is_available_with_ml_dtypes():
    from bnspec import dtypes

    if not _have_ml_dtypes():
        pytest.skip("ml_dtypes is not installed here (it is a core dependency: pip install ml_dtypes)")
    assert dtypes.has_bfloat16() and dtypes.unavailable("bfloat16") is None
    assert dtypes.dtype_name(dtypes.bfloat16()) == "bfloat16"


def _optional_helper_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing with a call of ``bfloat16`` or ``numpy_dtype`` (``==``, ``!=``, ``is``, ...)."""
    helpers = {"bfloat16", "numpy_dtype"}

    def helper_call(node: ast.AST) -> bool:
        if not isinstance(node, ast.Call):
            return False
        f = node.func
        return (isinstance(f, ast.Name) and f.id in helpers) or (isinstance(f, ast.Attribute) and f.attr in helpers)

    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Compare) and any(helper_call(x) for x in (n.left, *n.comparators))]


def test_no_dtype_is_compared_with_an_optional_helper():
    """The kind of issue 13: a dtype is identified by its name (``dtype_name(dt) == "bfloat16"``),
    never by comparison with ``bfloat16()`` or ``numpy_dtype()``, whose result depends on what is
    installed. Adapters declare the dtypes their framework supports, whatever is installed here."""
    hits = []
    for path in sorted((ROOT / "bnspec").rglob("*.py")):
        for line in _optional_helper_comparisons(ast.parse(path.read_text(), str(path))):
            hits.append(f"{path.relative_to(ROOT)}:{line}")
    assert hits == [], hits


def test_the_scan_finds_the_old_comparison():
    """The scan above can fail: it flags the line issue 13 was about, and its capability idiom."""
    old = "if a.dtype == bfloat16():\n    pass\nx = ('bfloat16',) if dtypes.bfloat16() is not None else ()\n"
    assert _optional_helper_comparisons(ast.parse(old)) == [1, 3]
    assert _optional_helper_comparisons(ast.parse("if dtype_name(a.dtype) == 'bfloat16':\n    pass\n")) == []


DRAWS = """
import json
from bnspec.adapters.contract import Capabilities
from bnspec.conformance.cases import Recipe, Space, dtypes_unsupported, fits, supported_dtypes
from bnspec.conformance.checks import CHECKS
half = Space(dtypes=("float16", "bfloat16"))
both = Capabilities(dtypes=("float16", "float32", "bfloat16"), stats_dtypes=("float32",))
only = Capabilities(dtypes=("bfloat16",), stats_dtypes=("float32",))
check = next(c for c in CHECKS if c.name == "dtype-half")
print(json.dumps({
    "both": supported_dtypes(both, half), "only": supported_dtypes(only, half),
    "both_reason": dtypes_unsupported(both, half), "only_reason": dtypes_unsupported(only, half),
    "fits": fits(Recipe(shape=(4, 2), dtype="bfloat16", param_dtype="float32"), both),
    "check_reason": check.unsupported(only),
}))
"""


def _draws(tmp_path: Path, blocked: bool) -> dict:
    (tmp_path / "blocked").mkdir(exist_ok=True)
    proc = _python(DRAWS, _env(tmp_path / "blocked", None) if blocked else _env(tmp_path, ""))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_without_ml_dtypes_bfloat16_cases_are_not_drawn_and_say_why(tmp_path):
    """An adapter claiming float16 and bfloat16 gets float16 cases only; one claiming
    bfloat16 alone gets none, with the reason naming what to install; a fixed bfloat16 recipe fits
    no adapter."""
    got = _draws(tmp_path, blocked=True)
    assert got["both"] == ["float16"] and got["only"] == []
    assert got["both_reason"] is None
    assert "the adapter claims bfloat16" in got["only_reason"] and "pip install ml_dtypes" in got["only_reason"]
    assert got["fits"] is False


def test_with_ml_dtypes_bfloat16_cases_are_drawn(tmp_path):
    if not _have_ml_dtypes():
        pytest.skip("ml_dtypes is not installed here (it is a core dependency: pip install ml_dtypes)")
    got = _draws(tmp_path, blocked=False)
    assert got["both"] == ["float16", "bfloat16"] and got["only"] == ["bfloat16"]
    assert got["only_reason"] is None and got["check_reason"] is None and got["fits"] is True


def test_a_check_left_without_dtypes_says_install_ml_dtypes(tmp_path):
    got = _draws(tmp_path, blocked=True)
    assert "pip install ml_dtypes" in (got["check_reason"] or "")


CAPABILITIES = """
import dataclasses, importlib, json
from bnspec.adapters.registry import BUILTIN
out = {}
for name, entry in BUILTIN.items():
    module, attr = entry.target.split(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except Exception as exc:  # an adapter module that needs its framework at import
        out[name] = type(exc).__name__
        continue
    out[name] = dataclasses.asdict(cls.capabilities)
print(json.dumps(out, default=str))
"""


def test_capabilities_do_not_depend_on_ml_dtypes(tmp_path):
    """What an adapter claims is the framework's; whether bfloat16 cases can be made here is the suite's."""
    (tmp_path / "blocked").mkdir()
    runs = {}
    for label, env in (("with", _env(tmp_path, "")), ("without", _env(tmp_path / "blocked", None))):
        proc = _python(CAPABILITIES, env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[label] = json.loads(proc.stdout)
    assert runs["with"] == runs["without"]
    assert "bfloat16" in runs["without"]["torch"]["dtypes"]


FAILING = ("fail", "error", "crash", "timeout", "shortfall")


def _run(target: str, env: dict[str, str], out: Path) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "bnspec", "run", target, "--seed", "0", "--examples", "8", "-q",
                           "--json", str(out)], capture_output=True, text=True, env=env, timeout=1800)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.returncode, json.loads(out.read_text())


def _bfloat16_checks(capabilities: dict) -> set[str]:
    """The checks that draw bfloat16 cases where ml_dtypes is installed: their draws differ without it."""
    from bnspec.conformance.checks import CHECKS

    if "bfloat16" not in capabilities["dtypes"]:
        return set()
    return {c.name for c in CHECKS if c.space is not None and (c.space.dtypes is None or "bfloat16" in c.space.dtypes)}


@pytest.mark.parametrize("target", ["reference", "torch"])
def test_same_statuses_without_ml_dtypes(tmp_path, target):
    """Issue 13: ``bnspec run TARGET --seed 0`` gives every check the same status without ml_dtypes
    as with it. The checks that draw bfloat16 cases (dtype-output, dtype-half, dtype-half-params)
    draw other cases without it; there a missing ml_dtypes may narrow what is tested, never add a
    failure."""
    if target == "torch":
        pytest.importorskip("torch")
    if not _have_ml_dtypes():
        pytest.skip("ml_dtypes is not installed here, so there is no run with it to compare with")
    (tmp_path / "blocked").mkdir()
    code_with, with_ = _run(target, _env(tmp_path, ""), tmp_path / "with.json")
    code_without, without = _run(target, _env(tmp_path / "blocked", None), tmp_path / "without.json")
    status_with = {c["name"]: c["status"] for c in with_["checks"]}
    status_without = {c["name"]: c["status"] for c in without["checks"]}
    assert status_with.keys() == status_without.keys()
    aside = _bfloat16_checks(with_["capabilities"])
    assert aside or target != "torch", "torch claims bfloat16: its dtype checks draw it"
    differ = {n: (status_with[n], status_without[n]) for n in status_with
              if n not in aside and status_with[n] != status_without[n]}
    assert differ == {}, f"statuses (with ml_dtypes, without) that a missing ml_dtypes changed: {differ}"
    new_failures = {n: status_without[n] for n in aside if status_without[n] in FAILING and status_with[n] not in FAILING}
    assert new_failures == {}, new_failures
    assert code_without == code_with, (code_with, code_without)  # whether it conforms is test_torch's to say
