"""The conformance suite: checks that cite their clauses, cases, the precision model, reports."""

from .check import Check, CompareCheck, Context, expected
from .checks import AREAS, CHECKS
from .isolation import WorkerAdapter, WorkerFault
from .results import CheckResult, RunReport
from .runner import DEFAULT_EXAMPLES, run, run_check, select
from .tolerance import tolerances

__all__ = [
    "AREAS", "CHECKS", "Check", "CheckResult", "CompareCheck", "Context", "DEFAULT_EXAMPLES", "RunReport",
    "WorkerAdapter", "WorkerFault", "expected", "run", "run_check", "select", "tolerances",
]
