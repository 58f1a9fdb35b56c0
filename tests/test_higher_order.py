"""Derivatives beyond the first (BN-GRAD-4..7, BN-PREC-8): the GRAD2 checks pass the correct NumPy
implementations (float64 and float32 Taylor mode, ``impls/higher_order_impls.py``) and catch each
broken one on its own check; adapters that declare nothing report the checks unsupported."""

from __future__ import annotations

import numpy as np
import pytest

from bnspec import Case
from bnspec.adapters.contract import Capabilities
from bnspec.conformance import DEFAULT_EXAMPLES, run
from bnspec.conformance.checks import CHECKS
from bnspec.conformance.checks.higher_order import compare_higher, directions
from bnspec.conformance.repro import case_source

from .impls import higher_order_impls as hi
from .impls.numpy_impls import InputPrecision, NumpyBatchNorm

SEED = 0
GRAD2_CHECKS = [c.name for c in CHECKS if c.area == "GRAD2"]


def _variant(frozen: type[hi.Frozen], base: type[NumpyBatchNorm] = NumpyBatchNorm) -> NumpyBatchNorm:
    impl = base()
    impl.frozen = frozen()  # type: ignore[attr-defined]
    return impl


BROKEN = {  # variant -> the one check that must catch it (and the clause it breaks)
    hi.FirstOrderJvpFrozen: ("jvp-train", "BN-GRAD-4"),
    hi.JvpEvalThroughBatch: ("jvp-eval", "BN-GRAD-4"),
    hi.DoubleBackwardFrozen: ("grad2-train", "BN-GRAD-5"),
    hi.DoubleBackwardEvalThroughBatch: ("grad2-eval", "BN-GRAD-5"),
    hi.ForwardOverReverseFrozen: ("jvp-over-vjp", "BN-GRAD-6"),
    hi.SecondOrderCurvatureDropped: ("jvp-over-jvp", "BN-GRAD-6"),
    hi.ThirdOrderFrozen: ("order3-right-or-raised", "BN-GRAD-7"),
    hi.ReverseThirdOrderFrozen: ("order3-reverse-right-or-raised", "BN-GRAD-7"),
}


def test_checks_follow_the_gradient_checks():
    names = [c.name for c in CHECKS]
    assert GRAD2_CHECKS == ["jvp-train", "jvp-eval", "grad2-train", "grad2-eval", "jvp-over-vjp", "jvp-over-jvp",
                            "order3-right-or-raised", "order3-reverse-right-or-raised"]
    assert names.index("jvp-train") == names.index("grad-affine-off") + 1


@pytest.mark.parametrize("impl", [NumpyBatchNorm, InputPrecision], ids=lambda c: c.name)
def test_correct_implementations_pass(impl):
    """BN-GRAD-4, BN-GRAD-5, BN-GRAD-6, BN-GRAD-7, BN-PREC-8: float64 and float32 Taylor mode conform."""
    report = run(impl(), examples=DEFAULT_EXAMPLES, run_seed=SEED, pattern="GRAD2")
    by = {r.name: r for r in report.results}
    assert sorted(by) == sorted(GRAD2_CHECKS)
    bad = [(r.name, r.status, r.message) for r in report.results if r.status != "pass"]
    assert not bad, bad


@pytest.mark.parametrize("frozen", list(BROKEN), ids=lambda c: c.__name__)
def test_each_broken_variant_fails_its_own_check_only(frozen):
    """BN-GRAD-4..7: statistics held constant where the clause says they vary is caught, by that clause's check."""
    check, clause = BROKEN[frozen]
    report = run(_variant(frozen), examples=DEFAULT_EXAMPLES, run_seed=SEED, pattern="GRAD2")
    by = {r.name: r for r in report.results}
    assert by[check].status == "fail", (frozen.__name__, by[check].status, by[check].message)
    assert clause in by[check].clauses
    assert by[check].budget > 100, f"caught only narrowly: budget {by[check].budget}"
    others = [(r.name, r.status) for r in report.results if r.name != check and r.status != "pass"]
    assert not others, others


def test_float32_dropped_term_is_far_outside_and_correct_float32_far_inside():
    """BN-PREC-8 is tight: a correct float32 result uses a fraction of it; dropping the variance's tangent fails."""
    rng = np.random.default_rng(3)
    x = (1e2 + rng.standard_normal((16, 3))).astype(np.float32)
    case = directions(Case(x=x, weight=rng.normal(1, .5, 3).astype(np.float32),
                           bias=rng.normal(0, 1, 3).astype(np.float32)), 5, "jvp", 1)
    good = InputPrecision().run(case)
    assert compare_higher(case, good, ("y_dot",)).ok
    bad = _variant(hi.FirstOrderJvpFrozen, InputPrecision).run(case)
    verdict = compare_higher(case, bad, ("y_dot",))
    assert not verdict.ok and verdict.budget > 1e3


def test_refusal_passes_order3_and_silence_does_not():
    """BN-GRAD-7: raising is conforming; returning no value is not."""
    check = next(c for c in CHECKS if c.name == "order3-right-or-raised")

    class Refuses(NumpyBatchNorm):
        def run(self, case):
            if case.derivative == "jvp" and case.order >= 3:
                raise NotImplementedError("order 3 is not supported")
            return super().run(case)

    class Silent(NumpyBatchNorm):
        def run(self, case):
            out = super().run(case)
            out.y_dot = np.zeros_like(out.y_dot) if case.order >= 3 else out.y_dot
            return out

    assert {r.name: r.status for r in run(Refuses(), examples=5, pattern=check.name).results}[check.name] == "pass"
    assert {r.name: r.status for r in run(Silent(), examples=5, pattern=check.name).results}[check.name] == "fail"


def test_adapters_without_higher_orders_report_unsupported_with_the_reason():
    class FirstOrderOnly(NumpyBatchNorm):
        capabilities = Capabilities(channel_axes=(1, -1),
                                    derivative_gaps=(("jvp", "no forward mode in this framework"),))

    report = run(FirstOrderOnly(), examples=2, pattern="GRAD2")
    by = {r.name: r for r in report.results}
    assert all(r.status == "unsupported" for r in report.results)
    assert by["jvp-train"].message == "no forward mode in this framework"
    assert "vjp-of-vjp" in by["grad2-train"].message


def test_reproducer_rebuilds_tangents_and_order():
    rng = np.random.default_rng(0)
    case = directions(Case(x=rng.normal(size=(3, 2)), weight=np.ones(2), bias=np.zeros(2)), 1, "jvp", 3)
    ns: dict = {}
    exec("import base64\nimport numpy as np\nimport bnspec\n" + case_source(case), ns)  # noqa: S102
    back = ns["case"]
    assert back.order == 3 and back.derivative == "jvp"
    assert np.array_equal(back.tangent_x, case.tangent_x) and np.array_equal(back.tangent_weight, case.tangent_weight)
    assert "jvp order 3" in case.describe()
