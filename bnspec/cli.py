"""The ``bnspec`` command: ``run`` an adapter through the suite, ``list`` adapters, read the ``spec``.

Exit status of ``run``: 0 when every applicable check passes (known deviations, profiles and
unsupported checks included), 1 when any fails, 2 when the target cannot be loaded or the
command is misused.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bnspec", description="Batch-normalization specification and conformance suite.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="run the conformance suite against an adapter")
    run.add_argument("target", help="adapter name (see 'bnspec list'), module:attr, or path/to/file.py:attr")
    run.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    run.add_argument("--seed", type=_positive, help="seed of the case generation (default: random, printed)")
    run.add_argument("--examples", type=_positive, help="hypothesis examples per check (default: %(default)s)")
    run.add_argument("--check", metavar="PATTERN", help="only checks whose name, area or clause matches (glob, comma-separated)")
    run.add_argument("-v", "--verbose", action="store_true", help="list every check, not only those that did not pass")
    run.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")

    sub.add_parser("list", help="list the registered adapters and whether each is usable here")

    matrix = sub.add_parser("matrix", help="run adapters, each in its own process, into one Markdown table")
    matrix.add_argument("targets", nargs="*", help="adapters to run (default: every registered adapter usable here)")
    matrix.add_argument("--out", default="bnspec-matrix", metavar="DIR",
                        help="writes DIR/conformance.md and DIR/reports/*.json (default: %(default)s)")
    matrix.add_argument("--seed", type=_positive, default=0, help="seed of every run (default: %(default)s)")
    matrix.add_argument("--examples", type=_positive, help="hypothesis examples per check (default: run's default)")
    matrix.add_argument("--timeout", type=float, default=1800.0, help="seconds per adapter (default: %(default)s)")

    spec = sub.add_parser("spec", help="print one clause of the spec, or list them")
    spec.add_argument("clause", nargs="?", help="a clause ID such as BN-RUN-2 (omit to list all)")
    return p


def cmd_run(args: argparse.Namespace) -> int:
    from .adapters import load
    from .conformance import DEFAULT_EXAMPLES, run, select
    from .conformance.render import render, summary, use_colour
    from .conformance.results import write_json
    from .errors import BnspecError

    if args.check and not select(args.check):
        print(f"bnspec: --check {args.check!r} matches no check", file=sys.stderr)
        return EXIT_USAGE
    try:
        adapter = load(args.target)
    except BnspecError as exc:
        print(f"bnspec: cannot load {args.target!r}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - an adapter's import may fail in any way
        print(f"bnspec: cannot load {args.target!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    examples = args.examples if args.examples is not None else DEFAULT_EXAMPLES
    colour = use_colour(sys.stdout)
    if not args.quiet:
        print(f"bnspec: running {adapter.name} with seed {seed} (reproduce with --seed {seed})", file=sys.stderr)
    progress = _Progress(sys.stderr) if not args.quiet else None
    report = run(adapter, target=args.target, examples=examples, run_seed=seed, pattern=args.check,
                 on_result=progress, backend_modules=_backend_modules())
    if progress:
        progress.done()
    if args.json:
        write_json(report, args.json)
    print(summary(report, colour) if args.quiet else render(report, colour, args.verbose))
    if args.json and not args.quiet:
        print(f"report written to {args.json}")
    return EXIT_OK if report.ok else EXIT_FAIL


def _backend_modules() -> tuple[str, ...]:
    return ("torch", "jax", "flax", "keras", "tensorflow", "onnxruntime", "onnx", "tinygrad", "mlx", "cupy")


class _Progress:
    """A one-line progress indicator on a terminal; nothing when redirected."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.stream, self.count, self.tty = stream, 0, hasattr(stream, "isatty") and stream.isatty()

    def __call__(self, result) -> None:  # type: ignore[no-untyped-def]
        self.count += 1
        if self.tty:
            self.stream.write(f"\r\033[K  [{self.count}] {result.name}: {result.status}")
            self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def cmd_list(args: argparse.Namespace) -> int:
    from .adapters import BUILTIN, unavailable_reason
    from .adapters.registry import entry_points

    rows = []
    for name, entry in BUILTIN.items():
        try:
            reason = unavailable_reason(name)
        except Exception as exc:  # noqa: BLE001 - a broken install is a reason too
            reason = f"{type(exc).__name__}: {exc}"
        rows.append((name, "yes" if reason is None else "no", reason or entry.summary))
    for name, ep in entry_points().items():
        if name not in BUILTIN:
            rows.append((name, "?", f"entry point {ep.value} (loaded on use)"))
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

    examples = args.examples if args.examples is not None else DEFAULT_EXAMPLES
    skipped: list[tuple[str, str]] = []
    targets = list(args.targets)
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

    def progress(target, col):  # type: ignore[no-untyped-def]
        status = col.problem or ("conforms" if col.report and col.report["summary"]["ok"] else "does not conform")
        print(f"  {target}: {status}", file=sys.stderr)

    columns, md = build(targets, Path(args.out), args.seed, examples, args.timeout, command, skipped, progress)
    print(f"wrote {md} ({len(columns)} adapters; not usable here: {', '.join(n for n, _ in skipped) or 'none'})")
    failed = [c.target for c in columns if c.report is None or not c.report["summary"]["ok"]]
    return EXIT_FAIL if failed else EXIT_OK


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


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler = {"run": cmd_run, "list": cmd_list, "matrix": cmd_matrix, "spec": cmd_spec}[args.command]
    try:
        return handler(args)
    except BrokenPipeError:  # output piped into head, say: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
