"""The tree's shape (issue 12): checks by spec section, no import circle, no module too long to read."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from bnspec.clauses import clauses
from bnspec.conformance.checks import CHECKS, SECTIONS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bnspec"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The bnspec modules ``name`` imports at module level (``from X import Y`` resolved to X.Y if a module)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    deps = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                deps.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
        elif isinstance(node, ast.Import):
            deps.update(a.name for a in node.names)
    return {d for d in deps if d in modules and d != name}


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), over module-level imports."""
    modules = _modules()
    graph = {n: _imports(n, p, modules) for n, p in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    assert import_cycles() == []


def test_the_cycle_finder_finds_a_planted_circle(tmp_path, monkeypatch):
    """The test above can fail: two modules that import each other are reported."""
    pkg = tmp_path / "bnspec"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("from .a import y\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert import_cycles() == [["bnspec.a", "bnspec.b"]]


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_checks_live_in_the_module_of_their_section():
    """Each check's module is named after the spec section of the clauses of its area."""
    by_area = {"LAYOUT": "training", "TRAIN": "training", "RUN": "running", "EVAL": "eval", "GRAD": "gradients",
               "DTYPE": "dtypes", "SPECIAL": "special", "ARG": "invalid", "IO": "inputs", "EMPTY": "inputs",
               "SYNC": "synchronized", "SCENARIO": "scenarios", "GRAD2": "higher_order", "QUAL": "quality"}
    for check in CHECKS:
        module = type(check).__module__.rsplit(".", 1)[1]
        if check.area in by_area:
            assert module == by_area[check.area], f"{check.name} ({check.area}) lives in checks/{module}.py"
        assert check.area in SECTIONS, f"{check.area} has no section in checks.SECTIONS"


def test_sections_name_real_spec_sections():
    text = (ROOT / "spec" / "batchnorm.md").read_text()
    for area, where in SECTIONS.items():
        if where.startswith("section "):
            number = where.split()[1]
            assert f"\n## {number}. " in text, f"{area}: {where} is not a section of spec/batchnorm.md"
    assert clauses()  # the spec parses
