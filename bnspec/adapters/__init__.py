"""The adapter contract and the adapters: thin translators between the suite and a backend."""

from .contract import Adapter, Capabilities, Case, Finding, Outcome
from .registry import BUILTIN, available, load, unavailable_reason

__all__ = ["Adapter", "Capabilities", "Case", "Finding", "Outcome", "BUILTIN", "available", "load", "unavailable_reason"]
