"""Bugs reported against real batch-norm implementations, each rebuilt as a broken NumPy variant.

Each class below takes one public report (issue or pull request), reads what the code got wrong
there, and puts exactly that mistake into the ``NumpyBatchNorm`` machinery of ``numpy_impls.py``:
its docstring says what the report says, with the report's address; its ``bug`` records the
clauses the mistake breaks. ``REPORTED`` lists them; ``tests/test_reported_bugs.py`` runs the suite
on each at its default settings and names the check that must catch it.

The half-precision reports need a correct half-precision baseline to break. ``HalfInFloat32`` is
that baseline: float16 and bfloat16 inputs computed in float32 and rounded once to their dtype
(BN-DTYPE-2), everything else as ``InputPrecision``. The half-precision bugs derive from it and
differ from it only in the step the report names.
"""

from __future__ import annotations

import numpy as np

from bnspec.adapters.contract import Capabilities, Case, Outcome
from bnspec.dtypes import dtype_name, numpy_dtype

from .numpy_impls import Forward, InputPrecision, NumpyBatchNorm, bug

HALF = ("float16", "bfloat16")
HALF_CAPABILITIES = Capabilities(
    dtypes=("float16", "bfloat16", "float32", "float64"), channel_axes=(1, -1), stats_dtypes=("float32",),
    notes="tests/impls: plain NumPy, half precision computed in float32",
)


def _is(a: np.ndarray | None, name: str) -> bool:
    return a is not None and dtype_name(a.dtype) == name


def _round(v: np.ndarray, name: str) -> np.ndarray:
    """``v`` rounded to the spec dtype ``name`` and read back in ``v``'s dtype (inf past its range)."""
    return v.astype(numpy_dtype(name)).astype(v.dtype)


def _all_half(case: Case) -> bool:
    """PyTorch's CPU kernels run "mixed" (float32 statistics) only when every parameter and running
    statistic given is float32; with all of them absent or in x's half dtype, they are not."""
    given = [a for a in (case.weight, case.bias, case.running_mean, case.running_var) if a is not None]
    return not any(_is(a, "float32") for a in given)


class HalfInFloat32(InputPrecision):
    """Correct: float16 and bfloat16 inputs computed in float32 and rounded once to their dtype;
    float32 and float64 in their own precision. The baseline of the half-precision reports."""

    name = "numpy-half-in-float32"
    capabilities = HALF_CAPABILITIES

    def check_dtype(self, x: np.ndarray) -> None:
        if dtype_name(x.dtype) is None:  # ml_dtypes' bfloat16 has kind "V", not "f"
            raise TypeError(f"x.dtype={x.dtype} is not floating-point")

    def work_dtype(self, dtype: np.dtype) -> np.dtype:
        if dtype_name(dtype) in HALF:
            return np.dtype(np.float32)
        return super().work_dtype(dtype)


# =================================================================================================
# Formulas
# =================================================================================================

