"""The default-run test every framework adapter shares: run ``bnspec run NAME`` in a process of its
own (Keras and JAX pick process-wide settings), at a reduced example count, and hold the adapter
to what it declares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def assert_conforms(name: str, tmp_path: Path, *, draw_dependent: frozenset[str] = frozenset(),
                    examples: int = 8) -> dict[str, Any]:
    """Exit status 0 at ``--seed 0``, and every declared known deviation reported as one.

    ``draw_dependent``: declared deviations that only some drawn cases expose, so that at this seed
    and example count they may pass (reported with a stale-declaration note). Returns the report.
    """
    out = tmp_path / f"{name}.json"
    proc = subprocess.run([sys.executable, "-m", "bnspec", "run", name, "--seed", "0", "--examples", str(examples),
                           "--json", str(out)], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    status = {c["name"]: c["status"] for c in report["checks"]}
    declared = report["capabilities"]["known_deviations"]  # from the run's own process (Keras: one backend each)
    undetected = {check: status.get(check) for check, _ in declared
                  if status.get(check) != "deviation" and not (check in draw_dependent and status.get(check) in ("pass", "profile"))}
    assert undetected == {}, f"declared deviations not detected: {undetected}"
    return report
