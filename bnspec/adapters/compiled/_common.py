"""What every compiled form shares."""

from __future__ import annotations

from dataclasses import replace
from typing import Any


def _first_order_only(caps: Any, notes: str, **changes: Any) -> Any:
    """``caps`` for a form whose higher-order derivatives are not compiled: first order only."""
    return replace(caps, notes=notes, derivatives=(), max_order=1, **changes)


def _module_call(bn: Any, x: Any) -> Any:
    return bn(x)


