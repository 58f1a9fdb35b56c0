"""PyTorch forms: ``torch.compile`` (Inductor) of the module, and ``torch.onnx.export`` run in onnxruntime."""

from __future__ import annotations

from typing import Any

from ..contract import Finding
from ..pytorch import T1, TorchAdapter
from ._common import _first_order_only, _module_call


class TorchCompileAdapter(TorchAdapter):
    """``torch.compile`` of the module call (Inductor on the CPU, ``dynamic=True``, Dynamo's default
    ``fullgraph=False``).

    The recompile limits are lifted: past ``recompile_limit`` (8) Dynamo would quietly run the
    eager module for the rest of the run. ``dynamic=True`` compiles one kernel set per structure
    (dtype, rank, layout, mode) for all shapes, as Dynamo's automatic dynamic shapes do from a
    second shape on. ``fullgraph`` stays False as users leave it: with ``momentum=None`` the
    module's ``1 / num_batches_tracked`` is data-dependent, a graph break (``fullgraph=True``
    raises ``UserError`` there), so the cumulative average runs as two graphs (finding TC2).
    """

    name = "torch-compile"
    capabilities = _first_order_only(
        TorchAdapter.capabilities,
        "torch.compile(backend='inductor', dynamic=True) of nn.BatchNorm1d/2d/3d's call on the "
              "CPU, forward and backward; recompile limits lifted (Dynamo would fall back to eager after 8); "
        "higher-order derivatives not claimed; " + TorchAdapter.capabilities.notes,
        known_deviations=TorchAdapter.capabilities.known_deviations + (
            ("arg-non-floating", "TC1: under torch.no_grad (or with frozen parameters) the compiled module normalizes "
                                 "an integer input and returns it truncated to the integer dtype ([1, 3] -> [0, 2]) "
                                 "where eager raises NotImplementedError (BN-ARG-3)"),),
    )

    def __init__(self) -> None:
        import torch

        torch._dynamo.config.recompile_limit = 1 << 20
        torch._dynamo.config.accumulated_recompile_limit = 1 << 20
        self._compiled = torch.compile(_module_call, backend="inductor", dynamic=True)

    def call(self, bn: Any, x: Any) -> Any:
        return self._compiled(bn, x)




# -- PyTorch: torch.onnx.export, run in onnxruntime ------------------------------------------------------

TO1 = Finding(id="TO1", summary="torch.onnx.export(training=TRAINING) writes BatchNormalization with training_mode=1 "
                               "but makes neither running output a graph output: the exported step updates no "
                               "running statistics and no counter",
              clauses=("BN-RUN-1", "BN-RUN-2", "BN-RUN-3", "BN-RUN-4"),
              outputs=("running_mean", "running_var", "num_batches_tracked"))
_O6_EXPORTED = ("O6 through the exporter: epsilon (and the momentum) are float32 attributes of the exported node, "
                "so float64 outputs carry float32(eps)")


class TorchOnnxAdapter(TorchAdapter):
    """``torch.onnx.export`` of the case's ``nn.BatchNorm*d`` (in its train or eval mode), run as
    exported in onnxruntime (``CPUExecutionProvider``, default optimizations).

    The exporter is the TorchScript one (``dynamo=False``, ``training=TrainingMode.TRAINING`` or
    ``EVAL``, opset 17): the default dynamo exporter needs ``onnxscript``, which the extras do not
    install. The module's state after the call is what the exported graph leaves: the exporter
    writes a training BatchNormalization whose running outputs nothing consumes (finding TO1), so
    the module's running statistics and counter come back as they went in (the exporter's own
    tracing forward pass, which updates them, TO2, is undone). ONNX runtimes compute no gradients.
    """

    name = "torch-onnx"
    capabilities = _first_order_only(
        TorchAdapter.capabilities,
        "torch.onnx.export(module, dynamo=False, training=TRAINING/EVAL, opset_version=17) of nn.BatchNorm1d/2d/3d, "
        "run in onnxruntime (CPUExecutionProvider, default optimizations); no gradients; no bfloat16 (onnxruntime "
        "has no bfloat16 BatchNormalization kernel); channel-last as a permuted input",
        gradients=False,
        dtypes=("float16", "float32", "float64"),
        findings=(T1, TO1),
        known_deviations=tuple((check, _O6_EXPORTED) for check in (
            "train-output", "train-affine-off", "train-batch-stats", "eval-output", "eval-untracked",
            "special-nonfinite")) + tuple((check, TO1.describe()) for check in (
            "running-momentum", "running-cumulative", "running-counter", "layout-channel-last", "special-constant",
            "dtype-half", "dtype-half-params", "scenario-multistep")),
    )

    def call(self, bn: Any, x: Any) -> Any:
        import io
        import warnings

        import onnxruntime as ort
        import torch

        mode = torch.onnx.TrainingMode.TRAINING if bn.training else torch.onnx.TrainingMode.EVAL
        buf = io.BytesIO()
        state = {k: v.clone() for k, v in bn.named_buffers()}  # tracing runs the module once (TO2)
        try:
            with warnings.catch_warnings():  # the TorchScript exporter's deprecation and mode notes
                warnings.simplefilter("ignore")
                torch.onnx.export(bn, (x.contiguous(),), buf, dynamo=False, training=mode, opset_version=17,
                                  input_names=["x"])
        finally:
            with torch.no_grad():
                for k, v in bn.named_buffers():
                    v.copy_(state[k])
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
        from ..pytorch import to_numpy, to_torch

        return to_torch(sess.run(None, {"x": to_numpy(x.contiguous())})[0], "cpu")
