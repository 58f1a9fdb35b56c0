"""Checks of dtypes, special values, invalid use, inputs, empty batches and multi-step use."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
from hypothesis import strategies as st

from ..adapters.contract import Capabilities, Case, Outcome
from ..dtypes import dtype_name, numpy_dtype, promoted
from .cases import Recipe, Space, recipes
from .check import Check, CompareCheck, Context, describe_error, expected, not_run, snapshot
from .checks import ALL
from .compare import Verdict, compare, fail
from .tolerance import StatError, tolerances

HALF = ("float16", "bfloat16")


# -- dtypes ----------------------------------------------------------------------------------------

class DtypeOutput(Check):
    """y and dx come back in the input's dtype; parameters, state and their gradients in their own.

    Under profile promoted-dtype, y and dx may instead come back in the dtype that holds the input's
    and the parameters' (or the parameters' and the state's) dtypes."""

    name = "dtype-output"
    area = "DTYPE"
    clauses = ("BN-DTYPE-1", "BN-DTYPE-3")
    space = Space(grad=True, large=False, dtypes=None, half_params=None)

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if (bad := not_run(outcome, error)) is not None:
            return bad
        assert outcome is not None
        pairs = [("y", case.x), ("running_mean", case.running_mean), ("running_var", case.running_var)]
        if ctx.capabilities.gradients:
            pairs += [("grad_input", case.x), ("grad_weight", case.weight), ("grad_bias", case.bias)]
        for name, like in pairs:
            got = getattr(outcome, name)
            if like is None or got is None:
                continue
            want_dt, got_dt = dtype_name(like.dtype), dtype_name(getattr(got, "dtype", object))
            allowed = {want_dt}
            if like is case.x and ctx.capabilities.dtype_rule == "promoted":
                allowed |= set(promoted_dtypes(case))
            if got_dt not in allowed:
                want = " or ".join(sorted(a for a in allowed if a))
                return fail(f"{name}.dtype = {got_dt or getattr(got, 'dtype', type(got).__name__)}, expected {want}",
                            output=name, got=str(got_dt), expected=want)
        return Verdict()


def promoted_dtypes(case: Case) -> tuple[str, ...]:
    """The compute dtypes profile promoted-dtype allows for y and dx: the promotion of x with the
    parameters, and of x with the parameters and the state (section 3 of spec/conventions.md)."""
    def name(a: np.ndarray | None) -> str | None:
        return None if a is None else dtype_name(a.dtype)

    x = name(case.x)
    params = (name(case.weight), name(case.bias))
    return (promoted(x, *params), promoted(x, *params, name(case.running_mean), name(case.running_var)))


class DtypeHalfParams(CompareCheck):
    """With half-precision parameters and state too, half inputs are still computed in float32."""

    name = "dtype-half-params"
    area = "DTYPE"
    clauses = ("BN-DTYPE-2", "BN-DTYPE-3", "BN-PREC-3", "BN-PREC-5")
    outputs = ALL
    space = Space(dtypes=HALF, grad=True, half_params=True)

    def unsupported(self, caps: Capabilities) -> str | None:
        if not caps.half_params:
            return "the adapter takes half-precision inputs only with float32 parameters and state"
        return super().unsupported(caps)
    fixed = (Recipe(shape=(8, 2, 4), dtype="float16", data="offset", offset=1e2, seed=14, grad="normal"),)


class DtypeHalf(CompareCheck):
    """float16 and bfloat16 inputs accumulate in at least float32 and round once to their dtype."""

    name = "dtype-half"
    area = "DTYPE"
    clauses = ("BN-DTYPE-2", "BN-PREC-3", "BN-PREC-5")
    outputs = ALL
    space = Space(dtypes=HALF, grad=True)
    fixed = (
        # x**2 overflows float16 (max 65504) at |x| > 256: a float16 accumulator returns inf.
        Recipe(shape=(8, 2, 4), dtype="float16", param_dtype="float32", data="offset", offset=1e2, seed=14,
               grad="normal"),
        Recipe(shape=(64, 2, 8, 8), dtype="float16", param_dtype="float32", seed=15),  # m = 4096
    )

    def prepare(self, case: Case, extra: Any) -> Case:
        if extra is None:
            return case
        # Move every channel up to ~300 so that a float16 sum of squares overflows.
        return replace(case, x=(case.x.astype(np.float64) + 300.0).astype(case.x.dtype))

    def extras(self, caps: Capabilities) -> st.SearchStrategy[Any]:
        return st.sampled_from([None, None, "shift"])


