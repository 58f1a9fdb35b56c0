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
        findings=(G7,),
    )

    def __init__(self) -> None:
        from tinygrad.helpers import DEV

        self.device = _device()
        DEV.value = self.device  # process-global: bnspec runs one adapter per process
        self.capabilities = replace(type(self).capabilities, device=self.device.lower())

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def run(self, case: Case) -> Outcome:
        from tinygrad import Tensor, dtypes, nn
        from tinygrad.helpers import Context

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
