"""Golden vectors: the spec as files, for implementations that cannot run a Python adapter.

``bnspec vectors export DIR`` writes a fixed, versioned corpus of cases (inputs, parameters, the
reference's exact outputs and gradients, the clauses each case tests, and the tolerance the
precision model allows every output element) as ``.npy`` arrays and a JSON manifest.
``bnspec vectors check DIR RESULTS`` scores the results an implementation in any language wrote.
``docs/vectors.md`` documents both layouts.

The expected values and tolerances come from the reference and the precision model the suite
uses, so a result that passes here is judged as ``bnspec run`` judges it. Not for
hypothesis-drawn cases, minimal failing cases or reproducers: that is ``bnspec run``.
"""

from __future__ import annotations

import sys
from typing import Any

from .corpus import Vector, corpus, steps
from .export import FORMAT, NOT_COVERED, RESULTS_FORMAT, VERSION, export
from .score import CorpusError, Scores, check, render

__all__ = ["FORMAT", "NOT_COVERED", "RESULTS_FORMAT", "VERSION", "CorpusError", "Scores", "Vector", "check",
           "command", "corpus", "export", "render", "steps"]


def command(args: Any) -> int:
    """``bnspec vectors export|check``: exit 0 conforms (or written), 1 a case failed, 2 misuse."""
    import json

    if args.vectors_command == "export":
        try:
            path = export(args.dir, force=args.force)
        except (FileExistsError, NotADirectoryError) as exc:
            print(f"bnspec: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {len(corpus())} cases (golden vectors version {VERSION}) to {path.parent}; "
              "the layout is described in docs/vectors.md")
        return 0
    try:
        scores = check(args.dir, args.results)
    except CorpusError as exc:
        print(f"bnspec: {exc}", file=sys.stderr)
        return 2
    print(render(scores))
    if args.json:
        from pathlib import Path

        from .score import to_dict

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(to_dict(scores), indent=1) + "\n", encoding="utf-8")
    return 0 if scores.ok else 1
