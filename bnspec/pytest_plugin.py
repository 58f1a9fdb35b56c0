"""The pytest plugin: ``pytest --bnspec=TARGET`` runs every conformance check as a test item.

A framework adds one line to its CI and gets the suite inside its own test run: ``-k``, ``-x``,
``-n`` (pytest-xdist) and JUnit XML work as for any test. Registered through the ``pytest11``
entry point, the plugin is inert unless ``--bnspec`` is given: it adds its options and nothing
else (no items, no import of the suite or of any framework).

Statuses map onto pytest outcomes (``docs/adapters.md`` explains why):

* pass, profile: passed;
* unsupported: skipped, with the reason;
* deviation (a finding the adapter declares): xfailed; a declared deviation that passes (status
  stale) is XPASS, the sign of a stale declaration;
* shortfall (meets every MUST, misses a quality SHOULD): passed, with a ``QualityShortfall`` warning;
* timeout, unjudged (the suite could not judge): skipped, the reason starting "could not judge";
* fail, error, crash, and any status this plugin does not know: failed, with the text ``bnspec run``
  prints for the check.

Every process runs with the same seed: ``--bnspec-seed`` or, without it, one drawn once in the
controlling process and handed to pytest-xdist's workers, so items are the same on every worker
and a failure reproduces from the seed printed in the header and in its message.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import pytest

PASSING = ("pass", "profile", "stale")
NODE_PATH = "bnspec"  # the first part of every item's node ID


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {value}")
    return value


class QualityShortfall(UserWarning):
    """A check of the quality tier (a SHOULD) fell short; the MUSTs are met."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bnspec", "batch-normalization conformance (bnspec)")
    group.addoption("--bnspec", metavar="TARGET", default=None,
                    help="run the bnspec conformance checks against TARGET: an adapter name "
                         "(see 'bnspec list'), module:attr, or path/to/file.py:attr")
    group.addoption("--bnspec-seed", metavar="N", type=_count, default=None,
                    help="seed of the case generation (default: drawn once per session and printed)")
    group.addoption("--bnspec-examples", metavar="N", type=_count, default=None,
                    help="hypothesis examples per check (default: as 'bnspec run')")


def pytest_configure(config: pytest.Config) -> None:
    target = config.getoption("bnspec")
    if target:
        config.pluginmanager.register(Conformance(config, target), "bnspec-conformance")


class CheckFailed(Exception):
    """A check that failed or errored; its message is what ``bnspec run`` prints for it."""


class KnownDeviation(Exception):
    """A check that departs as the adapter declares (``Capabilities.known_deviations``)."""


class Conformance:
    """The session's settings and the adapter under test; registered only under ``--bnspec``."""

    def __init__(self, config: pytest.Config, target: str) -> None:
        from .conformance import DEFAULT_EXAMPLES

        self.target = target
        examples = config.getoption("bnspec_examples")
        self.examples: int = DEFAULT_EXAMPLES if examples is None else examples
        worker = getattr(config, "workerinput", None)  # set in pytest-xdist's workers
        if worker is not None and "bnspec_seed" in worker:
            self.seed: int = worker["bnspec_seed"]
        elif config.getoption("bnspec_seed") is not None:
            self.seed = config.getoption("bnspec_seed")
        else:
            self.seed = random.SystemRandom().randrange(2**31)
        self.adapter: Any = None

    def pytest_report_header(self) -> str:
        return (f"bnspec: conformance of {self.target} with seed {self.seed} (reproduce with "
                f"--bnspec-seed {self.seed}), {self.examples} examples per check")

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist: every worker gets the controller's seed."""
        node.workerinput["bnspec_seed"] = self.seed

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Any:
        """Add the suite to the session's top-level collectors, beside the test files."""
        report = yield
        if isinstance(collector, pytest.Session) and report.passed:
            report.result.append(Suite.from_parent(collector, name=NODE_PATH, nodeid=NODE_PATH, conformance=self))
        return report


def primary_clause(check: Any) -> str:
    """The clause an item is named by: the first of the check's own area, else its first."""
    own = [c for c in check.clauses if c.split("-")[1] == check.area]
    return (own or list(check.clauses))[0]


class Suite(pytest.Collector):
    """The conformance checks as items; collecting loads the adapter (a failure is a collection error)."""

    def __init__(self, *, conformance: Conformance, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conformance = conformance

    def collect(self) -> list[pytest.Item]:
        from .adapters import load
        from .conformance import select

        c = self.conformance
        try:
            c.adapter = load(c.target)
        except Exception as exc:  # noqa: BLE001 - an adapter's import may fail in any way
            raise self.CollectError(f"--bnspec: cannot load {c.target!r}: {type(exc).__name__}: {exc}") from exc
        items = []
        for check in select(None):
            name = f"test_bnspec[{c.adapter.name}::{check.name}::{primary_clause(check)}]"
            item = ConformanceItem.from_parent(self, name=name, nodeid=f"{NODE_PATH}::{name}", check=check,
                                               conformance=c)
            item.extra_keyword_matches.update({check.name, check.area, *check.clauses})
            deviation = c.adapter.capabilities.deviation(check.name)
            if deviation:
                item.add_marker(pytest.mark.xfail(reason=f"known deviation: {deviation}", raises=KnownDeviation,
                                                  strict=False))
            items.append(item)
        return items


class ConformanceItem(pytest.Item):
    """One conformance check against the session's adapter."""

    def __init__(self, *, check: Any, conformance: Conformance, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check, self.conformance = check, conformance

    def runtest(self) -> None:
        import warnings

        from .conformance import run_check

        c = self.conformance
        with warnings.catch_warnings():
            # The suite feeds NaN, infinities and invalid arguments on purpose: the backend's
            # warnings about them are noise here, and under -W error they would turn into failures.
            warnings.simplefilter("ignore")
            result = run_check(c.adapter, self.check, c.examples, c.seed, c.target)
        self.user_properties += [("bnspec_status", result.status), ("bnspec_budget", result.budget)]
        if result.note and result.status in PASSING:
            self.add_report_section("call", "bnspec", result.note)
        if result.status in PASSING:
            return
        if result.status == "unsupported":
            # Reported at the item (the check's source), as pytest's own skip marks are.
            raise pytest.skip.Exception(f"unsupported: {result.message}", _use_item_location=True)
        if result.status in ("timeout", "unjudged"):
            raise pytest.skip.Exception(f"could not judge: {result.message}", _use_item_location=True)
        if result.status == "shortfall":
            warnings.warn(QualityShortfall(self._failure_text(result)), stacklevel=1)
            return
        text = self._failure_text(result)
        if result.status == "deviation":
            raise KnownDeviation(text)
        raise CheckFailed(text)

    def _failure_text(self, result: Any) -> str:
        from dataclasses import asdict

        from .conformance.render import details
        from .conformance.results import RunReport

        c = self.conformance
        report = RunReport(adapter=c.adapter.name, target=c.target, capabilities=asdict(c.adapter.capabilities),
                           environment={}, seed=c.seed, examples=c.examples, results=[result])
        return (f"{details(report)}\n    rerun: bnspec run {c.target} --seed {c.seed} --examples {c.examples} "
                f"--check {self.check.name}   (or pytest --bnspec={c.target} --bnspec-seed {c.seed} "
                f"-k {self.check.name})")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (CheckFailed, KnownDeviation)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        """Where the check is defined, so that a report points at its source."""
        import inspect

        cls = type(self.check)
        try:
            return inspect.getsourcefile(cls) or self.path, inspect.getsourcelines(cls)[1], self.name
        except (OSError, TypeError):
            return self.path, None, self.name
