"""The ``openvino`` adapter: a model with one ``BatchNormInference`` node (opset5), compiled for the CPU plugin.

Inference only (``Capabilities(training=False)``): exported models reach OpenVINO with batch norm
in eval form, ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta`` over axis 1, its gamma, beta,
mean and variance stored as ``Constant`` nodes (the form ``openvino.convert_model`` gives an
exported eval graph) and x a ``Parameter``. The operator has no training mode, no momentum, no
running update, no untracked or affine-off form (gamma and beta are required inputs) and no
gradient. ``epsilon`` is a float attribute of the node. The running statistics come back as given
(eval leaves them as they were). See ``spec/conventions.md``, "OpenVINO".
"""

from __future__ import annotations

import numpy as np

from .contract import Capabilities, Case, Finding, Outcome

V1 = Finding(
    id="V1", summary="the CPU plugin computes a float64 model in float32: y comes back float64 but carries "
                     "float32 rounding (relative error about 1e-7 where float64 allows 1e-15) (BN-EVAL-1, BN-PREC-3)",
    clauses=("BN-EVAL-1", "BN-PREC-3", "BN-SPECIAL-1", "BN-LAYOUT-1", "BN-LAYOUT-2", "BN-DTYPE-1"),
    trigger_check="eval-output", trigger=(("shape", (2, 1)), ("dtype", "float64"), ("training", False)))


class OpenVinoAdapter:
    """``opset13.batch_norm_inference`` (BatchNormInference-5) in ``openvino.Core().compile_model(..., "CPU")``."""

    name = "openvino"
    capabilities = Capabilities(
        dtypes=("float32", "float64"),
        channel_axes=(1,),
        ranks=(2, 3, 4, 5),
        gradients=False,
        training=False,
        cumulative_average=False,
        counter=False,
        untracked=False,
        affine_off=False,
        notes="BatchNormInference (opset5) with Constant gamma, beta, mean, variance and a Parameter x, compiled "
              "for the CPU plugin; inference only (training=False); no gradients, no affine off, no untracked mode",
        findings=(V1,),
    )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        import openvino as ov

        if "CPU" not in ov.Core().available_devices:
            return f"openvino {ov.__version__} has no CPU plugin here"
        return None

    def run(self, case: Case) -> Outcome:
        import openvino as ov
        import openvino.opset13 as ops

        if case.training:
            raise ValueError("BatchNormInference has no training mode (the adapter declares training=False)")
        x = ops.parameter(list(case.x.shape), ov.Type(case.x.dtype), name="x")
        consts = [ops.constant(np.array(a, copy=True)) for a in
                  (case.weight, case.bias, case.running_mean, case.running_var)]
        node = ops.batch_norm_inference(x, *consts, case.eps)
        model = ov.Model([node], [x], "bnspec")
        compiled = ov.Core().compile_model(model, "CPU")
        y = compiled({0: np.array(case.x, copy=True)})[compiled.output(0)]
        return Outcome(y=np.asarray(y), running_mean=np.array(case.running_mean, copy=True),
                       running_var=np.array(case.running_var, copy=True))
