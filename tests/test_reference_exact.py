"""The reference against an arbitrary-precision oracle (mpmath, 60 digits), ill-conditioned data included.

Every output must lie within ``MAX_EPS`` float64 epsilons of the oracle, relative to the output's
natural scale (the magnitudes its formula combines; see ``scales``). The worst error seen is
printed (run with ``-s``) and asserted.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bnspec.reference import step

EPS = 2.0**-52
MAX_EPS = 4.0
mpmath.mp.dps = 60
WORST: dict[str, float] = {}


def oracle(x, *, training, eps, momentum, weight, bias, rm, rv, count, dy):
    """Exact-to-60-digits results for a (C, m) float64 matrix, per the spec's formulas."""
    mp = mpmath.mpf
    C, m = x.shape
    out = {k: [] for k in ("y", "rm", "rv", "dx", "dw", "db", "scale_y", "scale_dx", "scale_rm", "scale_rv")}
    for c in range(C):
        xs = [mp(float(v)) for v in x[c]]
        g = mp(float(weight[c])) if weight is not None else mp(1)
        b = mp(float(bias[c])) if bias is not None else mp(0)
        mean = mpmath.fsum(xs) / m
        var = mpmath.fsum((v - mean) ** 2 for v in xs) / m
        use_batch = training or rm is None
        mu, v = (mean, var) if use_batch else (mp(float(rm[c])), mp(float(rv[c])))
        s = mpmath.sqrt(v + mp(eps))
        xh = [(xi - mu) / s for xi in xs]
        out["y"].append([g * t + b for t in xh])
        out["scale_y"].append(abs(g) * max(abs(t) for t in xh) + abs(b))
        if training and rm is not None:
            a = mp(1) / (count + 1) if momentum is None else mp(momentum)
            m1 = mpmath.fsum(abs(t) for t in xs) / m
            out["rm"].append((1 - a) * mp(float(rm[c])) + a * mean)
            out["rv"].append((1 - a) * mp(float(rv[c])) + a * var * m / (m - 1))
            out["scale_rm"].append((1 - a) * abs(mp(float(rm[c]))) + a * m1)
            out["scale_rv"].append((1 - a) * abs(mp(float(rv[c]))) + a * var * m / (m - 1))
        if dy is not None:
            d = [mp(float(t)) for t in dy[c]]
            p = mpmath.fsum(d) / m
            q = mpmath.fsum(di * t for di, t in zip(d, xh)) / m
            if use_batch:
                dx = [g / s * (di - p - t * q) for di, t in zip(d, xh)]
                sc = abs(g) / s * max(abs(di) + abs(p) + abs(t * q) for di, t in zip(d, xh))
            else:
                dx = [g / s * di for di in d]
                sc = abs(g) / s * max(abs(di) for di in d)
            out["dx"].append(dx)
            out["scale_dx"].append(sc)
            out["dw"].append((mpmath.fsum(di * t for di, t in zip(d, xh)), mpmath.fsum(abs(di * t) for di, t in zip(d, xh))))
            out["db"].append((mpmath.fsum(d), mpmath.fsum(abs(di) for di in d)))
    return out


def _err(got, want, scale):
    scale = float(scale)
    if scale == 0.0:
        return 0.0 if float(want) == float(got) else math.inf
    return float(abs(mpmath.mpf(float(got)) - want) / scale) / EPS


def _record(name, value):
    WORST[name] = max(WORST.get(name, 0.0), value)
    assert value <= MAX_EPS, f"{name}: error {value:.3g} eps of its natural scale exceeds {MAX_EPS}"


