"""The ``bnspec`` command: ``run`` an adapter through the suite, ``list`` adapters, read the ``spec``.

Exit status of ``run`` (and of ``matrix``, over every adapter):

- 0: conforms (known findings, quality shortfalls and stale declarations included, unless ``--strict``);
- 1: does not conform (a check failed, errored or crashed), or ``--strict`` and the verdict is not plain
  "conforms";
- 2: the target cannot be loaded, or the command is misused;
- 3: no departure found, but the verdict is open: some checks could not be judged (a timeout, a refusal
  whose valid twin also failed) or none applied;
- 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM) when the run was interrupted; the reports
  then hold what finished.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNJUDGED = 0, 1, 2, 3


def _count(text: str) -> int:
    """A non-negative integer; argparse prefixes the option's name to the error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive, finite number of seconds, got {text!r}")
    return value


def exit_status(report: object, strict: bool) -> int:
    """The exit status of a finished run's report (``RunReport``), as the module docstring says."""
    if report.ok:  # type: ignore[attr-defined]
        return EXIT_FAIL if strict and not report.strict_ok else EXIT_OK  # type: ignore[attr-defined]
    return EXIT_FAIL if report.verdict == "DOES NOT CONFORM" else EXIT_UNJUDGED  # type: ignore[attr-defined]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bnspec", description="Batch-normalization specification and conformance suite.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="run the conformance suite against an adapter")
    run.add_argument("target", help="adapter name (see 'bnspec list'), module:attr, or path/to/file.py:attr")
    run.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    run.add_argument("--seed", type=_count, help="seed of the case generation (default: random, printed)")
    # The default is bnspec.conformance.DEFAULT_EXAMPLES, written out to keep the parser light (tests/test_cli.py).
    run.add_argument("--examples", type=_count, help="hypothesis examples per check (default: 20)")
    run.add_argument("--check", metavar="PATTERN", help="only checks whose name, area or clause matches (glob, comma-separated)")
    run.add_argument("--strict", action="store_true",
                     help="exit 1 unless the verdict is plain 'conforms' (known findings, quality shortfalls and "
                          "stale declarations count against it)")
    run.add_argument("-v", "--verbose", action="store_true", help="list every check, not only those that did not pass")
    run.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    run.add_argument("--junit", metavar="PATH", help="write a JUnit XML report (one test case per check)")
    run.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                     help="limit for one case in the worker process (default: 60)")
    run.add_argument("--in-process", action="store_true",
                     help="run the adapter in this process, for debugging (no isolation, no timeout)")

    sub.add_parser("list", help="list the registered adapters and whether each is usable here")

    matrix = sub.add_parser("matrix", help="run adapters, each in its own process, into one Markdown table "
                                           "and one HTML page")
    matrix.add_argument("targets", nargs="*", help="adapters to run (default: every registered adapter usable here)")
    matrix.add_argument("--out", default="bnspec-matrix", metavar="DIR",
                        help="writes DIR/conformance.md, DIR/conformance.html and DIR/reports/*.json "
                             "(default: %(default)s)")
    matrix.add_argument("--seed", type=_count, default=0, help="seed of every run (default: %(default)s)")
    matrix.add_argument("--examples", type=_count, help="hypothesis examples per check (default: run's default)")
    matrix.add_argument("--timeout", type=_seconds, default=1800.0, help="seconds per adapter (default: %(default)s)")
    matrix.add_argument("--strict", action="store_true", help="exit 1 unless every adapter plainly conforms")
    matrix.add_argument("--jobs", type=_count, default=min(2, os.cpu_count() or 1), metavar="N",
                        help="adapters run at a time, each in its own process (default: %(default)s, the CPUs up to "
                             "2; each job may take a few GB of memory). Verdicts do not depend on it: a case that "
                             "times out under load is retried alone")
    matrix.add_argument("--resume", action="store_true",
                        help="reuse each complete report already in DIR/reports from the same seed, examples and "
                             "bnspec version (an interrupted matrix goes on where it stopped; delete a report to "
                             "rerun that adapter)")

    from .accuracy import add_parser as add_accuracy_parser  # light: the sweep imports its modules when run

    add_accuracy_parser(sub)

    spec = sub.add_parser("spec", help="print one clause of the spec, or list them")
    spec.add_argument("clause", nargs="?", help="a clause ID such as BN-RUN-2 (omit to list all)")

    vectors = sub.add_parser("vectors", help="golden vectors for implementations in any language (docs/vectors.md)")
    action = vectors.add_subparsers(dest="vectors_command", metavar="ACTION", required=True)
    export = action.add_parser("export", help="write the corpus: .npy arrays and manifest.json")
    export.add_argument("dir", help="an empty or new folder")
    export.add_argument("--force", action="store_true", help="write over the corpus files in a folder that is not empty")
    check = action.add_parser("check", help="score an implementation's results against the corpus")
    check.add_argument("dir", help="the corpus folder (with manifest.json)")
    check.add_argument("results", help="the results folder (with results.json)")
    check.add_argument("--json", metavar="PATH", help="write the scores as JSON")
    return p


