"""``bnspec accuracy TARGET...``: measured accuracy of adapters, swept over m and conditioning.

For each target (run in a worker process, ``conformance.isolation.WorkerAdapter``, so that a
crashing backend ends one point, not the sweep), each dtype it claims and each layout it takes
(channel-first ``(N, C, L)``, channel-last ``(N, L, C)``, rank 2 ``(m, C)``), the sweep
runs training steps with gradients on two channels of data ``x = mu + z`` (``z`` standard normal,
``|mu|`` the conditioning ``kappa = |mean| / spread``) and measures every output (y, running mean,
running variance, dx, dgamma, dbeta) against the reference:

* over ``m = 2, 4, ..., 2**max_log2_m`` values per channel at the dtype's ``KAPPA_M``;
* over ``kappa = 1, 10, ...`` up to the dtype's limit (``KAPPA_LIMIT``: where ``ulp(kappa)`` is still a
  quarter of the spread) at ``m = M_KAPPA``.

An error is reported in *units*: ``|result - exact|`` over the tolerance of ``spec/precision.md``
with every reduction charged a single ``u`` (``tolerances(..., gamma=u)``): one unit is one
rounding error per reduction, times the output's natural scale. In those units the MUST bound of a
reduction-dominated output is ``m - 1`` (BN-PREC-1) and the SHOULD bound ``q(m) = min(m - 1, 128 +
ceil(log2 m))`` (BN-QUAL-1); the verdict columns use the exact tolerances. The growth of the error
with m is classified by the model (``1``, ``log2 m``, ``sqrt m``, ``m``) that fits the measured
errors for m >= 64 best in the least-squares sense on a log scale.

Outputs: a terminal table, ``accuracy.md``, ``accuracy.json`` and, with matplotlib
(``pip install 'bnspec[plot]'``), ``error-vs-m-<dtype>.png`` and ``error-vs-kappa-<dtype>.png``.
"""

from __future__ import annotations

from .cli import add_parser, command, main
from .model import DEFAULT_BUDGET, KAPPA_LIMIT, KAPPA_M, Point, classify, reduction_units, worst_class
from .report import plots, summarize, table
from .sweep import sweep

__all__ = ["DEFAULT_BUDGET", "KAPPA_LIMIT", "KAPPA_M", "Point", "add_parser", "classify", "command", "main", "plots",
           "reduction_units", "summarize", "sweep", "table", "worst_class"]
