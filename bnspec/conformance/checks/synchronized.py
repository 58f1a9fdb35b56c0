"""Section 10 of the spec: synchronized batch norm: one batch split over replicas.

Every case here carries ``shards``, the batch's split along axis 0; the exact answer is the
concatenated batch's (``bnspec.reference.sync``), so most checks are the ordinary comparison on a
split case. They are unsupported unless the adapter lists replica counts in
``Capabilities.replicas``. ``sync-merge-by-count`` tells the rule an implementation merges the
replicas' statistics by: it passes for the count-weighted merge (the exact one), and its failure
line names the rule followed instead (equal-weighted, or local: nothing synchronized).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Literal

import numpy as np
from hypothesis import strategies as st

from ...adapters.contract import Capabilities, Case, Outcome
from ...reference.sync import split as split_rows
from ..cases import Recipe, Space, dtypes_unsupported, recipes, vary
from ..check import (
    ALL,
    Check,
    CompareCheck,
    Context,
    RefusalCheck,
    expected,
    fits_capabilities,
    not_run,
)
from ..compare import Verdict, compare, fail
from ..tolerance import tolerances
from .inputs import EmptyBatch

Split = Literal["equal", "unequal", "empty"]
NOT_DISTRIBUTED = "the adapter runs on one replica only (its capabilities list no replica counts)"


@st.composite
def shard_sizes(draw: st.DrawFn, replicas: int, split: Split) -> tuple[int, ...]:
    """Sizes along axis 0 for ``replicas`` shards: all equal, not all equal, or one (at least) empty.

    The concatenated batch always holds at least two rows, so a training step on it is valid.
    """
    if split == "equal":
        return (draw(st.integers(1, 4)),) * replicas
    if split == "unequal":
        sizes = draw(st.lists(st.integers(1, 6), min_size=replicas, max_size=replicas))
        if len(set(sizes)) == 1:
            sizes[-1] += 1
        return tuple(sizes)
    empty = draw(st.integers(0, replicas - 1))
    sizes = [0 if r == empty else draw(st.integers(0, 5)) for r in range(replicas)]
    if sum(sizes) < 2:  # the next replica takes the missing rows
        sizes[(empty + 1) % replicas] += 2 - sum(sizes)
    return tuple(sizes)


def with_shards(recipe: Recipe, shards: tuple[int, ...]) -> Case:
    """``recipe`` with its batch (axis 0) resized to the shards' total, built and split."""
    return replace(vary(recipe, shape=(sum(shards),) + recipe.shape[1:]).build(), shards=shards)


class _SyncCheck(Check):
    """Base: cases drawn inside the adapter's capabilities, then split over one of its replica counts."""

    area = "SYNC"
    splits: ClassVar[tuple[Split, ...]] = ("equal", "unequal", "empty")
    # Fixed cases: a recipe and its split (used only where the adapter supports that many replicas).
    split_fixed: ClassVar[tuple[tuple[Recipe, tuple[int, ...]], ...]] = ()

    def unsupported(self, caps: Capabilities) -> str | None:
        if not caps.replicas:
            return NOT_DISTRIBUTED
        if self.space is not None and (why := dtypes_unsupported(caps, self.space)):
            return why
        if self.space is None and not self.fixed_cases(caps):
            return "none of its cases fits the adapter's capabilities (replica counts, ranks, layouts, dtypes)"
        return None

    def uses_profile(self, caps: Capabilities) -> bool:
        # BN-SYNC-2 is BN-RUN-2 over the concatenated batch: a biased running variance is that profile.
        return caps.running_var == "biased" and "BN-SYNC-2" in self.clauses

    def strategy(self, caps: Capabilities) -> st.SearchStrategy[Case] | None:
        if self.space is None or not caps.replicas:
            return None

        @st.composite
        def draw_case(draw: st.DrawFn) -> Case:
            recipe = draw(recipes(caps, self.space))
            shards = draw(shard_sizes(draw(st.sampled_from(caps.replicas)), draw(st.sampled_from(self.splits))))
            return self.prepare(with_shards(recipe, shards), draw(self.extras(caps)))

        return draw_case()

    def fixed_cases(self, caps: Capabilities) -> list[Case]:
        return [self.prepare(with_shards(r, s), None) for r, s in self.split_fixed
                if len(s) in caps.replicas and fits_capabilities(r, caps)]


class _SyncCompare(_SyncCheck, CompareCheck):
    outputs = ALL