def cmd_run(args: argparse.Namespace) -> int:
    from .conformance import DEFAULT_EXAMPLES, run, select
    from .conformance.isolation import WorkerAdapter
    from .conformance.junit import write_junit
    from .conformance.render import Progress, render, summary, use_colour
    from .conformance.results import BACKEND_MODULES, output_problem, write_json
    from .conformance.runner import stop_on_signals

    checks = select(args.check)
    if args.check and not checks:
        print(f"bnspec: --check {args.check!r} matches no check", file=sys.stderr)
        return EXIT_USAGE
    if args.in_process and args.timeout is not None:
        print("bnspec: --timeout needs the worker process; drop --in-process", file=sys.stderr)
        return EXIT_USAGE
    for option, path in (("--json", args.json), ("--junit", args.junit)):
        problem = path and output_problem(path)
        if problem:
            print(f"bnspec: argument {option}: cannot write {path!r}: {problem}", file=sys.stderr)
            return EXIT_USAGE
    with stop_on_signals() as stopped:
        try:
            adapter = _open_adapter(args.target, args.in_process, args.timeout)
        except KeyboardInterrupt:
            return 128 + (stopped.signum or signal.SIGINT)
        if isinstance(adapter, int):
            return adapter
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
        examples = args.examples if args.examples is not None else DEFAULT_EXAMPLES
        if not args.quiet:
            print(f"bnspec: running {adapter.name} with seed {seed} (reproduce with --seed {seed})", file=sys.stderr)
        progress = None if args.quiet else Progress(sys.stderr, len(checks), adapter.name, use_colour(sys.stderr))
        try:
            report = run(adapter, target=args.target, examples=examples, run_seed=seed, pattern=args.check,
                         on_start=progress.start if progress else None, on_result=progress,
                         backend_modules=BACKEND_MODULES)
        finally:
            stopped.hold()  # from here a signal is only recorded: the reports are written whole
            if isinstance(adapter, WorkerAdapter):
                adapter.close()  # ends the worker
            if progress:
                progress.done()
        if args.json:
            write_json(report, args.json)
        if args.junit:
            write_junit(report, args.junit)
    colour = use_colour(sys.stdout)
    print(summary(report, colour) if args.quiet else render(report, colour, args.verbose))
    if not args.quiet:
        for kind, path in (("report", args.json), ("JUnit XML", args.junit)):
            if path:
                print(f"{kind} written to {path}")
    if not report.complete:
        return 128 + (stopped.signum or signal.SIGINT)
    return exit_status(report, args.strict)


