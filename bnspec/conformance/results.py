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

Status = Literal["pass", "profile", "fail", "deviation", "unsupported", "error", "crash", "timeout"]
STATUSES: tuple[str, ...] = ("pass", "profile", "deviation", "fail", "error", "crash", "timeout", "unsupported")
FAILING: tuple[str, ...] = ("fail", "error", "crash", "timeout")
SCHEMA_VERSION = 2

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
            "timeout": self.timeout,
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


def environment(backend_modules: tuple[str, ...] = (), device: str | None = None) -> dict[str, Any]:
    """Versions of Python, NumPy, hypothesis, bnspec and any backend module already imported;
    with ``device`` (the adapter's), that device and, where it can be told, its model."""
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
    if device is not None:
        env["device"] = device
        env["device_name"] = device_name(device)
    return env


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