@st.composite
def problems(draw):
    c = draw(st.integers(1, 3))
    m = draw(st.integers(2, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    offset = draw(st.sampled_from([0.0, 1.0, 1e3, 1e6, -1e6, 1e8, 3.0e10]))
    spread = draw(st.sampled_from([1e-3, 1.0, 1e3, 1e-6]))
    x = offset + spread * rng.standard_normal((c, m))
    if draw(st.booleans()):
        x = x.astype(np.float32).astype(np.float64)
    if draw(st.integers(0, 5)) == 0:
        x[0] = x[0, 0]  # a constant channel
    training = draw(st.booleans())
    tracked = draw(st.booleans())
    affine = draw(st.booleans())
    return dict(
        x=x, training=training,
        eps=draw(st.sampled_from([1e-5, 1e-3, 1e-12, 0.1])),
        momentum=draw(st.sampled_from([0.1, 0.01, 0.5, None])),
        weight=rng.normal(1, 0.5, c) if affine else None,
        bias=rng.normal(0, 1, c) if affine else None,
        rm=rng.normal(offset, spread, c) if tracked else None,
        rv=rng.uniform(0.1, 3.0, c) * spread**2 if tracked else None,
        count=draw(st.integers(0, 4)),
        dy=rng.standard_normal((c, m)) if draw(st.booleans()) else None,
    )


@given(problems())
def test_reference_matches_the_oracle(p):
    """BN-TRAIN-1..4, BN-RUN-1..3, BN-EVAL-1..2, BN-GRAD-1..3: exact to a few float64 ulps."""
    x = p["x"]
    s = step(x, axis=0, training=p["training"], eps=p["eps"], momentum=p["momentum"], weight=p["weight"],
             bias=p["bias"], running_mean=p["rm"], running_var=p["rv"], num_batches_tracked=p["count"],
             grad_output=p["dy"])
    o = oracle(x, training=p["training"], eps=p["eps"], momentum=p["momentum"], weight=p["weight"],
               bias=p["bias"], rm=p["rm"], rv=p["rv"], count=p["count"], dy=p["dy"])
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            _record("y", _err(s.y[c, i], o["y"][c][i], o["scale_y"][c]))
            if p["dy"] is not None:
                _record("grad_input", _err(s.grad_input[c, i], o["dx"][c][i], o["scale_dx"][c]))
        if o["rm"]:
            _record("running_mean", _err(s.running_mean[c], o["rm"][c], o["scale_rm"][c]))
            _record("running_var", _err(s.running_var[c], o["rv"][c], o["scale_rv"][c]))
        if p["dy"] is not None and p["weight"] is not None:
            _record("grad_weight", _err(s.grad_weight[c], o["dw"][c][0], o["dw"][c][1]))
            _record("grad_bias", _err(s.grad_bias[c], o["db"][c][0], o["db"][c][1]))


def test_ill_conditioned_channel_loses_nothing():
    """A channel at 1e6 with a spread of 1e-3: naive float64 loses about eight digits here."""
    rng = np.random.default_rng(7)
    x = (1e6 + 1e-3 * rng.standard_normal((1, 1000)))
    s = step(x, axis=0)
    o = oracle(x, training=True, eps=1e-5, momentum=0.1, weight=None, bias=None, rm=None, rv=None, count=0, dy=None)
    worst = max(_err(s.y[0, i], o["y"][0][i], o["scale_y"][0]) for i in range(1000))
    naive = (x - x.mean()) / np.sqrt(x.var() + 1e-5)
    naive_worst = max(_err(naive[0, i], o["y"][0][i], o["scale_y"][0]) for i in range(1000))
    _record("y", worst)
    assert naive_worst > 100 * MAX_EPS, "the case should defeat naive float64, or it proves nothing"


@pytest.fixture(scope="module", autouse=True)
def report_worst():
    yield
    if WORST:
        print("\nreference vs oracle, worst error in float64 eps of the natural scale: "
              + ", ".join(f"{k} {v:.3f}" for k, v in sorted(WORST.items())))


TINIEST = 2.0**-1074  # float64's smallest subnormal: results below the normal range round to its multiples


@st.composite
def extreme_problems(draw):
    """The magnitudes the suite draws (``cases.HUGE``, ``cases.TINY``, ``cases.LARGE_CONSTANT``), in float64
    and rounded to float32: spreads whose squares overflow float32 or underflow float64, and constant
    channels far from zero."""
    p = draw(problems())
    c, m = p["x"].shape
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind, lo, hi = draw(st.sampled_from([("huge", 20.0, 150.0), ("huge", 5.0, 17.0), ("tiny", -307.0, -200.0),
                                         ("tiny", -37.0, -30.0), ("constant", 4.0, 100.0)]))
    scale = 10.0 ** rng.uniform(lo, hi, (c, 1))
    x = scale * (rng.normal(0, 1, (c, 1)) + rng.standard_normal((c, m)))
    if kind == "constant":
        x = np.broadcast_to(scale * rng.choice([-1.0, 1.0], (c, 1)), (c, m)).copy()
    if hi <= 17.0 and lo >= -37.0:
        x = x.astype(np.float32).astype(np.float64)
    tracked = p["rm"] is not None
    return {**p, "x": x, "rm": rng.normal(0, 1, c) * scale[:, 0] if tracked else None,
            "rv": rng.uniform(0.1, 3.0, c) * scale[:, 0] ** 2 if tracked else None}


def _err_abs(got, want, scale):
    """Like ``_err``, but an error up to the smallest subnormal is free: an exact value below float64's
    range has no closer float64."""
    diff = abs(mpmath.mpf(float(got)) - want)
    if diff <= TINIEST:
        return 0.0
    return _err(got, want, scale)


@given(extreme_problems())
def test_reference_matches_the_oracle_at_extreme_magnitudes(p):
    """BN-PREC-7: at the suite's extreme magnitudes (spreads up to 1e150, down to 1e-307; constant
    channels up to 1e100) the reference is still exact to a few float64 ulps of each output's natural
    scale, apart from results below float64's range."""
    x = p["x"]
    with np.errstate(under="ignore", over="ignore"):
        rv = None if p["rv"] is None else np.asarray(p["rv"])
        s = step(x, axis=0, training=p["training"], eps=p["eps"], momentum=p["momentum"], weight=p["weight"],
                 bias=p["bias"], running_mean=p["rm"], running_var=rv, num_batches_tracked=p["count"],
                 grad_output=p["dy"])
    o = oracle(x, training=p["training"], eps=p["eps"], momentum=p["momentum"], weight=p["weight"],
               bias=p["bias"], rm=p["rm"], rv=rv, count=p["count"], dy=p["dy"])
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            _record("y", _err_abs(s.y[c, i], o["y"][c][i], o["scale_y"][c]))
            if p["dy"] is not None:
                _record("grad_input", _err_abs(s.grad_input[c, i], o["dx"][c][i], o["scale_dx"][c]))
        if o["rm"]:
            _record("running_mean", _err_abs(s.running_mean[c], o["rm"][c], o["scale_rm"][c]))
            _record("running_var", _err_abs(s.running_var[c], o["rv"][c], o["scale_rv"][c]))
        if p["dy"] is not None and p["weight"] is not None:
            _record("grad_weight", _err_abs(s.grad_weight[c], o["dw"][c][0], o["dw"][c][1]))
            _record("grad_bias", _err_abs(s.grad_bias[c], o["db"][c][0], o["db"][c][1]))


def test_beyond_its_range_the_reference_gives_nan():
    """What the reference does past its range (``exact.py``): a spread of 1e160 squares past float64's
    largest value and the channel's variance, y and dx come back NaN, never a wrong finite number, so
    the comparison leaves them unjudged (``compare.compare`` skips a non-finite exact value). The suite
    draws no float64 spread above 1e150 (``cases.HUGE``), where the reference is exact."""
    x = 1e160 * np.array([[1.0, -1.0, 2.0, 0.5]])
    with np.errstate(all="ignore"):
        s = step(x, axis=0, bias=np.array([0.25]), weight=np.array([1.0]), grad_output=np.ones((1, 4)))
        inside = step(x * 1e-10, axis=0)  # a spread of 1e150
    assert np.isnan(s.var[0]) and np.isnan(s.y).all() and np.isnan(s.grad_input).all()
    assert np.isfinite(inside.var[0]) and np.isfinite(inside.y).all()
