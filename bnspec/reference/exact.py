"""Double-double arithmetic on NumPy float64 arrays: the reference's source of exactness.

A double-double is a pair ``(hi, lo)`` of float64 arrays whose unevaluated sum carries about 106
bits. The error-free transformations ``two_sum`` and ``two_prod`` (Knuth; Dekker) return a
rounded result *and* its exact rounding error; everything else is built from them. Every
function is vectorized, so the reference stays fast without giving up exactness.

Range: a product is exact while it and Dekker's split (``2**27 + 1`` times a factor) stay below
float64's largest value, and its low part stays above the subnormal range. For the reference that
means deviations from the mean below about 1e153 (their squares, summed, must fit): float16,
bfloat16 and float32 data always, and float64 spreads up to the 1e150 the suite draws
(``conformance.cases.HUGE``). Beyond that the variance's double-double turns ``inf - inf`` and the
channel's outputs come back NaN, never a wrong finite number, and a comparison leaves them unjudged.
At the other end, squares below about 1e-292 lose their low part and those below 2**-1074 vanish:
the variance then errs by less than the smallest subnormal, negligible beside any eps > 0 (with eps
0 the suite draws no such data). ``tests/test_reference_exact.py`` checks both ends against mpmath.
"""

from __future__ import annotations

import numpy as np

DD = tuple[np.ndarray, np.ndarray]

_SPLIT = 134217729.0  # 2**27 + 1: Dekker's splitter for 53-bit significands


def two_sum(a: np.ndarray, b: np.ndarray) -> DD:
    """``s + e == a + b`` exactly, with ``s = fl(a + b)`` (Knuth's branch-free TwoSum)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def _fast_two_sum(a: np.ndarray, b: np.ndarray) -> DD:
    # Exact when |a| >= |b| (or a == 0): renormalizes a double-double after an operation.
    s = a + b
    return s, b - (s - a)


def _split(a: np.ndarray) -> DD:
    t = _SPLIT * a
    hi = t - (t - a)
    return hi, a - hi


def two_prod(a: np.ndarray, b: np.ndarray) -> DD:
    """``p + e == a * b`` exactly, with ``p = fl(a * b)`` (Dekker's product without FMA)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def add(x: DD, y: DD) -> DD:
    """Double-double sum, accurate to about 2**-104 relative to ``|x| + |y|``."""
    s, e = two_sum(x[0], y[0])
    t, f = two_sum(x[1], y[1])
    e = e + t
    s, e = _fast_two_sum(s, e)
    e = e + f
    return _fast_two_sum(s, e)


def neg(x: DD) -> DD:
    return -x[0], -x[1]


def mul(x: DD, y: DD) -> DD:
    """Double-double product, accurate to about 2**-104 relative."""
    p, e = two_prod(x[0], y[0])
    e = e + (x[0] * y[1] + x[1] * y[0])
    return _fast_two_sum(p, e)


def div(x: DD, y: DD) -> DD:
    """Double-double quotient by one Newton correction of the float64 quotient."""
    q1 = x[0] / y[0]
    r = add(x, neg(mul(y, (q1, np.zeros_like(q1)))))
    q2 = r[0] / y[0]
    return _fast_two_sum(q1, q2)


def sqrt(x: DD) -> DD:
    """Double-double square root of a non-negative double-double (one Newton step)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sqrt(x[0])
        p = two_prod(s, s)
        r = add(x, neg(p))
        corr = np.where(s > 0, r[0] / (2.0 * s), 0.0)
    return _fast_two_sum(s, corr)


def const(v: float | np.ndarray, like: np.ndarray) -> DD:
    """A float64 value as a double-double broadcast to ``like``'s shape."""
    hi = np.broadcast_to(np.asarray(v, dtype=np.float64), like.shape).copy()
    return hi, np.zeros_like(hi)


def sum_last(x: DD) -> DD:
    """Sum a double-double along the last axis by a pairwise tree of double-double additions.

    The error is at most about ``log2(m) * 2**-104 * sum(|x|)``: far below one float64 ulp of any
    sum whose condition number is below 1e15.
    """
    hi, lo = x
    while hi.shape[-1] > 1:
        if hi.shape[-1] % 2:
            pad = [(0, 0)] * (hi.ndim - 1) + [(0, 1)]
            hi, lo = np.pad(hi, pad), np.pad(lo, pad)
        hi, lo = add((hi[..., 0::2], lo[..., 0::2]), (hi[..., 1::2], lo[..., 1::2]))
    if hi.shape[-1] == 0:
        zero = np.zeros(hi.shape[:-1])
        return zero, zero.copy()
    return hi[..., 0], lo[..., 0]


def to_float(x: DD) -> np.ndarray:
    """Round a double-double to the nearest float64 (within one ulp)."""
    return x[0] + x[1]
