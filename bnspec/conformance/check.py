"""The ``Check`` base class: what a check cites, which cases it draws, and how it judges them.

Each concrete check (``checks/``, one module per spec section) is a small class named after what it tests, whose docstring
is the sentence a report prints. Most checks compare outputs with the reference under the
precision model (``CompareCheck``); the rest judge a property (an error raised, state unchanged).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from hypothesis import strategies as st

from .. import reference
from ..adapters.contract import Capabilities, Case, Outcome, state_of
from ..dtypes import LARGEST, dtype_name
from .cases import Recipe, Space, dtypes_unsupported, fits, recipes
from .compare import Verdict, compare_outputs, fail, unjudged
from .tolerance import tolerances

ALL = ("y", "running_mean", "running_var", "grad_input", "grad_weight", "grad_bias")
GRADS = ("grad_input", "grad_weight", "grad_bias")


@dataclass(frozen=True)
class Context:
    """What a check knows about the adapter under test."""

    capabilities: Capabilities

    @property
    def estimator(self) -> str:
        return self.capabilities.running_var

    @property
    def average(self) -> str:
        return self.capabilities.running_average


def expected(case: Case, ctx: Context) -> reference.Step:
    """The exact result of ``case`` under the adapter's declared profile."""
    return reference.step(
        case.x, axis=case.axis, training=case.training, eps=case.eps, momentum=case.momentum,
        weight=case.weight, bias=case.bias, running_mean=case.running_mean,
        running_var=case.running_var, num_batches_tracked=case.num_batches_tracked,
        grad_output=case.grad_output, running_var_estimator=ctx.estimator,  # type: ignore[arg-type]
        running_average=ctx.average,  # type: ignore[arg-type]
    )


def describe_error(exc: BaseException) -> str:
    """``TypeName: message``, even when the exception's own ``str()`` raises."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a backend's exception may be broken
        text = "<str() of the exception raised>"
    return f"{type(exc).__name__}: {text[:300]}"


def not_run(outcome: Outcome | None, error: BaseException | None) -> Verdict | None:
    """A failing verdict when a valid case raised or returned no ``Outcome``; else None."""
    if error is not None:
        return fail(f"raised {describe_error(error)} on a valid case", error=describe_error(error))
    if not isinstance(outcome, Outcome):
        return fail(f"run() returned {type(outcome).__name__}, not an Outcome")
    return None


def modes_unsupported(caps: Capabilities, space: Space | None) -> str | None:
    """Why no case of ``space`` fits the modes the adapter has (``Capabilities.training``,
    ``.inference``), or None: a check fixed to training has nothing to ask an inference-only backend."""
    if space is not None and space.training is True and not caps.training:
        return "needs a training step; the adapter declares no training mode (training=False: inference only)"
    if space is not None and space.training is False and not caps.inference:
        return "needs an eval call; the adapter declares no inference mode (inference=False)"
    return None


class Check:
    """Base class; subclasses set the class attributes and override ``judge``."""

    name: ClassVar[str]
    area: ClassVar[str]
    clauses: ClassVar[tuple[str, ...]]
    # "MUST": a failure is status fail. "SHOULD" (the quality tier): a failure is status shortfall.
    level: ClassVar[str] = "MUST"
    judges_refusal: ClassVar[bool] = False  # True: the check judges an exception (``RefusalCheck``)
    space: ClassVar[Space | None] = Space()
    fixed: ClassVar[tuple[Recipe, ...]] = ()

    @property
    def doc(self) -> str:
        return " ".join((self.__doc__ or "").split())

    def unsupported(self, caps: Capabilities) -> str | None:
        """Why this check cannot run against ``caps`` (reported as unsupported), or None."""
        if self.space is not None and (why := dtypes_unsupported(caps, self.space)):
            return why
        if (why := modes_unsupported(caps, self.space)) is not None:
            return why
        if self.strategy(caps) is None and not any(fits_capabilities(r, caps) for r in self.fixed):
            return "none of its cases fits the adapter's capabilities (ranks, layouts, dtypes, modes)"
        return None

    def uses_profile(self, caps: Capabilities) -> bool:
        """Whether the result depends on a profile the adapter declares (conforms under it)."""
        return bool(self.profiles_used(caps))

    def profiles_used(self, caps: Capabilities) -> tuple[str, ...]:
        """The profiles the adapter declares that replace a clause this check tests."""
        used = []
        if caps.running_var == "biased" and "BN-RUN-2" in self.clauses:
            used.append("biased-running-var")
        if caps.dtype_rule == "promoted" and {"BN-DTYPE-1", "BN-ARG-3"} & set(self.clauses):
            used.append("promoted-dtype")
        if caps.running_average == "debiased" and {"BN-RUN-1", "BN-RUN-2"} & set(self.clauses):
            used.append("debiased-running-average")
        return tuple(used)

    def prepare(self, case: Case, extra: Any) -> Case:
        """Turn a drawn case into the one this check runs (``extra``: the draw of ``extras``)."""
        return case

    def extras(self, caps: Capabilities) -> st.SearchStrategy[Any]:
        return st.none()

    def strategy(self, caps: Capabilities) -> st.SearchStrategy[Case] | None:
        if self.space is None:
            return None
        return st.tuples(recipes(caps, self.space), self.extras(caps)).map(
            lambda pair: self.prepare(pair[0].build(), pair[1])
        )

    def fixed_cases(self, caps: Capabilities) -> list[Case]:
        return [self.prepare(r.build(), None) for r in self.fixed if fits_capabilities(r, caps)]

    def evaluate(self, run: Any, case: Case, ctx: Context) -> Verdict:
        """Run the backend on ``case`` (via ``run``) and judge what came back."""
        try:
            outcome, error = run(case), None
        except Exception as exc:  # noqa: BLE001 - the backend's exception is the subject under test
            outcome, error = None, exc
        return self.judge(case, outcome, error, ctx)

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        raise NotImplementedError


def fits_capabilities(recipe: Recipe, caps: Capabilities) -> bool:
    try:
        return fits(recipe, caps)
    except ImportError:
        return False


class CompareCheck(Check):
    """Compare ``outputs`` with the reference under the precision model."""

    outputs: ClassVar[tuple[str, ...]] = ("y",)

    def wanted(self, case: Case) -> tuple[str, ...]:
        return self.outputs

    def masks(self, case: Case) -> dict[str, np.ndarray] | None:
        return None

    def judge(self, case: Case, outcome: Outcome | None, error: BaseException | None, ctx: Context) -> Verdict:
        if (bad := not_run(outcome, error)) is not None:
            return bad
        want = expected(case, ctx)
        tols = tolerances(case, want, estimator=ctx.estimator, average=ctx.average)
        names = tuple(n for n in self.wanted(case) if getattr(want, n) is not None and n in tols)
        values = {n: getattr(want, n) for n in names}
        return compare_outputs(outcome, values, tols, names, self.masks(case), output_limits(case))


def output_limits(case: Case) -> dict[str, float]:
    """The largest finite value of each output's dtype (BN-DTYPE-1, BN-DTYPE-3)."""
    dtype_of = {"y": case.x, "grad_input": case.x, "running_mean": case.running_mean,
                "running_var": case.running_var, "grad_weight": case.weight, "grad_bias": case.bias}
    out = {}
    for name, like in dtype_of.items():
        dt = dtype_name(like.dtype) if like is not None else None
        if dt is not None:
            out[name] = LARGEST[dt]
    return out


