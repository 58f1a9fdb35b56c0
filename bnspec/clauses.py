"""The spec's clauses, read from its Markdown: ``### BN-AREA-n · Title (MUST)`` headings.

The text ships inside the package (``bnspec/_spec`` in a wheel); in a source checkout it is read
from the repository's ``spec/`` folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HEADING = re.compile(r"^### (BN-[A-Z]+-\d+) · (.+?) \((MUST|SHOULD|MAY)\)\s*$")
CLAUSE_ID = re.compile(r"\bBN-[A-Z]+-\d+\b")


@dataclass(frozen=True)
class Clause:
    id: str
    title: str
    level: str  # MUST, SHOULD or MAY
    text: str  # the clause body, Markdown
    file: str  # e.g. "batchnorm.md"

    @property
    def area(self) -> str:
        return self.id.split("-")[1]


def spec_dir() -> Path:
    """Where the spec's Markdown lives: packaged, or the source checkout's ``spec/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_spec", here.parent / "spec"):
        if (candidate / "batchnorm.md").is_file():
            return candidate
    raise FileNotFoundError(f"the spec's Markdown is neither in {here / '_spec'} nor in {here.parent / 'spec'}")


@lru_cache(maxsize=1)
def clauses() -> dict[str, Clause]:
    """Every clause of the spec by ID, in document order (batchnorm.md, then precision.md)."""
    out: dict[str, Clause] = {}
    folder = spec_dir()
    for name in ("batchnorm.md", "precision.md"):
        path = folder / name
        if not path.is_file():
            continue
        current: list[str] | None = None
        head: re.Match[str] | None = None
        for line in path.read_text(encoding="utf-8").splitlines() + ["## end"]:
            m = HEADING.match(line)
            if (m or line.startswith(("## ", "### "))) and head is not None and current is not None:
                cid = head.group(1)
                if cid in out:
                    raise ValueError(f"clause {cid} is defined twice ({out[cid].file} and {name})")
                out[cid] = Clause(cid, head.group(2), head.group(3), "\n".join(current).strip(), name)
                head, current = None, None
            if m:
                head, current = m, []
            elif current is not None:
                current.append(line)
    return out