def _open_adapter(target: str, in_process: bool, timeout: float | None):  # type: ignore[no-untyped-def]
    """The adapter for ``target`` (in a worker process unless ``in_process``), or the exit status
    after saying why it cannot be loaded."""
    from .adapters import load
    from .conformance.isolation import DEFAULT_TIMEOUT, WorkerAdapter
    from .errors import BnspecError

    try:
        if in_process or os.name != "posix":  # the worker waits on its pipe with select(): POSIX only
            return load(target)
        return WorkerAdapter(target, timeout=timeout or DEFAULT_TIMEOUT)
    except BnspecError as exc:
        print(f"bnspec: cannot load {target!r}: {exc}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - an adapter's import may fail in any way
        print(f"bnspec: cannot load {target!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return EXIT_USAGE


def cmd_list(args: argparse.Namespace) -> int:
    from .adapters import BUILTIN, unavailable_reason
    from .adapters.registry import entry_point_problem, entry_points

    rows = []
    for name, entry in BUILTIN.items():
        try:
            reason = unavailable_reason(name)
        except Exception as exc:  # noqa: BLE001 - a broken install is a reason too
            reason = f"{type(exc).__name__}: {exc}"
        rows.append((name, "yes" if reason is None else "no", reason or entry.summary))
    for name, ep in entry_points().items():  # loaded here, so a broken package shows, with why
        problem = entry_point_problem(name)
        rows.append((name, "yes" if problem is None else "no", problem or f"entry point {ep.value}"))
    width = max(len(r[0]) for r in rows)
    print(f"{'adapter':<{width}}  usable  details")
    for name, ok, detail in rows:
        print(f"{name:<{width}}  {ok:<6}  {detail}")
    return EXIT_OK


def cmd_matrix(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .adapters import BUILTIN, unavailable_reason
    from .conformance import DEFAULT_EXAMPLES
    from .conformance.matrix import build
    from .conformance.results import output_problem

    if args.jobs < 1:
        print(f"bnspec matrix: argument --jobs: expected 1 or more, got {args.jobs}", file=sys.stderr)
        return EXIT_USAGE
    problem = output_problem(args.out, folder=True)
    if problem:
        print(f"bnspec matrix: argument --out: cannot write {args.out!r}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    examples = args.examples if args.examples is not None else DEFAULT_EXAMPLES
    skipped: list[tuple[str, str]] = []
    targets = list(dict.fromkeys(args.targets))  # a target named twice is one column
    for target in targets:  # a name that cannot load is a usage error, as for run: say so, write nothing
        problem = _name_problem(target)
        if problem:
            print(f"bnspec: cannot load {target!r}: {problem}", file=sys.stderr)
            return EXIT_USAGE
    if not targets:
        for name in BUILTIN:
            try:
                reason = unavailable_reason(name)
            except Exception as exc:  # noqa: BLE001 - a broken install is a reason too
                reason = f"{type(exc).__name__}: {exc}"
            if reason:
                skipped.append((name, reason))
            else:
                targets.append(name)
    command = " ".join(["bnspec matrix", *args.targets, f"--seed {args.seed}"]
                       + ([f"--examples {args.examples}"] if args.examples is not None else []) + [f"--out {args.out}"])

    done: list[str] = []

    def start(target):  # type: ignore[no-untyped-def]
        if sys.stderr.isatty() and args.jobs == 1:
            print(f"  [{len(done) + 1}/{len(targets)}] {target}: running...", end="", file=sys.stderr, flush=True)

    def progress(target, col):  # type: ignore[no-untyped-def]
        done.append(target)
        status = col.problem or (col.report["summary"].get("verdict", "") if col.report else "")
        print(f"{chr(13)}\033[K" if sys.stderr.isatty() else "", end="", file=sys.stderr)
        print(f"  [{len(done)}/{len(targets)}] {target}: {status}", file=sys.stderr)

    columns, md = build(targets, Path(args.out), args.seed, examples, args.timeout, command, skipped, progress, start,
                        resume=args.resume, jobs=args.jobs)
    print(f"wrote {md} and {md.with_suffix('.html').name} ({len(columns)} adapters; "
          f"not usable here: {', '.join(n for n, _ in skipped) or 'none'})")
    unloadable = [c.target for c in columns if c.report is None and c.exit_code == EXIT_USAGE]
    if unloadable:
        print(f"bnspec: cannot load {', '.join(map(repr, unloadable))}: see its column", file=sys.stderr)
        return EXIT_USAGE
    statuses = [EXIT_FAIL if c.report is None else c.exit_code if c.exit_code is not None else _exit_of(c.report)
                for c in columns]
    if args.strict and any(c.report and c.report["summary"].get("verdict") != "conforms" for c in columns):
        statuses.append(EXIT_FAIL)
    return EXIT_FAIL if EXIT_FAIL in statuses else EXIT_UNJUDGED if EXIT_UNJUDGED in statuses else EXIT_OK


def _exit_of(report: dict) -> int:
    """The exit status a (reused) report's run had: from its verdict."""
    verdict = report["summary"].get("verdict", "")
    return EXIT_OK if verdict.startswith("conforms") else EXIT_FAIL if verdict.startswith("DOES NOT") else EXIT_UNJUDGED


def _name_problem(target: str) -> str | None:
    """Why an adapter *name* cannot be loaded here, or None (paths and ``module:attr`` are tried by the run)."""
    from .adapters import BUILTIN, unavailable_reason
    from .adapters.registry import entry_point_problem, entry_points

    if ":" in target or target.endswith(".py"):
        return None
    if target in BUILTIN:
        return unavailable_reason(target)
    if target in entry_points():
        return entry_point_problem(target)
    return f"no adapter named {target!r}; 'bnspec list' shows the registered ones"


def cmd_spec(args: argparse.Namespace) -> int:
    from .clauses import clauses

    table = clauses()
    if args.clause is None:
        for c in table.values():
            print(f"{c.id:<13} {c.level:<7} {c.title}")
        return EXIT_OK
    key = args.clause.upper()
    if key not in table:
        print(f"bnspec: no clause {args.clause!r}; see 'bnspec spec' for the list", file=sys.stderr)
        return EXIT_USAGE
    c = table[key]
    print(f"{c.id} · {c.title} ({c.level})  [spec/{c.file}]\n\n{c.text}")
    return EXIT_OK


def cmd_accuracy(args: argparse.Namespace) -> int:
    from .accuracy import command

    return command(args)


def cmd_vectors(args: argparse.Namespace) -> int:
    from .vectors import command

    return command(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler = {"run": cmd_run, "list": cmd_list, "matrix": cmd_matrix, "spec": cmd_spec,
               "vectors": cmd_vectors, "accuracy": cmd_accuracy}[args.command]
    try:
        return handler(args)
    except BrokenPipeError:  # output piped into head, say: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