class RefusalCheck(Check):
    """Base of every check that judges an exception (sections 8 and 9): a refusal counts only when
    the same adapter runs the *valid twin* of the case (``twin``: the invalid part set right)
    without raising; otherwise nothing is learnt about the clause, and the case is unjudged. When
    the adapter attaches the state its backend was left in (``contract.with_state``), a refusal
    must also leave the running statistics and the counter bit for bit as they were (section 8:
    the error comes "before changing any state")."""

    judges_refusal: ClassVar[bool] = True

    def twin(self, case: Case) -> Case:
        """``case`` made valid: the parameter this check breaks, set right."""
        raise NotImplementedError

    def evaluate(self, run: Any, case: Case, ctx: Context) -> Verdict:
        """A refusal goes to ``refused``; an answer to ``judge`` (which says what accepting means)."""
        try:
            outcome = run(case)
        except Exception as exc:  # noqa: BLE001 - the backend's exception is the subject under test
            return self.refused(run, case, exc, ctx)
        return self.judge(case, outcome, None, ctx)

    def refused(self, run: Any, case: Case, error: BaseException, ctx: Context) -> Verdict:
        """The verdict on a refusal: state untouched, and the valid twin accepted."""
        state = state_of(error)
        if state is not None:
            for name in ("running_mean", "running_var"):
                before, after = getattr(case, name), getattr(state, name)
                if before is not None and after is not None and not _same_bits(before, after):
                    return fail(f"raised {describe_error(error)}, but only after changing {name} "
                                f"(section 8: the error comes before changing any state)", output=name)
            if (ctx.capabilities.counter and case.tracked and state.num_batches_tracked is not None
                    and state.num_batches_tracked != case.num_batches_tracked):
                return fail(f"raised {describe_error(error)}, but only after moving num_batches_tracked from "
                            f"{case.num_batches_tracked} to {state.num_batches_tracked} (section 8: the error "
                            f"comes before changing any state; BN-RUN-4)", output="num_batches_tracked")
        twin = self.twin(case)
        try:
            run(twin)
        except Exception as exc:  # noqa: BLE001 - the backend's exception is the subject under test
            return unjudged(f"raised {describe_error(error)}, but also raised {describe_error(exc)} on the valid "
                            f"twin of the case ({twin.describe()}): a refusal that says nothing about "
                            f"{', '.join(self.clauses)}")
        return Verdict()


def _same_bits(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def snapshot(case: Case) -> dict[str, np.ndarray]:
    """Copies of every array the case holds, to detect mutation (BN-IO-1)."""
    return {k: copy.deepcopy(v) for k, v in vars(case).items() if isinstance(v, np.ndarray)}
