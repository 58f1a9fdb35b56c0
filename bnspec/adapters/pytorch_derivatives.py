"""Derivatives beyond the first (BN-GRAD-4..7) through PyTorch's own transforms, for the ``torch``
and ``torch-functional`` adapters.

``derivatives(case, f, primals, tangents, extra, to_numpy)`` takes the adapter's function
``f(*primals) -> y`` (the module through ``torch.func.functional_call``, or ``F.batch_norm``) and
the case's tensors from ``inputs_of(case, as_tensor)``, and answers the case's mode the way users
compute it:

* ``jvp``: ``torch.func.jvp`` nested ``order`` times (``jacfwd(jacfwd)``, forward over forward);
* ``vjp-nested``: reverse mode only, ``torch.autograd.grad(..., create_graph=True)``; each order
  is the transpose of a VJP (``J t = d<J^T u, t>/du``), nested ``order`` times;
* ``jvp-of-vjp``: ``torch.func.jvp`` of ``torch.func.vjp`` (forward over reverse, ``hessian``);
* ``vjp-of-vjp``: ``torch.autograd.grad`` twice, the first with ``create_graph=True`` (double
  backward, as gradient penalties run it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .contract import DERIVATIVE_MODES, Case, Outcome
from .jax_derivatives import directions_of

MODES = DERIVATIVE_MODES


def derivatives(case: Case, f: Callable[..., Any], primals: list[Any], tangents: list[Any],
                extra: dict[str, Any], to_numpy: Callable[[Any], Any]) -> Outcome:
    """The higher-order outputs of ``case``. ``primals`` is ``[x, (weight), (bias)]`` (the ones the
    case has), ``tangents`` or cotangents the same, ``extra`` holds ``dy`` and ``tdy`` tensors."""
    import torch
    from torch.func import jvp, vjp

    mode, k = case.derivative, int(case.order)
    names = ["x"] + [n for n, v in (("weight", case.weight), ("bias", case.bias)) if v is not None]
    out = Outcome()
    if mode == "jvp":
        g = f
        for _ in range(k):
            g = (lambda inner: lambda *p: jvp(inner, tuple(p), tuple(tangents))[1])(g)
        out.y_dot = to_numpy(g(*primals))
    elif mode == "vjp-nested":
        g = f
        for _ in range(k):
            g = _transposed_vjp(g, tangents)
        leaves = [p.detach().requires_grad_(True) for p in primals]
        out.y_dot = to_numpy(g(*leaves))
    elif mode == "jvp-of-vjp":
        def grads(*p: Any) -> Any:
            return vjp(f, *p[:-1])[1](p[-1])

        dots = jvp(grads, (*primals, extra["dy"]), (*tangents, extra["tdy"]))[1]
        got = dict(zip(names, dots))
        out.grad_input_dot = to_numpy(got["x"])
        out.grad_weight_dot = to_numpy(got.get("weight"))
        out.grad_bias_dot = to_numpy(got.get("bias"))
    elif mode == "vjp-of-vjp":
        leaves = [p.detach().requires_grad_(True) for p in primals]
        dy = extra["dy"].detach().requires_grad_(True)
        first = torch.autograd.grad(f(*leaves), leaves, dy, create_graph=True)
        l2 = sum((g * c).sum() for g, c in zip(first, tangents))
        second = torch.autograd.grad(l2, [*leaves, dy], allow_unused=True)
        got = dict(zip([*names, "dy"], second))
        out.grad2_input, out.grad2_output = to_numpy(got["x"]), to_numpy(got["dy"])
        out.grad2_weight, out.grad2_bias = to_numpy(got.get("weight")), to_numpy(got.get("bias"))
    return out


def inputs_of(case: Case, as_tensor: Callable[[Any], Any]) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """``(primals, tangents, extra)`` of a case as tensors made by ``as_tensor`` (absent directions: zeros);
    the tangents are the case's cotangents for ``vjp-of-vjp``; ``extra`` holds ``dy`` and ``tdy``."""
    primals, tangents, dy, tdy = directions_of(case, as_tensor)
    return primals, tangents, {"dy": dy, "tdy": tdy}


def _transposed_vjp(f: Callable[..., Any], tangents: list[Any]) -> Callable[..., Any]:
    """``p -> J(p) t`` by reverse mode alone, differentiable again: ``d<J^T u, t>/du`` at any u."""
    import torch

    def g(*p: Any) -> Any:
        y = f(*p)
        u = torch.zeros_like(y, requires_grad=True)
        vj = torch.autograd.grad(y, p, u, create_graph=True, materialize_grads=True)
        s = sum((a * t).sum() for a, t in zip(vj, tangents))
        return torch.autograd.grad(s, u, create_graph=True, materialize_grads=True)[0]

    return g