class SyncEqualShards(_SyncCompare):
    """Split into equal shards, the outputs, running statistics and gradients are the concatenated batch's."""

    name = "sync-equal-shards"
    clauses = ("BN-SYNC-1", "BN-SYNC-2", "BN-SYNC-4", "BN-PREC-3", "BN-PREC-4", "BN-PREC-5")
    space = Space(grad=True, large=False)
    splits = ("equal",)
    split_fixed = (
        (Recipe(shape=(4, 3), grad="normal", seed=101), (2, 2)),
        (Recipe(shape=(6, 2, 3), grad="correlated", seed=102), (2, 2, 2)),
        (Recipe(shape=(16, 2, 4, 4), data="offset", offset=1e3, grad="normal", seed=103), (8, 8)),
    )


class SyncUnequalShards(_SyncCompare):
    """Split into shards of different sizes (2 + 5, ...), the results are still the concatenated batch's."""

    name = "sync-unequal-shards"
    clauses = ("BN-SYNC-1", "BN-SYNC-2", "BN-SYNC-4", "BN-SYNC-5", "BN-PREC-3", "BN-PREC-4", "BN-PREC-5")
    space = Space(grad=True, large=False)
    splits = ("unequal",)
    split_fixed = (
        (Recipe(shape=(7, 3), grad="normal", seed=104), (2, 5)),
        (Recipe(shape=(6, 2, 3), grad="normal", seed=105), (1, 2, 3)),
    )


class SyncEmptyShard(_SyncCompare):
    """A replica with an empty shard adds nothing: the results are those of the other replicas' rows."""

    name = "sync-empty-shard"
    clauses = ("BN-SYNC-5", "BN-SYNC-1", "BN-SYNC-2", "BN-SYNC-4")
    space = Space(grad=True, large=False)
    splits = ("empty",)
    split_fixed = (
        (Recipe(shape=(5, 3), grad="normal", seed=106), (0, 5)),
        (Recipe(shape=(4, 2, 3), grad="normal", seed=107), (2, 0, 2)),
    )


class SyncMergeByCount(_SyncCheck):
    """Replicas' statistics merge weighted by their counts (count-weighted, exact); a failure names the rule followed instead."""

    name = "sync-merge-by-count"
    clauses = ("BN-SYNC-1", "BN-SYNC-2")
    # The mean alone tells the rules apart; well-conditioned data keep variance accuracy out of it.
    space = Space(training=True, tracked=True, cumulative=False, large=False, data=("normal", "integers"))
    splits = ("unequal",)

    def prepare(self, case: Case, extra: Any) -> Case:
        # Momentum 1: the returned running mean is the merged batch mean itself (BN-RUN-1).
        return replace(case, momentum=1.0)

    def fixed_cases(self, caps: Capabilities) -> list[Case]:
        # One lone row against a crowd: count-weighted and equal-weighted means differ by a third.
        rows = {2: ([[0.0, 10.0], [4.0, 1.0], [4.0, 2.0], [4.0, 3.0]], (1, 3)),
                3: ([[0.0, 1.0], [2.0, 5.0], [6.0, 2.0], [6.0, 4.0], [6.0, 6.0], [6.0, 8.0]], (1, 1, 4))}
        dt = "float32" if "float32" in caps.dtypes else caps.dtypes[0]
        out = []
        for r, (x, shards) in rows.items():
            if r in caps.replicas and 1 in caps.channel_axes:
                x_arr = np.array(x, dtype=dt)
                ones, zeros = np.ones(2, dt), np.zeros(2, dt)
                out.append(Case(x=x_arr, momentum=1.0, weight=ones, bias=zeros, running_mean=zeros.copy(),
                                running_var=ones.copy(), shards=shards))
        return out

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if (bad := not_run(outcome, error)) is not None:
            return bad
        assert outcome is not None
        want = expected(case, ctx)
        tol = tolerances(case, want, estimator=ctx.estimator)["running_mean"]
        verdict = compare("running_mean", outcome.running_mean, want.running_mean, tol)
        if verdict.ok:
            return verdict
        got = outcome.running_mean
        for rule, predicted in merge_rules(case).items():
            if isinstance(got, np.ndarray) and compare("running_mean", got, predicted, tol).ok:
                return fail(f"{rule} merge: the merged mean (running_mean after a momentum-1 step) = "
                            f"{_show(got)}, which is {RULES[rule]} ({_show(predicted)}); the concatenated "
                            f"batch's, count-weighted, is {_show(want.running_mean)}", **verdict.worst, rule=rule)
        return fail(f"the merged mean follows no known rule (count-weighted, equal-weighted, local): "
                    f"{verdict.message}", **verdict.worst, rule="unknown")


RULES = {
    "equal-weighted": "the unweighted average of the replicas' means, each replica counting 1/R",
    "local (unsynchronized)": "replica 0's own shard mean, as if nothing were synchronized",
}


def merge_rules(case: Case) -> dict[str, np.ndarray]:
    """What the merged mean would be under each known non-conforming rule, exactly (float64)."""
    ax = case.channel_axis
    reduce = tuple(d for d in range(case.x.ndim) if d != ax)
    means = [s.astype(np.float64).mean(axis=reduce) for s in split_rows(case.x, case.shards or ()) if s.shape[0]]
    return {"equal-weighted": np.mean(means, axis=0), "local (unsynchronized)": means[0]}


