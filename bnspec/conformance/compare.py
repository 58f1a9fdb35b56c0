"""Comparing what a backend produced with the exact result, under the precision model.

A comparison yields a ``Verdict``: whether it holds, the error budget used (worst error as a
fraction of what the precision model allows, over every element compared), and, when it does
not hold, a message in the manner of NumPy's ``assert_array_compare``: the mismatch count, the
worst element with its index, both values, and the largest absolute and relative difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Verdict:
    """The result of one comparison or property; ``budget`` is the fraction of tolerance used."""

    ok: bool = True
    budget: float = 0.0
    message: str = ""
    worst: dict[str, Any] = field(default_factory=dict)
    judged: bool = True  # False: the suite could not judge this case (status unjudged); ``ok`` is then False

    def merge(self, other: Verdict) -> Verdict:
        """The conjunction, described by its worst failure."""
        if not other.ok and (self.ok or other.budget > self.budget):
            return Verdict(False, other.budget, other.message, other.worst)
        return Verdict(self.ok, max(self.budget, other.budget), self.message, self.worst)


def fail(message: str, **worst: Any) -> Verdict:
    return Verdict(ok=False, budget=float("inf"), message=message, worst=worst)


def unjudged(message: str) -> Verdict:
    """The case says nothing about the clause (e.g. a refusal whose valid twin is refused too)."""
    return Verdict(ok=False, budget=0.0, message=message, judged=False)


def as_float64(got: Any, name: str, shape: tuple[int, ...]) -> tuple[np.ndarray | None, str]:
    """``got`` as a float64 array of ``shape``, or None and why not."""
    if got is None:
        return None, f"{name} is missing (None)"
    if not isinstance(got, np.ndarray):
        return None, f"{name} is a {type(got).__name__}, not a NumPy array"
    if got.shape != shape:
        return None, f"{name}.shape = {got.shape}, expected {shape}"
    try:
        return got.astype(np.float64), ""
    except (TypeError, ValueError) as exc:
        return None, f"{name} of dtype {got.dtype} cannot be read as numbers: {exc}"


def compare(name: str, got: Any, want: np.ndarray, tol: np.ndarray, mask: np.ndarray | None = None,
            limit: float = np.inf) -> Verdict:
    """``got`` against the exact ``want``, element by element, within ``tol``.

    Elements whose exact value is not finite, or outside ``mask``, are not compared: the special
    values check (BN-SPECIAL-1) decides those. An exact value beyond ``limit`` (the output dtype's
    largest finite value) conforms when the result has its sign and is at least ``limit`` in
    magnitude (infinity included): BN-PREC-1.
    """
    want = np.asarray(want, dtype=np.float64)
    arr, why = as_float64(got, name, want.shape)
    if arr is None:  # the adapter broke the contract: no declared finding may explain it
        return fail(why, output=name, malformed=True)
    considered = np.isfinite(want)
    if mask is not None:
        considered &= mask
    if not considered.any():
        return Verdict()
    with np.errstate(all="ignore"):
        beyond = considered & (np.abs(want) > limit)
        if beyond.any():
            overflow_ok = (np.sign(arr) == np.sign(want)) & (np.abs(arr) >= limit)
            arr = np.where(beyond & overflow_ok, want, arr)
        err = np.where(considered, np.abs(arr - want), 0.0)
        err = np.where(considered & ~np.isfinite(arr), np.inf, err)
        tol_b = np.broadcast_to(tol, want.shape)
        ratio = np.where(considered, err / np.where(tol_b > 0, tol_b, np.finfo(np.float64).tiny), 0.0)
    budget = float(ratio.max())
    if budget <= 1.0:
        return Verdict(ok=True, budget=budget)
    bad = ratio > 1.0
    idx = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    g, w, t = float(arr[idx]), float(want[idx]), float(tol_b[idx])
    with np.errstate(all="ignore"):
        rel = np.where(considered & (want != 0), err / np.abs(want), 0.0)
    where = f"[{', '.join(map(str, idx))}]" if idx else ""
    gs, ws = distinct(g, w)
    message = (
        f"{name}{where} = {gs}, expected {ws} (error {abs(g - w):.3g}, {budget:.3g}x the "
        f"tolerance {t:.3g}); {int(bad.sum())} of {int(considered.sum())} elements out of tolerance, "
        f"max abs diff {float(err.max()):.3g}, max rel diff {float(rel.max()):.3g}"
    )
    worst = {"output": name, "index": [int(i) for i in idx], "got": g, "expected": w, "tolerance": t,
             "mismatched": int(bad.sum()), "compared": int(considered.sum())}
    return Verdict(ok=False, budget=budget, message=message, worst=worst)


def distinct(got: float, want: float) -> tuple[str, str]:
    """Both numbers with 9 significant digits, or as many more (up to 17, which round-trips any float64)
    as it takes for the two texts to differ."""
    for digits in range(9, 18):
        a, b = f"{got:.{digits}g}", f"{want:.{digits}g}"
        if a != b:
            break
    return a, b


def compare_outputs(outcome: Any, want: dict[str, Any], tols: dict[str, np.ndarray],
                    names: tuple[str, ...], masks: dict[str, np.ndarray] | None = None,
                    limits: dict[str, float] | None = None) -> Verdict:
    """``compare`` for each output in ``names``, merged."""
    verdict = Verdict()
    for name in names:
        mask = masks.get(name) if masks else None
        limit = limits.get(name, np.inf) if limits else np.inf
        verdict = verdict.merge(compare(name, getattr(outcome, name, None), want[name], tols[name], mask, limit))
    return verdict