class JaxStaxSquaredVariance(NumpyBatchNorm):
    """jax-ml/jax#442 (https://github.com/jax-ml/jax/issues/442), fixed by PR #443.

    The report quotes ``jax.experimental.stax.BatchNorm``: ``z = (x - mean) / (var + epsilon)**2``,
    the square where the square root belongs. stax layers are differentiated by JAX, so the
    gradients are those of the formula as written: with ``g(v) = (v + eps)**-2``,
    ``dx = gamma * (g * (dy - mean(dy)) + 2 g'(v) (x - mean) mean(dy (x - mean)))``. stax kept no
    running statistics; here eval applies the same formula to them.
    """

    name = "jax-ml/jax#442"
    bug = bug("normalizes by (var + eps) ** 2 instead of sqrt(var + eps)", ("BN-TRAIN-3",), "TRAIN", "EVAL", "GRAD")

    def inv_std(self, var: np.ndarray, eps: np.floating) -> np.ndarray:
        return 1.0 / (var + eps) ** 2

    def grad_input(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        if not f.batch:
            return super().grad_input(f, dy)
        d = f.x - f.mean
        g_prime = -2.0 / (f.var + f.case.eps) ** 3
        p = dy.mean(axis=f.red, keepdims=True)
        r = (dy * d).mean(axis=f.red, keepdims=True)
        return f.gamma * (f.invstd * (dy - p) + 2.0 * g_prime * d * r)


class KerasDetachedMoments(NumpyBatchNorm):
    """keras-team/keras#19073 (https://github.com/keras-team/keras/issues/19073), fixed by PR #19102.

    The issue: the layer failed on the torch backend (GPU, ``scale=False, center=True``) and, once
    that was patched, still converged slower than on the other backends. PR #19102
    (https://github.com/keras-team/keras/pull/19102) names the cause: ``moments`` detached the mean, and the torch ``batch_normalization`` op passed
    the detached mean and variance to the fused kernel, so no gradient reached x through the batch
    statistics: ``dx = gamma * invstd * dy``, the eval-mode gradient, in training.
    """

    name = "keras-team/keras#19073"
    bug = bug("training dx with the batch mean and variance detached (held constant)", ("BN-GRAD-1",), "GRAD")

    def grad_input(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        return f.gamma * f.invstd * dy


class FlagGemsRsqrtOfInvstd(NumpyBatchNorm):
    """flagos-ai/FlagGems#5222 (https://github.com/flagos-ai/FlagGems/issues/5222), fix in PR #5223.

    ``aten::cudnn_batch_norm`` saves cuDNN's ``resultSaveInvVariance``, already ``1/sqrt(var + eps)``;
    the FlagGems ``cudnn_batch_norm_backward`` kernel read it as a variance and took
    ``inv_std = rsqrt(saved + eps)`` again. Its x_hat, dgamma and dx use that value (dx carries it
    cubed); dbeta does not. PyTorch sends eval-mode backward to its native kernel, so only the
    training backward is wrong.
    """

    name = "flagos-ai/FlagGems#5222"
    bug = bug("training backward takes rsqrt(invstd + eps) of the saved inverse deviation", ("BN-GRAD-1", "BN-GRAD-2"),
              "GRAD")

    def _backward_stats(self, f: Forward) -> tuple[np.ndarray, np.ndarray]:
        inv = 1.0 / np.sqrt(f.invstd + f.case.eps)
        return inv, (f.x - f.mean) * inv

    def grad_input(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        if not f.case.training:
            return super().grad_input(f, dy)
        inv, xhat = self._backward_stats(f)
        m = f.x.size // f.x.shape[f.ax]
        term1 = (dy * xhat).sum(axis=f.red, keepdims=True)
        term2 = dy.sum(axis=f.red, keepdims=True)
        return inv * f.gamma * (dy - (term1 * xhat + term2) / m)

    def grad_weight(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        if not f.case.training:
            return super().grad_weight(f, dy)
        return (dy * self._backward_stats(f)[1]).sum(axis=f.chan)


# =================================================================================================
# Running statistics
# =================================================================================================

class ChainerEpsInRunningVar(NumpyBatchNorm):
    """chainer/chainer PR #4505 (https://github.com/chainer/chainer/pull/4505), "Remove eps from batch
    normalization statistics": without cuDNN, the forward pass did ``var += eps`` before
    ``inv_std = var ** -0.5`` and then fed that same ``var`` to the running update
    (``running_var += (1 - decay) * adjust * var``), so the running variance learned
    ``m/(m-1) (var + eps)``; eval, which adds eps to the running variance, added it a second time.
    """

    name = "chainer/chainer#4505"
    bug = bug("running variance accumulates m/(m-1) * (var + eps); eval adds eps again", ("BN-RUN-2",), "RUN",
              "SCENARIO")

    def update_running(self, case: Case, mean: np.ndarray, var: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        return super().update_running(case, mean, var + var.dtype.type(case.eps), m)


class OnnxscriptMomentumNotComplemented(NumpyBatchNorm):
    """microsoft/onnxscript PR #1289 (https://github.com/microsoft/onnxscript/pull/1289), "Fix and
    simplify native_batch_norm": torchlib passed PyTorch's ``momentum`` (the weight of the batch)
    straight to ONNX ``BatchNormalization``, whose ``momentum`` is the weight of the old value
    (``running = running * momentum + current * (1 - momentum)``). The running statistics it
    returned were ONNX's, whose ``current_var`` is the biased batch variance; the fix passes
    ``1 - momentum`` and recomputes the running variance with m/(m-1).
    """

    name = "microsoft/onnxscript#1289"
    bug = bug("momentum passed uncomplemented: old * a + batch * (1 - a), with ONNX's biased variance",
              ("BN-RUN-1", "BN-RUN-2"), "RUN", "SCENARIO")

    def blend(self, old: np.ndarray, new: np.ndarray, a: float) -> np.ndarray:
        return a * old + (1.0 - a) * new

    def bessel(self, m: int) -> float:
        return 1.0


class TtMetalBiasedRunningVar(NumpyBatchNorm):
    """tenstorrent/tt-metal#55438 (https://github.com/tenstorrent/tt-metal/issues/55438), fixed by
    PR #55440: in training, ``ttnn.batch_norm`` handed ``running_statistics`` the biased batch
    variance (``mean_NHW`` of the squared deviations) with no m/(m-1) correction, so the running
    variance under-estimated the population variance by (m-1)/m at every step.
    """

    name = "tenstorrent/tt-metal#55438"
    bug = bug("running variance fed with the biased batch variance", ("BN-RUN-2",), "RUN", "SCENARIO")

    def bessel(self, m: int) -> float:
        return 1.0


# =================================================================================================
# Layout
# =================================================================================================

class ChainerNhwcChannelFirstAxes(NumpyBatchNorm):
    """chainer/chainer PR #8497 (https://github.com/chainer/chainer/pull/8497), "Fix BatchNormalization
    for NHWC without cudnn": the non-cuDNN path moved gamma's expander to the array's NHWC memory
    layout but reduced over the semantic axes ``(0, 2, 3)``, which on the raw ``(N, H, W, C)`` array
    keep H, not C. The statistics, one per row of H, are then broadcast along C: the batch raises
    where H != C, and is normalized per row where H == C. Eval with running statistics reduces
    nothing and is right.
    """

    name = "chainer/chainer#8497"
    bug = bug("channel-last rank-4 input reduced over axes (0, 2, 3) as if channel-first",
              ("BN-LAYOUT-1", "BN-LAYOUT-2"), "LAYOUT")

    def compute(self, case: Case, ax: int) -> Outcome:
        if case.x.ndim != 4 or ax != 3 or not self.uses_batch_stats(case):
            return super().compute(case, ax)
        # chainer's GeneralBatchNormalizationImpl, with its axis and expander as PR #8497 found them.
        axis, expand = (0, 2, 3), (None, None, None, slice(None))
        x = case.x.astype(np.float64)
        c = x.shape[3]
        m = x.size // c
        gamma = (case.weight.astype(np.float64) if case.weight is not None else np.ones(c))
        beta = (case.bias.astype(np.float64) if case.bias is not None else np.zeros(c))
        mean, var = x.mean(axis=axis), x.var(axis=axis)  # one per row of H
        inv_std = 1.0 / np.sqrt(var + case.eps)
        x_hat = (x - mean[expand]) * inv_std[expand]
        y = gamma[expand] * x_hat + beta[expand]
        rm = rv = n = None
        if case.running_mean is not None:
            a = self.blend_weight(case)
            rm, rv = case.running_mean.astype(np.float64), case.running_var.astype(np.float64)
            if case.training:
                rm *= 1.0 - a
                rm += a * mean
                rv *= 1.0 - a
                rv += a * (m / (m - 1.0)) * var
            rm, rv = rm.astype(case.running_mean.dtype), rv.astype(case.running_var.dtype)
            n = self.next_count(case)
        dx = dw = db = None
        if case.grad_output is not None:
            gy = case.grad_output.astype(np.float64)
            gbeta, ggamma = gy.sum(axis=axis), (gy * x_hat).sum(axis=axis)
            dx = ((gamma * inv_std)[expand] * (gy - (x_hat * ggamma[expand] + gbeta[expand]) / m)).astype(case.x.dtype)
            if case.weight is not None:
                dw = ggamma.astype(case.weight.dtype)
            if case.bias is not None:
                db = gbeta.astype(case.bias.dtype)
        return Outcome(y=y.astype(case.x.dtype), running_mean=rm, running_var=rv, num_batches_tracked=n,
                       grad_input=dx, grad_weight=dw, grad_bias=db)


# =================================================================================================
# Half precision
# =================================================================================================

class TorchHalfBackwardSums(HalfInFloat32):
    """pytorch/pytorch#147303 (https://github.com/pytorch/pytorch/issues/147303), fixed by PR #147353
    ("Use float data type for Half sum in fallback implementation of batchnorm backward on CPU").

    The report: a float16 channels-last BatchNorm2d of shape (16, 3, 224, 224) gives NaN in
    ``x.grad`` on CPU (x channels-last, dy contiguous: the fallback path). The fallback backward
    kept ``sum_dy = sum(dy)`` in a float16 tensor (``at::sum`` of a float16 dy: accumulated wider,
    stored rounded, infinite past 65504, as 802816 values of dy in (0, 1) are) and cast
    ``dotp = sum(dy * (x - mean))`` to float16 where dx uses it. Modelled with the fallback's
    formulas, float16 input only: ``dx = (dy - sum_dy/m - (x - mean) * dotp * invstd**2 / m) * invstd
    * gamma`` and ``dbeta = sum_dy`` from the float16 sums, ``dgamma = dotp * invstd`` from the wide
    one; the per-element arithmetic stays in float32 here. On the report's shape this gives dx = -inf
    where PyTorch printed NaN: non-finite either way, the NaN needing a half-precision step after
    the sums that is not modelled.
    """

    name = "pytorch/pytorch#147303"
    bug = bug("float16 backward keeps the per-channel sums of dy and dy * (x - mean) in float16",
              ("BN-DTYPE-2", "BN-PREC-5"), "DTYPE")

    def _sums(self, f: Forward, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``sum(dy)`` and ``sum(dy * (x - mean))`` per channel, accumulated in float32."""
        return dy.sum(axis=f.red, keepdims=True), (dy * (f.x - f.mean)).sum(axis=f.red, keepdims=True)

    def grad_input(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        if not _is(f.case.x, "float16") or not f.batch:
            return super().grad_input(f, dy)
        sum_dy, dotp = (_round(s, "float16") for s in self._sums(f, dy))
        m = f.x.size // f.x.shape[f.ax]
        proj_scale = dotp * f.invstd * f.invstd / m
        return (dy - sum_dy / m - (f.x - f.mean) * proj_scale) * f.invstd * f.gamma

    def grad_weight(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        if not _is(f.case.x, "float16"):
            return super().grad_weight(f, dy)
        return self.per_channel(self._sums(f, dy)[1] * f.invstd, f)

    def grad_bias(self, f: Forward, dy: np.ndarray) -> np.ndarray:
        if not _is(f.case.x, "float16"):
            return super().grad_bias(f, dy)
        return self.per_channel(_round(self._sums(f, dy)[0], "float16"), f)


class TorchHalfVarSum(HalfInFloat32):
    """pytorch/pytorch PR #126525 (https://github.com/pytorch/pytorch/pull/126525), "Use float data type
    for Half var_sum in batchnorm stats updating on CPU": where a float16 input came with no float32
    parameter or statistic (PyTorch's "not mixed" case), ``batch_norm_cpu_update_stats_template``
    stored the per-channel sum of squared deviations in a float16 tensor (overflowing past 65504);
    ``invstd = 1/sqrt(var_sum/m + eps)`` and the running variance ``var_sum/(m-1)`` came from it.
    Only that rounding is modelled: the float16 mean the same kernel keeps is still there after the
    fix (spec/conventions.md, finding T5), so it is not part of this report.
    """

    name = "pytorch/pytorch#126525"
    bug = bug("float16 statistics keep the sum of squared deviations in float16", ("BN-DTYPE-2", "BN-PREC-3"), "DTYPE")

    def keep_statistics(self, f: Forward) -> None:
        if f.batch and _is(f.case.x, "float16") and _all_half(f.case):
            m = f.x.size // f.x.shape[f.ax]
            var_sum = _round(f.var * f.var.dtype.type(m), "float16")
            f.var = var_sum / f.var.dtype.type(m)
            f.invstd = self.inv_std(f.var, f.var.dtype.type(f.case.eps))


class TorchBfloat16SavedStats(HalfInFloat32):
    """pytorch/pytorch#140112 (https://github.com/pytorch/pytorch/issues/140112), open.

    ``nn.BatchNorm1d(1, affine=False, track_running_stats=False)`` in bfloat16 on x = [1.3047, 0.8789]:
    CPU gives [0.9883, -1.0078], CUDA [1, -1] (exact: +-0.99989). With no float32 parameter or
    statistic the CPU kernel keeps the batch mean and inverse deviation in bfloat16 tensors
    (``save_mean``, ``save_invstd``) and normalizes with them; rounding both to bfloat16
    reproduces the CPU numbers exactly (torch 2.13). The backward reads the same saved tensors, and
    the running mean blends the rounded mean, as the kernel's bfloat16 ``_mean`` does.
    """

    name = "pytorch/pytorch#140112"
    bug = bug("bfloat16 batch mean and inverse deviation rounded to bfloat16 before normalizing",
              ("BN-DTYPE-2", "BN-PREC-3"), "DTYPE")

    def keep_statistics(self, f: Forward) -> None:
        if f.batch and _is(f.case.x, "bfloat16") and _all_half(f.case):
            f.mean, f.invstd = _round(f.mean, "bfloat16"), _round(f.invstd, "bfloat16")


REPORTED: tuple[type[NumpyBatchNorm], ...] = (
    JaxStaxSquaredVariance, KerasDetachedMoments, ChainerEpsInRunningVar, OnnxscriptMomentumNotComplemented,
    ChainerNhwcChannelFirstAxes, TorchHalfBackwardSums, TorchHalfVarSum, TorchBfloat16SavedStats,
    TtMetalBiasedRunningVar, FlagGemsRsqrtOfInvstd,
)

__all__ = ["HALF_CAPABILITIES", "REPORTED", "HalfInFloat32", *(c.__name__ for c in REPORTED)]
