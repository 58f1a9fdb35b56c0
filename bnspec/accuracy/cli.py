"""``bnspec accuracy`` on the command line: its options and what it writes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .model import DTYPES
from .report import plots, table
from .sweep import DEFAULT_BUDGET, MAX_LOG2_M, sweep


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``accuracy`` to the ``bnspec`` command's subparsers."""
    p = subparsers.add_parser(
        "accuracy", help="measure adapters' accuracy over m and conditioning: table, JSON and plots",
        description=(
            "Sweep m = 2, 4, ..., 2^MAX_LOG2_M values per channel (two channels) and the conditioning "
            "|mean|/spread from 1 to the dtype's limit (float32 1e6, float64 1e15, float16 1e2, bfloat16 1e1) at "
            "m = 4096 (or 2^MAX_LOG2_M if smaller), each layout the adapter takes (channel-first, channel-last, "
            "rank 2), each dtype the adapter claims, and measure y, the running statistics, dx, dgamma and "
            "dbeta against the reference. Errors are in units of u times each output's natural scale (one "
            "rounding error per reduction); the growth with m is classified as constant, log m, sqrt m or m. "
            "Bounds: the m sweep stops before the next size when the time spent plus 2.2 times the last size's cost "
            "would pass --budget; "
            "memory grows with m, about 0.5 GB at m = 2^20 (the reference's double-double intermediates), so "
            "m is capped at 2^24. Plots need matplotlib (pip install 'bnspec[plot]'); without it the table and "
            "JSON are written."),
    )
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="adapter names (see 'bnspec list'), module:attr or path.py:attr; 'all': every registered "
                        "adapter usable here that runs single-replica training steps")
    p.add_argument("--out", metavar="DIR", default="accuracy-report",
                   help="folder for accuracy.md, accuracy.json and the plots (default: accuracy-report)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                   help=f"time for the whole sweep, all targets together (default: {DEFAULT_BUDGET:g}): "
                        "bounds the largest m")
    p.add_argument("--max-log2-m", type=int, default=MAX_LOG2_M, metavar="N",
                   help=f"largest m is 2^N, 1..24 (default: {MAX_LOG2_M})")
    p.add_argument("--dtype", action="append", choices=DTYPES, help="only these dtypes (repeatable; default: every one claimed)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data (default: 0)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                   help="limit for one case in the worker process (default: 120)")
    p.add_argument("--no-plots", action="store_true", help="write the table and JSON only")
    p.add_argument("--by-group", action="store_true",
                   help="one sweep and one set of plots per framework group (torch, tensorflow, keras, jax, onnx, "
                        "other) in DIR/<group>/, with --budget for each, and a summary of all in DIR: readable "
                        "figures for many targets, and only one group's worker processes alive at a time")
    return p


# Plot groups of --by-group: the registry's families (conformance.differential.family), merged by the stack
# beneath so that a figure holds a handful of lines.
GROUPS = {"keras-jax": "keras", "keras-torch": "keras", "keras-tensorflow": "keras", "flax": "jax", "haiku": "jax",
          "equinox": "jax", "onnx": "onnx", "openvino": "onnx", "tinygrad": "other", "mlx": "other", "paddle": "other",
          "cupy": "other"}


def group_of(target: str) -> str:
    """The plot group of ``target``: ``GROUPS`` over its framework family, else the family itself;
    ``other`` for a target outside the registry (``module:attr``, ``path.py:attr``)."""
    from ..adapters import BUILTIN
    from ..conformance.differential import family

    if target not in BUILTIN:
        return "other"
    fam = family(target)
    return GROUPS.get(fam, fam)


def expand(targets: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """``targets`` with ``all`` replaced by every registered adapter usable here that a sweep can judge,
    and ``[(name, why)]`` for the registered ones left out (not usable here, inference-only, synchronized)."""
    if "all" not in targets:
        return targets, []
    import importlib

    from ..adapters import BUILTIN, unavailable_reason

    out, skipped = [t for t in targets if t != "all"], []
    for name, entry in BUILTIN.items():
        if name == "reference" or name in out:
            continue
        try:  # the class's declared capabilities: nothing is instantiated (a backend is imported by its worker)
            why = unavailable_reason(name)
            module, attr = entry.target.split(":")
            caps = None if why else getattr(importlib.import_module(module), attr).capabilities
        except Exception as exc:  # noqa: BLE001 - a broken install is a reason too
            why, caps = f"{type(exc).__name__}: {exc}", None
        if caps is not None and not caps.training:
            why = "inference only: the sweep runs training steps"
        elif caps is not None and caps.replicas:
            why = "synchronized batch norm: the sweep runs single-replica steps"
        (skipped.append((name, why)) if why else out.append(name))
    return out, skipped


def command(args: argparse.Namespace) -> int:
    """Run ``bnspec accuracy``; exit status 0 when a sweep was written, 2 on misuse or when no
    target could be loaded."""
    from ..conformance.results import output_problem
    from ..errors import BnspecError

    problem = output_problem(args.out, folder=True)
    if problem:  # said before the sweep, not after it
        print(f"bnspec accuracy: argument --out: cannot write {args.out!r}: {problem}", file=sys.stderr)
        return 2
    by_group = getattr(args, "by_group", False)
    targets, skipped = expand(list(args.targets))
    for name, why in skipped:
        print(f"bnspec accuracy: {name} left out: {why}", file=sys.stderr)
    groups: dict[str, list[str]] = {}
    for t in targets:
        groups.setdefault(group_of(t) if by_group else "", []).append(t)
    out = Path(args.out)
    merged: dict[str, Any] = {"summary": {}, "targets": {}, "groups": {}, "skipped": dict(skipped)}
    for name, members in groups.items():
        try:
            result = sweep(members, budget=args.budget, max_log2_m=args.max_log2_m,
                           dtypes=tuple(args.dtype) if args.dtype else None, seed=args.seed, timeout=args.timeout)
        except BnspecError as exc:
            print(f"bnspec accuracy: {exc}", file=sys.stderr)
            return 2
        if all("error" in info for info in result["targets"].values()):
            print(f"bnspec accuracy: nothing to write for {', '.join(members)}: no target could be loaded",
                  file=sys.stderr)
            continue
        _write(result, out / name if name else out, members, args)
        merged["groups"][name] = {"targets": members, "largest_m": result["largest_m"], "seconds": result["seconds"]}
        merged["summary"].update(result["summary"])
        merged["targets"].update({t: {**info, "group": name} for t, info in result["targets"].items()})
    if by_group:
        merged.update(version=1, seed=args.seed, budget=args.budget, max_log2_m=args.max_log2_m)
        (out / "accuracy.json").write_text(json.dumps(merged, indent=1, default=float) + "\n", encoding="utf-8")
        md = [f"# Accuracy sweep by group: {', '.join(targets)}", "",
              f"Seed {args.seed}, m up to 2^{args.max_log2_m}, budget {args.budget:g} s per group. One folder per "
              "group, with its table, JSON and plots: " + ", ".join(f"[{g}]({g}/accuracy.md)" for g in groups) + ".",
              "", table({"summary": merged["summary"]}, markdown=True).split("\n\n")[0], ""]
        md += [f"- {n} left out: {why}" for n, why in skipped]
        (out / "accuracy.md").write_text("\n".join(md) + "\n", encoding="utf-8")
        print(f"wrote {out / 'accuracy.md'}, {out / 'accuracy.json'} and one folder per group")
    loaded = [t for t, info in merged["targets"].items() if "error" not in info]
    return 0 if loaded else 2


def _write(result: dict[str, Any], out: Path, targets: list[str], args: argparse.Namespace) -> None:
    """``accuracy.json``, ``accuracy.md`` and the plots of one sweep in ``out``; the table on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    md = [f"# Accuracy sweep: {', '.join(targets)}", "",
          f"m up to {result['largest_m']} (budget {args.budget:g} s, {result['seconds']:g} s taken), seed {args.seed}. "
          "Cells: growth class of the error with m (its value at the largest m, in units of u times the natural "
          "scale). Budgets: the largest error over the whole sweep as a fraction of the MUST and of the SHOULD "
          "(BN-QUAL-1) tolerance.", "", table(result, markdown=True)]
    written: list[Path] = []
    if not args.no_plots:
        try:
            written = plots(result, out)
        except ImportError:
            print("bnspec accuracy: no plots: matplotlib is not installed (pip install 'bnspec[plot]'); "
                  "the table and JSON are written", file=sys.stderr)
    md += [f"![{p.stem}]({p.name})" for p in written]
    (out / "accuracy.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print(table(result))
    print(f"wrote {out / 'accuracy.md'}, {out / 'accuracy.json'}" + (f" and {len(written)} plots" if written else ""))


def main(argv: list[str] | None = None) -> int:
    """``python -m bnspec.accuracy TARGET...``: the command without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="bnspec")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return command(parser.parse_args(["accuracy", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
