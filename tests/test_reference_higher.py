"""The higher-order reference (``bnspec/reference/higher.py``) against a 100-digit mpmath oracle.

The oracle shares no formula with the reference: it evaluates only the spec's forward pass
(BN-TRAIN-1..4, BN-EVAL-1) and first-order backward pass (BN-GRAD-1..3) in mpmath, and takes
every higher derivative by central finite differences at 100 digits (step 1e-20: truncation and
cancellation both stay below 1e-25 relative, far under float64's 1e-16). Every output must lie
within ``MAX_EPS`` float64 epsilons of its natural scale: the magnitude of its formula with every
term taken in absolute value (the per-channel maximum for elementwise outputs), as
``test_reference_exact.py`` measures first-order outputs. Ill-conditioned data included
(|mean| / spread up to 3e16, constant channels, eps 1e-12). The worst error is printed (``-s``).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bnspec.reference import higher as hr

EPS = 2.0**-52
MAX_EPS = 4.0
DPS = 100
STEP = mpmath.mpf("1e-20")
WORST: dict[str, float] = {}


# -- the oracle: forward and first-order backward in mpmath, derivatives by finite differences ---

def _stats(xs, batch, rm, rv):
    m = len(xs)
    if not batch:
        return rm, rv
    mean = mpmath.fsum(xs) / m
    return mean, mpmath.fsum((v - mean) ** 2 for v in xs) / m


def fwd(xs, g, b, eps, batch, rm, rv):
    mu, v = _stats(xs, batch, rm, rv)
    s = mpmath.sqrt(v + eps)
    return [g * (xi - mu) / s + b for xi in xs]


def bwd(xs, g, dys, eps, batch, rm, rv):
    m = len(xs)
    mu, v = _stats(xs, batch, rm, rv)
    s = mpmath.sqrt(v + eps)
    h = [(xi - mu) / s for xi in xs]
    p = mpmath.fsum(dys) / m
    q = mpmath.fsum(d * t for d, t in zip(dys, h)) / m
    dx = [g / s * (d - p - t * q) if batch else g / s * d for d, t in zip(dys, h)]
    return dx, mpmath.fsum(d * t for d, t in zip(dys, h)), mpmath.fsum(dys)


def kth(f, k):
    """The k-th derivative at 0 of a vector-valued ``f(t)`` (list of mpf), central differences."""
    e = STEP
    if k == 1:
        a, b = f(e), f(-e)
        return [(u - v) / (2 * e) for u, v in zip(a, b)]
    if k == 2:
        a, z, b = f(e), f(0), f(-e)
        return [(u - 2 * w + v) / e**2 for u, w, v in zip(a, z, b)]
    a2, a1, b1, b2 = f(2 * e), f(e), f(-e), f(-2 * e)
    return [(p2 - 2 * p1 + 2 * q1 - q2) / (2 * e**3) for p2, p1, q1, q2 in zip(a2, a1, b1, b2)]


def oracle(p, c):
    """The oracle's outputs for channel ``c`` of problem ``p`` (lists of mpf)."""
    mp = mpmath.mpf
    xs = [mp(float(v)) for v in p["x"][c]]
    g = mp(float(p["weight"][c])) if p["weight"] is not None else mp(1)
    b = mp(float(p["bias"][c])) if p["bias"] is not None else mp(0)
    eps, batch = mp(p["eps"]), p["training"] or p["rm"] is None
    rm = mp(float(p["rm"][c])) if p["rm"] is not None else None
    rv = mp(float(p["rv"][c])) if p["rv"] is not None else None
    tx = [mp(float(v)) for v in p["tx"][c]]
    tg = mp(float(p["tw"][c])) if p["weight"] is not None else mp(0)
    tb = mp(float(p["tb"][c])) if p["bias"] is not None else mp(0)
    mode = p["mode"]
    if mode == "jvp":
        return {"y_dot": kth(lambda t: fwd([x + t * d for x, d in zip(xs, tx)], g + t * tg, b + t * tb, eps, batch,
                                           rm, rv), p["order"])}
    dys = [mp(float(v)) for v in p["dy"][c]]
    if mode == "jvp-of-vjp":
        tdy = [mp(float(v)) for v in p["tdy"][c]]

        def grads(t):
            dx, dg, db = bwd([x + t * d for x, d in zip(xs, tx)], g + t * tg,
                             [d + t * e for d, e in zip(dys, tdy)], eps, batch, rm, rv)
            return dx + [dg, db]

        out = kth(grads, 1)
        return {"grad_input_dot": out[:-2], "grad_weight_dot": [out[-2]], "grad_bias_dot": [out[-1]]}
    cx = [mp(float(v)) for v in p["tx"][c]]  # the cotangents reuse the tangent draws
    cg, cb = tg, tb

    def l2(xv, gv, dyv):
        dx, dg, db = bwd(xv, gv, dyv, eps, batch, rm, rv)
        return mpmath.fsum(a * d for a, d in zip(cx, dx)) + cg * dg + cb * db

    def partial(vary):
        return kth(lambda t: [vary(t)], 1)[0]

    m = len(xs)
    d_x = [partial(lambda t, j=j: l2([x + (t if i == j else 0) for i, x in enumerate(xs)], g, dys)) for j in range(m)]
    d_dy = [partial(lambda t, j=j: l2(xs, g, [d + (t if i == j else 0) for i, d in enumerate(dys)])) for j in range(m)]
    d_g = partial(lambda t: l2(xs, g + t, dys))
    return {"grad2_input": d_x, "grad2_weight": [d_g], "grad2_bias": [mp(0)], "grad2_output": d_dy}


