"""The ``paddle`` adapter: ``paddle.nn.BatchNorm1D/2D/3D`` on the CPU, gradients by Paddle's autograd.

Paddle's ``momentum`` weights the *old* running value (``running = momentum * running + (1 -
momentum) * batch``, default 0.9), so the spec's alpha is passed as ``1 - alpha``
(``spec/conventions.md``, "PaddlePaddle"). The channel axis is ``data_format``: ``NC``/``NCL``/
``NCHW``/``NCDHW`` for axis 1, ``NLC``/``NHWC``/``NDHWC`` for axis -1 (rank 2 is ``NC`` only).
Training and eval are the layer's ``.train()`` / ``.eval()``; the untracked mode (batch statistics
in eval too) is ``use_global_stats=False``, the running buffers then left out of the outcome.
Affine off is ``weight_attr=False, bias_attr=False``. Paddle keeps no batch counter and has no
cumulative average.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .contract import DERIVATIVE_MODES, Capabilities, Case, Finding, Outcome

_FORMATS = {(2, 1): "NC", (3, 1): "NCL", (4, 1): "NCHW", (5, 1): "NCDHW",
            (3, -1): "NLC", (4, -1): "NHWC", (5, -1): "NDHWC"}

# Findings P1-P4 of spec/conventions.md, section 4 ("PaddlePaddle 3.3.1"), each with its minimal case.
P2 = Finding(
    id="P2", summary="eval with use_global_stats=False normalizes with the batch statistics but back-propagates "
                     "through the running ones: dx and dgamma are those of the eval formula (BN-EVAL-2, BN-GRAD-1)",
    clauses=("BN-EVAL-2", "BN-LAYOUT-1"), outputs=("grad_input", "grad_weight"),
    trigger_check="grad-eval-untracked", trigger=(("shape", (2, 1)), ("training", False), ("tracked", False),
                                                   ("grad", "random")))
P1 = Finding(
    id="P1", summary="epsilon and momentum are float32 attributes: float64 runs with float32(eps) and "
                     "float32(1 - alpha), off by those roundings (up to 2e-11 relative in y, 2.6e-8 in the stats)",
    clauses=("BN-TRAIN-1", "BN-TRAIN-2", "BN-TRAIN-3", "BN-TRAIN-4", "BN-TRAIN-5", "BN-EVAL-1", "BN-EVAL-2",
             "BN-GRAD-1", "BN-GRAD-2", "BN-GRAD-3", "BN-RUN-1", "BN-RUN-2", "BN-SPECIAL-1", "BN-SPECIAL-2",
             "BN-LAYOUT-1", "BN-PREC-6"),
    trigger_check="train-output", trigger=(("shape", (2, 1)), ("dtype", "float64")))
P3 = Finding(
    id="P3", summary="one value per channel in training returns x unchanged and leaves the running statistics "
                     "as they were, no error (BN-ARG-1)",
    clauses=("BN-ARG-1",), trigger_check="arg-one-value", trigger=(("shape", (1, 2)),))
P4 = Finding(
    id="P4", summary="a negative epsilon and a momentum outside [0, 1] are accepted (BN-ARG-4, BN-ARG-5)",
    clauses=("BN-ARG-4", "BN-ARG-5"), trigger_check="arg-momentum-range", trigger=(("shape", (2, 1)),))
P5 = Finding(
    id="P5", summary="channel-last (NHWC) batches on the CPU: the batch variance is the one-pass float32 "
                     "E[x^2] - E[x]^2, so a channel at 1e4 with spread 1 over 65536 values gets variance 9.7 "
                     "instead of 1.0 (BN-QUAL-1; NCHW is exact)",
    clauses=("BN-QUAL-1",), trigger_check="quality-reductions",
    trigger=(("shape", (16, 64, 64, 2)), ("axis", -1), ("data", "offset"), ("offset", 1e4)))
FINDINGS: tuple[Finding, ...] = (P2, P5, P1, P3, P4)
_DEVIATIONS: tuple[tuple[str, str], ...] = ()


def _layer_class(rank: int) -> Any:
    import paddle

    return {2: paddle.nn.BatchNorm1D, 3: paddle.nn.BatchNorm1D, 4: paddle.nn.BatchNorm2D,
            5: paddle.nn.BatchNorm3D}[rank]


def _tensor(a: np.ndarray, grad: bool = False) -> Any:
    import paddle

    t = paddle.to_tensor(np.array(a, copy=True), place=paddle.CPUPlace())
    t.stop_gradient = not grad
    return t



# Derivatives beyond the first (BN-GRAD-4..7), for each mode: why this adapter does not offer them.
_WHY_FIRST_ORDER = (
    "not wired: paddle.grad(create_graph=True) gives double backward and paddle.incubate.autograd "
    "forward mode, but this adapter computes first derivatives only")
HIGHER_ORDER_GAPS = tuple((mode, _WHY_FIRST_ORDER) for mode in DERIVATIVE_MODES)


class PaddleAdapter:
    """``paddle.nn.BatchNorm{1D,2D,3D}`` with ``data_format`` for the channel axis."""

    name = "paddle"
    capabilities = Capabilities(
        derivative_gaps=HIGHER_ORDER_GAPS,
        dtypes=("float32", "float64"),
        channel_axes=(1, -1),
        ranks=(2, 3, 4, 5),
        cumulative_average=False,
        counter=False,
        running_var="biased",
        notes="paddle.nn.BatchNorm1D/2D/3D on CPUPlace; momentum passed as 1 - alpha; data_format for the channel "
              "axis; untracked = use_global_stats=False; no counter, no cumulative average",
        known_deviations=_DEVIATIONS,
        findings=FINDINGS,
    )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def run(self, case: Case) -> Outcome:
        import paddle

        paddle.set_device("cpu")
        rank = case.x.ndim
        fmt = _FORMATS.get((rank, -1 if case.channel_axis == rank - 1 and rank > 2 else 1))
        if fmt is None or case.channel_axis not in (1, rank - 1):
            raise ValueError(f"axis={case.axis}: Paddle's data_format puts the channel at axis 1 or -1 of rank 2-5")
        dtype = str(case.x.dtype)
        paddle.set_default_dtype(dtype if dtype in ("float32", "float64") else "float32")
        momentum = 0.9 if case.momentum is None else 1.0 - case.momentum
        layer = _layer_class(rank)(
            case.channels, momentum=momentum, epsilon=case.eps, data_format=fmt,
            weight_attr=None if case.weight is not None else False,
            bias_attr=None if case.bias is not None else False,
            use_global_stats=None if case.tracked else False)
        if case.weight is not None:
            layer.weight.set_value(_tensor(case.weight))
        if case.bias is not None:
            layer.bias.set_value(_tensor(case.bias))
        if case.tracked:
            layer._mean.set_value(_tensor(case.running_mean))
            layer._variance.set_value(_tensor(case.running_var))
        layer.train() if case.training else layer.eval()
        x = _tensor(case.x, grad=case.grad_output is not None)
        y = layer(x)
        out = Outcome(y=y.numpy())
        if case.grad_output is not None:
            y.backward(_tensor(case.grad_output))
            out.grad_input = x.grad.numpy()
            if case.weight is not None:
                out.grad_weight = layer.weight.grad.numpy()
            if case.bias is not None:
                out.grad_bias = layer.bias.grad.numpy()
        if case.tracked:
            out.running_mean, out.running_var = layer._mean.numpy(), layer._variance.numpy()
        return out