# -- special values --------------------------------------------------------------------------------

class SpecialNonFinite(CompareCheck):
    """A NaN or an infinity in one channel changes nothing in any other channel."""

    name = "special-nonfinite"
    area = "SPECIAL"
    clauses = ("BN-SPECIAL-1", "BN-PREC-7")
    outputs = ALL
    space = Space(grad=True, large=False)

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
    space = Space(training=True, grad=True, data=("constant-channel",))
    fixed = (Recipe(shape=(4, 1, 3), data="constant-channel", grad="normal", seed=16),)

    def unsupported(self, caps: Capabilities) -> str | None:
        return None


# -- invalid use -----------------------------------------------------------------------------------

class _MustRaise(Check):
    """Base: the prepared case is invalid, and the backend must raise."""

    what: ClassVar[str] = ""

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if error is not None:
            return Verdict()
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
    fixed = (Recipe(shape=(1, 3), seed=17), Recipe(shape=(1, 2, 1, 1), seed=18),
             Recipe(shape=(1, 4, 1), tracked=False, seed=19))


class ArgShape(_MustRaise):
    """A weight, bias or running statistic whose length is not the channel count raises."""

    name = "arg-shape"
    area = "ARG"
    clauses = ("BN-ARG-2", "BN-LAYOUT-3")
    what = "a parameter of the wrong length"
    space = Space(tracked=True, affine=True, large=False)
    # Length 1 on several channels is the one wrong length that broadcasting accepts silently.
    fixed = (Recipe(shape=(4, 3), seed=23), Recipe(shape=(2, 4, 3, 3), seed=24))

    def extras(self, caps: Capabilities) -> st.SearchStrategy[Any]:
        # (name, 1): length one; (name, -2 or 2): two fewer or more than the channels.
        return st.tuples(st.sampled_from(["weight", "bias", "running_mean", "running_var"]), st.sampled_from([1, -2, 2]))

    def prepare(self, case: Case, extra: Any) -> Case:
        name, length = extra if extra is not None else ("weight", 1)
        vec = getattr(case, name)
        if length != 1:  # a delta from the channel count
            length = max(case.channels + length, 0)
        if length == case.channels:  # one channel: length 1 is right, so make it wrong
            length += 1
        return replace(case, **{name: np.resize(vec, length)})

    def detail(self, case: Case) -> str:
        lengths = {n: len(getattr(case, n)) for n in ("weight", "bias", "running_mean", "running_var")
                   if getattr(case, n) is not None}
        return f"{case.channels} channels, lengths {lengths}"


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

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if error is not None or ctx.capabilities.dtype_rule != "promoted":
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

    def detail(self, case: Case) -> str:
        return f"momentum={case.momentum}"


# -- inputs and empty batches ------------------------------------------------------------------

class InputsUnmutated(Check):
    """The backend leaves every array it was given unchanged."""

    name = "io-unmutated"
    area = "IO"
    clauses = ("BN-IO-1",)
    space = Space(grad=True, large=False)

    def evaluate(self, run: Any, case: Case, ctx: Context) -> Verdict:
        before = snapshot(case)
        try:
            run(case)
        except Exception as exc:  # noqa: BLE001
            return fail(f"raised {describe_error(exc)} on a valid case")
        for name, old in before.items():
            new = getattr(case, name)
            if new.shape != old.shape or not np.array_equal(new, old, equal_nan=True):
                return fail(f"the case's {name} was modified in place", output=name)
        return Verdict()


