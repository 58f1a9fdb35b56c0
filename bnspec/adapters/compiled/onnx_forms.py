"""ONNX as exporters write it: initializers, the training node's running outputs consumed or dangling,
onnxruntime's default optimizations or none."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..contract import Case, Outcome
from ..onnx import OPSET, OnnxRuntimeAdapter


def exported_model(case: Case, training: bool, consumed: bool = True) -> Any:
    """``case`` as an exporter writes one ``BatchNormalization``: X the only graph input (its shape
    given), scale, B, input_mean and input_var as initializers holding the case's values. In
    training the node has the three outputs; ``consumed`` makes the running ones graph outputs,
    else they dangle (no consumer, as in an exported training graph whose state nobody reads)."""
    from onnx import helper, numpy_helper

    elem = helper.np_dtype_to_tensor_dtype
    names = ("scale", "B", "input_mean", "input_var")
    arrays = (case.weight, case.bias, case.running_mean, case.running_var)
    inits = [numpy_helper.from_array(np.array(a, copy=True), n) for n, a in zip(names, arrays)]
    x_info = helper.make_tensor_value_info("X", elem(case.x.dtype), list(case.x.shape))
    node_outs = ["Y"] + (["running_mean", "running_var"] if training else [])
    outputs = [helper.make_tensor_value_info("Y", elem(case.x.dtype), list(case.x.shape))]
    if training and consumed:
        outputs += [helper.make_tensor_value_info(n, elem(a.dtype), list(a.shape))
                    for n, a in zip(node_outs[1:], arrays[2:])]
    momentum = None if case.momentum is None else 1.0 - case.momentum
    node = helper.make_node("BatchNormalization", ["X", *names], node_outs, epsilon=case.eps, momentum=momentum,
                            training_mode=int(training))
    graph = helper.make_graph([node], "bnspec_exported", [x_info], outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


_OX1 = ("OX1: onnxruntime's default graph optimizations, on a float16 training-mode BatchNormalization whose scale, "
        "B, mean and var are initializers, give a wrong y: x = [0.6323, 0.4189] returns [0.953, -0.848] where the "
        "exact (and the unoptimized or input-fed) result is [0.9996, -0.9996] (BN-TRAIN-1, BN-DTYPE-2)")


class OnnxExportedAdapter(OnnxRuntimeAdapter):
    """onnxruntime on the exporter-shaped model (``exported_model``).

    ``optimize``: onnxruntime's default level (``ORT_ENABLE_ALL``) or ``ORT_DISABLE_ALL``.
    ``consumed``: whether the training node's running outputs are graph outputs. When they dangle,
    y is the dangling graph's and the running statistics come from the same model with them
    consumed (a dangling output cannot be read), so the statistics are judged as in the consumed form.
    """

    name = "onnxruntime-exported"
    optimize = True
    consumed = True
    capabilities = replace(
        OnnxRuntimeAdapter.capabilities,
        notes="the node as exporters write it: scale, B, mean, var as initializers, X the only input; "
              "onnxruntime's default graph optimizations (ORT_ENABLE_ALL); running outputs consumed; "
              + OnnxRuntimeAdapter.capabilities.notes,
        known_deviations=OnnxRuntimeAdapter.capabilities.known_deviations + (("dtype-half-params", _OX1),),
    )

    def _session(self, mdl: Any) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        if not self.optimize:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(mdl.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def run(self, case: Case) -> Outcome:
        x = {"X": np.array(case.x, copy=True)}
        training = case.training
        results = self._session(exported_model(case, training, self.consumed)).run(None, x)
        out = Outcome(y=np.asarray(results[0]))
        if training and not self.consumed:
            results = self._session(exported_model(case, training, True)).run(None, x)
        if training:
            out.running_mean, out.running_var = np.asarray(results[1]), np.asarray(results[2])
        else:
            out.running_mean, out.running_var = np.array(case.running_mean, copy=True), np.array(case.running_var, copy=True)
        return out


class OnnxExportedNoOptAdapter(OnnxExportedAdapter):
    name = "onnxruntime-exported-noopt"
    optimize = False
    capabilities = replace(OnnxExportedAdapter.capabilities,
                           known_deviations=OnnxRuntimeAdapter.capabilities.known_deviations,
                           notes=OnnxExportedAdapter.capabilities.notes.replace(
                               "default graph optimizations (ORT_ENABLE_ALL)", "graph optimizations off (ORT_DISABLE_ALL)"))


_OX2 = ("OX2: with onnxruntime's default optimizations, a training-mode BatchNormalization whose running outputs "
        "nothing consumes (initializers for its state) no longer normalizes with the batch statistics: batch [0, 2], "
        "mean 0, var 4, eps 0 gives y = [-0.9, 1.1] instead of [-1, 1] (optimizations off, or the outputs consumed: "
        "[-1, 1]) (BN-TRAIN-1)")


class OnnxExportedDanglingAdapter(OnnxExportedAdapter):
    name = "onnxruntime-exported-dangling"
    consumed = False
    capabilities = replace(OnnxExportedAdapter.capabilities,
                           known_deviations=OnnxExportedAdapter.capabilities.known_deviations + tuple(
                               (check, _OX2) for check in ("train-output", "train-batch-stats", "dtype-half",
                                                            "special-nonfinite", "special-constant",
                                                            "scenario-multistep", "quality-constant")),
                           notes=OnnxExportedAdapter.capabilities.notes.replace(
                               "running outputs consumed", "training node's running outputs dangling (y from that "
                               "graph; running statistics from the consumed one)"))


class OnnxExportedDanglingNoOptAdapter(OnnxExportedDanglingAdapter):
    name = "onnxruntime-exported-dangling-noopt"
    optimize = False
    capabilities = replace(OnnxExportedDanglingAdapter.capabilities,
                           known_deviations=OnnxRuntimeAdapter.capabilities.known_deviations,
                           notes=OnnxExportedDanglingAdapter.capabilities.notes.replace(
                               "default graph optimizations (ORT_ENABLE_ALL)", "graph optimizations off (ORT_DISABLE_ALL)"))


