"""The documentation stays true: the adapter guide runs, and the docs name what the code has.

``docs/adapters.md`` marks its code with HTML comments the reader does not see:
``<!-- file: NAME -->`` before a block writes that block to NAME; ``<!-- run -->`` (or
``<!-- run: exit N -->``) before a console block runs its ``$`` commands and expects that exit
status; ``<!-- install -->`` before ``$ pip install .`` installs the project with pip into a
folder of its own (``--target``) instead of the running environment. The commands run as
written, in one temporary folder, in order, except that ``bnspec run`` and ``pytest --bnspec``
get ``--seed 0`` and 5 examples per check where they give none: seeded, so the test is
deterministic, and short.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from bnspec.conformance import CHECKS
from bnspec.conformance.results import Status

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"<!-- (file|run|install)(?::\s*(.*?))? -->\s*\n```[a-z]*\n(.*?)```", re.S)


def guide_steps(text: str) -> list[tuple[str, str, str]]:
    return [(m.group(1), (m.group(2) or "").strip(), m.group(3)) for m in BLOCK.finditer(text)]


def command(line: str) -> list[str]:
    words = shlex.split(line)
    if words[:2] == ["bnspec", "run"]:
        words += [] if "--seed" in words else ["--seed", "0"]
        words += [] if "--examples" in words else ["--examples", "5"]
    if words[0] == "pytest" and any(w.startswith("--bnspec=") for w in words):
        words += [] if "--bnspec-seed" in words else ["--bnspec-seed", "0"]
        words += [] if "--bnspec-examples" in words else ["--bnspec-examples", "5"]
        words += ["-p", "no:cacheprovider"]
    if words[0] in ("bnspec", "pytest", "pip"):
        words = [sys.executable, "-m", *words]
    return words


def test_the_adapter_guide_runs_from_an_empty_file_to_an_installed_package(tmp_path):
    steps = guide_steps((DOCS / "adapters.md").read_text(encoding="utf-8"))
    kinds = [k for k, _, _ in steps]
    assert kinds.count("file") >= 4 and kinds.count("run") >= 3 and "install" in kinds
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    ran = []
    for kind, arg, body in steps:
        if kind == "file":
            (tmp_path / arg).write_text(body, encoding="utf-8")
            continue
        if kind == "install":
            assert body.strip() == "$ pip install ."
            pytest.importorskip("setuptools", reason="the guide's package builds with setuptools (the dev extra)")
            site = tmp_path / "site"
            p = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                                "--no-index", "--disable-pip-version-check", "--target", str(site), "."],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, p.stdout + p.stderr
            env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
            continue
        want = int(arg.removeprefix("exit").strip()) if arg else 0
        for line in body.splitlines():
            if line.startswith("$ "):
                if "-n" in shlex.split(line[2:]):
                    pytest.importorskip("xdist")
                p = subprocess.run(command(line[2:]), cwd=tmp_path, env=env, capture_output=True, text=True,
                                   timeout=600)
                assert p.returncode == want, f"{line}\nexit {p.returncode}, expected {want}\n{p.stdout}\n{p.stderr}"
                ran.append((line, p.stdout))
    outputs = dict(ran)
    assert "tinybn: conforms" in outputs["$ bnspec run tinybn_adapter.py:TinyBnAdapter --seed 0"]
    assert re.search(r"^tinybn +yes ", outputs["$ bnspec list"], re.M)
    assert "tinybn: conforms" in outputs["$ bnspec run tinybn"]
    # Every check is an item; tinybn passes the ones it supports and skips the rest, failing none.
    counts = re.search(r"(\d+) passed, (\d+) skipped", outputs["$ pytest --bnspec=tinybn -n 2"])
    assert counts and int(counts[1]) + int(counts[2]) == len(CHECKS) and int(counts[1]) > len(CHECKS) // 2
    assert " failed" not in outputs["$ pytest --bnspec=tinybn -n 2"]


def test_the_guide_shows_what_the_run_prints(tmp_path):
    """The output shown under the full run is what that run prints (times aside)."""
    text = (DOCS / "adapters.md").read_text(encoding="utf-8")
    shown = next(body for kind, _, body in guide_steps(text) if kind == "run" and "--seed 0" in body)
    for kind, name, body in guide_steps(text):
        if kind == "file":
            (tmp_path / name).write_text(body, encoding="utf-8")  # the last version of each file wins
    (tmp_path / "pyproject.toml").unlink()
    line = next(x for x in shown.splitlines() if x.startswith("$ "))
    p = subprocess.run(command(line[2:].replace("--seed 0", "--seed 0 --examples 20")), cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    printed = re.sub(r" in [\d.]+ s ", " in T s ", p.stdout)
    for expected in shown.splitlines()[1:]:
        if expected.strip() != "...":
            assert re.sub(r" in [\d.]+ s ", " in T s ", expected) in printed, expected


def test_docs_link_to_files_that_exist():
    for doc in ("adapters.md", "vectors.md", "reading-reports.md"):
        text = (DOCS / doc).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if "://" not in target:
                assert (DOCS / target).resolve().exists(), f"{doc} links to {target}, which does not exist"


def test_reading_reports_explains_every_status_and_option():
    text = (DOCS / "reading-reports.md").read_text(encoding="utf-8")
    for status in typing.get_args(Status):
        assert f"**{status}**" in text, f"docs/reading-reports.md does not explain the status {status!r}"


def test_the_plugin_options_are_documented():
    from bnspec import pytest_plugin

    text = (DOCS / "adapters.md").read_text(encoding="utf-8")
    source = Path(pytest_plugin.__file__).read_text(encoding="utf-8")
    for option in re.findall(r'addoption\("(--[a-z-]+)"', source):
        assert option in text, f"docs/adapters.md does not mention {option}"


def test_the_vectors_doc_names_every_manifest_field(tmp_path):
    import json

    from bnspec.vectors import export

    manifest = json.loads(export(tmp_path / "corpus").read_text())
    text = (DOCS / "vectors.md").read_text(encoding="utf-8")
    case = manifest["cases"][0]
    step, out = case["steps"][0], case["steps"][0]["outputs"]["y"]
    names = set(manifest) | set(case) | set(step) | set(step["params"]) | set(out)
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert not missing, f"docs/vectors.md does not describe {missing}"
    assert f"Version {manifest['version']} has {len(manifest['cases'])} cases" in text
    assert all(f"`{c}`" in text for c in manifest["not_covered"])
