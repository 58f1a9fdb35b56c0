"""The adapter contract: what the suite hands a backend (``Case``) and what it gets back (``Outcome``).

An adapter is any object with ``name``, ``capabilities`` and ``run(case) -> Outcome``. It
translates a ``Case`` (NumPy arrays, the spec's conventions) into its backend's call, and the
backend's results back into NumPy arrays. It does not validate: a backend's own exception on
invalid use propagates out of ``run``, and that is what the suite judges (BN-ARG-*).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from ..dtypes import dtype_name

# The modes of derivatives beyond the first (BN-GRAD-4..7) a case can ask for (``Case.derivative``).
DERIVATIVE_MODES = ("jvp", "vjp-nested", "jvp-of-vjp", "vjp-of-vjp")

@dataclass(frozen=True, eq=False)
class Case:
    """One batch-normalization call, in the spec's conventions (``spec/batchnorm.md``, section 1).

    ``momentum`` is the weight of the new batch (BN-RUN-1), or None for the cumulative average
    (BN-RUN-3). ``running_mean`` None means no running statistics are tracked (BN-RUN-5).
    ``grad_output`` (dy) given means gradients are asked for. ``shards`` given means the batch is
    split over ``len(shards)`` replicas, replica ``r`` holding the next ``shards[r]`` rows along
    axis 0 (section 10, BN-SYNC-*); None is one replica. The answer is the concatenated batch's
    either way, so outputs come back concatenated in replica order.

    Derivatives beyond the first (BN-GRAD-4..7; ``derivative`` names the mode): ``tangent_x``
    (with ``tangent_weight``, ``tangent_bias``, each of its primal's shape and dtype; an absent
    one is zero) asks, without ``grad_output``, for ``Outcome.y_dot``, the ``order``-th
    directional derivative of y; with ``grad_output`` (and ``tangent_grad_output``) for
    ``Outcome.grad_*_dot``, the derivative of the first-order gradients (forward over reverse).
    ``by_reverse`` asks for ``y_dot`` by reverse mode alone.
    ``cotangent_input`` (with ``cotangent_weight``, ``cotangent_bias``) and ``grad_output`` ask for
    ``Outcome.grad2_*``, the gradient of ``<c_x, dx> + <c_gamma, dgamma> + <c_beta, dbeta>``
    with respect to (x, gamma, beta, dy): double backward.
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
    shards: tuple[int, ...] | None = None
    tangent_x: np.ndarray | None = None
    tangent_weight: np.ndarray | None = None
    tangent_bias: np.ndarray | None = None
    tangent_grad_output: np.ndarray | None = None
    cotangent_input: np.ndarray | None = None
    cotangent_weight: np.ndarray | None = None
    cotangent_bias: np.ndarray | None = None
    order: int = 1
    by_reverse: bool = False  # the order-th derivative of y by nested reverse mode only ("vjp-nested")

    def __post_init__(self) -> None:
        if self.shards is not None:  # a wrong split is the caller's error, not the backend's subject
            from ..reference.sync import check_shards

            batch = self.x.shape[0] if getattr(self.x, "ndim", 0) else 0
            object.__setattr__(self, "shards", check_shards(self.shards, batch))

    @property
    def replicas(self) -> int:
        """R of the spec's section 10: how many replicas the batch is split over."""
        return len(self.shards) if self.shards is not None else 1

    def split(self, a: np.ndarray) -> list[np.ndarray]:
        """Replica ``r``'s rows of ``a`` (``x`` or ``grad_output``), along axis 0, in replica order."""
        from ..reference.sync import split

        return split(a, self.shards if self.shards is not None else (a.shape[0],))

    @property
    def derivative(self) -> str | None:
        """The higher-order mode asked for: ``"jvp"`` (order ``order``, forward mode), ``"vjp-nested"``
        (the same derivative by reverse mode only: each order as the transpose of a VJP, the way
        ``torch.autograd.grad(..., create_graph=True)`` users nest it), ``"jvp-of-vjp"``,
        ``"vjp-of-vjp"``, or None (first order only)."""
        if self.cotangent_input is not None:
            return "vjp-of-vjp"
        if self.tangent_x is not None:
            if self.grad_output is not None:
                return "jvp-of-vjp"
            return "vjp-nested" if self.by_reverse else "jvp"
        return None

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
        if self.tracked:
            parts.append(f"num_batches_tracked={self.num_batches_tracked}")
        if self.grad_output is not None:
            parts.append("grad")
        if self.shards is not None:
            parts.append(f"shards {'+'.join(map(str, self.shards))}")
        if self.derivative is not None:
            mode = self.derivative
            parts.append(f"{mode} order {self.order}" if mode in ("jvp", "vjp-nested") else mode)
        return ", ".join(parts)


@dataclass(frozen=True)
class ReplicaState:
    """One replica's running statistics and counter after a synchronized step (BN-SYNC-3)."""

    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    num_batches_tracked: int | None = None


