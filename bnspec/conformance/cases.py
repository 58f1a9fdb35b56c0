"""Cases: hypothesis strategies over the spec's parameter space, and a builder for fixed cases.

A case is drawn as a small ``Recipe`` (shape, layout, dtypes, parameters, the kind of data and a
seed for its values); ``Recipe.build`` turns it into a ``Case`` deterministically. Hypothesis
shrinks recipes, so a failure shrinks to a small shape and simple parameters, and the same seed
always rebuilds the same arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from hypothesis import strategies as st

from ..adapters.contract import Capabilities, Case
from ..dtypes import numpy_dtype, unavailable

DataKind = Literal["normal", "offset", "integers", "constant-channel", "wide", "huge", "tiny", "large-constant"]
GradKind = Literal["normal", "correlated", "ones"]
StateKind = Literal["random", "fresh", "mixed"]
HALF = ("float16", "bfloat16")

# Condition numbers (|mean| / spread) the "offset" data reach, per input precision: large enough
# to break a one-pass E[x^2] - E[x]^2 in that precision, small enough to stay representable.
OFFSETS = {"float16": (1e1, 1e2), "bfloat16": (1e1,), "float32": (1e2, 1e3, 1e4), "float64": (1e4, 1e6, 1e8)}

# Magnitude extremes (BN-PREC-7), as decimal exponents per input dtype. "huge": a spread whose squares
# overflow the input dtype (float16: above 256) but not the accumulation dtype BN-DTYPE-2 asks for
# (float32, or float64 for float64 input), so that y, the statistics and the gradients stay
# representable. "tiny": values just above the dtype's subnormal range, whose squares underflow it (the
# subnormal range itself is out: the precision model charges no absolute error to intermediates there).
# "large-constant": a constant channel far from zero, where a one-pass variance rounds negative.
HUGE = {"float16": (2.5, 4.0), "bfloat16": (5.0, 17.0), "float32": (5.0, 17.0), "float64": (20.0, 150.0)}
TINY = {"float16": (-4.0, -3.0), "bfloat16": (-37.0, -30.0), "float32": (-37.0, -30.0), "float64": (-307.0, -200.0)}
LARGE_CONSTANT = {"float16": (2.5, 4.5), "bfloat16": (4.0, 10.0), "float32": (4.0, 10.0), "float64": (4.0, 100.0)}
DATA: tuple[DataKind, ...] = ("normal", "normal", "offset", "integers", "wide")
# The data of the clause checks of sections 1 to 7: the magnitude extremes in three draws of eight.
WITH_EXTREMES: tuple[DataKind, ...] = DATA + ("huge", "tiny", "large-constant")


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a case; ``build`` makes the arrays."""

    shape: tuple[int, ...]
    axis: int = 1
    dtype: str = "float32"
    param_dtype: str | None = None  # dtype of weight, bias and running stats; None: the input's
    training: bool = True
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    tracked: bool = True
    num_batches_tracked: int = 0
    grad: GradKind | None = None
    data: DataKind = "normal"
    offset: float = 1e3
    seed: int = 0
    # "fresh": weight 1, bias 0, running mean 0, running variance 1 (a new layer); "mixed": each
    # channel fresh or random.
    state: StateKind = "random"

    def build(self) -> Case:
        rng = np.random.default_rng(self.seed)
        dt = numpy_dtype(self.dtype)
        pdt = numpy_dtype(self.param_dtype or self.dtype)
        ax = self.axis % len(self.shape)
        c = self.shape[ax]
        x = np.moveaxis(self._data(rng, c), 0, ax).astype(dt)
        weight = bias = rm = rv = dy = None
        fresh = np.zeros(c, bool) if self.state == "random" else np.ones(c, bool)
        if self.state == "mixed":
            fresh = rng.integers(0, 2, c).astype(bool)
        if self.affine:
            weight = np.where(fresh, 1.0, rng.normal(1.0, 0.5, c)).astype(pdt)
            bias = np.where(fresh, 0.0, rng.normal(0.0, 1.0, c)).astype(pdt)
        if self.tracked:
            rm = np.where(fresh, 0.0, rng.normal(0.0, 2.0, c)).astype(pdt)
            rv = np.where(fresh, 1.0, rng.uniform(0.05, 4.0, c)).astype(pdt)
        if self.grad is not None:
            dy = self._grad(rng, x).astype(dt)
        return Case(x=x, axis=self.axis, training=self.training, eps=self.eps, momentum=self.momentum,
                    weight=weight, bias=bias, running_mean=rm, running_var=rv,
                    num_batches_tracked=self.num_batches_tracked, grad_output=dy)

    def _data(self, rng: np.random.Generator, c: int) -> np.ndarray:
        """Values in channel-major order, shape ``(C, *rest)``."""
        shape = self.shape
        ax = self.axis % len(shape)
        rest = shape[:ax] + shape[ax + 1 :]
        loc = rng.normal(0.0, 3.0, c)
        scale = np.exp(rng.uniform(-2.0, 2.0, c))
        if self.data == "offset":  # a large mean against a small spread
            loc = self.offset * rng.choice([-1.0, 1.0], c) * rng.uniform(1.0, 2.0, c)
            scale = np.ones(c) * rng.uniform(0.5, 1.0, c)
        elif self.data == "wide":
            scale = np.exp(rng.uniform(-6.0, 6.0, c)) if self.dtype != "float16" else scale
        elif self.data in ("huge", "tiny"):  # spread and mean of the same extreme magnitude, per channel
            lo, hi = (HUGE if self.data == "huge" else TINY)[self._range]
            scale = 10.0 ** rng.uniform(lo, hi, c)
            loc = scale * rng.normal(0.0, 1.0, c)
        vals = loc[:, None] + scale[:, None] * rng.standard_normal((c, math.prod(rest)))
        if self.data == "integers":
            vals = rng.integers(-4, 5, (c, math.prod(rest))).astype(np.float64)
        if self.data == "constant-channel" and c:
            vals[rng.integers(c)] = loc[0]
        if self.data == "large-constant" and c:  # three channels in four (one at least), each its own constant
            lo, hi = LARGE_CONSTANT[self._range]
            const = rng.integers(0, 4, c) > 0
            const[rng.integers(c)] = True
            vals[const] = (rng.choice([-1.0, 1.0], c) * 10.0 ** rng.uniform(lo, hi, c))[const, None]
        return vals.reshape((c,) + rest)

    @property
    def _range(self) -> str:
        """The dtype whose range the extremes keep to: float32 for float64 input with float32 state, whose
        statistics must stay representable in the state; else the input's."""
        return "float32" if (self.dtype, self.param_dtype) == ("float64", "float32") else self.dtype

    def _grad(self, rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
        if self.grad == "ones":
            return np.ones(x.shape)
        g = rng.standard_normal(x.shape)
        if self.grad == "correlated":  # dy aligned with x: well-conditioned parameter gradients
            xf = x.astype(np.float64)
            ax = self.axis % x.ndim
            red = tuple(d for d in range(x.ndim) if d != ax)
            with np.errstate(all="ignore"):
                z = (xf - xf.mean(axis=red, keepdims=True)) / (xf.std(axis=red, keepdims=True) + 1e-3)
            g = 2.0 * z + 0.5 + 0.1 * g
        return g


def _shape(rank: int, axis: int, channels: int, others: list[int]) -> tuple[int, ...]:
    ax = axis % rank
    dims = list(others[: rank - 1])
    dims.insert(ax, channels)
    return tuple(dims)


@st.composite
def shapes(draw: st.DrawFn, rank: int, axis: int, min_m: int = 2, large: bool = True,
           very_large: bool = False) -> tuple[int, ...]:
    """Shapes of ``rank`` with at least ``min_m`` values per channel: small, odd and sometimes large.

    Edges drawn on purpose: one channel and 1024 channels; m = 2 and m = 3 (one draw in eight);
    with ``very_large``, one draw in ten has m = 65536, past float16's largest value (65504)."""
    channels = draw(st.one_of(st.integers(1, 4), st.sampled_from([1, 3, 7, 16, 64, 1024])))
    if very_large and draw(st.integers(0, 9)) == 0:  # a count no float16 accumulator can hold
        others = {2: [65536], 3: [64, 1024], 4: [64, 32, 32]}.get(rank, [64, 32, 32] + [1] * (rank - 4))
        return _shape(rank, axis, min(channels, 2), others)
    if max(min_m, 2) <= 3 and draw(st.integers(0, 7)) == 0:  # m = 2 or 3: the smallest counts, not powers of two
        others = [draw(st.integers(max(min_m, 2), 3))] + [1] * (rank - 2)
        return _shape(rank, axis, channels, draw(st.permutations(others)))
    if large and draw(st.integers(0, 9)) == 0:  # one draw in ten: large m
        others = [draw(st.sampled_from([16, 32, 64]))] + [draw(st.sampled_from([8, 16])) for _ in range(rank - 2)]
        if rank == 2:
            others = [draw(st.sampled_from([1024, 4096]))]
        channels = min(channels, 4)
    elif channels >= 1024:  # many channels, few values each: the per-channel loops, not the reductions
        others = [draw(st.integers(1, 4))] + [1] * (rank - 2)
    else:
        others = [draw(st.integers(1, 6))] + [draw(st.integers(1, 5)) for _ in range(rank - 2)]
    if math.prod(others) < min_m:
        others[0] = max(others[0], min_m)
    return _shape(rank, axis, channels, others)


@dataclass(frozen=True)
class Space:
    """Which part of the parameter space a check draws from (None: either value)."""

    training: bool | None = None
    tracked: bool | None = None
    affine: bool | None = None
    cumulative: bool | None = None  # momentum None
    grad: bool = False
    # Clause checks run in float32 and float64; half precision is the DTYPE checks' subject, so
    # that a precision loss there is reported once, under BN-DTYPE-2, not under every clause.
    dtypes: tuple[str, ...] | None = ("float32", "float64")
    data: tuple[DataKind, ...] = DATA
    axes: tuple[int, ...] | None = None
    min_m: int = 2
    large: bool = True
    half_params: bool | None = False  # half inputs with half parameters and state (else float32 where supported)
    very_large: bool = False  # one draw in ten with m = 65536 (the half-precision checks)
    mixed_every: int = 4  # one draw in this many takes state in another dtype than x, where claimed (BN-DTYPE-3)


def supported_dtypes(caps: Capabilities, space: Space) -> tuple[str, ...]:
    """The dtypes a case of ``space`` can be drawn in: claimed by the adapter, wanted by the check,
    and expressible here (bfloat16 needs ml_dtypes), in the adapter's order."""
    return tuple(d for d in caps.dtypes if (space.dtypes is None or d in space.dtypes) and unavailable(d) is None)


def inexpressible_dtypes(caps: Capabilities, space: Space) -> dict[str, str]:
    """The dtypes the adapter claims and ``space`` wants that cannot be made here, each with why
    (what to install): the cases a missing optional package leaves undrawn."""
    dts = (d for d in caps.dtypes if space.dtypes is None or d in space.dtypes)
    return {d: why for d in dts if (why := unavailable(d)) is not None}


def dtypes_unsupported(caps: Capabilities, space: Space) -> str | None:
    """Why no case of ``space`` can be drawn for ``caps`` (the check is unsupported), or None."""
    if supported_dtypes(caps, space):
        return None
    wanted = ", ".join(space.dtypes or ())
    missing = inexpressible_dtypes(caps, space)
    if missing:
        return f"needs one of the dtypes {wanted}; the adapter claims {', '.join(missing)}, but " + "; ".join(
            missing.values())
    return f"needs one of the dtypes {wanted}; the adapter claims {', '.join(caps.dtypes)}"


@st.composite
def recipes(draw: st.DrawFn, caps: Capabilities, space: Space) -> Recipe:
    """A recipe inside both the adapter's capabilities and the check's ``space``."""
    def either(fixed: bool | None, allowed: bool = True) -> bool:
        """``fixed`` if the check fixes it; else drawn, where the adapter allows True; else False."""
        if fixed is not None:
            return fixed
        return draw(st.booleans()) if allowed else False

    rank = draw(st.sampled_from(caps.ranks))
    axes = tuple(a for a in caps.channel_axes if space.axes is None or a in space.axes)
    axis = draw(st.sampled_from(axes))
    dtype = draw(st.sampled_from(supported_dtypes(caps, space)))
    param_dtype = None
    if dtype in HALF and "float32" in caps.stats_dtypes:
        half = draw(st.booleans()) if space.half_params is None else space.half_params
        half = half and caps.half_params
        param_dtype = None if half else "float32"  # float32: what mixed-precision training runs
    others = [p for d, p in caps.mixed_dtypes if d == dtype and unavailable(p) is None]
    if others and draw(st.integers(1, space.mixed_every)) == 1:  # BN-DTYPE-3: state in another dtype than x, where claimed
        param_dtype = draw(st.sampled_from(others))
    tracked = not either(None if space.tracked is None else not space.tracked, caps.untracked)
    if space.training is not None:
        training = space.training
    else:  # both modes where the adapter has both; else the one it has (Capabilities.training, .inference)
        training = draw(st.booleans()) if caps.training and caps.inference else caps.training
    if space.cumulative is None:
        cumulative = caps.cumulative_average and draw(st.integers(0, 4)) == 0
    else:
        cumulative = space.cumulative
    momentum = None if cumulative else draw(st.sampled_from([0.1, 0.01, 0.5, 1.0, 0.0, 0.3]))
    data = draw(st.sampled_from(space.data))
    eps_values = [1e-5, 1e-3, 1e-1, 1e-8]
    if caps.zero_eps and data != "tiny":  # BN-ARG-4; subnormal data with eps 0 would need squares below float32's range
        eps_values.append(0.0)
    return Recipe(
        # A sum of m equal squares rounds in no accumulator until m passes 32 (a float32 square has 48 bits).
        shape=draw(shapes(rank, axis, max(space.min_m, 33) if data == "large-constant" else space.min_m, space.large,
                          space.very_large)),
        axis=axis,
        dtype=dtype,
        param_dtype=param_dtype,
        training=training,
        eps=draw(st.sampled_from(eps_values)),
        momentum=momentum,
        affine=not either(None if space.affine is None else not space.affine, caps.affine_off),
        tracked=tracked,
        num_batches_tracked=draw(st.integers(0, 5)),
        grad=draw(st.sampled_from(["normal", "correlated", "ones"])) if space.grad and caps.gradients else None,
        data=data,
        offset=draw(st.sampled_from(OFFSETS[dtype])) if data == "offset" else 1e3,
        seed=draw(st.integers(0, 2**32 - 1)),
        state=draw(st.sampled_from(["random", "random", "fresh", "fresh", "mixed"])),
    )


def fits(recipe: Recipe, caps: Capabilities) -> bool:
    """Whether a fixed recipe lies inside an adapter's capabilities."""
    return (
        len(recipe.shape) in caps.ranks
        and recipe.axis in caps.channel_axes
        and recipe.dtype in caps.dtypes
        and (recipe.param_dtype is None or recipe.param_dtype == recipe.dtype or recipe.param_dtype in caps.stats_dtypes
             or (recipe.dtype, recipe.param_dtype) in caps.mixed_dtypes)
        and (recipe.eps != 0 or caps.zero_eps)
        and unavailable(recipe.dtype) is None  # bfloat16 needs ml_dtypes
        and (recipe.param_dtype is None or unavailable(recipe.param_dtype) is None)
        and (recipe.param_dtype is not None or recipe.dtype not in ("float16", "bfloat16") or caps.half_params)
        and (recipe.affine or caps.affine_off)
        and (recipe.tracked or caps.untracked)
        and (recipe.momentum is not None or not recipe.tracked or caps.cumulative_average)
        and (recipe.grad is None or caps.gradients)
        and (caps.training if recipe.training else caps.inference)
    )


def vary(recipe: Recipe, **changes: object) -> Recipe:
    return replace(recipe, **changes)  # type: ignore[arg-type]