def _show(a: Any) -> str:
    return np.array2string(np.asarray(a, dtype=np.float64), precision=6, threshold=6)


class SyncReplicasAgree(_SyncCheck):
    """After a synchronized step every replica holds the same running statistics and counter, bit for bit."""

    name = "sync-replicas-agree"
    clauses = ("BN-SYNC-3", "BN-SYNC-2")
    space = Space(training=True, tracked=True, large=False)

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if (bad := not_run(outcome, error)) is not None:
            return bad
        assert outcome is not None
        states = outcome.replica_stats
        if states is None or len(states) != case.replicas:
            have = "none" if states is None else f"{len(states)}"
            return fail(f"the outcome carries {have} replica states (Outcome.replica_stats), expected "
                        f"{case.replicas}: whether replicas agree cannot be seen")
        first = states[0]
        for r, state in enumerate(states[1:], start=1):
            for name in ("running_mean", "running_var"):
                a, b = getattr(first, name), getattr(state, name)
                if not _identical(a, b):
                    return fail(f"replica {r}'s {name}{_differs(b, a)} replica 0's", output=name, replica=r)
            if state.num_batches_tracked != first.num_batches_tracked:
                return fail(f"replica {r}'s num_batches_tracked = {state.num_batches_tracked!r}, replica 0's "
                            f"{first.num_batches_tracked!r}", output="num_batches_tracked", replica=r)
        if ctx.capabilities.counter and first.num_batches_tracked != case.num_batches_tracked + 1:
            return fail(f"num_batches_tracked = {first.num_batches_tracked!r} after one synchronized step over "
                        f"{case.replicas} replicas, expected {case.num_batches_tracked + 1} (once per step)",
                        output="num_batches_tracked")
        return Verdict()


def _identical(a: Any, b: Any) -> bool:
    if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _differs(b: Any, a: Any) -> str:
    """How ``b`` differs from ``a``: the first differing element, or the type, dtype or shape."""
    if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):
        return f" is {type(b).__name__}, where it is {type(a).__name__} on"
    if a.dtype != b.dtype or a.shape != b.shape:
        return f" is {b.dtype} {b.shape}, where it is {a.dtype} {a.shape} on"
    bits_a, bits_b = (v.reshape(-1).view(f"u{v.itemsize}") for v in (a, b))
    i = int(np.flatnonzero(bits_a != bits_b)[0])
    return f"[{i}] = {float(b.reshape(-1)[i])!r} differs from {float(a.reshape(-1)[i])!r} on"


class SyncOneValue(_SyncCheck, RefusalCheck):
    """A training step whose concatenated batch holds one value per channel raises, though each replica alone cannot tell."""

    name = "sync-one-value"
    clauses = ("BN-SYNC-5",)  # BN-ARG-1 on the concatenated batch; cited through BN-SYNC-5 so --check ARG stays the ARG area
    space = None
    split_fixed = (
        (Recipe(shape=(1, 3), seed=108), (1, 0)),
        (Recipe(shape=(1, 2, 1, 1), seed=109), (0, 1)),
        (Recipe(shape=(1, 3), seed=110), (0, 1, 0)),
    )

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        return fail(f"accepted one value per channel over the concatenated batch without raising ({case.describe()})")

    def twin(self, case: Case) -> Case:
        """Every shard doubled: the batch and the batch plus one (two values per channel)."""
        one = np.ones((), case.x.dtype)
        parts = [np.concatenate([part, part + one]) for part in case.split(case.x)]
        shards = tuple(2 * s for s in case.shards) if case.shards else None
        return replace(case, x=np.concatenate(parts), shards=shards, grad_output=None)


class SyncEmptyBatch(_SyncCheck, EmptyBatch):
    """Every shard empty: the step is an empty batch, which raises or returns empty, state untouched."""

    name = "sync-empty-batch"
    area = "SYNC"
    clauses = ("BN-SYNC-5",)  # BN-EMPTY-1 on the concatenated batch
    space = None

    def twin(self, case: Case) -> Case:
        """One row on every replica in place of none."""
        replicas = len(case.shards) if case.shards else 1
        x = np.random.default_rng(0).normal(size=(replicas, *case.x.shape[1:])).astype(case.x.dtype)
        return replace(case, x=x, grad_output=None, shards=(1,) * replicas if case.shards else None)
    split_fixed = (
        (Recipe(shape=(0, 3), seed=111), (0, 0)),
        (Recipe(shape=(0, 2, 4), momentum=None, num_batches_tracked=2, seed=112), (0, 0, 0)),
    )
