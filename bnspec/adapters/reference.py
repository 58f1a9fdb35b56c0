"""The ``reference`` adapter: the NumPy reference run as a backend, rounded to the case's dtypes.

It must pass every check: the suite's self-check.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from .contract import Capabilities, Case, Outcome


def _cast(value: np.ndarray | None, like: np.ndarray | None) -> np.ndarray | None:
    if value is None or like is None:
        return None
    with np.errstate(over="ignore"):  # beyond the dtype's range the rounded value is +-inf
        return value.astype(like.dtype)


class ReferenceAdapter:
    """The judge as a backend: exact results, rounded once to each output's dtype."""

    name = "reference"
    capabilities = Capabilities(
        dtypes=("float16", "float32", "float64", "bfloat16"),
        channel_axes=(1, -1),
        stats_dtypes=("float32",),
        mixed_dtypes=(("float64", "float32"), ("float32", "float64"), ("float16", "float64"), ("bfloat16", "float64")),
        zero_eps=True,
        notes="double-double arithmetic; results rounded once to each output's dtype",
    )

    def run(self, case: Case) -> Outcome:
        s = reference.step(
            case.x, axis=case.axis, training=case.training, eps=case.eps, momentum=case.momentum,
            weight=case.weight, bias=case.bias, running_mean=case.running_mean,
            running_var=case.running_var, num_batches_tracked=case.num_batches_tracked,
            grad_output=case.grad_output,
        )
        return Outcome(
            y=_cast(s.y, case.x),
            running_mean=_cast(s.running_mean, case.running_mean),
            running_var=_cast(s.running_var, case.running_var),
            num_batches_tracked=s.num_batches_tracked,
            grad_input=_cast(s.grad_input, case.x),
            grad_weight=_cast(s.grad_weight, case.weight),
            grad_bias=_cast(s.grad_bias, case.bias),
        )
