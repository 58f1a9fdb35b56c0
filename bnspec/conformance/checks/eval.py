"""Section 4 of the spec: the eval forward pass, with and without running statistics (BN-EVAL-*)."""

from __future__ import annotations

from ...adapters.contract import Capabilities
from ..cases import WITH_EXTREMES, Recipe, Space
from ..check import (
    CompareCheck,
)


class EvalOutput(CompareCheck):
    """In eval, the output normalizes with the running statistics."""

    name = "eval-output"
    area = "EVAL"
    clauses = ("BN-EVAL-1", "BN-PREC-3")
    space = Space(training=False, tracked=True, data=WITH_EXTREMES)
    fixed = (Recipe(shape=(1, 3), training=False, seed=11),)  # one value per channel is fine in eval


class EvalUntracked(CompareCheck):
    """In eval without running statistics, the output normalizes with the batch statistics."""

    name = "eval-untracked"
    area = "EVAL"
    clauses = ("BN-EVAL-2", "BN-PREC-3")
    space = Space(training=False, tracked=False, data=WITH_EXTREMES)

    def unsupported(self, caps: Capabilities) -> str | None:
        return None if caps.untracked else "the adapter always tracks running statistics"
