"""Third-party adapters: a real package, pip-installed here, found through the ``bnspec.adapters`` group.

``tests/fixtures/packages/bnspec-demo`` declares one working adapter and three broken entry
points; ``bnspec-clash`` declares a name bnspec-demo already has and a built-in's name. Each is
built and installed with pip into its own folder (``--target``), which the commands below see
through ``PYTHONPATH``, as they would see any installed package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bnspec.conformance import CHECKS

PACKAGES = Path(__file__).resolve().parent / "fixtures" / "packages"


def _install(name: str, tmp: Path) -> Path:
    pytest.importorskip("setuptools", reason="building the test package needs setuptools (the dev extra)")
    source, target = tmp / "src" / name, tmp / "site"
    shutil.copytree(PACKAGES / name, source)  # pip builds in the source folder: keep the repository clean
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
           "--disable-pip-version-check", "--target", str(target), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return target


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory) -> Path:
    return _install("bnspec-demo", tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def clash_site(tmp_path_factory) -> Path:
    return _install("bnspec-clash", tmp_path_factory.mktemp("clash"))


def run(args: list[str], *sites: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*map(str, sites), os.environ.get("PYTHONPATH", "")]))
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def _row(listing: str, name: str) -> str:
    return next(line for line in listing.splitlines() if line.split()[:1] == [name])


def test_list_shows_the_adapter_and_each_broken_entry_point_with_its_reason(demo_site):
    p = run(["-m", "bnspec", "list"], demo_site)
    assert p.returncode == 0, p.stderr
    assert _row(p.stdout, "demo").split()[1] == "yes"
    assert _row(p.stdout, "reference").split()[1] == "yes"  # the built-ins are still listed
    broken = {
        "demo-broken-import": "ModuleNotFoundError: No module named 'bnspec_demo_framework_that_is_not_installed'",
        "demo-not-an-adapter": "not an adapter: it lacks name, capabilities, run",
        "demo-missing-attr": "AttributeError",
    }
    for name, reason in broken.items():
        row = _row(p.stdout, name)
        assert row.split()[1] == "no" and reason in row and "bnspec-demo 0.1" in row, row


def test_the_command_runs_the_installed_adapter_by_name(demo_site, tmp_path):
    out = tmp_path / "r.json"
    p = run(["-m", "bnspec", "run", "demo", "--examples", "2", "--seed", "1", "--check", "train-output,ARG",
             "--json", str(out)], demo_site)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "demo: conforms" in p.stdout
    # The report records the third-party package and what it requires (the framework it wraps).
    env = json.loads(out.read_text())["environment"]
    assert env["bnspec-demo"] == "0.1" and env["numpy"]


def test_a_broken_entry_point_is_a_load_error_naming_it(demo_site):
    p = run(["-m", "bnspec", "run", "demo-broken-import", "--examples", "1"], demo_site)
    assert p.returncode == 2
    assert "demo-broken-import" in p.stderr and "cannot be imported" in p.stderr and "Traceback" not in p.stderr


def test_the_pytest_plugin_runs_it_with_two_workers(demo_site, tmp_path):
    pytest.importorskip("xdist")
    p = run(["-m", "pytest", "--bnspec=demo", "--bnspec-examples", "2", "-n", "2", "-p", "no:cacheprovider"],
            demo_site, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    sync = sum(c.area == "SYNC" for c in CHECKS)  # a single-replica adapter: the SYNC checks are skipped
    assert f"{len(CHECKS) - sync} passed, {sync} skipped" in p.stdout and "2 workers" in p.stdout


def test_a_name_declared_twice_or_taken_by_a_builtin_is_refused(demo_site, clash_site):
    p = run(["-m", "bnspec", "list"], demo_site, clash_site)
    assert p.returncode == 0, p.stderr
    demo = _row(p.stdout, "demo")
    assert " no " in demo and "declared by several packages" in demo and "bnspec-clash 0.2" in demo, demo
    assert _row(p.stdout, "demo-not-an-adapter").split()[1] == "no"
    shadowed = [line for line in p.stdout.splitlines() if "shadowed by the built-in" in line]
    assert len(shadowed) == 1 and shadowed[0].startswith("reference"), p.stdout
    p = run(["-m", "bnspec", "run", "demo", "--examples", "1"], demo_site, clash_site)
    assert p.returncode == 2 and "declared by several packages" in p.stderr
