"""The sweep's model: its grid and units, a measured point, and the growth classes (``classify``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

OUTPUTS = ("y", "running_mean", "running_var", "grad_input", "grad_weight", "grad_bias")
LABELS = {"y": "y", "running_mean": "running mean", "running_var": "running var", "grad_input": "dx",
          "grad_weight": "dgamma", "grad_bias": "dbeta"}
DTYPES = ("float32", "float64", "float16", "bfloat16")
KAPPA_M = {"float16": 1e2, "bfloat16": 1e1, "float32": 1e4, "float64": 1e6}
KAPPA_LIMIT = {"float16": 1e2, "bfloat16": 1e1, "float32": 1e6, "float64": 1e15}
M_KAPPA = 2**12
MAX_LOG2_M = 20
DEFAULT_BUDGET = 100.0  # seconds of sweep; start-up and plots add 30 to 80 s (more on a loaded machine)
CLASSES = ("exact", "constant", "log m", "sqrt m", "m")
MODELS = {"constant": lambda m: np.ones_like(m), "log m": np.log2, "sqrt m": np.sqrt, "m": lambda m: m}
# channel-first (N, C, L), channel-last (N, L, C), and rank 2 (m, C): what BatchNorm1d gets from a dense layer.
LAYOUTS = {"channel-first": 1, "channel-last": -1, "rank-2": 1}
MARKERS = ("o", "s", "^", "v", "D", "x", "+", "*", "<", ">")


@dataclass
class Point:
    """One measured case: what ran, and per output the error in units and the budgets used."""

    target: str
    dtype: str
    layout: str
    sweep: str  # "m" or "kappa"
    m: int
    kappa: float
    units: dict[str, float] = field(default_factory=dict)  # error / (one u per reduction)
    must: dict[str, float] = field(default_factory=dict)  # error / MUST tolerance
    should: dict[str, float] = field(default_factory=dict)  # error / SHOULD tolerance (BN-QUAL-1)
    error: str = ""  # why no result (raised, crashed, timed out)
    seconds: float = 0.0


def reduction_units(m: int) -> tuple[float, float]:
    """The MUST and SHOULD bounds of one reduction of ``m`` terms in units of ``u``."""
    from ..conformance.quality import rounding_errors_q

    return float(max(m - 1, 1)), float(max(rounding_errors_q(m), 1))


def classify(ms: list[int], errors: list[float]) -> str:
    """The growth class of ``errors`` against ``ms``: ``exact`` when every error is 0, else the
    model of ``MODELS`` whose scaled curve fits the errors at m >= 64 best (least squares of the
    logarithms, errors below one unit counted as one); fewer than three such points: ``-``."""
    pairs = [(m, e) for m, e in zip(ms, errors) if math.isfinite(e)]
    if pairs and all(e == 0 for _, e in pairs):
        return "exact"
    # Below one unit an error is a single rounding, not a growth: counted as one unit.
    pts = [(m, max(e, 1.0)) for m, e in pairs if m >= 64]
    if len(pts) < 3:
        return "-"
    m_arr = np.array([p[0] for p in pts], float)
    le = np.log(np.array([p[1] for p in pts]))
    best, best_rss = "-", np.inf
    for name, f in MODELS.items():
        r = le - np.log(f(m_arr))
        rss = float(((r - r.mean()) ** 2).sum())
        if rss < best_rss * 0.98:  # a simpler model wins a near tie
            best, best_rss = name, rss
    return best


def worst_class(classes: list[str]) -> str:
    known = [c for c in classes if c in CLASSES]
    return max(known, key=CLASSES.index) if known else "-"


# -- cases -----------------------------------------------------------------------------------------

def _round(v: float) -> float:
    """Four significant digits (the JSON's precision), infinity kept."""
    return float(f"{v:.4g}") if math.isfinite(v) else v


