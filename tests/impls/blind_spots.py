"""Broken NumPy variants that only the case families of issue 14 reach, and the correct variants that claim them.

Each broken variant below passes every check on the cases the suite drew before those families
existed (random parameters and state, float32 and float64 inputs with state in their own dtype,
eps of at least 1e-8, moderate magnitudes) and fails once its family is drawn:

* ``FreshStateAliased`` (fresh-layer state): equal constant tensors merged into one buffer;
* ``PromotedStateDtype`` (state dtype independent of the input's): state and parameter gradients
  returned in the promoted dtype;
* ``OnePassWideAccumulator`` (magnitude extremes): one-pass float32 statistics in float64;
* ``EpsZeroIsDefault`` (edge parameters): ``eps or 1e-5``, so eps 0 runs as 1e-5.

``CLAIMING`` are the correct variants of ``numpy_impls.py`` with the capabilities the families
need declared (``mixed_dtypes``, ``zero_eps``); ``tests/test_blind_spots.py`` runs them all.
"""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np

from bnspec.adapters.contract import Capabilities, Case, Outcome

from .numpy_impls import CAPABILITIES, CORRECT, InputPrecision, NumpyBatchNorm, bug

MIXED = (("float64", "float32"), ("float32", "float64"))
# Only the claims the contract knows: the commit before issue 14 has neither field, and there these
# variants claim what the correct ones do (how tests/test_blind_spots.py's proof runs them).
_KNOWN = {f.name for f in fields(Capabilities)}
CLAIMS = replace(CAPABILITIES, notes="tests/impls: plain NumPy, state in either float dtype, eps 0 accepted",
                 **{k: v for k, v in (("mixed_dtypes", MIXED), ("zero_eps", True)) if k in _KNOWN})


def claiming(impl: type[NumpyBatchNorm]) -> type[NumpyBatchNorm]:
    """``impl`` with ``CLAIMS`` for capabilities, under the name ``<name>-claims``."""
    return type(impl.__name__ + "Claims", (impl,), {"name": impl.name + "-claims", "capabilities": CLAIMS,
                                                   "__doc__": impl.__doc__})


CLAIMING: tuple[type[NumpyBatchNorm], ...] = tuple(claiming(impl) for impl in CORRECT)


class FreshStateAliased(NumpyBatchNorm):
    """Fresh-layer state: a runtime that deduplicates equal constant tensors (as graph optimizers fold
    equal initializers) gives a new layer's weight (all ones) and running variance (all ones) one
    buffer, and its bias and running mean (all zeros) another. The running update writes through the
    shared buffer before the affine step reads it, so a training step scales and shifts y by the new
    running statistics. Random parameters and state never compare equal, so only a fresh layer shows it."""

    name = "blind-fresh-state-aliased"
    capabilities = CAPABILITIES
    bug = bug("weight/running_var and bias/running_mean share a buffer when equal; the update lands first",
              ("BN-TRAIN-4", "BN-RUN-1"), "TRAIN", "GRAD", "DTYPE", "SPECIAL")

    def compute(self, case: Case, ax: int) -> Outcome:
        out = super().compute(case, ax)
        if not (case.training and out.running_mean is not None and case.weight is not None and case.bias is not None):
            return out
        weight = out.running_var if np.array_equal(case.weight, case.running_var) else case.weight
        bias = out.running_mean if np.array_equal(case.bias, case.running_mean) else case.bias
        if weight is case.weight and bias is case.bias:
            return out
        return super().compute(replace(case, weight=weight, bias=bias), ax)


class PromotedStateDtype(NumpyBatchNorm):
    """State dtype: the running statistics and the parameter gradients come back in the dtype that
    holds both x's and the state's (``np.result_type``), not in their own (BN-DTYPE-3). For half
    inputs with float32 state, the usual mixed-precision pair, the promotion is float32 and nothing
    shows; float64 input with float32 state, or float32 input with float64 state, shows it."""

    name = "blind-promoted-state-dtype"
    capabilities = CLAIMS
    bug = bug("state and parameter gradients returned in result_type(x, state)", ("BN-DTYPE-3",), "DTYPE")

    def compute(self, case: Case, ax: int) -> Outcome:
        out = super().compute(case, ax)

        def promote(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a.astype(np.result_type(case.x.dtype, a.dtype))

        return replace(out, running_mean=promote(out.running_mean), running_var=promote(out.running_var),
                       grad_weight=promote(out.grad_weight), grad_bias=promote(out.grad_bias))


class OnePassWideAccumulator(InputPrecision):
    """Magnitude extremes: a float32 input's statistics in one pass, ``E[x^2] - E[x]^2``, with float64
    accumulators, then rounded to float32. The wide accumulator makes the one-pass form pass on
    offset float32 data (a mean of 1e4 over a spread of 1 loses about 1e-8 of the variance), but on
    a constant channel far from zero the float64 sum of squares rounds (c^2 carries 48 bits, so m
    copies overflow 53 bits past m = 32) and the variance comes out about +-c^2 * 2^-52: negative
    half the time, and then sqrt(var + eps) is NaN where y is exactly beta (BN-SPECIAL-2, BN-PREC-7).
    Constant channels near zero (c^2 * 2^-52 far below eps) never show it."""

    name = "blind-one-pass-wide-accumulator"
    bug = bug("float32 statistics as E[x^2] - E[x]^2 in float64: negative variance on a large constant channel",
              ("BN-TRAIN-2", "BN-SPECIAL-2", "BN-PREC-7"), "TRAIN", "GRAD", "SPECIAL", "LAYOUT", "EVAL", "DTYPE")

    def moments(self, x: np.ndarray, red: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if x.dtype != np.float32:
            return super().moments(x, red)
        wide = x.astype(np.float64)
        mean = wide.mean(axis=red, keepdims=True)
        var = (wide * wide).mean(axis=red, keepdims=True) - mean * mean
        return mean.astype(np.float32), var.astype(np.float32)


class EpsZeroIsDefault(NumpyBatchNorm):
    """Edge parameters: ``eps = eps or 1e-5``, Python's falsy default, so an eps of exactly 0 (which
    BN-ARG-4 allows an implementation to accept) runs as 1e-5. Every other eps is honoured."""

    name = "blind-eps-zero-is-default"
    capabilities = CLAIMS
    bug = bug("eps 0 replaced by the default 1e-5", ("BN-TRAIN-3", "BN-ARG-4"), "TRAIN", "EVAL", "GRAD", "RUN")

    def compute(self, case: Case, ax: int) -> Outcome:
        return super().compute(replace(case, eps=case.eps or 1e-5), ax)


FAMILY: dict[str, type[NumpyBatchNorm]] = {
    "fresh-layer state": FreshStateAliased,
    "state dtype": PromotedStateDtype,
    "magnitude extremes": OnePassWideAccumulator,
    "edge parameters": EpsZeroIsDefault,
}
BLIND: tuple[type[NumpyBatchNorm], ...] = tuple(FAMILY.values())
