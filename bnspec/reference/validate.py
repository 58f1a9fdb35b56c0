"""Argument checks of section 8 of the spec (BN-ARG-*), shared by the reference and the suite.

Each check raises before anything is computed or changed, with the offending value and the
clause in the message.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..dtypes import dtype_name
from ..errors import InvalidArgument, InvalidDtype


def channel_axis(axis: int, rank: int) -> int:
    """The non-negative channel axis (BN-LAYOUT-1), or an error naming ``axis``."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise InvalidArgument(f"axis={axis!r} must be an integer", "BN-LAYOUT-1")
    if not -rank <= axis < rank:
        raise InvalidArgument(f"axis={axis} is out of range for an input of rank {rank}", "BN-LAYOUT-1")
    return int(axis) % rank


def check_arguments(
    x: Any,
    *,
    axis: int,
    training: bool,
    eps: float,
    momentum: float | None,
    weight: Any,
    bias: Any,
    running_mean: Any,
    running_var: Any,
    num_batches_tracked: int,
    grad_output: Any,
) -> int:
    """Raise on any invalid use; return the non-negative channel axis."""
    if not isinstance(x, np.ndarray):
        raise InvalidDtype(f"x must be a NumPy array, got {type(x).__name__}", "BN-ARG-3")
    if dtype_name(x.dtype) is None:
        raise InvalidDtype(f"x.dtype={x.dtype} is not a floating-point dtype", "BN-ARG-3")
    if x.ndim < 2:
        raise InvalidArgument(f"x.shape={x.shape} has rank {x.ndim}; batch norm needs rank >= 2", "BN-ARG-6")
    ax = channel_axis(axis, x.ndim)
    channels = x.shape[ax]
    for name, vec in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if vec is None:
            continue
        if not isinstance(vec, np.ndarray):
            raise InvalidArgument(f"{name} must be a NumPy array or None, got {type(vec).__name__}", "BN-ARG-2")
        if vec.shape != (channels,):
            raise InvalidArgument(f"{name}.shape={vec.shape} must be ({channels},), one value per channel",
                                  "BN-ARG-2")  # BN-LAYOUT-3
        if dtype_name(vec.dtype) is None:
            raise InvalidDtype(f"{name}.dtype={vec.dtype} is not a floating-point dtype", "BN-DTYPE-3")
    if (running_mean is None) != (running_var is None):
        raise InvalidArgument("running_mean and running_var must both be given or both be None", "BN-RUN-5")
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not eps >= 0:
        raise InvalidArgument(f"eps={eps!r} must be a non-negative number", "BN-ARG-4")
    if momentum is not None and (
        isinstance(momentum, bool)
        or not isinstance(momentum, (int, float, np.floating))
        or not 0.0 <= momentum <= 1.0
    ):
        raise InvalidArgument(f"momentum={momentum!r} must lie in [0, 1] or be None", "BN-ARG-5")
    if isinstance(num_batches_tracked, bool) or not isinstance(num_batches_tracked, (int, np.integer)) or num_batches_tracked < 0:
        raise InvalidArgument(f"num_batches_tracked={num_batches_tracked!r} must be a non-negative integer", "BN-RUN-4")
    m = math.prod(x.shape) // channels if channels else 0
    if training and m == 1:
        raise InvalidArgument(
            f"x.shape={x.shape} has one value per channel; training needs at least two", "BN-ARG-1"
        )
    if grad_output is not None:
        if not isinstance(grad_output, np.ndarray) or grad_output.shape != x.shape:
            shape = getattr(grad_output, "shape", type(grad_output).__name__)
            raise InvalidArgument(f"grad_output shape {shape} must equal x.shape={x.shape}", "BN-GRAD-1")
    return ax
