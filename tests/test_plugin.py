"""The pytest plugin (``bnspec/pytest_plugin.py``), run as a user's pytest runs it, through ``pytester``.

The plugin is installed with bnspec (the ``pytest11`` entry point), so every inner run below
loads it exactly as a framework's CI would.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from bnspec.conformance import CHECKS

# A single-replica adapter runs every check but the SYNC ones, which it skips as unsupported.
SYNC = sum(c.area == "SYNC" for c in CHECKS)
SINGLE = len(CHECKS) - SYNC

pytest_plugins = ["pytester"]

VARIANTS = Path(__file__).resolve().parent / "adapters" / "variants.py"
FAST = ("--bnspec-examples", "2", "-p", "no:cacheprovider")


def test_registered_through_the_pytest11_entry_point():
    assert any(ep.value == "bnspec.pytest_plugin" for ep in entry_points(group="pytest11"))


def test_inert_without_the_option(pytester):
    """No items, no suite imported, only the options added."""
    pytester.makepyfile(test_one="""
        import sys
        def test_nothing_of_bnspec_loaded():
            assert "bnspec.conformance" not in sys.modules
            assert "torch" not in sys.modules
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "bnspec:" not in result.stdout.str()
    assert "--bnspec=TARGET" in pytester.runpytest("--help").stdout.str()


def test_every_check_is_an_item_named_by_check_and_clause(pytester):
    result = pytester.runpytest("--bnspec=reference", "--bnspec-seed", "5", "--collect-only", "-q", *FAST)
    ids = [line for line in result.stdout.lines if line.startswith("bnspec::")]
    assert ids == [f"bnspec::test_bnspec[reference::{c.name}::{_own_clause(c)}]" for c in CHECKS]


def _own_clause(check) -> str:
    return next((c for c in check.clauses if c.split("-")[1] == check.area), check.clauses[0])


def test_reference_passes_every_check_beside_the_users_own_tests(pytester):
    pytester.makepyfile(test_mine="def test_mine(): pass")
    result = pytester.runpytest("--bnspec=reference", *FAST)
    result.assert_outcomes(passed=SINGLE + 1, skipped=SYNC)
    assert re.search(r"bnspec: conformance of reference with seed \d+", result.stdout.str())


def test_k_selects_by_check_clause_and_area(pytester):
    result = pytester.runpytest("--bnspec=reference", "-k", "BN-RUN-2 and not scenario", *FAST)
    with_clause = [c for c in CHECKS if "BN-RUN-2" in c.clauses and "scenario" not in c.name]
    result.assert_outcomes(passed=len(with_clause))
    result = pytester.runpytest("--bnspec=reference", "-k", "ARG", *FAST)
    result.assert_outcomes(passed=sum(c.area == "ARG" for c in CHECKS))


def test_a_failure_reads_as_the_command_prints_it(pytester):
    """BN-ARG-5: an adapter that accepts any momentum fails with the clause, case and reproducer."""
    result = pytester.runpytest(f"--bnspec={VARIANTS}:NoMomentumCheck", "--bnspec-seed", "7", *FAST)
    result.assert_outcomes(passed=SINGLE - 1, failed=1, skipped=SYNC)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*test_bnspec[[]no-momentum-check::arg-momentum-range::BN-ARG-5[]]*",
        "FAIL*arg-momentum-range*BN-ARG-5",
        "*accepted a momentum outside [[]0, 1[]] without raising*",
        "*reproducer:*",
        "*rerun: bnspec run * --seed 7 --examples 2 --check arg-momentum-range*",
    ])
    assert "Traceback" not in out and "CheckFailed" not in out


def test_x_stops_at_the_first_failure(pytester):
    result = pytester.runpytest(f"--bnspec={VARIANTS}:NoMomentumCheck", "-x", *FAST)
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 and outcomes.get("passed", 0) < SINGLE - 1


def test_unsupported_skips_deviation_xfails_stale_xpasses(pytester):
    result = pytester.runpytest(f"--bnspec={VARIANTS}:MinimalReference", "-rs", *FAST)
    outcomes = result.parseoutcomes()
    assert outcomes["skipped"] >= 5 and "failed" not in outcomes
    result.stdout.fnmatch_lines(["SKIPPED*unsupported: the adapter computes no gradients*"])

    result = pytester.runpytest(f"--bnspec={VARIANTS}:StaleDeviation", "-rX", *FAST)
    result.assert_outcomes(passed=SINGLE - 1, xpassed=1, skipped=SYNC)
    result.stdout.fnmatch_lines(["XPASS*arg-momentum-range*thought so*"])


def test_a_declared_deviation_is_an_xfail(pytester):
    pytester.makepyfile(deviant="""
        from dataclasses import replace
        from bnspec.adapters.reference import ReferenceAdapter

        class Declared(ReferenceAdapter):
            name = "declared"
            capabilities = replace(ReferenceAdapter.capabilities,
                                   known_deviations=(("arg-momentum-range", "momentum is not validated"),))

            def run(self, case):
                if case.momentum is not None and not 0 <= case.momentum <= 1:
                    case = replace(case, momentum=0.5)  # the deviation it declares
                return super().run(case)
    """)
    result = pytester.runpytest("--bnspec=deviant.py:Declared", "-k", "ARG", "-rx", *FAST)
    result.assert_outcomes(passed=sum(c.area == "ARG" for c in CHECKS) - 1, xfailed=1)
    result.stdout.fnmatch_lines(["XFAIL*arg-momentum-range*known deviation: momentum is not validated*"])


def test_an_unloadable_target_is_a_collection_error(pytester):
    result = pytester.runpytest("--bnspec=no-such-adapter", *FAST)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*--bnspec: cannot load 'no-such-adapter'*available:*reference*"])


def test_xdist_workers_share_one_seed(pytester):
    """Without --bnspec-seed the controller draws one; the workers' failure text quotes it."""
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess(f"--bnspec={VARIANTS}:NoMomentumCheck", "-n", "2", *FAST)
    result.assert_outcomes(passed=SINGLE - 1, failed=1, skipped=SYNC)
    out = result.stdout.str()
    header = re.search(r"bnspec: conformance of \S+ with seed (\d+)", out)
    rerun = re.search(r"rerun: bnspec run \S+ --seed (\d+)", out)
    assert header and rerun and header.group(1) == rerun.group(1), out
