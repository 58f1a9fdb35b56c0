"""The adapter contract: what the suite hands a backend (``Case``) and what it gets back (``Outcome``).

An adapter is any object with ``name``, ``capabilities`` and ``run(case) -> Outcome``. It
translates a ``Case`` (NumPy arrays, the spec's conventions) into its backend's call, and the
backend's results back into NumPy arrays. It does not validate: a backend's own exception on
invalid use propagates out of ``run``, and that is what the suite judges (BN-ARG-*).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from ..dtypes import dtype_name


@dataclass(frozen=True, eq=False)
class Case:
    """One batch-normalization call, in the spec's conventions (``spec/batchnorm.md``, section 1).

    ``momentum`` is the weight of the new batch (BN-RUN-1), or None for the cumulative average
    (BN-RUN-3). ``running_mean`` None means no running statistics are tracked (BN-RUN-5).
    ``grad_output`` (dy) given means gradients are asked for.
    """

    x: np.ndarray
    axis: int = 1
    training: bool = True
    eps: float = 1e-5
    momentum: float | None = 0.1
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    num_batches_tracked: int = 0
    grad_output: np.ndarray | None = None

    @property
    def channel_axis(self) -> int:
        """The channel axis as a non-negative index (BN-LAYOUT-1)."""
        return self.axis % self.x.ndim if self.x.ndim else self.axis

    @property
    def channels(self) -> int:
        return int(self.x.shape[self.channel_axis])

    @property
    def values_per_channel(self) -> int:
        """m of the spec: the number of values each channel's statistics reduce."""
        c = self.channels
        return math.prod(self.x.shape) // c if c else 0

    @property
    def affine(self) -> bool:
        return self.weight is not None or self.bias is not None

    @property
    def tracked(self) -> bool:
        return self.running_mean is not None

    def __repr__(self) -> str:
        return f"Case({self.describe()})"

    def describe(self) -> str:
        """A one-line summary, as failure messages print it."""
        dt = dtype_name(self.x.dtype) or str(self.x.dtype)
        parts = [
            f"x {dt} {tuple(self.x.shape)}",
            f"axis={self.axis}",
            f"training={self.training}",
            f"eps={self.eps:g}",
            f"momentum={self.momentum}",
            "affine" if self.affine else "affine off",
            "tracked" if self.tracked else "untracked",
        ]
        if self.tracked and self.running_mean is not None:
            parts.append(f"stats {dtype_name(self.running_mean.dtype)}")
        if self.grad_output is not None:
            parts.append("grad")
        return ", ".join(parts)


@dataclass
class Outcome:
    """What a backend produced for a ``Case``; None where not asked for or not applicable."""

    y: np.ndarray | None = None
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    num_batches_tracked: int | None = None
    grad_input: np.ndarray | None = None
    grad_weight: np.ndarray | None = None
    grad_bias: np.ndarray | None = None


RunningVarEstimator = Literal["unbiased", "biased"]
DtypeRule = Literal["input", "promoted"]


@dataclass(frozen=True)
class Capabilities:
    """What an adapter claims; the suite generates only cases inside it.

    What lies outside is reported as unsupported, never as passed. ``running_var="biased"`` is the
    ``biased-running-var`` profile of ``spec/conventions.md``, ``dtype_rule="promoted"`` the
    ``promoted-dtype`` one: checked against the profile and reported as conforming under it. ``known_deviations`` maps a check's name to a documented
    reason (``spec/conventions.md``, Findings): such a check still runs and is reported as a
    known deviation when it fails, and as stale when it passes.
    """

    dtypes: tuple[str, ...] = ("float32", "float64")
    channel_axes: tuple[int, ...] = (1,)
    ranks: tuple[int, ...] = (2, 3, 4, 5)
    gradients: bool = True
    cumulative_average: bool = True
    counter: bool = True  # keeps num_batches_tracked (BN-RUN-4)
    untracked: bool = True
    affine_off: bool = True
    running_var: RunningVarEstimator = "unbiased"
    dtype_rule: DtypeRule = "input"  # "promoted": y and dx in the promoted compute dtype (profile promoted-dtype)
    stats_dtypes: tuple[str, ...] = ()  # running-statistics dtypes besides the input's own
    half_params: bool = True  # half inputs may come with half parameters and state (else only stats_dtypes)
    device: str = "cpu"
    notes: str = ""
    known_deviations: tuple[tuple[str, str], ...] = field(default=())

    @property
    def profiles(self) -> tuple[str, ...]:
        """The named profiles (``spec/conventions.md``) this adapter declares."""
        return profiles_of(self.running_var, self.dtype_rule)

    def deviation(self, check: str) -> str | None:
        return dict(self.known_deviations).get(check)


def profiles_of(running_var: str, dtype_rule: str) -> tuple[str, ...]:
    """The named profiles (``spec/conventions.md``, section 3) that these capability values declare."""
    return (("biased-running-var",) if running_var == "biased" else ()) + (
        ("promoted-dtype",) if dtype_rule == "promoted" else ())


@runtime_checkable
class Adapter(Protocol):
    """Anything with a name, its capabilities, and a ``run`` that executes one ``Case``."""

    name: str
    capabilities: Capabilities

    def run(self, case: Case) -> Outcome: ...
