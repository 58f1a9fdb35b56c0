"""The ``mlx`` adapter: ``mlx.nn.BatchNorm`` with gradients from ``mlx.core.vjp``.

MLX's momentum is the spec's (weight of the new batch) and its running variance is the unbiased
one (``ddof=1``), so both map one to one (``spec/conventions.md``, 2.8). The layer normalizes over
every axis but the last: channel-last only, and it accepts rank 2, 3 and 4 inputs (NC, NLC,
NHWC). Training and eval are the module's own ``.train()`` / ``.eval()``. MLX keeps no batch
counter and has no ``momentum=None``. Arrays are made in the case's dtype (``mx.array`` would
turn a float64 NumPy array into float32 unless asked), on MLX's default device (the CPU here).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import bfloat16, dtype_name
from .contract import Capabilities, Case, Finding, Outcome
from .jax_derivatives import directions_of
from .mlx_derivatives import MODES, derivatives

# Findings M1-M3 of spec/conventions.md, section 4.
_DEVIATIONS = (
    ("dtype-half", "M1: float16 reductions accumulate in float16 (BN-DTYPE-2)"),
    ("dtype-half-params", "M1: float16 reductions accumulate in float16 (BN-DTYPE-2)"),
    ("empty-batch", "M2: an empty batch makes the running statistics NaN (BN-EMPTY-1)"),
    ("arg-momentum-range", "M3: a momentum outside [0, 1] is accepted (BN-ARG-5)"),
    ("arg-shape", "M5: weight, bias and running statistics are broadcast against the input, never checked: "
                  "a weight of length 2 for 1 channel widens y to 2 columns, a running_var of length 1 serves 2 "
                  "channels (BN-ARG-2)"),
)

# M6: a float32 spread above about 1e15 loses dx's path through the variance (mx.vjp's derivative of rsqrt
# underflows float32); its trigger is a drawn magnitude-extremes case.
M6 = Finding(
    id="M6", summary="float32 training gradients through the variance are lost for very large spreads: the "
                     "derivative of rsqrt(var + eps) underflows float32 (BN-GRAD-1)",
    clauses=("BN-GRAD-1", "BN-PREC-5"), outputs=("grad_input",),
    trigger_check="grad-train",
    trigger=(("shape", (2, 1)), ("axis", -1), ("data", "huge"), ("grad", "normal"), ("seed", 2)),
)

# Findings on derivatives beyond the first (spec/conventions.md, section 4); filled in from measured runs.
_HIGHER_DEVIATIONS: tuple[tuple[str, str], ...] = ()


def _to_mlx(a: np.ndarray | None) -> Any:
    import mlx.core as mx

    if a is None:
        return None
    if dtype_name(a.dtype) == "bfloat16":  # through the bits: MLX reads no ml_dtypes array
        return mx.array(np.ascontiguousarray(a).view(np.uint16)).view(mx.bfloat16)
    if a.dtype == np.float64:
        return mx.array(a, dtype=mx.float64)
    return mx.array(a)


def _to_numpy(t: Any) -> np.ndarray | None:
    import mlx.core as mx

    if t is None:
        return None
    if t.dtype == mx.bfloat16:
        return np.array(t.view(mx.uint16)).view(bfloat16())
    return np.array(t)


class MlxAdapter:
    """``nn.BatchNorm`` in ``.train()`` or ``.eval()``; dx, dgamma, dbeta by ``mx.vjp``."""

    name = "mlx"
    capabilities = Capabilities(
        dtype_rule="promoted",  # profile promoted-dtype: x promoted with the parameters and state
        dtypes=("float16", "float32", "float64", "bfloat16"),
        channel_axes=(-1,),
        ranks=(2, 3, 4),
        cumulative_average=False,
        counter=False,
        stats_dtypes=("float32",),
        notes="mlx.nn.BatchNorm: channel-last, ranks 2-4 (NC, NLC, NHWC); .train()/.eval(); gradients by "
              "mlx.core.vjp; no counter and no momentum=None; MLX's default device (CPU with mlx[cpu])",
        known_deviations=_DEVIATIONS + _HIGHER_DEVIATIONS,
        findings=(M6,),
        derivatives=MODES,
        max_order=3,
    )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def run(self, case: Case) -> Outcome:
        import mlx.core as mx
        import mlx.nn as nn

        bn = nn.BatchNorm(case.channels, eps=case.eps, momentum=case.momentum, affine=case.affine,
                          track_running_stats=case.tracked)
        if case.tracked:
            bn.running_mean, bn.running_var = _to_mlx(case.running_mean), _to_mlx(case.running_var)
        bn.train(case.training)
        x = _to_mlx(case.x)
        params = [_to_mlx(case.weight), _to_mlx(case.bias)] if case.affine else []

        def forward(x: Any, *wb: Any) -> Any:
            if wb:
                bn.weight, bn.bias = wb
            return bn(x)

        if case.derivative is not None:  # BN-GRAD-4..7 (weight and bias come together: Recipe draws both)
            primals, dirs, dy, tdy = directions_of(case, _to_mlx)
            return derivatives(case, forward, primals, dirs, dy, tdy, _to_numpy)

        out = Outcome()
        if case.grad_output is None:
            y = forward(x, *params)
        else:
            (y,), grads = mx.vjp(forward, [x, *params], [_to_mlx(case.grad_output)])
            mx.eval(grads)
            out.grad_input = _to_numpy(grads[0])
            if case.affine:
                out.grad_weight, out.grad_bias = _to_numpy(grads[1]), _to_numpy(grads[2])
        out.y = _to_numpy(y)
        if case.tracked:
            out.running_mean, out.running_var = _to_numpy(bn.running_mean), _to_numpy(bn.running_var)
        return out
