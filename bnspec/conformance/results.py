"""Results as data: one ``CheckResult`` per check, gathered in a ``RunReport``.

Renderers (terminal, JSON, JUnit, HTML) read these; nothing here prints. ``SCHEMA_VERSION``
versions the JSON (``docs/report-schema.md``, ``docs/report.schema.json``).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "profile", "stale", "deviation", "shortfall", "fail", "error", "crash", "timeout",
                 "unjudged", "unsupported"]
STATUSES: tuple[str, ...] = ("pass", "profile", "stale", "deviation", "shortfall", "fail", "error", "crash",
                             "timeout", "unjudged", "unsupported")
PASSING: tuple[str, ...] = ("pass", "profile")
# Conforming, but not plainly: a declared finding, a declaration whose trigger no longer fails, a SHOULD missed.
EXCEPTED: tuple[str, ...] = ("deviation", "stale", "shortfall")
# A departure from a MUST, or a backend that broke the run of a check (returned garbage, died).
FAILING: tuple[str, ...] = ("fail", "error", "crash")
# The suite could not judge: a case outlived its time limit, or a refusal had no working twin to compare with.
UNJUDGED: tuple[str, ...] = ("timeout", "unjudged")
SCHEMA_VERSION = 3

# Modules whose versions a report records when the run imported them.
BACKEND_MODULES: tuple[str, ...] = ("torch", "jax", "jaxlib", "flax", "keras", "tensorflow", "onnxruntime", "onnx",
                                    "tinygrad", "mlx", "cupy", "ml_dtypes")


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
    detail: str = ""  # for a crash, timeout or error: the worker's output or traceback (JSON only)
    finding: str = ""  # for a deviation or stale check: the declared finding's ID ("T2"), when it has one

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
    timeout: float | None = None  # per-case limit of the worker; None when run in-process
    planned: int = 0  # checks selected for the run; more than len(results) when interrupted

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    @property
    def judged(self) -> int:
        """How many checks were judged: neither unsupported nor unjudged."""
        return sum(r.status not in ("unsupported", *UNJUDGED) for r in self.results)

    @property
    def verdict(self) -> str:
        """The run's verdict in words, its first words the finding (``docs/reading-reports.md``):

        - ``incomplete: N of M checks ran`` when interrupted;
        - ``DOES NOT CONFORM`` when a check failed, errored or crashed;
        - ``nothing judged`` when no check could be judged (all unsupported, or none selected);
        - ``not fully judged: N checks could not be judged`` on timeouts or refusals without a twin;
        - ``conforms except N known findings`` (N distinct: one declared root cause may show in several
          checks), and quality shortfalls, stale declarations;
        - ``conforms``.
        """
        counts = self.counts()
        if not self.complete:
            return f"incomplete: {len(self.results)} of {self.planned or '?'} checks ran (interrupted)"
        if any(counts.get(s) for s in FAILING):
            return "DOES NOT CONFORM"
        if self.judged == 0:
            return "nothing judged: no selected check applies to this adapter"
        unjudged = sum(counts.get(s, 0) for s in UNJUDGED)
        if unjudged:
            return f"not fully judged: {_n(unjudged, 'check')} could not be judged"
        known = len({r.finding or r.name for r in self.results if r.status == "deviation"})
        excepts = [_n(n, what) for n, what in ((known, "known finding"), (counts.get("shortfall", 0), "quality shortfall"),
                                               (counts.get("stale", 0), "stale declaration")) if n]
        return "conforms except " + " and ".join(excepts) if excepts else "conforms"

    @property
    def ok(self) -> bool:
        """Conforms: complete, something judged, every judged check passed or departs as declared."""
        return self.verdict.startswith("conforms")

    @property
    def strict_ok(self) -> bool:
        """Conforms with no exception at all: ``--strict``."""
        return self.verdict == "conforms"

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
            "timeout": self.timeout,
            "seconds": round(self.seconds, 3),
            "summary": {"ok": self.ok, "verdict": self.verdict, "counts": self.counts(), "checks": len(self.results),
                        "planned": self.planned, "judged": self.judged},
            "checks": [_jsonable(asdict(r)) for r in self.results],
        }


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


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


def environment(backend_modules: tuple[str, ...] = (), device: str | None = None,
                adapter_module: str = "") -> dict[str, Any]:
    """Versions of Python, NumPy, hypothesis, bnspec and any backend module already imported;
    with ``device`` (the adapter's), that device and, where it can be told, its model; with
    ``adapter_module`` (the module of a third-party adapter's class), the version of the package it
    comes from and of every distribution that package requires (the framework it wraps)."""
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
            env[name] = getattr(mod, "__version__", None) or _distribution_version(name)
    if adapter_module and not adapter_module.startswith("bnspec."):
        env.update({k: v for k, v in package_versions(adapter_module).items() if k not in env})
    if device is not None:
        env["device"] = device
        env["device_name"] = device_name(device)
    return env


def package_versions(module: str) -> dict[str, str]:
    """``{distribution: version}`` for the distribution that provides ``module`` and for each
    distribution it requires that is installed; empty for a module no distribution provides (a file)."""
    import re
    from importlib.metadata import PackageNotFoundError, packages_distributions, requires, version

    out: dict[str, str] = {}
    for dist in packages_distributions().get(module.split(".")[0], []):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
        for req in requires(dist) or []:
            if "extra ==" in req:
                continue
            name = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]
            try:
                out[name] = version(name)
            except PackageNotFoundError:
                pass
    return out


def _distribution_version(module: str) -> str:
    """The installed version of the distribution providing ``module`` (tinygrad and MLX set no
    ``__version__``), or "unknown"."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    for dist in [module, *packages_distributions().get(module, [])]:
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return "unknown"


def device_name(device: str) -> str:
    """The model of ``device`` ("cpu", "cuda", "cuda:1", "gpu"), or "" where it cannot be told.

    Asks only frameworks the run already imported; never imports one.
    """
    try:
        if device.startswith("cuda") and "torch" in sys.modules:
            torch = sys.modules["torch"]
            index = int(device.split(":")[1]) if ":" in device else 0
            return str(torch.cuda.get_device_name(index))
        if device in ("gpu", "tpu") and "jax" in sys.modules:
            return str(sys.modules["jax"].devices()[0].device_kind)
        if device.startswith("cpu"):
            return _cpu_model()
    except Exception:  # noqa: BLE001 - a description, not worth failing a report over
        return ""
    return ""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def output_problem(path: str | Path, folder: bool = False) -> str | None:
    """Why ``path`` (a file, or with ``folder`` a directory) cannot be written, or None: checked before a
    long run so that its result is not lost at the end. Nothing is created."""
    target = Path(path)
    if target.exists() and target.is_dir() != folder:
        return f"{target} is {'a file' if folder else 'a folder'}"
    for parent in [target, *target.parents] if folder else target.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"{parent} is not writable"
            return None
    return None


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, then a rename.

    A reader never sees half a file, and an interrupted write leaves the old file (or none).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(report: RunReport, path: str | Path) -> None:
    """Write the report as JSON, atomically."""
    write_atomic(path, json.dumps(report.to_dict(), indent=2, allow_nan=False, default=str) + "\n")


@dataclass
class Column:
    """One adapter's column in the conformance matrix (``matrix.py``): its JSON report, or why there is none."""

    target: str
    exit_code: int | None = None
    report: dict[str, Any] | None = None
    problem: str = ""
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)


def anchor(target: str, check: str) -> str:
    """The HTML id of one cell's finding in the matrix."""
    return f"{target}-{check}".lower().replace(":", "-").replace("/", "-").replace(".", "-")