# -- natural scales: the reference's formula evaluated on magnitudes ---------------------------

class Mag:
    """A number replaced by its magnitude; every operation adds magnitudes (no cancellation)."""

    def __init__(self, v):
        self.v = np.abs(v)

    def __add__(self, o):
        return Mag(self.v + o.v)

    __sub__ = __add__

    def __mul__(self, o):
        return Mag(self.v * o.v)

    def sum(self):
        return Mag(self.v.sum(axis=-1, keepdims=True))

    def mean(self):
        return Mag(self.v.mean(axis=-1, keepdims=True))

    def scaled(self, num, den=1.0):
        return Mag(self.v * abs(num / den))


def scales(p):
    """Per channel, the natural scale of each output (its formula on magnitudes, max over the channel)."""
    x = p["x"]
    c = x.shape[0]
    batch = p["training"] or p["rm"] is None
    with np.errstate(all="ignore"):
        mean = x.mean(axis=1, keepdims=True) if batch else p["rm"][:, None]
        var = x.var(axis=1, keepdims=True) if batch else p["rv"][:, None]
        r = 1.0 / np.sqrt(var + p["eps"])
        h = (x - mean) * r
        if batch:
            h = h * (1 + 1e-12) + 1e-300  # the magnitudes need no exactness
        tbar = np.abs(p["tx"].mean(axis=1, keepdims=True)) if batch else 0.0
        col = lambda v: None if v is None else Mag(np.asarray(v, float).reshape(c, 1))  # noqa: E731
        pr = hr.Primals(h=Mag(h), r=Mag(r), g=col(p["weight"]) or Mag(np.ones((c, 1))), batch=batch,
                        z=Mag((np.abs(p["tx"]) + tbar) * r))
        pr.tg = col(p["tw"]) if p["weight"] is not None else 0
        pr.tb = col(p["tb"]) if p["bias"] is not None else None
        if p["dy"] is not None:
            pr.dy = Mag(p["dy"])
            pr.tdy = Mag(p["tdy"]) if p["tdy"] is not None else None
        out = {}
        if p["mode"] == "jvp":
            out["y_dot"] = hr.y_derivative(pr, p["order"])
        elif p["mode"] == "jvp-of-vjp":
            out.update(zip(("grad_input_dot", "grad_weight_dot", "grad_bias_dot"), hr.grad_derivative(pr)))
        else:
            pr.cx, pr.cg, pr.cb = Mag(p["tx"]), pr.tg, pr.tb if pr.tb is not None else 0
            out.update(zip(("grad2_input", "grad2_weight", "grad2_bias", "grad2_output"), hr.double_backward(pr)))
    return {k: (np.zeros(c) if hr._is0(v) else np.max(np.broadcast_to(v.v, x.shape), axis=1)) for k, v in out.items()}


# -- the property ---------------------------------------------------------------------------------

