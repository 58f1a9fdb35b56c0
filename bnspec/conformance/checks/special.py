"""Section 7 of the spec: non-finite values and constant channels (BN-SPECIAL-*)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ...adapters.contract import Capabilities, Case
from ..cases import WITH_EXTREMES, Recipe, Space
from ..check import (
    ALL,
    CompareCheck,
    modes_unsupported,
)


class SpecialNonFinite(CompareCheck):
    """A NaN or an infinity in one channel changes nothing in any other channel."""

    name = "special-nonfinite"
    area = "SPECIAL"
    clauses = ("BN-SPECIAL-1", "BN-PREC-7")
    outputs = ALL
    space = Space(grad=True, large=False, data=WITH_EXTREMES)

    def extras(self, caps: Capabilities) -> st.SearchStrategy[Any]:
        return st.tuples(st.sampled_from([np.nan, np.inf, -np.inf]), st.integers(0, 2**16))

    def prepare(self, case: Case, extra: Any) -> Case:
        if case.channels < 2:  # needs another channel to observe
            x = np.concatenate([case.x, case.x], axis=case.channel_axis)
            twice = {k: None if v is None else np.concatenate([v, v]) for k, v in (
                ("weight", case.weight), ("bias", case.bias), ("running_mean", case.running_mean),
                ("running_var", case.running_var))}
            dy = None if case.grad_output is None else np.concatenate([case.grad_output] * 2, axis=case.channel_axis)
            case = replace(case, x=x, grad_output=dy, **twice)
        value, where = extra if extra is not None else (np.nan, 0)
        x = np.moveaxis(case.x.copy(), case.channel_axis, 0)
        flat = x.reshape(case.channels, -1)
        if flat.shape[1]:
            flat[0, where % flat.shape[1]] = value
        return replace(case, x=np.moveaxis(flat.reshape(x.shape), 0, case.channel_axis))

    def masks(self, case: Case) -> dict[str, np.ndarray]:
        shape = [1] * case.x.ndim
        shape[case.channel_axis] = case.channels
        others = (np.arange(case.channels) != 0)
        full = np.broadcast_to(others.reshape(shape), case.x.shape)
        return {"y": full, "grad_input": full, "running_mean": others, "running_var": others,
                "grad_weight": others, "grad_bias": others}


class SpecialConstant(CompareCheck):
    """A constant channel gives y = beta and finite gradients in training."""

    name = "special-constant"
    area = "SPECIAL"
    clauses = ("BN-SPECIAL-2", "BN-PREC-3", "BN-PREC-5")
    outputs = ALL
    space = Space(training=True, grad=True, data=("constant-channel", "large-constant"))
    fixed = (Recipe(shape=(4, 1, 3), data="constant-channel", grad="normal", seed=16),)

    def unsupported(self, caps: Capabilities) -> str | None:
        return modes_unsupported(caps, self.space)
