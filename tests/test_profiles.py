"""Profiles (``spec/conventions.md``, section 3): an adapter declaring one is judged by the clause
text the profile swaps in and reported as conforming under it; without the declaration the same
behaviour fails. Here for ``promoted-dtype`` (BN-DTYPE-1, BN-ARG-3)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bnspec.adapters.contract import Case, Outcome
from bnspec.adapters.reference import ReferenceAdapter
from bnspec.conformance.check import Context
from bnspec.conformance.checks import CHECKS
from bnspec.conformance.runner import run_check
from bnspec.dtypes import dtype_name, numpy_dtype, promoted


@pytest.mark.parametrize(("names", "want"), [
    (("float16", "float32"), "float32"), (("bfloat16", None, None), "bfloat16"),
    (("float16", "bfloat16"), "float32"), (("float32", "float64", "float16"), "float64"), ((None,), "float32"),
])
def test_promoted_is_the_narrowest_dtype_holding_all(names, want):
    assert promoted(*names) == want


class Promoting(ReferenceAdapter):
    """Computes in the promotion of x with every parameter and statistic (as MLX and tinygrad do):
    an integer x is converted, a half x with float32 parameters gives a float32 y."""

    name = "promoting"

    def __init__(self, declare: bool = True, broken: bool = False) -> None:
        self.capabilities = replace(ReferenceAdapter.capabilities, dtype_rule="promoted" if declare else "input")
        self.broken = broken

    def run(self, case: Case) -> Outcome:
        arrays = (case.weight, case.bias, case.running_mean, case.running_var)
        floating = dtype_name(case.x.dtype)
        dt = numpy_dtype(promoted(floating, *(dtype_name(a.dtype) for a in arrays if a is not None)))
        x = case.x.astype(dt)
        if self.broken and floating is None:
            x = x * 2  # a conversion that is not one: the values change
        dy = None if case.grad_output is None else case.grad_output.astype(dt)
        return super().run(replace(case, x=x, grad_output=dy))


def _status(adapter, name: str) -> str:
    check = next(c for c in CHECKS if c.name == name)
    return run_check(adapter, check, 10, 0, adapter.name).status


@pytest.mark.parametrize("name", ["dtype-output", "arg-non-floating"])
def test_promotion_conforms_under_the_profile_and_only_when_declared(name):
    """BN-DTYPE-1, BN-ARG-3: the same behaviour is a profile pass when declared, a failure when not."""
    assert _status(Promoting(declare=True), name) == "profile"
    assert _status(Promoting(declare=False), name) == "fail"


def test_an_integer_input_must_be_normalized_as_its_conversion():
    """BN-ARG-3 under promoted-dtype: converting is allowed, changing the values is not."""
    assert _status(Promoting(broken=True), "arg-non-floating") == "fail"


def test_the_profile_does_not_excuse_the_state_dtype():
    """BN-DTYPE-3 is unchanged by the profile: running statistics keep their own dtype."""
    check = next(c for c in CHECKS if c.name == "dtype-output")
    x = np.array([[0.0], [2.0]], np.float16)
    f32 = np.zeros(1, np.float32)
    case = Case(x=x, weight=np.ones(1, np.float32), bias=f32, running_mean=f32, running_var=np.ones(1, np.float32))
    out = Promoting().run(case)
    assert out.y.dtype == np.float32
    ctx = Context(Promoting().capabilities)
    assert check.judge(case, out, None, ctx).ok
    bad = replace(out, running_mean=out.running_mean.astype(np.float64))
    assert not check.judge(case, bad, None, ctx).ok
