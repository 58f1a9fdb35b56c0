"""The ``tinygrad`` adapter: ``tinygrad.nn.BatchNorm`` (= ``BatchNorm2d``/``BatchNorm3d``) with tinygrad's autograd.

tinygrad's momentum is the spec's (weight of the new batch) and its running variance is the
unbiased one, so both map one to one (``spec/conventions.md``, 2.7). The layer's channel axis is
fixed at 1. Training is tinygrad's own switch, the ``TRAINING`` context variable
(``Context(TRAINING=1)``; tinygrad 0.14 has no ``Tensor.train()``); gradients come from
``Tensor.gradient`` (what ``Tensor.backward`` fills ``.grad`` with).

The device is process-global and chosen when the adapter is instantiated: ``CPU`` where a
``clang`` is on the PATH (tinygrad's CPU device compiles its kernels with it), else the pure-Python
``PYTHON`` device (slow, no compiler needed). ``BNSPEC_TINYGRAD_DEV`` overrides the choice.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from typing import Any

import numpy as np

from ..dtypes import bfloat16, dtype_name
from .contract import Capabilities, Case, Finding, Outcome

# Findings G1-G3 of spec/conventions.md, section 4.
_DEVIATIONS = (
    ("arg-one-value", "G1: one value per channel: tracked, ZeroDivisionError after running_mean was written; "
                      "untracked, y = beta and no error (BN-ARG-1)"),
    ("empty-batch", "G2: an empty batch makes the running statistics NaN and adds 1 to the counter (BN-EMPTY-1)"),
    ("arg-negative-eps", "G3: a negative eps is accepted (BN-ARG-4)"),
    ("arg-momentum-range", "G3: a momentum outside [0, 1] is accepted (BN-ARG-5)"),
    ("dtype-half", "G6: a float16 input's batch mean is a float16 tensor (Tensor.mean keeps the half dtype), "
                   "so x - mean and the variance are computed from a rounded mean (BN-DTYPE-2)"),
    ("dtype-half-params", "G6: with float16 parameters and state every intermediate is float16 (BN-DTYPE-2)"),
    ("arg-shape", "G5: running statistics are broadcast, not checked: in training the update broadcasts "
                  "them against the batch statistics (length 2 for 1 channel becomes 2 entries), in eval "
                  "running_var is reshaped with -1 (length 1 serves every channel, length 0 gives an empty y) "
                  "(BN-ARG-2)"),
)

# G7: a float32 spread of about 1e15 loses dx's path through the variance (the derivative of rsqrt underflows
# float32); its trigger is the drawn magnitude-extremes case it was found with.
G7 = Finding(
    id="G7", summary="float32 training gradients through the variance are lost for very large spreads: the "
                     "derivative of rsqrt(var + eps) underflows float32 (BN-GRAD-1)",
    clauses=("BN-GRAD-1", "BN-PREC-5"), outputs=("grad_input",),
    trigger_check="grad-train", trigger=(("shape", (2, 2)), ("data", "huge"), ("grad", "normal"), ("seed", 2)),
)

# GH1: nn.BatchNorm.calc_stats centres x on batch_mean.detach() before squaring ("d(var)/d(mean) = 0"): true of the
# first derivative only, so double backward and higher orders in training lose the mean's path through the variance.
# With the detach removed, the GRAD2 checks tinygrad can run all pass.
GH1 = Finding(
    id="GH1", summary="nn.BatchNorm detaches the batch mean inside the variance: first derivatives are right, "
                      "second and higher derivatives in training drop the mean's path through the variance",
    clauses=("BN-GRAD-5", "BN-GRAD-6", "BN-GRAD-7", "BN-PREC-8"),
    trigger_check="grad2-train", trigger=(("shape", (3, 1)), ("grad", "normal"), ("seed", 0)),
)


def _device() -> str:
    return os.environ.get("BNSPEC_TINYGRAD_DEV") or ("CPU" if shutil.which("clang") else "PYTHON")


def _to_tiny(a: np.ndarray | None) -> Any:
    from tinygrad import Tensor, dtypes

    if a is None:
        return None
    if dtype_name(a.dtype) == "bfloat16":  # tinygrad reads no ml_dtypes array: pass the bits
        return Tensor(np.ascontiguousarray(a).view(np.uint16).copy()).bitcast(dtypes.bfloat16)
    return Tensor(np.array(a, copy=True))


def _to_numpy(t: Any) -> np.ndarray | None:
    from tinygrad import dtypes

    if t is None:
        return None
    if t.dtype == dtypes.bfloat16:  # .numpy() would return float32
        return t.bitcast(dtypes.uint16).numpy().view(bfloat16())
    return t.numpy()


class TinygradAdapter:
    """``nn.BatchNorm`` under ``Context(TRAINING=...)``, on the device chosen at instantiation."""

    name = "tinygrad"
    capabilities = Capabilities(
        dtype_rule="promoted",  # profile promoted-dtype: x promoted with the parameters and state
        dtypes=("float16", "float32", "float64"),
        channel_axes=(1,),
        cumulative_average=False,
        stats_dtypes=("float32",),
        notes="tinygrad nn.BatchNorm; training via Context(TRAINING=1); gradients by Tensor.gradient; device set "
              "at instantiation (DEV.value): CPU where clang is on the PATH, else PYTHON (BNSPEC_TINYGRAD_DEV "
              "overrides); no momentum=None, so no cumulative average; no bfloat16 (clang 14 rejects __bf16 on "
              "the CPU device, the PYTHON device fails UOp verification)",
        known_deviations=_DEVIATIONS,
        findings=(G7, GH1),
        derivatives=("vjp-nested", "vjp-of-vjp"),
        max_order=3,
        derivative_gaps=tuple((mode, f"tinygrad has no forward-mode automatic differentiation: Tensor.gradient is "
                                     f"reverse mode only, so {what} cannot be formed") for mode, what in (
            ("jvp", "a JVP"), ("jvp-of-vjp", "forward over reverse"))),
    )

    def __init__(self) -> None:
        from tinygrad.helpers import DEV

        self.device = _device()
        DEV.value = self.device  # process-global: bnspec runs one adapter per process
        self.capabilities = replace(type(self).capabilities, device=self.device.lower())

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def function(self, case: Case) -> Any:
        """The layer as ``f(x, *params) -> y``; ``params`` are weight and bias when the case is affine."""
        from tinygrad import Tensor, dtypes, nn
        from tinygrad.helpers import Context

        def f(x: Any, *params: Any) -> Any:
            bn = nn.BatchNorm(case.channels, eps=case.eps, affine=case.affine, track_running_stats=case.tracked,
                              momentum=case.momentum)
            if case.affine:
                bn.weight, bn.bias = params
            if case.tracked:  # fresh state per call: the update must not leak into the next derivative
                bn.running_mean, bn.running_var = _to_tiny(case.running_mean), _to_tiny(case.running_var)
                bn.num_batches_tracked = Tensor.full((), case.num_batches_tracked, dtype=dtypes.long)
            with Context(TRAINING=int(case.training)):
                return bn(x)

        return f

    def run_derivatives(self, case: Case) -> Outcome:
        """BN-GRAD-5 and -7 by reverse mode only: ``Tensor.gradient`` of a ``Tensor.gradient`` (double
        backward), and ``J t`` as the VJP of a VJP (``d<J^T u, t>/du``), nested ``order`` times."""
        from tinygrad import Tensor

        f = self.function(case)
        params = (case.weight, case.bias) if case.affine else ()
        primals = [_to_tiny(a) for a in (case.x, *params)]
        out = Outcome()
        if case.derivative == "vjp-nested":
            tangents = [case.tangent_x] + ([case.tangent_weight, case.tangent_bias] if case.affine else [])
            tangents = [_to_tiny(t if t is not None else np.zeros_like(p)) for t, p in zip(tangents, (case.x, *params))]

            def transposed(g: Any) -> Any:
                def h(*p: Any) -> Any:
                    y = g(*p)
                    u = Tensor.zeros(*y.shape, dtype=y.dtype).contiguous().realize()  # a buffer, not a folded constant
                    s = sum(((a * t).sum() for a, t in zip(y.gradient(*p, gradient=u), tangents)), Tensor(0.0))
                    return s.gradient(u)[0]

                return h

            g = f
            for _ in range(int(case.order)):
                g = transposed(g)
            out.y_dot = _to_numpy(g(*primals).realize())
        else:  # "vjp-of-vjp"
            cots = [case.cotangent_input] + ([case.cotangent_weight, case.cotangent_bias] if case.affine else [])
            cots = [_to_tiny(c if c is not None else np.zeros_like(p)) for c, p in zip(cots, (case.x, *params))]
            dy = _to_tiny(case.grad_output)
            first = f(*primals).gradient(*primals, gradient=dy)
            second = sum((a * c).sum() for a, c in zip(first, cots)).gradient(*primals, dy)
            out.grad2_input, out.grad2_output = _to_numpy(second[0]), _to_numpy(second[-1])
            if case.affine:
                out.grad2_weight, out.grad2_bias = _to_numpy(second[1]), _to_numpy(second[2])
        return out

    def run(self, case: Case) -> Outcome:
        from tinygrad import Tensor, dtypes, nn
        from tinygrad.helpers import Context

        if case.derivative is not None:  # BN-GRAD-5, -7 (reverse mode only)
            return self.run_derivatives(case)
        want_grad = case.grad_output is not None
        bn = nn.BatchNorm(case.channels, eps=case.eps, affine=case.affine, track_running_stats=case.tracked,
                          momentum=case.momentum)
        if case.affine:
            bn.weight, bn.bias = _to_tiny(case.weight), _to_tiny(case.bias)
        if case.tracked:
            bn.running_mean, bn.running_var = _to_tiny(case.running_mean), _to_tiny(case.running_var)
            bn.num_batches_tracked = Tensor.full((), case.num_batches_tracked, dtype=dtypes.long)  # as the layer makes it
        x = _to_tiny(case.x)
        with Context(TRAINING=int(case.training)):
            y = bn(x)
            out = Outcome(y=_to_numpy(y))
        if case.tracked:
            out.running_mean, out.running_var = _to_numpy(bn.running_mean), _to_numpy(bn.running_var)
            out.num_batches_tracked = int(bn.num_batches_tracked.item())
        if want_grad:
            targets = [x] + ([bn.weight, bn.bias] if case.affine else [])
            # dy in y's dtype, as a loss on y gives it (y is float32 where a half x met float32 parameters)
            grads = y.gradient(*targets, gradient=_to_tiny(case.grad_output).cast(y.dtype))
            out.grad_input = _to_numpy(grads[0])
            if case.affine:
                out.grad_weight, out.grad_bias = _to_numpy(grads[1]), _to_numpy(grads[2])
        return out
