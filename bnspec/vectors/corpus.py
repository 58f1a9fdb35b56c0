"""The corpus of golden vectors: which cases, what the spec expects of each, and how closely.

``corpus()`` lists the cases (fixed recipes and seeds, so the same bnspec always builds the
same ones); ``steps()`` turns one into the calls an implementation makes, each with the exact
outputs (``bnspec.reference``) and the tolerance of every output element (the precision model,
``conformance/tolerance.py``), exactly as the suite's checks compute them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from .. import reference
from ..adapters.contract import Case
from ..conformance.cases import Recipe
from ..conformance.tolerance import StatError, tolerances
from ..dtypes import dtype_name
from ..errors import BnspecError

Expect = Literal["result", "error", "result-or-error"]
STATE = ("running_mean", "running_var", "num_batches_tracked")

TRAIN = ("BN-LAYOUT-1", "BN-TRAIN-1", "BN-TRAIN-2", "BN-TRAIN-3", "BN-TRAIN-4", "BN-PREC-1", "BN-PREC-2", "BN-PREC-3")
RUN = ("BN-RUN-1", "BN-RUN-2", "BN-RUN-4", "BN-PREC-4")
GRAD = ("BN-GRAD-1", "BN-GRAD-2", "BN-PREC-5")
SPECIAL = ("BN-SPECIAL-1", "BN-PREC-7")
SHAPE = ("BN-ARG-2", "BN-LAYOUT-3")


@dataclass(frozen=True)
class Vector:
    """One case of the corpus: a call, or a chain of calls whose state the implementation carries."""

    id: str
    area: str
    clauses: tuple[str, ...]
    case: Case
    expect: Expect = "result"
    chain: int = 0  # training steps after the first call's own (a chain, BN-PREC-6); then one eval call
    seed: int = 0  # of the chain's later batches


def _v(id: str, area: str, clauses: tuple[str, ...], recipe: Recipe | Case, expect: Expect = "result",
       **changes: Any) -> Vector:
    case = recipe.build() if isinstance(recipe, Recipe) else recipe
    return Vector(id, area, clauses, replace(case, **changes) if changes else case, expect)


def _put(case: Case, value: float) -> Case:
    """``case`` with ``value`` (NaN or an infinity) at index (0, ..., 0), which lies in channel 0."""
    x = case.x.copy()
    x[(0,) * x.ndim] = value
    return replace(case, x=x)


def _resized(case: Case, name: str, length: int) -> Case:
    return replace(case, **{name: np.resize(getattr(case, name), length)})


def corpus() -> list[Vector]:
    """Every case, in a fixed order. A change to this list, or to what builds it, is a new
    ``export.VERSION``."""
    R = Recipe
    half = dict(dtype="float16", param_dtype="float32")
    shifted = R((8, 2, 4), **half, seed=40).build()  # |x| ~ 300: x**2 overflows float16 (BN-DTYPE-2)
    return [
        _v("train-m2", "TRAIN", TRAIN, R((2, 3), seed=1)),
        _v("train-one-channel", "TRAIN", TRAIN, R((5, 1, 3), seed=2)),
        _v("train-offset-float64", "TRAIN", TRAIN, R((3, 2, 5), dtype="float64", data="offset", offset=1e6, seed=3)),
        _v("train-integers-eps", "TRAIN", TRAIN, R((4, 3, 2, 2), eps=1e-1, data="integers", seed=4)),
        _v("train-large-m-offset", "TRAIN", TRAIN, R((64, 2, 8, 8), data="offset", offset=1e4, seed=5)),
        _v("train-rank5", "TRAIN", (*TRAIN, "BN-LAYOUT-2"), R((2, 3, 2, 2, 3), seed=25)),
        _v("train-wide-range", "TRAIN", TRAIN, R((6, 4, 3), data="wide", seed=26)),
        _v("train-affine-off", "TRAIN", ("BN-TRAIN-4", "BN-PREC-3"), R((6, 4), affine=False, seed=6)),
        _v("train-batch-stats-only", "TRAIN", ("BN-TRAIN-5", "BN-PREC-3", *RUN), R((5, 3, 4), seed=27),
           running_mean=np.full(3, 50.0, np.float32), running_var=np.full(3, 100.0, np.float32)),
        _v("layout-channel-last-rank4", "LAYOUT", ("BN-LAYOUT-1", "BN-LAYOUT-2", *GRAD),
           R((2, 3, 3, 5), axis=-1, grad="normal", seed=7)),
        _v("layout-channel-last-rank3", "LAYOUT", ("BN-LAYOUT-1", "BN-LAYOUT-2"),
           R((4, 5, 3), axis=-1, dtype="float64", seed=28)),
        _v("layout-negative-axis-rank2", "LAYOUT", ("BN-LAYOUT-1",), R((4, 3), axis=-1, seed=29)),
        _v("run-momentum-0.1", "RUN", RUN, R((2, 3), momentum=0.1, seed=8)),
        _v("run-momentum-1", "RUN", RUN, R((4, 2, 3), momentum=1.0, seed=9)),
        _v("run-momentum-0", "RUN", RUN, R((4, 3), momentum=0.0, num_batches_tracked=2, seed=30)),
        _v("run-cumulative", "RUN", ("BN-RUN-3", *RUN), R((3, 2), momentum=None, num_batches_tracked=3, seed=10)),
        _v("run-cumulative-first", "RUN", ("BN-RUN-3", *RUN), R((5, 2, 2), momentum=None, seed=31)),
        _v("run-untracked", "RUN", ("BN-RUN-5", "BN-PREC-3"), R((4, 3), tracked=False, seed=32)),
        _v("run-eval-no-update", "RUN", ("BN-RUN-6", "BN-EVAL-1", "BN-PREC-4"),
           R((3, 4, 2), training=False, num_batches_tracked=4, seed=33)),
        _v("eval-one-value", "EVAL", ("BN-EVAL-1", "BN-RUN-6", "BN-PREC-3"), R((1, 3), training=False, seed=11)),
        _v("eval-rank4", "EVAL", ("BN-EVAL-1", "BN-RUN-6", "BN-PREC-3"), R((2, 3, 4, 4), training=False, seed=34)),
        _v("eval-untracked", "EVAL", ("BN-EVAL-2", "BN-PREC-3"), R((4, 3, 2), training=False, tracked=False, seed=35)),
        _v("grad-train-m2", "GRAD", GRAD, R((2, 3), grad="normal", seed=12)),
        _v("grad-train-offset", "GRAD", GRAD, R((16, 2, 4, 4), grad="correlated", data="offset", offset=1e3, seed=13)),
        _v("grad-train-float64", "GRAD", GRAD, R((3, 4, 5), dtype="float64", grad="normal", seed=39)),
        _v("grad-eval", "GRAD", ("BN-GRAD-3", "BN-GRAD-2", "BN-PREC-5"),
           R((4, 3, 2), training=False, grad="normal", seed=36)),
        _v("grad-eval-untracked", "GRAD", ("BN-EVAL-2", *GRAD),
           R((4, 3), training=False, tracked=False, grad="normal", seed=37)),
        _v("grad-affine-off", "GRAD", GRAD, R((5, 2, 3), affine=False, grad="ones", seed=38)),
        _v("dtype-float16-stats-float32", "DTYPE", ("BN-DTYPE-1", "BN-DTYPE-2", "BN-DTYPE-3", "BN-PREC-3", "BN-PREC-5"),
           R((8, 2, 4), **half, data="offset", offset=1e2, grad="normal", seed=14)),
        _v("dtype-float16-large-m", "DTYPE", ("BN-DTYPE-1", "BN-DTYPE-2", "BN-DTYPE-3", "BN-PREC-3"),
           R((64, 2, 8, 8), **half, seed=15)),
        _v("dtype-float16-square-overflow", "DTYPE", ("BN-DTYPE-2", "BN-PREC-3"), shifted,
           x=(shifted.x.astype(np.float64) + 300.0).astype(np.float16)),
        _v("dtype-float16-everywhere", "DTYPE", ("BN-DTYPE-1", "BN-DTYPE-2", "BN-DTYPE-3", "BN-PREC-3", "BN-PREC-5"),
           R((8, 2, 4), dtype="float16", data="offset", offset=1e2, grad="normal", seed=14)),
        Vector("special-nan", "SPECIAL", SPECIAL, _put(R((4, 3, 2), grad="normal", seed=42).build(), np.nan)),
        Vector("special-inf", "SPECIAL", SPECIAL, _put(R((5, 2), grad="normal", seed=46).build(), np.inf)),
        Vector("special-minus-inf-channel-last", "SPECIAL", SPECIAL,
               _put(R((3, 2, 3), axis=-1, seed=47).build(), -np.inf)),
        _v("special-constant-channel", "SPECIAL", ("BN-SPECIAL-2", "BN-PREC-3", "BN-PREC-5"),
           R((4, 1, 3), data="constant-channel", grad="normal", seed=16)),
        _v("special-constant-channel-tiny-eps", "SPECIAL", ("BN-SPECIAL-2", "BN-PREC-3", "BN-PREC-5"),
           R((6, 3, 2), data="constant-channel", eps=1e-8, grad="normal", seed=43)),
        _v("arg-one-value", "ARG", ("BN-ARG-1",), R((1, 3), seed=17), "error"),
        _v("arg-one-value-rank4", "ARG", ("BN-ARG-1",), R((1, 2, 1, 1), seed=18), "error"),
        _v("arg-one-value-untracked", "ARG", ("BN-ARG-1",), R((1, 4, 1), tracked=False, seed=19), "error"),
        Vector("arg-weight-length-1", "ARG", SHAPE, _resized(R((4, 3), seed=23).build(), "weight", 1), "error"),
        Vector("arg-bias-too-long", "ARG", SHAPE, _resized(R((2, 4, 3, 3), seed=24).build(), "bias", 6), "error"),
        Vector("arg-running-mean-too-short", "ARG", SHAPE, _resized(R((4, 3), seed=48).build(), "running_mean", 2),
               "error"),
        Vector("arg-running-var-length-1-eval", "ARG", SHAPE,
               _resized(R((4, 3), training=False, seed=49).build(), "running_var", 1), "error"),
        _v("arg-integer-input-int64", "ARG", ("BN-ARG-3",), R((4, 3), data="integers", seed=50), "error",
           x=R((4, 3), data="integers", seed=50).build().x.astype(np.int64)),
        _v("arg-integer-input-int32-eval", "ARG", ("BN-ARG-3",), R((4, 3), training=False, data="integers", seed=51),
           "error", x=R((4, 3), data="integers", seed=51).build().x.astype(np.int32)),
        _v("arg-negative-eps", "ARG", ("BN-ARG-4",), R((4, 3), seed=52), "error", eps=-1e-5),
        _v("arg-negative-eps-eval", "ARG", ("BN-ARG-4",), R((4, 3), training=False, seed=53), "error", eps=-1e-3),
        _v("arg-momentum-above-one", "ARG", ("BN-ARG-5",), R((4, 3), seed=54), "error", momentum=1.5),
        _v("arg-momentum-below-zero", "ARG", ("BN-ARG-5",), R((4, 3), seed=55), "error", momentum=-0.1),
        _v("arg-momentum-nan", "ARG", ("BN-ARG-5",), R((4, 3), seed=56), "error", momentum=float("nan")),
        Vector("arg-rank-1", "ARG", ("BN-ARG-6",), Case(x=np.linspace(-1.0, 1.0, 5, dtype=np.float32)), "error"),
        _v("empty-batch", "EMPTY", ("BN-EMPTY-1",), R((0, 3), seed=20), "result-or-error"),
        _v("empty-batch-rank4", "EMPTY", ("BN-EMPTY-1",), R((0, 2, 4, 4), seed=21), "result-or-error"),
        _v("empty-batch-cumulative", "EMPTY", ("BN-EMPTY-1",),
           R((0, 3, 5), momentum=None, num_batches_tracked=2, seed=22), "result-or-error"),
        Vector("chain-momentum", "SCENARIO", ("BN-PREC-6", "BN-EVAL-1", *RUN), R((6, 3), seed=44).build(),
               chain=3, seed=57),
        Vector("chain-cumulative", "SCENARIO", ("BN-PREC-6", "BN-RUN-3", "BN-EVAL-1", *RUN),
               R((4, 2, 3), dtype="float64", momentum=None, seed=45).build(), chain=2, seed=58),
    ]


@dataclass(frozen=True)
class Output:
    """One output a step must produce: its exact value, and how far a result may be from it."""

    expected: np.ndarray | int
    tolerance: np.ndarray | None  # None: exactly equal (the batch counter)
    dtype: str  # the dtype the result must have; "int64" stands for any integer (the counter)
    clauses: tuple[str, ...]  # what this output is defined by, for the failure message


@dataclass(frozen=True)
class Step:
    """One call: its inputs (``case``), whether its state is carried over, what it must return."""

    case: Case
    carried: bool  # the running statistics and counter are the implementation's own, from the step before
    outputs: dict[str, Output]
    absent: tuple[str, ...]  # outputs that must not be returned (BN-RUN-5)


def _exact(case: Case) -> reference.Step:
    return reference.step(
        case.x, axis=case.axis, training=case.training, eps=case.eps, momentum=case.momentum,
        weight=case.weight, bias=case.bias, running_mean=case.running_mean, running_var=case.running_var,
        num_batches_tracked=case.num_batches_tracked, grad_output=case.grad_output,
    )


def _dtype(a: np.ndarray) -> str:
    return dtype_name(a.dtype) or str(a.dtype)


def governing(name: str, case: Case) -> tuple[str, ...]:
    """The clauses that define output ``name`` of ``case``."""
    batch = case.training or not case.tracked  # BN-TRAIN-5, BN-EVAL-1, BN-EVAL-2
    empty = case.values_per_channel == 0
    if name == "y":
        if not batch:
            return ("BN-EVAL-1", "BN-PREC-3")
        return TRAIN[1:5] + ("BN-PREC-3",) + (() if case.training else ("BN-EVAL-2",))
    if name in ("running_mean", "running_var", "num_batches_tracked"):
        if empty:
            return ("BN-EMPTY-1",)
        if not case.training:
            return ("BN-RUN-6",)
        if name == "num_batches_tracked":
            return ("BN-RUN-4",)
        rule = "BN-RUN-1" if case.momentum is not None else "BN-RUN-3"
        return (rule, "BN-RUN-2", "BN-PREC-4") if name == "running_var" else (rule, "BN-PREC-4")
    return ("BN-GRAD-1" if batch else "BN-GRAD-3", "BN-GRAD-2", "BN-PREC-5")


def steps(vector: Vector) -> list[Step]:
    """The calls ``vector`` makes, with what each must return."""
    if vector.expect == "error":
        try:
            _exact(vector.case)
        except BnspecError:
            return [Step(vector.case, False, {}, ())]
        raise AssertionError(f"vector {vector.id}: the reference accepts a case the corpus says must raise")
    if vector.chain:
        return _chain(vector)
    case = vector.case
    want = _exact(case)
    tol = tolerances(case, want)
    like = {"y": case.x, "running_mean": case.running_mean, "running_var": case.running_var,
            "grad_input": case.x, "grad_weight": case.weight, "grad_bias": case.bias}
    outs = {name: Output(getattr(want, name), tol[name], _dtype(a), governing(name, case))
            for name, a in like.items() if a is not None and getattr(want, name) is not None}
    if case.tracked:
        outs["num_batches_tracked"] = Output(int(want.num_batches_tracked or 0), None, "int64",
                                             governing("num_batches_tracked", case))
    return [Step(case, False, outs, () if case.tracked else STATE)]


def _chain(vector: Vector) -> list[Step]:
    """Training steps then one eval call, state carried by the implementation (BN-PREC-6).

    The exact chain is the reference fed its own exact state; the running statistics may drift
    from it by ``T_k = (1 - alpha_k) T_(k-1) + t_k``, each step's tolerance charged at the exact
    chain's values in the implementation's state dtype, and the eval output is allowed ``T``
    as the error of the statistics it normalizes with: the suite's ``scenario-multistep``.
    """
    case = vector.case
    assert case.running_mean is not None and case.running_var is not None
    rng = np.random.default_rng(vector.seed)
    state = (case.running_mean.astype(np.float64), case.running_var.astype(np.float64), case.num_batches_tracked)
    drift = StatError(np.zeros(case.channels), np.zeros(case.channels))
    out = []
    for k in range(vector.chain + 1):
        training = k < vector.chain
        x = case.x if k == 0 else (case.x.astype(np.float64) * rng.uniform(0.5, 2.0)
                                    + rng.normal(0.0, 1.0)).astype(case.x.dtype)
        given = replace(case, x=x, training=training)
        exact = replace(given, running_mean=state[0], running_var=state[1], num_batches_tracked=state[2])
        want = _exact(exact)
        if training:
            charged = replace(exact, running_mean=state[0].astype(case.running_mean.dtype),
                              running_var=state[1].astype(case.running_var.dtype))
            tol = tolerances(charged, want)
            alpha = case.momentum if case.momentum is not None else 1.0 / (state[2] + 1)
            drift = StatError((1 - alpha) * drift.mean + tol["running_mean"],
                              (1 - alpha) * drift.var + tol["running_var"])
            assert want.running_mean is not None and want.running_var is not None
            state = (want.running_mean, want.running_var, int(want.num_batches_tracked or 0))
            chained = ("BN-PREC-6",)
            outs = {"y": Output(want.y, tol["y"], _dtype(x), governing("y", given)),
                    "running_mean": Output(state[0], drift.mean, _dtype(case.running_mean),
                                           governing("running_mean", given) + chained),
                    "running_var": Output(state[1], drift.var, _dtype(case.running_var),
                                          governing("running_var", given) + chained)}
        else:
            outs = {"y": Output(want.y, tolerances(exact, want, stat_error=drift)["y"], _dtype(x),
                                governing("y", given) + ("BN-PREC-6",))}
        outs["num_batches_tracked"] = Output(state[2], None, "int64", governing("num_batches_tracked", given))
        out.append(Step(given, k > 0, outs, ()))
    return out
