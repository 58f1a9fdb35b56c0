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
        derivatives=("jvp", "vjp-nested", "jvp-of-vjp", "vjp-of-vjp"),
        max_order=3,
    )

    def run(self, case: Case) -> Outcome:
        if case.derivative is not None:  # BN-GRAD-4..7: the exact derivatives, rounded to their primals' dtypes
            return self._derivatives(case)
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

    def _derivatives(self, case: Case) -> Outcome:
        from ..reference import higher

        h = higher.derivatives(
            case.x, axis=case.axis, training=case.training, eps=case.eps, weight=case.weight, bias=case.bias,
            running_mean=case.running_mean, running_var=case.running_var, grad_output=case.grad_output,
            tangent_x=case.tangent_x, tangent_weight=case.tangent_weight, tangent_bias=case.tangent_bias,
            tangent_grad_output=case.tangent_grad_output, cotangent_input=case.cotangent_input,
            cotangent_weight=case.cotangent_weight, cotangent_bias=case.cotangent_bias, order=case.order,
        )
        like = {"y_dot": case.x, "grad_input_dot": case.x, "grad2_input": case.x, "grad2_output": case.x,
                "grad_weight_dot": case.weight, "grad2_weight": case.weight, "grad_bias_dot": case.bias,
                "grad2_bias": case.bias}
        return Outcome(**{name: _cast(getattr(h, name), primal) for name, primal in like.items()})
