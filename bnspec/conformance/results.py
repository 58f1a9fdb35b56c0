"""Results as data: one ``CheckResult`` per check, gathered in a ``RunReport``.

Renderers (terminal, JSON) read these; nothing here prints. ``SCHEMA_VERSION`` versions the JSON.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "profile", "fail", "deviation", "unsupported", "error"]
FAILING: tuple[str, ...] = ("fail", "error")
SCHEMA_VERSION = 1


@dataclass
class CheckResult:
    """The outcome of one check against one adapter."""

    name: str
    area: str
    clauses: list[str]
    description: str
    status: Status
    examples: int = 0
    budget: float | None = None  # worst error / tolerance over every case run; None if nothing compared
    message: str = ""
    case: str | None = None  # the minimal failing case, described
    worst: dict[str, Any] = field(default_factory=dict)
    reproducer: str | None = None
    seconds: float = 0.0
    note: str = ""  # e.g. the profile conformed under, or a stale known deviation

    @property
    def failed(self) -> bool:
        return self.status in FAILING


@dataclass
class RunReport:
    """Every check's result for one adapter, with what is needed to reproduce the run."""

    adapter: str
    target: str
    capabilities: dict[str, Any]
    environment: dict[str, Any]
    seed: int
    examples: int
    results: list[CheckResult] = field(default_factory=list)
    complete: bool = True
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        return not any(r.failed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "adapter": self.adapter,
            "target": self.target,
            "capabilities": self.capabilities,
            "environment": self.environment,
            "seed": self.seed,
            "examples": self.examples,
            "complete": self.complete,
            "seconds": round(self.seconds, 3),
            "summary": {"ok": self.ok, "counts": self.counts(), "checks": len(self.results)},
            "checks": [_jsonable(asdict(r)) for r in self.results],
        }


def _jsonable(v: Any) -> Any:
    """``v`` with non-finite floats as the strings "nan", "inf", "-inf" (JSON has no such numbers)."""
    if isinstance(v, float) and v != v:
        return "nan"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def environment(backend_modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """Versions of Python, NumPy, hypothesis, bnspec and any backend module already imported."""
    import sys

    import hypothesis
    import numpy

    from .. import __version__

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "hypothesis": hypothesis.__version__,
        "bnspec": __version__,
    }
    for name in backend_modules:
        mod = sys.modules.get(name)
        if mod is not None:
            env[name] = getattr(mod, "__version__", "unknown")
    return env


def write_json(report: RunReport, path: str | Path) -> None:
    """Write the report atomically: a temporary file in the same folder, then a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(report.to_dict(), fh, indent=2, allow_nan=False, default=str)
            fh.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
