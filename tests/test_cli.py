"""The bnspec command, run as users run it: exit codes, JSON report, list, spec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bnspec.cli import main

HERE = Path(__file__).resolve().parent


def bnspec(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bnspec", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_run_reference_exits_zero_and_writes_json(tmp_path):
    out = tmp_path / "r" / "report.json"
    p = bnspec("run", "reference", "--seed", "3", "--examples", "4", "--json", str(out))
    assert p.returncode == 0, p.stderr
    assert "reference: conforms" in p.stdout and "TRAIN" in p.stdout
    data = json.loads(out.read_text())
    assert data["schema_version"] == 3 and data["seed"] == 3 and data["summary"]["ok"] is True
    assert data["complete"] is True and data["environment"]["numpy"]
    names = {c["name"] for c in data["checks"]}
    assert {"train-output", "grad-train", "arg-one-value", "scenario-multistep"} <= names
    for c in data["checks"]:
        assert c["clauses"] and c["status"] in ("pass", "profile", "unsupported")


def test_run_failing_adapter_exits_one(tmp_path):
    target = f"{HERE / 'adapters' / 'variants.py'}:NoMomentumCheck"
    p = bnspec("run", target, "--seed", "1", "--examples", "3", "--check", "ARG")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL" in p.stdout and "BN-ARG-5" in p.stdout and "Traceback" not in p.stdout + p.stderr


def test_unknown_target_exits_two_and_lists_adapters():
    p = bnspec("run", "no-such-adapter")
    assert p.returncode == 2
    assert "available:" in p.stderr and "reference" in p.stderr and "torch" in p.stderr


@pytest.mark.parametrize("args", [["run"], ["run", "reference", "--examples", "-1"], ["frobnicate"]])
def test_misuse_exits_two(args):
    assert bnspec(*args).returncode == 2


def test_unmatched_check_pattern_exits_two():
    assert bnspec("run", "reference", "--check", "zzz-nothing").returncode == 2


def test_module_attr_and_file_targets(capsys):
    assert main(["run", "tests.adapters.variants:biased", "--examples", "2", "--check", "RUN", "-q"]) == 0
    assert "conforms" in capsys.readouterr().out


def test_list_shows_every_builtin_with_usability(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("reference", "torch", "torch-functional", "torch-cuda"):
        assert name in out
    cuda = next(line for line in out.splitlines() if line.startswith("torch-cuda"))
    assert " no " in cuda or " yes " in cuda


def test_spec_prints_a_clause_and_the_list(capsys):
    assert main(["spec", "BN-RUN-2"]) == 0
    assert "unbiased" in capsys.readouterr().out.lower()
    assert main(["spec"]) == 0
    listing = capsys.readouterr().out
    assert "BN-TRAIN-3" in listing and "BN-PREC-1" in listing
    assert main(["spec", "BN-" + "NOPE-9"]) == 2  # built, so the clause-ID scan does not see it


def test_run_help_states_the_real_default_example_count():
    from bnspec.cli import parser
    from bnspec.conformance import DEFAULT_EXAMPLES

    run = parser()._subparsers._group_actions[0].choices["run"]
    text = next(a.help for a in run._actions if "--examples" in a.option_strings)
    assert f"(default: {DEFAULT_EXAMPLES})" in text


def test_an_output_path_that_cannot_be_written_is_refused_before_the_run(tmp_path):
    """Nothing computed is lost at the end: --json, --junit and matrix --out are checked first (exit 2,
    naming the option), and a target named twice in a matrix is one column."""
    (tmp_path / "afile").write_text("")
    for args in (("run", "reference", "--json", str(tmp_path / "afile" / "r.json")),
                 ("run", "reference", "--junit", str(tmp_path / "afile" / "r.xml")),
                 ("matrix", "reference", "--out", str(tmp_path / "afile"))):
        p = bnspec(*args)
        assert p.returncode == 2 and "cannot write" in p.stderr and args[2] in p.stderr, p.stderr
        assert "Traceback" not in p.stderr
    p = bnspec("matrix", "reference", "reference", "--examples", "2", "--out", str(tmp_path / "m"))
    assert p.returncode == 0, p.stderr
    header = next(line for line in (tmp_path / "m" / "conformance.md").read_text().splitlines()
                  if line.startswith("| check |"))
    assert header.count("reference") == 1


def test_capabilities_refuse_an_unknown_derivative_mode():
    from bnspec.adapters.contract import Capabilities
    from bnspec.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="unknown derivative mode 'hessian'"):
        Capabilities(derivatives=("jvp", "hessian"))
    with pytest.raises(InvalidArgument, match="max_order=0"):
        Capabilities(max_order=0)