@dataclass
class Outcome:
    """What a backend produced for a ``Case``; None where not asked for or not applicable.

    For a case split over replicas (``Case.shards``): ``y`` and ``grad_input`` concatenated in
    replica order; ``grad_weight`` and ``grad_bias`` summed over replicas (BN-SYNC-4); the running
    statistics and counter are replica 0's, and ``replica_stats`` holds every replica's, in order,
    so that a check can see replicas that disagree (BN-SYNC-3).
    """

    y: np.ndarray | None = None
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    num_batches_tracked: int | None = None
    grad_input: np.ndarray | None = None
    grad_weight: np.ndarray | None = None
    grad_bias: np.ndarray | None = None
    replica_stats: tuple[ReplicaState, ...] | None = None
    # Higher orders (BN-GRAD-4..7), each in its primal's shape and dtype; see ``Case``.
    y_dot: np.ndarray | None = None  # the order-th directional derivative of y
    grad_input_dot: np.ndarray | None = None  # forward over reverse: the tangents of dx, dgamma, dbeta
    grad_weight_dot: np.ndarray | None = None
    grad_bias_dot: np.ndarray | None = None
    grad2_input: np.ndarray | None = None  # double backward: d<c, grads>/dx, /dgamma, /dbeta, /d(dy)
    grad2_weight: np.ndarray | None = None
    grad2_bias: np.ndarray | None = None
    grad2_output: np.ndarray | None = None


RunningVarEstimator = Literal["unbiased", "biased"]
RunningAverage = Literal["plain", "debiased"]
DtypeRule = Literal["input", "promoted"]


# The clause that governs each output when a check's own clauses name none for it (a running
# variance that fails inside a special-values check is still a BN-RUN-2 matter).
GOVERNING: dict[str, tuple[str, ...]] = {
    "running_mean": ("BN-RUN-1", "BN-RUN-3"), "running_var": ("BN-RUN-2", "BN-RUN-3"),
    "num_batches_tracked": ("BN-RUN-4",), "grad_input": ("BN-GRAD-1", "BN-GRAD-3"),
    "grad_weight": ("BN-GRAD-2",), "grad_bias": ("BN-GRAD-2",),
}


@dataclass(frozen=True)
class Finding:
    """One root cause, declared once: a documented departure of the backend (``spec/conventions.md``).

    ``id`` is its entry there (``"T5"``), ``summary`` one line. A failing check is matched to the
    finding when the clause that governs its failing output is among ``clauses`` (and the output
    among ``outputs``, when given), whichever check it shows in. ``trigger`` is the finding's minimal
    case, as the fields of a ``bnspec.conformance.cases.Recipe`` (pairs, e.g. ``(("shape", (2, 3)),
    ("dtype", "float16"))``), run first by the check ``trigger_check`` in every run: while it fails,
    the finding stands; once it passes, the declaration is stale, whatever the drawn cases did.
    """

    id: str
    summary: str
    clauses: tuple[str, ...]
    outputs: tuple[str, ...] = ()
    trigger_check: str = ""
    trigger: tuple[tuple[str, Any], ...] = ()

    def matches(self, clauses: tuple[str, ...], output: str | None) -> bool:
        """Whether a failure of ``output`` governed by one of ``clauses`` is this finding's."""
        if self.outputs and output not in self.outputs:
            return False
        return bool(set(self.clauses) & set(clauses))

    def describe(self) -> str:
        return f"{self.id}: {self.summary}"


