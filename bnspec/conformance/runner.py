"""Running the suite against one adapter: fixed cases, then hypothesis-drawn ones, per check.

A check's property run is seeded from the run's seed and the check's name, so ``--seed N``
reproduces a run exactly, and any one check can be rerun alone with the same cases. When a case
fails, hypothesis shrinks it; the last case it ran is the minimal one the report shows.

Given a ``WorkerAdapter`` (``isolation.py``), the backend runs in another process: a crash, a hang or
a result that cannot come back ends only the check it happened in (status crash, timeout or error,
with that case), and the next check gets a fresh worker. Such a case is not shrunk: each try could
cost a crash or a whole timeout. Ctrl-C stops the run and returns what finished, marked incomplete.
"""

from __future__ import annotations

import fnmatch
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

from ..adapters.contract import GOVERNING, Adapter, Finding
from .cases import Recipe
from .check import Check, Context
from .checks import CHECKS
from .compare import Verdict
from .isolation import WorkerAdapter, WorkerFault
from .repro import reproducer
from .results import CheckResult, RunReport, environment

DEFAULT_EXAMPLES = 20


class _Failed(Exception):
    """Raised inside a property so hypothesis shrinks the case."""


def check_seed(run_seed: int, name: str) -> int:
    return (run_seed * 1_000_003 + zlib.crc32(name.encode())) % 2**32


def select(pattern: str | None, checks: Iterable[Check] = CHECKS) -> list[Check]:
    """The checks whose name, area or clause IDs match a glob ``pattern`` (comma-separated)."""
    checks = list(checks)
    if not pattern:
        return checks
    pats = [p.strip() for p in pattern.split(",") if p.strip()]

    def hit(c: Check) -> bool:
        keys = [c.name, c.area, *c.clauses]
        return any(fnmatch.fnmatchcase(k.lower(), p.lower()) or p.lower() in k.lower() for p in pats for k in keys)

    return [c for c in checks if hit(c)]


def triggers(check: Check, caps: Any) -> list[Any]:
    """The trigger cases of the findings ``caps`` declares for ``check``, built and prepared."""
    out = []
    for f in caps.findings:
        if f.trigger_check == check.name and f.trigger:
            out.append(check.prepare(Recipe(**dict(f.trigger)).build(), None))
    return out


def governing(check: Check, output: str | None) -> tuple[str, ...]:
    """The clauses a failure of ``output`` in ``check`` may be attributed to: the check's own, and the
    clauses that govern that output wherever it fails (``contract.GOVERNING``)."""
    if check.level == "SHOULD":  # a quality shortfall is a finding only when declared against the SHOULD itself
        return check.clauses
    return tuple(dict.fromkeys([*GOVERNING.get(output or "", ()), *check.clauses]))


def attributed(check: Check, verdict: Verdict) -> str:
    """The one clause named for a failure: the check's clause governing the failing output, else the
    output's own governing clause, else the check's first."""
    output = verdict.worst.get("output") or ""
    own = [c for c in check.clauses if c in GOVERNING.get(output, ())]
    where = own[0] if own else (GOVERNING[output][0] if output in GOVERNING else check.clauses[0])
    return f"{where} via {output}" if output else where


def _describe(subject: Any) -> str:
    describe = getattr(subject, "describe", None)
    return describe() if describe else repr(subject)


