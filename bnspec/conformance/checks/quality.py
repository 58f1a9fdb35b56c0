"""The quality tier of ``spec/precision.md`` (BN-QUAL-*): the quick probe the default run includes.

Level SHOULD: a failure here is a shortfall (the adapter conforms to every MUST and falls short of
a SHOULD), never a conformance failure. Each check runs a few fixed cases per layout and dtype the
adapter claims, no drawn ones: large ill-conditioned reductions (BN-QUAL-1), a large constant
channel (BN-QUAL-2) and a mirrored pair (BN-QUAL-3). ``bnspec accuracy`` sweeps further.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from ...adapters.contract import Capabilities, Case, Outcome
from ...dtypes import numpy_dtype
from ..cases import Recipe, fits
from ..check import ALL, Check, CompareCheck, Context, expected, not_run, output_limits
from ..compare import Verdict, compare_outputs
from ..quality import constant_channel_verdict, mirrored, quality_tolerances, sign_symmetry_verdict

# |mean| / spread of the ill-conditioned probe, per input dtype: as far as the dtype's data can
# go while the spread stays resolved (a float16 value near 150 is resolved to 1/16).
OFFSET = {"float16": 1e2, "bfloat16": 1e1, "float32": 1e4, "float64": 1e6}
# The constant of the constant-channel probe: large against sqrt(eps), not a short binary fraction.
CONSTANT = {"float16": 1234.5, "bfloat16": 123.5, "float32": 12345.679, "float64": 123456789.12345679}
DTYPES = ("float32", "float64", "float16", "bfloat16")


# The layouts every quality check probes: channel-first and channel-last rank 4, and rank 2 ``(m, C)``
# (what BatchNorm1d sees from a dense layer; frameworks often reduce it by another kernel).
LAYOUTS = ((1, 4), (-1, 4), (1, 2))


def _shape(caps: Capabilities, axis: int, rank: int, channels: int, m: int) -> tuple[int, ...] | None:
    """A shape of ``rank`` with ``channels`` channels on ``axis`` and ``m`` values each
    (rank 4: ``(16, C, s, s)`` or its channel-last twin; rank 2: ``(m, C)``), or None where the
    adapter does not take that rank or layout."""
    if rank not in caps.ranks or (axis not in caps.channel_axes and not (rank == 2 and -axis in caps.channel_axes)):
        return None
    if rank == 2:
        return (m, channels)
    side = int(round((m // 16) ** 0.5))
    if 16 * side * side != m:
        return None
    return (16, channels, side, side) if axis == 1 else (16, side, side, channels)


class QualityCheck(Check):
    """Fixed cases only, built per adapter: one per layout and dtype it claims."""

    level: ClassVar[str] = "SHOULD"
    area = "QUAL"
    space = None
    m: ClassVar[int] = 4096
    channels: ClassVar[int] = 2

    def recipe(self, dtype: str, axis: int, shape: tuple[int, ...], caps: Capabilities) -> Recipe:
        raise NotImplementedError

    def recipes(self, caps: Capabilities) -> list[Recipe]:
        out = []
        for dtype in DTYPES:
            if dtype not in caps.dtypes:
                continue
            for axis, rank in LAYOUTS:
                shape = _shape(caps, axis, rank, self.channels, self.m)
                if shape is None:
                    continue
                if rank == 2 and axis not in caps.channel_axes:
                    axis = -axis
                r = self.recipe(dtype, axis, shape, caps)
                if dtype in ("float16", "bfloat16") and not caps.half_params and "float32" in caps.stats_dtypes:
                    r = replace(r, param_dtype="float32")
                if r.grad is not None and not caps.gradients:
                    r = replace(r, grad=None)
                if fits_here(r, caps):
                    out.append(r)
        return out

    def unsupported(self, caps: Capabilities) -> str | None:
        if not self.recipes(caps):
            return "none of its cases fits the adapter's capabilities (ranks, layouts, dtypes)"
        return None

    def fixed_cases(self, caps: Capabilities) -> list[Case]:
        return [self.prepare(r.build(), r) for r in self.recipes(caps)]


def fits_here(recipe: Recipe, caps: Capabilities) -> bool:
    try:
        numpy_dtype(recipe.dtype)
        return fits(recipe, caps)
    except ImportError:
        return False


class QualReductions(QualityCheck, CompareCheck):
    """On a large, ill-conditioned batch every output stays within the quality tier's bound, whose
    reductions grow like log m (blocked, pairwise or Chan-merged sums), not like m."""

    name = "quality-reductions"
    clauses = ("BN-QUAL-1",)
    outputs = ALL
    m = 65536
    channels = 2  # two: with one channel every layout's reduction runs over contiguous memory

    def recipe(self, dtype: str, axis: int, shape: tuple[int, ...], caps: Capabilities) -> Recipe:
        return Recipe(shape=shape, axis=axis, dtype=dtype, data="offset", offset=OFFSET[dtype], grad="normal",
                      seed=17)

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if (bad := not_run(outcome, error)) is not None:
            return bad
        want = expected(case, ctx)
        tols = quality_tolerances(case, want, estimator=ctx.estimator)
        names = tuple(n for n in self.outputs if getattr(want, n) is not None and n in tols)
        values = {n: getattr(want, n) for n in names}
        return compare_outputs(outcome, values, tols, names, None, output_limits(case))


class QualConstant(QualityCheck):
    """A large constant channel gives y exactly beta, dgamma exactly 0, a batch mean exactly the
    value and a variance exactly 0, and finite gradients."""

    name = "quality-constant"
    clauses = ("BN-QUAL-2",)

    def recipe(self, dtype: str, axis: int, shape: tuple[int, ...], caps: Capabilities) -> Recipe:
        return Recipe(shape=shape, axis=axis, dtype=dtype, momentum=0.5, grad="normal", seed=18)

    def prepare(self, case: Case, extra: Any) -> Case:
        # Channel 0 holds one large value everywhere; old running statistics 0 with momentum 0.5
        # make the exact new ones (0.5 c and 0) the same whatever form the update takes.
        x = np.moveaxis(case.x.copy(), case.channel_axis, 0)
        x[0] = x.dtype.type(CONSTANT[extra.dtype if extra is not None else "float32"])
        rm = None if case.running_mean is None else np.zeros_like(case.running_mean)
        rv = None if case.running_var is None else np.zeros_like(case.running_var)
        return replace(case, x=np.moveaxis(x, 0, case.channel_axis), running_mean=rm, running_var=rv)

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if (bad := not_run(outcome, error)) is not None:
            return bad
        assert outcome is not None
        return constant_channel_verdict(case, outcome)


class QualSignSymmetry(QualityCheck):
    """With beta = 0, negating x and the running mean negates y, the running mean and dgamma and
    leaves the running variance, dx and dbeta unchanged, bit for bit."""

    name = "quality-sign-symmetry"
    clauses = ("BN-QUAL-3",)
    m = 3600  # not a power of two: a tree over it pairs unequal groups, as most real batches do

    def recipe(self, dtype: str, axis: int, shape: tuple[int, ...], caps: Capabilities) -> Recipe:
        return Recipe(shape=shape, axis=axis, dtype=dtype, data="offset", offset=OFFSET[dtype], grad="normal",
                      seed=19)

    def prepare(self, case: Case, extra: Any) -> Case:
        return case if case.bias is None else replace(case, bias=np.zeros_like(case.bias))

    def evaluate(self, run: Any, case: Case, ctx: Context) -> Verdict:
        outcomes = []
        for subject in (case, mirrored(case)):
            try:
                outcome, error = run(subject), None
            except Exception as exc:  # noqa: BLE001 - the backend's exception is the subject under test
                outcome, error = None, exc
            if (bad := not_run(outcome, error)) is not None:
                return bad
            outcomes.append(outcome)
        return sign_symmetry_verdict(outcomes[0], outcomes[1])

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        raise NotImplementedError("evaluate runs the case and its mirror; there is no single outcome to judge")


QUALITY_CHECKS: tuple[Check, ...] = (QualReductions(), QualConstant(), QualSignSymmetry())
