"""``Capabilities(training=False)``: an inference-only backend (OpenVINO, an exported eval graph) is handed
eval cases only; the checks that need a training step are unsupported, never passed or failed, and the
refusal checks are judged on eval cases (their valid twins run). Proved on the NumPy reference made
eval-only, and a broken eval (eps dropped) that the suite still catches."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings

from bnspec.adapters.contract import Case, Outcome
from bnspec.adapters.reference import ReferenceAdapter
from bnspec.conformance.cases import Recipe, Space, fits, recipes
from bnspec.conformance.checks import CHECKS
from bnspec.conformance.runner import run_check

EVAL_ONLY = replace(ReferenceAdapter.capabilities, training=False, gradients=False)


class EvalOnly(ReferenceAdapter):
    """The reference without a training mode: a training case is refused, as an inference runtime has none."""

    name = "eval-only"
    capabilities = EVAL_ONLY

    def run(self, case: Case) -> Outcome:
        if case.training:
            raise ValueError("no training mode")
        return super().run(case)


def _check(name: str):
    return next(c for c in CHECKS if c.name == name)


@settings(max_examples=60, deadline=None)
@given(recipes(EVAL_ONLY, Space()))
def test_an_inference_only_adapter_is_drawn_eval_cases_only(recipe):
    assert recipe.training is False and fits(recipe, EVAL_ONLY)


def test_a_training_recipe_does_not_fit_and_a_training_check_is_unsupported():
    assert not fits(Recipe(shape=(2, 3)), EVAL_ONLY) and fits(Recipe(shape=(2, 3), training=False), EVAL_ONLY)
    for name in ("train-output", "running-momentum", "special-constant", "running-counter", "scenario-multistep"):
        why = _check(name).unsupported(EVAL_ONLY)
        assert why and "training" in why, (name, why)
    assert _check("eval-output").unsupported(EVAL_ONLY) is None


@pytest.mark.parametrize("name", ["eval-output", "arg-negative-eps", "arg-shape"])
def test_eval_checks_and_refusals_are_judged_on_eval_cases(name):
    """The reference raises on negative eps and wrong shapes; its valid twins (eval) run, so the
    refusals are judged (pass), not unjudged, and no case asks for a training step."""
    assert run_check(EvalOnly(), _check(name), 10, 0, "eval-only").status == "pass"


def test_a_broken_eval_only_adapter_still_fails():
    """Judged on what it does: an eval without eps fails eval-output."""

    class NoEps(EvalOnly):
        def run(self, case: Case) -> Outcome:
            return super().run(replace(case, eps=0.0) if not case.training and case.eps > 0 else case)

    assert run_check(NoEps(), _check("eval-output"), 10, 0, "eval-only").status == "fail"
