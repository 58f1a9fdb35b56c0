"""MLX under ``mx.compile`` and tinygrad under ``TinyJit``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..contract import Case, Finding, Outcome
from ..mlx import MlxAdapter, _to_mlx
from ..mlx import _to_numpy as _mlx_numpy
from ..tinygrad import G7, TinygradAdapter, _to_tiny
from ..tinygrad import _to_numpy as _tiny_numpy
from ._common import _first_order_only

# -- MLX: mx.compile -----------------------------------------------------------------------------------

class MlxCompileAdapter(MlxAdapter):
    """``mlx.nn.BatchNorm`` (and its ``mx.vjp``) inside ``mx.compile``: a pure step taking x, the
    parameters and the running statistics as arrays and returning y, the new statistics and the
    gradients. One compiled step per configuration; mx.compile retraces per shape and dtype."""

    name = "mlx-compile"
    capabilities = _first_order_only(MlxAdapter.capabilities, "mx.compile of a pure step around nn.BatchNorm and its "
                           "mx.vjp; " + MlxAdapter.capabilities.notes)

    def __init__(self) -> None:
        self._fns: dict[tuple[Any, ...], Any] = {}

    def _fn(self, case: Case) -> Any:
        import mlx.core as mx
        import mlx.nn as nn

        key = (case.eps, case.momentum, case.affine, case.tracked, case.training, case.grad_output is not None)
        if key not in self._fns:
            eps, momentum, affine, tracked, training, grad = key

            def step(*arrays: Any) -> list[Any]:
                x, rest = arrays[0], list(arrays[1:])
                bn = nn.BatchNorm(x.shape[-1], eps=eps, momentum=momentum, affine=affine, track_running_stats=tracked)
                if tracked:
                    bn.running_mean, bn.running_var = rest.pop(0), rest.pop(0)
                bn.train(training)
                params = [rest.pop(0), rest.pop(0)] if affine else []

                def forward(x: Any, *wb: Any) -> Any:
                    if wb:
                        bn.weight, bn.bias = wb
                    return bn(x)

                if grad:
                    (y,), grads = mx.vjp(forward, [x, *params], [rest.pop(0)])
                else:
                    y, grads = forward(x, *params), []
                stats = [bn.running_mean, bn.running_var] if tracked else []
                return [y, *stats, *grads]

            self._fns[key] = mx.compile(step)
        return self._fns[key]

    def run(self, case: Case) -> Outcome:
        arrays = [case.x] + ([case.running_mean, case.running_var] if case.tracked else [])
        arrays += [case.weight, case.bias] if case.affine else []
        arrays += [case.grad_output] if case.grad_output is not None else []
        res = [_mlx_numpy(r) for r in self._fn(case)(*[_to_mlx(a) for a in arrays])]
        out = Outcome(y=res.pop(0))
        if case.tracked:
            out.running_mean, out.running_var = res.pop(0), res.pop(0)
        if case.grad_output is not None:
            out.grad_input = res.pop(0)
            if case.affine:
                out.grad_weight, out.grad_bias = res.pop(0), res.pop(0)
        return out


# -- tinygrad: TinyJit ----------------------------------------------------------------------------------

GJ1 = Finding(id="GJ1", summary="TinyJit replays return the running statistics (and counter) of the capture call: "
                               "the layer's assign() to its state tensors, and state returned as it came in (eval), "
                               "are not replayed with the new inputs, while y is", clauses=("BN-RUN-1", "BN-RUN-2", "BN-RUN-4"),
              outputs=("running_mean", "running_var", "num_batches_tracked"))


class TinygradJitAdapter(TinygradAdapter):
    """``nn.BatchNorm`` (and its gradients) inside a ``TinyJit`` step, judged on a replay.

    TinyJit runs a step normally on its first call, captures the kernels on the second and replays
    them from the third on, with the inputs' buffers swapped in; so each case runs three times on
    fresh copies of its arrays, and the third (replayed) result is reported. One jit per
    configuration, shape and dtype (a jit's shapes are fixed), kept for the process.
    """

    name = "tinygrad-jit"
    capabilities = _first_order_only(TinygradAdapter.capabilities, findings=(GJ1, G7), known_deviations=(
        TinygradAdapter.capabilities.known_deviations + tuple((check, GJ1.describe()) for check in (
            "running-momentum", "running-counter", "eval-no-update", "scenario-multistep", "special-constant",
            "dtype-half", "dtype-half-params", "layout-channel-last", "arg-non-floating", "io-unmutated"))), notes="TinyJit of a step around nn.BatchNorm and "
                           "Tensor.gradient, reported on the third (replayed) call; " + TinygradAdapter.capabilities.notes)

    def __init__(self) -> None:
        super().__init__()
        self.capabilities = replace(self.capabilities, notes=type(self).capabilities.notes)
        self._fns: dict[tuple[Any, ...], Any] = {}

    def _fn(self, case: Case) -> Any:
        from tinygrad import TinyJit, nn
        from tinygrad.helpers import Context

        arrays = (case.x, case.weight, case.bias, case.running_mean, case.running_var, case.grad_output)
        key = (tuple((a.shape, a.dtype.str) if a is not None else None for a in arrays), case.eps, case.momentum,
               case.affine, case.tracked, case.training)
        if key not in self._fns:
            eps, momentum, affine, tracked, training = key[1:]
            grad = case.grad_output is not None

            def step(x: Any, *rest: Any) -> list[Any]:
                state = list(rest)
                bn = nn.BatchNorm(x.shape[1], eps=eps, affine=affine, track_running_stats=tracked, momentum=momentum)
                if affine:
                    bn.weight, bn.bias = state.pop(0), state.pop(0)
                if tracked:
                    bn.running_mean, bn.running_var, bn.num_batches_tracked = state.pop(0), state.pop(0), state.pop(0)
                with Context(TRAINING=int(training)):
                    y = bn(x)
                outs = [y] + ([bn.running_mean, bn.running_var, bn.num_batches_tracked] if tracked else [])
                if grad:
                    targets = [x] + ([bn.weight, bn.bias] if affine else [])
                    outs += y.gradient(*targets, gradient=state.pop(0).cast(y.dtype))
                return [t.realize() for t in outs]

            self._fns[key] = TinyJit(step)
        return self._fns[key]

    def _inputs(self, case: Case) -> list[Any]:
        from tinygrad import Tensor, dtypes

        args = [_to_tiny(case.x)]
        if case.affine:
            args += [_to_tiny(case.weight), _to_tiny(case.bias)]
        if case.tracked:
            args += [_to_tiny(case.running_mean), _to_tiny(case.running_var),
                     Tensor.full((), case.num_batches_tracked, dtype=dtypes.long)]
        if case.grad_output is not None:
            args.append(_to_tiny(case.grad_output))
        return [t.realize() for t in args]

    def run(self, case: Case) -> Outcome:
        from dataclasses import replace as with_

        step = self._fn(case)
        warm = with_(case, x=-case.x) if case.x.size else case  # other data: a replay must not return the capture's
        for c in (warm, warm, case):  # run, capture, replay
            res = [_tiny_numpy(t) for t in step(*self._inputs(c))]
        out = Outcome(y=res.pop(0))
        if case.tracked:
            out.running_mean, out.running_var = res.pop(0), res.pop(0)
            out.num_batches_tracked = int(res.pop(0))
        if case.grad_output is not None:
            out.grad_input = res.pop(0)
            if case.affine:
                out.grad_weight, out.grad_bias = res.pop(0), res.pop(0)
        return out