def run_check(adapter: Adapter, check: Check, examples: int, run_seed: int, target: str) -> CheckResult:
    caps = adapter.capabilities
    base = dict(name=check.name, area=check.area, clauses=list(check.clauses), description=check.doc)
    reason = check.unsupported(caps)
    if reason:
        return CheckResult(status="unsupported", message=reason, **base)
    ctx = Context(caps)
    start = time.perf_counter()
    worst = Verdict()
    count = 0
    failing: tuple[Any, Verdict] | None = None
    explained: tuple[Any, Verdict, Finding] | None = None  # the first failure a declared finding explains
    current: Any = None  # the case being run, for a fault's report

    said: list[str] = []  # what a passing verdict says (a correct refusal of an order not offered)

    def attempt(subject: Any) -> Verdict:
        nonlocal worst, count, failing, explained, current
        current = subject
        v = check.evaluate(adapter.run, subject, ctx)
        count += 1
        if v.ok and v.message and v.message not in said:
            said.append(v.message)
        worst = Verdict(worst.ok, max(worst.budget, v.budget if v.ok else 0.0))
        if not v.ok and v.judged and not v.worst.get("malformed"):
            finding = caps.finding_for(governing(check, v.worst.get("output")), v.worst.get("output"))
            if finding is not None:  # known: keep looking for a departure it does not explain
                explained = explained or (subject, v, finding)
                return Verdict(budget=0.0)
        if not v.ok:
            failing = (subject, v)
        return v

    fault: WorkerFault | None = None
    try:
        for case in triggers(check, caps) + check.fixed_cases(caps):
            if not attempt(case).ok:
                break
        strategy = check.strategy(caps) if failing is None and examples > 0 else None
        if strategy is not None:
            def prop(subject: Any) -> None:
                if not attempt(subject).ok:
                    raise _Failed

            test = settings(
                max_examples=examples, database=None, deadline=None, derandomize=False, verbosity=Verbosity.quiet,
                suppress_health_check=list(HealthCheck), report_multiple_bugs=False, print_blob=False,
                phases=(Phase.explicit, Phase.generate, Phase.shrink),
            )(seed(check_seed(run_seed, check.name))(given(strategy)(prop)))
            try:
                test()
            except _Failed:
                pass
            except Exception as exc:  # noqa: BLE001 - hypothesis' own errors (flaky, unsatisfiable) are results too
                if failing is None:
                    return CheckResult(status="error", examples=count, message=f"the suite could not run this check: "
                                       f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - start, **base)
    except WorkerFault as exc:  # a BaseException: it went through the check and hypothesis untouched
        fault = exc
    seconds = time.perf_counter() - start
    if fault is not None and failing is None:
        return CheckResult(
            status=fault.status,  # type: ignore[arg-type]
            examples=count + 1,
            budget=worst.budget if count else None,
            message=f"{fault.reason} ({', '.join(check.clauses)}) [{adapter.name}: {_describe(current)}]",
            case=_describe(current),
            reproducer=reproducer(target, current, refusal=check.judges_refusal) or None,
            seconds=seconds,
            detail=fault.detail,
            **base,
        )
    if failing is None and explained is not None:
        subject, verdict, finding = explained
        return CheckResult(
            status="deviation", examples=count, budget=verdict.budget,
            message=f"{verdict.message} ({', '.join(check.clauses)}) [{adapter.name}: {_describe(subject)}]",
            case=_describe(subject), worst=verdict.worst, seconds=seconds,
            reproducer=reproducer(target, subject, verdict.worst.get("output"), verdict.worst.get("index"),
                                  refusal=check.judges_refusal),
            note=f"known finding {finding.describe()} (attributed to {attributed(check, verdict)})",
            finding=finding.id, **base)
    if failing is None:
        status = "profile" if check.uses_profile(caps) else "pass"
        note = f"conforms under profile {', '.join(check.profiles_used(caps))}" if status == "profile" else ""
        stale = [f for f in caps.findings if f.trigger_check == check.name]
        if stale:
            status = "stale"
            note = "; ".join(f"finding {f.id}'s trigger case passed: the declaration is stale ({f.summary})"
                             for f in stale)
        elif caps.deviation(check.name):
            note = (f"declared as a known deviation, not seen in these cases; with no trigger case declared, "
                    f"staleness is not decided ({caps.deviation(check.name)})")
        note = "; ".join(filter(None, [note, *said[:2]]))
        return CheckResult(status=status, examples=count, budget=worst.budget if count else None,
                           seconds=seconds, note=note, finding=",".join(f.id for f in stale), **base)
    subject, verdict = failing
    deviation = caps.deviation(check.name) if verdict.judged else None
    note = f"known deviation: {deviation}" if deviation else ""
    if fault is not None:  # a failure was found; a fault while shrinking it ends the shrinking only
        note = "; ".join(filter(None, [note, f"shrinking stopped: {fault.status} on {_describe(current)}: {fault.reason}"]))
    return CheckResult(
        status=("unjudged" if not verdict.judged else "deviation" if deviation
                else "shortfall" if check.level == "SHOULD" else "fail"),
        examples=count,
        budget=verdict.budget,
        message=f"{verdict.message} ({', '.join(check.clauses)}) [{adapter.name}: {_describe(subject)}]",
        case=_describe(subject),
        worst=verdict.worst,
        reproducer=reproducer(target, subject, verdict.worst.get("output"), verdict.worst.get("index"),
                              refusal=check.judges_refusal),
        seconds=seconds,
        note=note,
        detail=fault.detail if fault is not None else "",
        finding=finding_id(deviation) if deviation else "",
        **base,
    )


def finding_id(reason: str) -> str:
    """The finding ID a declared reason starts with (``"T5: the CPU kernels..."`` -> ``"T5"``), or ""."""
    head = reason.split(":", 1)[0].strip()
    return head if 1 < len(head) <= 5 and head[0].isupper() and head[1:].isalnum() and any(ch.isdigit() for ch in head) else ""


def run(adapter: Adapter, *, target: str | None = None, examples: int = DEFAULT_EXAMPLES, run_seed: int = 0,
        pattern: str | None = None, on_result: Callable[[CheckResult], None] | None = None,
        backend_modules: tuple[str, ...] = (), on_start: Callable[[Check], None] | None = None) -> RunReport:
    """Run every selected check against ``adapter``; ``on_start`` sees each check as it begins,
    ``on_result`` each result as it lands.

    Ctrl-C (``KeyboardInterrupt``) stops the run: the report holds what finished, with
    ``complete`` False. The environment comes from the worker for a ``WorkerAdapter``, else from
    this process (``backend_modules``: the modules whose versions to record).
    """
    start = time.perf_counter()
    target = target or adapter.name
    isolated = isinstance(adapter, WorkerAdapter)
    report = RunReport(adapter=adapter.name, target=target, capabilities=asdict(adapter.capabilities),
                       environment={}, seed=run_seed, examples=examples,
                       timeout=adapter.timeout if isolated else None)
    checks = select(pattern)
    report.planned = len(checks)
    try:
        for check in checks:
            if on_start is not None:
                on_start(check)
            result = run_check(adapter, check, examples, run_seed, target)
            report.results.append(result)
            if on_result is not None:
                on_result(result)
    except KeyboardInterrupt:
        report.complete = False
    if isolated:
        report.environment = adapter.environment()
    else:
        report.environment = environment(backend_modules, adapter.capabilities.device, type(adapter).__module__)
    report.seconds = time.perf_counter() - start
    return report


class Stop:
    """Which signal stopped the run (``signum``), and whether more are being held off."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.holding = False

    def handle(self, signum: int, frame: object) -> None:
        self.signum = self.signum or signum
        if not self.holding:
            raise KeyboardInterrupt

    def hold(self) -> None:
        """From now on a signal is only recorded: what finished is being written."""
        self.holding = True


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """Within the block, SIGINT and SIGTERM raise ``KeyboardInterrupt``, which ``run`` turns into
    an incomplete report; ``Stop.signum`` says which came. Outside the main thread, a no-op."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.signal(s, stop.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