class EmptyBatch(Check):
    """An empty batch raises or returns an empty output, and leaves the state untouched."""

    name = "empty-batch"
    area = "EMPTY"
    clauses = ("BN-EMPTY-1",)
    space = None
    fixed = (Recipe(shape=(0, 3), seed=20), Recipe(shape=(0, 2, 4, 4), seed=21),
             Recipe(shape=(0, 3, 5), momentum=None, num_batches_tracked=2, seed=22),
             Recipe(shape=(0, 4, 4, 2), axis=-1, seed=23))

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if error is not None:
            return Verdict()
        if outcome is None:
            return fail("no outcome and no error")
        y = outcome.y
        if not isinstance(y, np.ndarray) or y.shape != case.x.shape:
            return fail(f"y has shape {getattr(y, 'shape', type(y).__name__)}, expected {case.x.shape}")
        for name in ("running_mean", "running_var"):
            got, want = getattr(outcome, name), getattr(case, name)
            if want is not None and (not isinstance(got, np.ndarray) or not np.array_equal(got, want)):
                return fail(f"{name} changed on an empty batch: {got!r}, was {want!r}", output=name)
        if ctx.capabilities.counter and case.tracked and outcome.num_batches_tracked != case.num_batches_tracked:
            return fail(f"num_batches_tracked = {outcome.num_batches_tracked!r} after an empty batch, "
                        f"expected {case.num_batches_tracked}", output="num_batches_tracked")
        return Verdict()


# -- a multi-step scenario --------------------------------------------------------------------------

class MultiStep(Check):
    """Several training steps then eval agree with the reference chained the same way."""

    name = "scenario-multistep"
    area = "SCENARIO"
    clauses = ("BN-RUN-1", "BN-RUN-2", "BN-RUN-3", "BN-RUN-4", "BN-EVAL-1", "BN-PREC-6")
    space = Space(training=True, tracked=True, large=False)

    def strategy(self, caps: Capabilities) -> Any:
        assert self.space is not None
        first = recipes(caps, self.space).map(lambda r: replace(r.build(), grad_output=None, num_batches_tracked=0))
        return st.builds(_Scenario, first, st.integers(2, 4), st.integers(0, 2**32 - 1))

    def evaluate(self, run: Any, scenario: Any, ctx: Context) -> Verdict:
        case, steps, seed = scenario.case, scenario.steps, scenario.seed
        rng = np.random.default_rng(seed)
        got_state = want_state = (case.running_mean, case.running_var, 0)
        err = StatError(np.zeros(case.channels), np.zeros(case.channels))
        for k in range(steps + 1):
            training = k < steps
            x = case.x if k == 0 else (case.x.astype(np.float64) * rng.uniform(0.5, 2.0)
                                        + rng.normal(0, 1)).astype(case.x.dtype)
            step_case = replace(case, x=x, training=training, running_mean=got_state[0],
                                running_var=got_state[1], num_batches_tracked=got_state[2])
            ref_case = replace(step_case, running_mean=want_state[0], running_var=want_state[1],
                               num_batches_tracked=want_state[2])
            try:
                out = run(step_case)
            except Exception as exc:  # noqa: BLE001
                return fail(f"step {k + 1} raised {describe_error(exc)}")
            want = expected(ref_case, ctx)
            if training:
                # The tolerance is charged in the backend's state dtype, at the exact chain's values.
                tol_case = replace(ref_case, running_mean=want_state[0].astype(case.running_mean.dtype),
                                   running_var=want_state[1].astype(case.running_var.dtype))
                tol = tolerances(tol_case, want, estimator=ctx.estimator)
                alpha = ref_case.momentum if ref_case.momentum is not None else 1.0 / (want_state[2] + 1)
                err = StatError((1 - alpha) * err.mean + tol["running_mean"], (1 - alpha) * err.var + tol["running_var"])
                want_state = (want.running_mean, want.running_var, want.num_batches_tracked)
                got_state = (out.running_mean, out.running_var, out.num_batches_tracked)
                verdict = compare("running_mean", out.running_mean, want.running_mean, err.mean)
                verdict = verdict.merge(compare("running_var", out.running_var, want.running_var, err.var))
                if ctx.capabilities.counter and out.num_batches_tracked != k + 1:
                    verdict = verdict.merge(fail(f"num_batches_tracked = {out.num_batches_tracked!r} after "
                                                 f"{k + 1} steps, expected {k + 1}"))
            else:
                tol = tolerances(ref_case, want, stat_error=err, estimator=ctx.estimator)
                verdict = compare("y", out.y, want.y, tol["y"])
            if not verdict.ok:
                verdict.message = f"after {k + 1} of {steps} training steps + eval: {verdict.message}"
                return verdict
        return verdict


class _Scenario:
    """A scenario's first case, its step count and the seed of its later batches."""

    def __init__(self, case: Case, steps: int, seed: int) -> None:
        self.case, self.steps, self.seed = case, steps, seed

    def describe(self) -> str:
        return f"{self.steps} training steps then eval, first: {self.case.describe()}"
