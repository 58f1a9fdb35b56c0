"""bnspec: batch normalization defined once, exactly, and every implementation checked against it."""

from .adapters import Capabilities, Case, Finding, Outcome, load
from .errors import AdapterNotFound, AdapterUnavailable, BnspecError, InvalidArgument, InvalidDtype

__version__ = "0.1.0"

__all__ = [
    "AdapterNotFound", "AdapterUnavailable", "BnspecError", "Capabilities", "Case", "Finding", "InvalidArgument",
    "InvalidDtype", "Outcome", "load", "__version__",
]
