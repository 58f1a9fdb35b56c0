"""What every compiled form shares."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

HIGHER_ORDER_CLAUSES = frozenset({"BN-GRAD-4", "BN-GRAD-5", "BN-GRAD-6", "BN-GRAD-7", "BN-PREC-8"})


def _first_order_only(caps: Any, notes: str, **changes: Any) -> Any:
    """``caps`` for a form whose higher-order derivatives are not compiled: first order only, without the
    eager twin's findings that only higher orders show (their checks do not run here)."""
    findings = tuple(f for f in changes.pop("findings", caps.findings) if not set(f.clauses) <= HIGHER_ORDER_CLAUSES)
    return replace(caps, notes=notes, derivatives=(), max_order=1, findings=findings, **changes)


def _module_call(bn: Any, x: Any) -> Any:
    return bn(x)


