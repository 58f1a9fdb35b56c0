"""ONNX adapters: the ``BatchNormalization`` operator (opset 15) as a one-node model, run by
``onnxruntime`` (``CPUExecutionProvider``) and by ``onnx-reference`` (``onnx.reference.ReferenceEvaluator``).

The mapping (``spec/conventions.md``, 2.6): ONNX's ``momentum`` attribute weights the *old* running
value, so it is ``1 - alpha``; ``epsilon`` is passed as given (attributes are stored as float32).
A training step is ``training_mode=1`` with the outputs Y, running_mean, running_var; eval is
``training_mode=0`` with Y alone. Scale, B, mean and var are required inputs, so the operator has
no affine-off and no untracked mode, no counter and no cumulative average; the channel axis is 1.
The running variance is the biased one (profile ``biased-running-var``). ONNX defines no
gradient for this operator in inference runtimes, so neither adapter computes gradients.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .contract import Capabilities, Case, Outcome

OPSET = 15

_COMMON_NOTES = ("ONNX BatchNormalization opset 15 as a one-node model; momentum attribute = 1 - alpha and "
                 "epsilon stored as float32 attributes; scale, B, mean and var are required inputs (no affine "
                 "off, no untracked mode, no counter, no cumulative average); channel axis 1 only; no gradients "
                 "(inference runtimes)")

# Findings of spec/conventions.md, section 4, shared by both runtimes. "O6" is new: ONNX float
# attributes are 32-bit, so epsilon and the momentum attribute 1 - alpha reach the kernel rounded
# to float32; both runtimes match that formula bit for bit, and the exact spec values differ by more
# than the float64 tolerance (and, for a small alpha, than the float32 running-stat tolerance).
_F32 = ("O6: epsilon and momentum are float32 attributes, so the operator runs with float32(eps) and "
        "1 - float32(1 - alpha): float64 results, and float32 running statistics for a small alpha, miss the "
        "exact ones by those roundings")
_DEVIATIONS = (
    ("train-output", _F32),
    ("train-batch-stats", _F32),
    ("running-momentum", _F32),
    ("eval-output", _F32),
    ("special-nonfinite", _F32),
    ("special-constant", _F32),
    ("scenario-multistep", _F32 + " (alpha 0.01: 1 - float32(0.99) is 9.5e-7 relative off, also in float32)"),
    ("dtype-half", _F32 + " (float32 state, alpha 0.01: the running mean misses by 9.5e-9 |mean - old|)"),
    ("arg-one-value", "O1: one value per channel in training returns Y = B and updates the stats, no error "
                      "(BN-ARG-1; the operator text is silent)"),
    ("empty-batch", "O2: an empty batch returns NaN running statistics (BN-EMPTY-1)"),
    ("arg-negative-eps", "O3: a negative epsilon is accepted (BN-ARG-4)"),
    ("arg-momentum-range", "O3: a momentum outside [0, 1] (attribute 1 - alpha) is accepted (BN-ARG-5)"),
)


# onnx.reference only: it computes in NumPy in the input's dtype and checks neither types nor shapes.
_REFERENCE_DEVIATIONS = tuple(d for d in _DEVIATIONS if d[0] != "dtype-half") + (
    ("dtype-output", "O5: float16 input with float32 running statistics returns them as float16 (BN-DTYPE-3)"),
    ("dtype-half", "O5: float16 input is reduced and normalized in float16 NumPy arithmetic, and float32 running "
                   "statistics come back rounded through float16 (BN-DTYPE-2, BN-DTYPE-3)"),
    ("dtype-half-params", "O5: with float16 parameters and state the whole formula runs in float16 (BN-DTYPE-2)"),
    ("arg-shape", "O7: scale, B, mean and var are broadcast by NumPy, so a length-1 (or empty) vector is "
                  "accepted for C channels (BN-ARG-2); onnxruntime raises INVALID_ARGUMENT"),
    ("arg-non-floating", "O7: an integer X is normalized without a type check (BN-ARG-3); onnxruntime "
                         "rejects the model (INVALID_GRAPH)"),
)


def model(case: Case, training: bool) -> Any:
    """The one-node ``BatchNormalization`` model for ``case``'s dtypes."""
    from onnx import helper

    elem = helper.np_dtype_to_tensor_dtype
    names = ("X", "scale", "B", "input_mean", "input_var")
    arrays = (case.x, case.weight, case.bias, case.running_mean, case.running_var)
    inputs = [helper.make_tensor_value_info(n, elem(a.dtype), None) for n, a in zip(names, arrays)]
    outs = [("Y", case.x)]
    if training:
        outs += [("running_mean", case.running_mean), ("running_var", case.running_var)]
    outputs = [helper.make_tensor_value_info(n, elem(a.dtype), None) for n, a in outs]
    # momentum None (no cumulative average in ONNX): onnx.helper drops None attributes, so the
    # operator's default 0.9 would apply; the suite never sends it (cumulative_average=False).
    momentum = None if case.momentum is None else 1.0 - case.momentum
    node = helper.make_node("BatchNormalization", list(names), [n for n, _ in outs], epsilon=case.eps,
                            momentum=momentum, training_mode=int(training))
    graph = helper.make_graph([node], "bnspec", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _feeds(case: Case) -> dict[str, np.ndarray]:
    arrays = (case.x, case.weight, case.bias, case.running_mean, case.running_var)
    # Copies: a runtime must never see (and could never write) the case's own arrays.
    return {n: np.array(a, copy=True) for n, a in zip(("X", "scale", "B", "input_mean", "input_var"), arrays)}


class _OnnxAdapter:
    name = ""
    capabilities = Capabilities()

    def _run_model(self, mdl: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def run(self, case: Case) -> Outcome:
        training = case.training
        results = self._run_model(model(case, training), _feeds(case))
        out = Outcome(y=np.asarray(results[0]))
        if training:
            out.running_mean, out.running_var = np.asarray(results[1]), np.asarray(results[2])
        else:  # eval leaves the state as it was: the operator returns none
            out.running_mean, out.running_var = np.array(case.running_mean, copy=True), np.array(case.running_var, copy=True)
        return out


class OnnxRuntimeAdapter(_OnnxAdapter):
    """The operator in ONNX Runtime's ``CPUExecutionProvider``."""

    name = "onnxruntime"
    capabilities = Capabilities(
        dtypes=("float16", "float32", "float64"),  # no bfloat16 BatchNormalization kernel (NOT_IMPLEMENTED)
        channel_axes=(1,),
        gradients=False,
        cumulative_average=False,
        counter=False,
        untracked=False,
        affine_off=False,
        running_var="biased",
        stats_dtypes=("float32",),
        notes=_COMMON_NOTES + "; onnxruntime CPUExecutionProvider, which has no bfloat16 kernel",
        known_deviations=_DEVIATIONS,
    )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        import onnxruntime as ort

        if "CPUExecutionProvider" not in ort.get_available_providers():
            return f"onnxruntime {ort.__version__} has no CPUExecutionProvider"
        return None

    def _run_model(self, mdl: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 4  # errors raise as exceptions; the log stays quiet
        sess = ort.InferenceSession(mdl.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)


class OnnxReferenceAdapter(_OnnxAdapter):
    """The operator in ``onnx.reference.ReferenceEvaluator`` (ONNX's executable specification)."""

    name = "onnx-reference"
    capabilities = Capabilities(
        dtypes=("float16", "float32", "float64", "bfloat16"),
        channel_axes=(1,),
        gradients=False,
        cumulative_average=False,
        counter=False,
        untracked=False,
        affine_off=False,
        running_var="biased",
        stats_dtypes=("float32",),
        notes=_COMMON_NOTES + "; onnx.reference.ReferenceEvaluator (NumPy in the input's dtype; its NumPy "
                              "RuntimeWarnings are silenced)",
        known_deviations=_REFERENCE_DEVIATIONS,
    )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def _run_model(self, mdl: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        from onnx.reference import ReferenceEvaluator

        with warnings.catch_warnings():  # NumPy's empty-mean and overflow warnings: results say it all
            warnings.simplefilter("ignore", RuntimeWarning)
            return ReferenceEvaluator(mdl).run(None, feeds)