@dataclass(frozen=True)
class Capabilities:
    """What an adapter claims; the suite generates only cases inside it.

    What lies outside is reported as unsupported, never as passed. ``running_var="biased"`` is the
    ``biased-running-var`` profile of ``spec/conventions.md``, ``dtype_rule="promoted"`` the
    ``promoted-dtype`` one: checked against the profile and reported as conforming under it.
    ``findings`` declares each documented departure once (``Finding``: its clauses, outputs and
    trigger case); a failing check it explains is reported as a known deviation, and the trigger
    decides staleness. ``known_deviations``, the older form, maps a check's name to a documented
    reason: that check is a known deviation when it fails (staleness then stays undecided). ``replicas`` lists the replica
    counts R the adapter can split a case over (section 10); empty: not distributed, and the
    synchronized checks are unsupported.
    """

    dtypes: tuple[str, ...] = ("float32", "float64")
    channel_axes: tuple[int, ...] = (1,)
    ranks: tuple[int, ...] = (2, 3, 4, 5)
    gradients: bool = True
    # The modes the backend has: an inference runtime (OpenVINO, an exported eval graph) sets training=False and is
    # handed eval cases only; the checks that need a training step are reported unsupported, never passed.
    training: bool = True
    inference: bool = True
    cumulative_average: bool = True
    counter: bool = True  # keeps num_batches_tracked (BN-RUN-4)
    untracked: bool = True
    affine_off: bool = True
    running_var: RunningVarEstimator = "unbiased"
    # "debiased": the running averages are zero-debiased by the step count (profile debiased-running-average,
    # Haiku's ExponentialMovingAverage); the adapter maps num_batches_tracked to the backend's step count.
    running_average: RunningAverage = "plain"
    dtype_rule: DtypeRule = "input"  # "promoted": y and dx in the promoted compute dtype (profile promoted-dtype)
    stats_dtypes: tuple[str, ...] = ()  # running-statistics dtypes besides the input's own
    half_params: bool = True  # half inputs may come with half parameters and state (else only stats_dtypes)
    # (input dtype, parameter-and-state dtype) pairs taken besides the input's own dtype and the half-precision
    # pairs of stats_dtypes, e.g. ("float64", "float32") (BN-DTYPE-3); none claimed, none drawn.
    mixed_dtypes: tuple[tuple[str, str], ...] = ()
    zero_eps: bool = False  # eps = 0 accepted (BN-ARG-4: it MAY be rejected); False: never drawn
    device: str = "cpu"
    notes: str = ""
    replicas: tuple[int, ...] = ()
    known_deviations: tuple[tuple[str, str], ...] = field(default=())
    # Root causes declared once, with their triggers (``Finding``); preferred to known_deviations.
    findings: tuple[Finding, ...] = ()
    # Higher orders (BN-GRAD-4..7): the modes offered ("jvp", "vjp-nested", "jvp-of-vjp", "vjp-of-vjp"), the
    # highest order of "jvp" claimed, and for each mode not offered the reason.
    derivatives: tuple[str, ...] = ()
    max_order: int = 1
    derivative_gaps: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        """Raises ``InvalidArgument`` for a derivative mode outside ``DERIVATIVE_MODES`` (in ``derivatives``
        or ``derivative_gaps``) or a ``max_order`` below 1: a misspelt mode would silently leave its checks
        unsupported."""
        from ..errors import InvalidArgument

        for name, modes in (("derivatives", self.derivatives), ("derivative_gaps", [m for m, _ in self.derivative_gaps])):
            unknown = [m for m in modes if m not in DERIVATIVE_MODES]
            if unknown:
                raise InvalidArgument(f"Capabilities({name}=...): unknown derivative mode {unknown[0]!r}; the modes are "
                                      f"{', '.join(DERIVATIVE_MODES)}", clause="BN-GRAD-4")
        if not (isinstance(self.max_order, int) and self.max_order >= 1):
            raise InvalidArgument(f"Capabilities(max_order={self.max_order!r}): the highest order claimed must be a whole "
                                  f"number of 1 or more", clause="BN-GRAD-7")

    @property
    def profiles(self) -> tuple[str, ...]:
        """The named profiles (``spec/conventions.md``) this adapter declares."""
        return profiles_of(self.running_var, self.dtype_rule, self.running_average)

    def deviation(self, check: str) -> str | None:
        return dict(self.known_deviations).get(check)

    def finding_for(self, clauses: tuple[str, ...], output: str | None) -> Finding | None:
        """The declared finding that explains a failure of ``output`` under ``clauses``, or None."""
        return next((f for f in self.findings if f.matches(clauses, output)), None)

    def derivative_gap(self, mode: str) -> str | None:
        """Why the higher-order ``mode`` is not offered (None when it is)."""
        if mode in self.derivatives:
            return None
        return dict(self.derivative_gaps).get(mode) or f"the adapter declares no {mode} derivatives"


STATE_ATTRIBUTE = "bnspec_state"


def with_state(exc: BaseException, state: Outcome) -> BaseException:
    """Attach to ``exc`` the state the backend was left in when it raised, and return ``exc``.

    An adapter whose backend keeps state (running statistics, the batch counter) re-raises a
    backend's exception as ``raise with_state(exc, Outcome(running_mean=..., running_var=...,
    num_batches_tracked=...))``, so that the checks of invalid use can tell whether the error came
    "before changing any state" (spec section 8, BN-RUN-4). ``y`` may stay None. Without it, those
    checks judge the refusal alone.
    """
    setattr(exc, STATE_ATTRIBUTE, state)
    return exc


def state_of(exc: BaseException) -> Outcome | None:
    """The state attached by ``with_state``, or None."""
    state = getattr(exc, STATE_ATTRIBUTE, None)
    return state if isinstance(state, Outcome) else None


def profiles_of(running_var: str, dtype_rule: str, running_average: str = "plain") -> tuple[str, ...]:
    """The named profiles (``spec/conventions.md``, section 3) that these capability values declare."""
    return (("biased-running-var",) if running_var == "biased" else ()) + (
        ("promoted-dtype",) if dtype_rule == "promoted" else ()) + (
        ("debiased-running-average",) if running_average == "debiased" else ())


@runtime_checkable
class Adapter(Protocol):
    """Anything with a name, its capabilities, and a ``run`` that executes one ``Case``."""

    name: str
    capabilities: Capabilities

    def run(self, case: Case) -> Outcome: ...
