"""The exceptions bnspec raises to its users: one small hierarchy.

Argument errors also subclass ``ValueError`` or ``TypeError`` so callers can catch either. Each
message shows the offending value and, where one applies, the spec clause it breaks.
"""

from __future__ import annotations


class BnspecError(Exception):
    """Base class of every error bnspec raises on purpose."""


class InvalidArgument(BnspecError, ValueError):
    """A value outside what the spec allows; ``clause`` names the clause, if any."""

    def __init__(self, message: str, clause: str | None = None) -> None:
        self.clause = clause
        super().__init__(f"{message} ({clause})" if clause else message)


class InvalidDtype(BnspecError, TypeError):
    """An array of a dtype the spec does not allow."""

    def __init__(self, message: str, clause: str | None = None) -> None:
        self.clause = clause
        super().__init__(f"{message} ({clause})" if clause else message)


class AdapterNotFound(BnspecError, LookupError):
    """A target that names no adapter; the message lists what is available."""


class AdapterUnavailable(BnspecError, RuntimeError):
    """A known adapter that cannot run here (framework not installed, no device)."""
