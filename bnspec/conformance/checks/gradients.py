"""Section 5 of the spec: gradients in training and eval (BN-GRAD-*)."""

from __future__ import annotations

from ...adapters.contract import Capabilities
from ..cases import WITH_EXTREMES, Recipe, Space
from ..check import (
    GRADS,
    CompareCheck,
    modes_unsupported,
)


class _GradCheck(CompareCheck):
    outputs = GRADS

    def unsupported(self, caps: Capabilities) -> str | None:
        return modes_unsupported(caps, self.space) if caps.gradients else "the adapter computes no gradients"


class GradTrain(_GradCheck):
    """Training gradients: dx through the batch mean and variance, dgamma and dbeta."""

    name = "grad-train"
    area = "GRAD"
    clauses = ("BN-GRAD-1", "BN-GRAD-2", "BN-PREC-5")
    space = Space(training=True, affine=True, grad=True, data=WITH_EXTREMES)
    fixed = (
        Recipe(shape=(2, 3), grad="normal", seed=12),
        Recipe(shape=(16, 2, 4, 4), grad="correlated", data="offset", offset=1e3, seed=13),
    )


class GradEval(_GradCheck):
    """Eval gradients treat the running statistics as constants."""

    name = "grad-eval"
    area = "GRAD"
    clauses = ("BN-GRAD-3", "BN-GRAD-2", "BN-PREC-5")
    space = Space(training=False, tracked=True, affine=True, grad=True, data=WITH_EXTREMES)


class GradUntrackedEval(_GradCheck):
    """Eval without running statistics differentiates through the batch statistics."""

    name = "grad-eval-untracked"
    area = "GRAD"
    clauses = ("BN-GRAD-1", "BN-EVAL-2", "BN-PREC-5")
    space = Space(training=False, tracked=False, grad=True, data=WITH_EXTREMES)

    def unsupported(self, caps: Capabilities) -> str | None:
        if not caps.untracked:
            return "the adapter always tracks running statistics"
        return super().unsupported(caps)


class GradAffineOff(_GradCheck):
    """With affine off, dx is the gradient of the normalized input alone."""

    name = "grad-affine-off"
    area = "GRAD"
    clauses = ("BN-GRAD-1", "BN-GRAD-2", "BN-PREC-5")
    outputs = ("grad_input",)
    space = Space(affine=False, grad=True, data=WITH_EXTREMES)

    def unsupported(self, caps: Capabilities) -> str | None:
        if not caps.affine_off:
            return "the adapter does not support affine off"
        return super().unsupported(caps)