@st.composite
def problems(draw):
    c = draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["jvp", "jvp", "jvp-of-vjp", "vjp-of-vjp"]))
    m = draw(st.integers(2, 10 if mode == "vjp-of-vjp" else 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    offset = draw(st.sampled_from([0.0, 1.0, 1e3, 1e6, -1e6, 1e8, 3.0e10]))
    spread = draw(st.sampled_from([1e-3, 1.0, 1e3, 1e-6]))
    x = offset + spread * rng.standard_normal((c, m))
    if draw(st.booleans()):
        x = x.astype(np.float32).astype(np.float64)
    if draw(st.integers(0, 5)) == 0:
        x[0] = x[0, 0]  # a constant channel
    tracked, affine = draw(st.booleans()), draw(st.booleans())
    grads = mode != "jvp"
    return dict(
        x=x, training=draw(st.booleans()), mode=mode, order=draw(st.integers(1, 3)) if mode == "jvp" else 1,
        eps=draw(st.sampled_from([1e-5, 1e-3, 1e-12, 0.1])),
        weight=rng.normal(1, 0.5, c) if affine else None, bias=rng.normal(0, 1, c) if affine else None,
        rm=rng.normal(offset, spread, c) if tracked else None,
        rv=rng.uniform(0.1, 3.0, c) * spread**2 if tracked else None,
        tx=rng.standard_normal((c, m)) * (spread if draw(st.booleans()) else 1.0),
        tw=rng.standard_normal(c), tb=rng.standard_normal(c),
        dy=rng.standard_normal((c, m)) if grads else None,
        tdy=rng.standard_normal((c, m)) if mode == "jvp-of-vjp" else None,
    )


def reference(p):
    kw = dict(axis=0, training=p["training"], eps=p["eps"], weight=p["weight"], bias=p["bias"],
              running_mean=p["rm"], running_var=p["rv"], grad_output=p["dy"])
    if p["mode"] == "vjp-of-vjp":
        return hr.derivatives(p["x"], **kw, cotangent_input=p["tx"], cotangent_weight=p["tw"] if p["weight"] is not None
                              else None, cotangent_bias=p["tb"] if p["bias"] is not None else None)
    return hr.derivatives(p["x"], **kw, tangent_x=p["tx"], tangent_weight=p["tw"], tangent_bias=p["tb"],
                          tangent_grad_output=p["tdy"], order=p["order"])


def _record(name, value):
    WORST[name] = max(WORST.get(name, 0.0), value)
    assert value <= MAX_EPS, f"{name}: error {value:.3g} eps of its natural scale exceeds {MAX_EPS}"


def _check(p):
    got = reference(p)
    sc = scales(p)
    with mpmath.workdps(DPS):
        for c in range(p["x"].shape[0]):
            want = oracle(p, c)
            for name, values in want.items():
                arr = getattr(got, name)
                if arr is None:
                    continue
                row = arr[c] if arr.ndim == 2 else arr[c:c + 1]
                scale = float(sc[name][c])
                for g, w in zip(row, values):
                    err = abs(mpmath.mpf(float(g)) - w)
                    if scale == 0.0:
                        assert err < mpmath.mpf("1e-30"), (name, g, w)
                        continue
                    key = f"{name}{'@' + str(p['order']) if name == 'y_dot' else ''}"
                    _record(key, float(err / scale) / EPS)


@given(problems())
def test_reference_matches_the_oracle(p):
    """BN-GRAD-4, BN-GRAD-5, BN-GRAD-6, BN-GRAD-7: exact to a few float64 ulps of the natural scale, orders 1 to 3."""
    _check(p)


def test_order_three_on_an_ill_conditioned_channel():
    """BN-GRAD-7: the third derivative on a channel at 1e6 with a spread of 1e-3 (naive float64 loses ~9 digits)."""
    rng = np.random.default_rng(11)
    x = 1e6 + 1e-3 * rng.standard_normal((1, 12))
    p = dict(x=x, training=True, mode="jvp", order=3, eps=1e-5, weight=np.array([1.3]), bias=np.array([0.2]),
             rm=None, rv=None, tx=1e-3 * rng.standard_normal((1, 12)), tw=np.array([0.5]), tb=np.array([-1.0]),
             dy=None, tdy=None)
    _check(p)
    naive = x - x.mean()
    assert math.isfinite(float(naive.sum()))


@pytest.fixture(scope="module", autouse=True)
def report_worst():
    yield
    if WORST:
        print("\nhigher-order reference vs oracle, worst error in float64 eps of the natural scale: "
              + ", ".join(f"{k} {v:.3f}" for k, v in sorted(WORST.items())))
