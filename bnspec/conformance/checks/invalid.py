"""Section 8 of the spec: invalid use must raise (BN-ARG-*)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
from hypothesis import strategies as st

from ...adapters.contract import Capabilities, Case, Outcome
from ...dtypes import dtype_name, numpy_dtype
from ..cases import Recipe, Space
from ..check import CompareCheck, Context, RefusalCheck
from ..compare import Verdict, fail


class _MustRaise(RefusalCheck):
    """Base: the prepared case is invalid, and the backend must raise; the refusal counts when the
    valid twin runs (``RefusalCheck``)."""

    what: ClassVar[str] = ""

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        return fail(f"accepted {self.what} without raising ({self.detail(case)})")

    def detail(self, case: Case) -> str:
        return case.describe()


class ArgOneValue(_MustRaise):
    """A training step with one value per channel raises."""

    name = "arg-one-value"
    area = "ARG"
    clauses = ("BN-ARG-1",)
    what = "one value per channel in training"
    space = None

    def twin(self, case: Case) -> Case:
        # Two values per channel: the batch and the batch plus one, stacked along axis 0.
        x = np.concatenate([case.x, case.x + np.ones((), case.x.dtype)])
        dy = None if case.grad_output is None else np.concatenate([case.grad_output] * 2)
        return replace(case, x=x, grad_output=dy)
    fixed = (Recipe(shape=(1, 3), seed=17), Recipe(shape=(1, 2, 1, 1), seed=18),
             Recipe(shape=(1, 4, 1), tracked=False, seed=19))


class ArgShape(_MustRaise):
    """A weight, bias or running statistic whose shape is not (C,) raises: a wrong length, or the
    right count of values in shape (1, C)."""

    name = "arg-shape"
    area = "ARG"
    clauses = ("BN-ARG-2", "BN-LAYOUT-3")
    what = "a parameter of the wrong length"
    space = Space(tracked=True, affine=True, large=False)
    # Length 1 on several channels is the one wrong length that broadcasting accepts silently.
    fixed = (Recipe(shape=(4, 3), seed=23), Recipe(shape=(2, 4, 3, 3), seed=24))

    def extras(self, caps: Capabilities) -> st.SearchStrategy[Any]:
        # (name, 1): length one; (name, -2 or 2): two fewer or more than the channels; (name, "row"): the
        # right values in shape (1, C), which a check of the element count alone accepts (finding T4).
        return st.tuples(st.sampled_from(["weight", "bias", "running_mean", "running_var"]),
                         st.sampled_from([1, -2, 2, "row"]))

    def prepare(self, case: Case, extra: Any) -> Case:
        name, length = extra if extra is not None else ("weight", 1)
        vec = getattr(case, name)
        if length == "row":
            return replace(case, **{name: vec.reshape(1, -1)})
        if length != 1:  # a delta from the channel count
            length = max(case.channels + length, 0)
        if length == case.channels:  # one channel: length 1 is right, so make it wrong
            length += 1
        return replace(case, **{name: np.resize(vec, length)})

    def twin(self, case: Case) -> Case:
        fill = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
        right = {n: np.full(case.channels, fill[n], getattr(case, n).dtype) for n in fill
                 if getattr(case, n) is not None and getattr(case, n).shape != (case.channels,)}
        return replace(case, **right)

    def detail(self, case: Case) -> str:
        shapes = {n: getattr(case, n).shape for n in ("weight", "bias", "running_mean", "running_var")
                  if getattr(case, n) is not None}
        return f"{case.channels} channels, shapes {shapes}"


class ArgNonFloating(_MustRaise):
    """An integer input raises (under profile promoted-dtype: or is converted to a floating compute
    dtype and normalized as that conversion would be)."""

    name = "arg-non-floating"
    area = "ARG"
    clauses = ("BN-ARG-3",)
    what = "an integer input"
    # float32 parameters and state: what an integer input meets in practice, and under profile
    # promoted-dtype the conversion every framework with that profile makes (to float32).
    space = Space(large=False, data=("integers",), dtypes=("float32",))

    def extras(self, caps: Capabilities) -> st.SearchStrategy[Any]:
        return st.sampled_from([np.int32, np.int64])

    def prepare(self, case: Case, extra: Any) -> Case:
        return replace(case, x=case.x.astype(extra or np.int64))

    def twin(self, case: Case) -> Case:
        like = case.weight if case.weight is not None else case.running_mean
        return replace(case, x=case.x.astype(like.dtype if like is not None else np.float32))

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if ctx.capabilities.dtype_rule != "promoted":
            return super().judge(case, outcome, error, ctx)
        y = getattr(outcome, "y", None)
        dt = dtype_name(y.dtype) if isinstance(y, np.ndarray) else None
        if dt is None:
            return fail(f"an integer input neither raised nor gave a floating y (got {type(y).__name__} "
                        f"{getattr(y, 'dtype', '')}); profile promoted-dtype converts it to a floating dtype")
        converted = replace(case, x=case.x.astype(numpy_dtype(dt)))  # the conversion the profile describes
        return _AsConverted().judge(converted, outcome, None, ctx)


class _AsConverted(CompareCheck):
    """Judges an integer input's outputs as those of its conversion to the compute dtype."""

    name = "arg-non-floating"
    area = "ARG"
    clauses = ("BN-ARG-3",)
    outputs = ("y", "running_mean", "running_var")


class ArgNegativeEps(_MustRaise):
    """A negative epsilon raises."""

    name = "arg-negative-eps"
    area = "ARG"
    clauses = ("BN-ARG-4",)
    what = "a negative epsilon"
    space = Space(large=False)

    def extras(self, caps: Capabilities) -> st.SearchStrategy[Any]:
        return st.sampled_from([-1e-5, -1e-3, -1.0])

    def prepare(self, case: Case, extra: Any) -> Case:
        return replace(case, eps=extra if extra is not None else -1e-5)

    def twin(self, case: Case) -> Case:
        return replace(case, eps=-case.eps)

    def detail(self, case: Case) -> str:
        return f"eps={case.eps}, training={case.training}"


class ArgMomentumRange(_MustRaise):
    """A momentum outside [0, 1] raises."""

    name = "arg-momentum-range"
    area = "ARG"
    clauses = ("BN-ARG-5",)
    what = "a momentum outside [0, 1]"
    space = Space(training=True, tracked=True, cumulative=False, large=False)

    def extras(self, caps: Capabilities) -> st.SearchStrategy[Any]:
        return st.sampled_from([1.5, -0.1, 2.0, float("nan")])

    def prepare(self, case: Case, extra: Any) -> Case:
        return replace(case, momentum=extra if extra is not None else 1.5)

    def twin(self, case: Case) -> Case:
        return replace(case, momentum=0.1)

    def detail(self, case: Case) -> str:
        return f"momentum={case.momentum}"
