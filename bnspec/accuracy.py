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

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
    from .conformance.quality import rounding_errors_q

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

def make_case(dtype: str, m: int, kappa: float, seed: int, caps: Any) -> Any:
    """The channel-first case: shape ``(N, 2, m / N)``, channel 0 at mean ``+kappa``, channel 1 at
    ``-kappa``, spread 1; gradients asked where the adapter has them; momentum 1 from zero state, so
    the running statistics are the batch's own."""
    from .adapters.contract import Case
    from .dtypes import numpy_dtype

    rng = np.random.default_rng([seed, m, int(math.log10(kappa) * 10) if kappa > 0 else 0])
    n = min(m, 8)
    dt = numpy_dtype(dtype)
    pdt = dt if (dtype not in ("float16", "bfloat16") or caps.half_params or "float32" not in caps.stats_dtypes) \
        else numpy_dtype("float32")
    loc = np.array([kappa, -kappa])[None, :, None]
    x = (loc + rng.standard_normal((n, 2, m // n))).astype(dt)
    dy = rng.standard_normal(x.shape).astype(dt) if caps.gradients else None
    return Case(x=x, axis=1, training=True, eps=1e-5, momentum=1.0,
                weight=rng.normal(1.0, 0.25, 2).astype(pdt), bias=rng.normal(0.0, 1.0, 2).astype(pdt),
                running_mean=np.zeros(2, pdt), running_var=np.zeros(2, pdt), grad_output=dy)


def rank_of(caps: Any) -> int | None:
    """The rank the channel-first and channel-last layouts are run in: 3, else the adapter's
    smallest rank above it (a trailing axis of length 1 added), else None."""
    for rank in (3, 4, 5):
        if rank in caps.ranks:
            return rank
    return None


def layouts_of(caps: Any) -> list[str]:
    """The layouts of ``LAYOUTS`` the adapter takes: rank 3 (or 4, 5) with its channel axes, and rank 2."""
    rank = rank_of(caps)
    out = [lay for lay in ("channel-first", "channel-last") if LAYOUTS[lay] in caps.channel_axes and rank]
    if 2 in caps.ranks and (1 in caps.channel_axes or -1 in caps.channel_axes):
        out.append("rank-2")
    return out


def in_layout(case: Any, layout: str, rank: int | None = 3) -> Any:
    """The channel-first ``(N, C, L)`` ``case`` in ``layout``: the same values per channel, moved
    (channel-last ``(N, L, C)``), flattened to ``(m, C)`` rows (rank-2), or with trailing axes of
    length 1 up to ``rank``; ``from_layout`` brings y and dx back."""
    extra = max((rank or 3) - 3, 0)

    def move(a: Any) -> Any:
        if layout == "channel-first":
            return a.reshape(a.shape + (1,) * extra)
        moved = np.ascontiguousarray(np.moveaxis(a, 1, -1))
        if layout == "rank-2":
            return moved.reshape(-1, moved.shape[-1])
        return moved.reshape(moved.shape[:-1] + (1,) * extra + moved.shape[-1:])

    if layout == "channel-first" and not extra:
        return case
    dy = None if case.grad_output is None else move(case.grad_output)
    return replace(case, x=move(case.x), axis=-1 if layout == "channel-last" else 1, grad_output=dy)


def from_layout(a: np.ndarray, layout: str, shape: tuple[int, ...]) -> np.ndarray:
    """An output of ``in_layout(case, layout)`` back in the channel-first ``shape``."""
    if layout == "channel-first":
        return a.reshape(shape)
    n, c, rest = shape[0], shape[1], shape[2:]
    return np.moveaxis(a.reshape((n, *rest, c)), -1, 1)


class Judge:
    """The reference answer and the three tolerances of a channel-first case, cached by key so
    that every target and both layouts share them."""

    def __init__(self) -> None:
        self.cache: dict[tuple[Any, ...], tuple[Any, dict, dict, dict]] = {}

    def get(self, key: tuple[Any, ...], case: Any, estimator: str) -> tuple[Any, dict, dict, dict]:
        if key not in self.cache:
            from .conformance.check import Context, expected
            from .conformance.quality import quality_tolerances
            from .conformance.tolerance import tolerances

            if len(self.cache) > 8:  # keep memory bounded: the sweep moves on to larger cases
                self.cache.pop(next(iter(self.cache)))
            from .adapters.contract import Capabilities

            want = expected(case, Context(Capabilities(running_var=estimator)))  # type: ignore[arg-type]
            unit = tolerances(case, want, estimator=estimator, gamma=lambda m, u: u)
            must = tolerances(case, want, estimator=estimator)
            should = quality_tolerances(case, want, estimator=estimator)
            self.cache[key] = (want, unit, must, should)
        return self.cache[key]


def measure(point: Point, outcome: Any, want: Any, unit: dict, must: dict, should: dict, layout: str) -> None:
    for name in OUTPUTS:
        exact = getattr(want, name, None)
        got = getattr(outcome, name, None)
        if exact is None or got is None or name not in unit:
            continue
        got = np.asarray(got)
        if name in ("y", "grad_input") and got.size == exact.size:
            got = from_layout(got, layout, exact.shape)
        if got.shape != exact.shape:
            point.units[name] = point.must[name] = point.should[name] = float("inf")
            continue
        with np.errstate(all="ignore"):
            err = np.abs(got.astype(np.float64) - exact)
            err = np.where(np.isfinite(exact), np.where(np.isfinite(err), err, np.inf), 0.0)
            tiny = np.finfo(np.float64).tiny
            point.units[name] = float((err / np.maximum(unit[name], tiny)).max())
            point.must[name] = float((err / np.maximum(must[name], tiny)).max())
            point.should[name] = float((err / np.maximum(should[name], tiny)).max())


# -- the sweep -------------------------------------------------------------------------------------

class Bar:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, enabled: bool | None = None) -> None:
        self.total, self.done, self.start = max(total, 1), 0, time.monotonic()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def step(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        filled = int(30 * frac)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {100 * frac:3.0f}% "
                         f"{time.monotonic() - self.start:5.0f}s {label[:60]:<60}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def sweep(targets: list[str], *, budget: float = DEFAULT_BUDGET, max_log2_m: int = MAX_LOG2_M,
          dtypes: tuple[str, ...] | None = None, seed: int = 0, timeout: float = 120.0,
          progress: bool | None = None, log: Any = sys.stderr) -> dict[str, Any]:
    """Run the sweep (module docstring) and return its JSON-able result.

    ``budget`` (seconds, for all targets together) bounds the m sweep: a larger m is started only
    while the time spent so far, doubled for the next size, fits. Raises ``InvalidArgument`` for a
    non-positive budget or a ``max_log2_m`` outside 1..24.
    """
    from .conformance.isolation import WorkerAdapter, WorkerFault, WorkerLoadError
    from .dtypes import unavailable
    from .errors import InvalidArgument

    if not (budget > 0 and math.isfinite(budget)):
        raise InvalidArgument(f"budget={budget!r} must be a positive number of seconds")
    if not 1 <= max_log2_m <= 24:
        raise InvalidArgument(f"max_log2_m={max_log2_m!r} must lie in 1..24 (m up to 2**24 values per channel)")
    start = time.monotonic()
    judge = Judge()
    adapters: dict[str, Any] = {}
    result: dict[str, Any] = {"version": 1, "seed": seed, "budget": budget, "max_log2_m": max_log2_m,
                              "m_kappa": M_KAPPA, "kappa_m": KAPPA_M, "targets": {}, "points": []}
    for t in targets:
        try:
            adapters[t] = WorkerAdapter(t, timeout=timeout)
            caps = adapters[t].capabilities
            dts = [d for d in DTYPES if d in caps.dtypes and (dtypes is None or d in dtypes) and unavailable(d) is None]
            lays = layouts_of(caps)
            result["targets"][t] = {"adapter": adapters[t].name, "dtypes": dts, "layouts": lays,
                                    "environment": adapters[t].environment(), "estimator": caps.running_var}
        except (WorkerLoadError, OSError) as exc:
            result["targets"][t] = {"error": str(exc), "dtypes": [], "layouts": []}
            print(f"bnspec accuracy: {t}: {exc}", file=log)
    kappa_plan = [(t, d, lay, 10.0**k) for t, info in result["targets"].items() for d in info["dtypes"]
                  for lay in info["layouts"] for k in range(int(round(math.log10(KAPPA_LIMIT[d]))) + 1)]
    m_plan = [(t, d, lay) for t, info in result["targets"].items() for d in info["dtypes"] for lay in info["layouts"]]
    bar = Bar(len(kappa_plan) + len(m_plan) * max_log2_m, progress)
    points: list[Point] = []

    def one(t: str, dtype: str, layout: str, sweep_name: str, m: int, kappa: float) -> None:
        ad = adapters[t]
        caps = ad.capabilities
        case = make_case(dtype, m, kappa, seed, caps)
        want, unit, must, should = judge.get((dtype, m, kappa, caps.running_var, caps.gradients,
                                              case.weight.dtype.name), case, caps.running_var)
        run_case = in_layout(case, layout, rank_of(caps))
        if layout == "rank-2" and 1 not in caps.channel_axes:
            run_case = replace(run_case, axis=-1)
        p = Point(t, dtype, layout, sweep_name, m, kappa)
        t0 = time.monotonic()
        try:
            outcome = ad.run(run_case)
            measure(p, outcome, want, unit, must, should, layout)
        except WorkerFault as exc:
            p.error = f"{exc.status}: {exc.reason}"
        except Exception as exc:  # noqa: BLE001 - the backend's own error ends this point only
            p.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        p.seconds = time.monotonic() - t0
        points.append(p)
        bar.step(f"{t} {dtype} {layout} {sweep_name} m=2^{int(math.log2(m))} kappa={kappa:g}")

    stopped_at: int | None = None
    try:
        for t, d, lay, kappa in kappa_plan:
            one(t, d, lay, "kappa", M_KAPPA, kappa)
        last_cost = 0.0
        for e in range(1, max_log2_m + 1):
            if e > 1 and (time.monotonic() - start) + 2.2 * last_cost > budget:
                stopped_at = e - 1
                break
            t0 = time.monotonic()
            for t, d, lay in m_plan:
                one(t, d, lay, "m", 2**e, KAPPA_M[d])
            last_cost = time.monotonic() - t0
    except KeyboardInterrupt:
        result["interrupted"] = True
    finally:
        bar.close()
        for ad in adapters.values():
            ad.close()
    result["largest_m"] = 2 ** (stopped_at if stopped_at is not None else max_log2_m)
    result["seconds"] = round(time.monotonic() - start, 1)
    result["points"] = [{**vars(p), **{k: {o: _round(v) for o, v in getattr(p, k).items()}
                                       for k in ("units", "must", "should")}, "seconds": round(p.seconds, 3)}
                        for p in points]
    result["summary"] = summarize(points)
    return result


def _round(v: float) -> float:
    """Four significant digits (the JSON's precision), infinity kept."""
    return float(f"{v:.4g}") if math.isfinite(v) else v


def summarize(points: list[Point]) -> dict[str, Any]:
    """Per target, dtype and layout: each output's growth class and largest errors; per target its
    accuracy class (the worst growth over dtypes, layouts and outputs) and worst budgets."""
    out: dict[str, Any] = {}
    keys = dict.fromkeys((p.target, p.dtype, p.layout) for p in points)
    for t, d, lay in keys:
        ms = sorted((p for p in points if (p.target, p.dtype, p.layout, p.sweep) == (t, d, lay, "m")),
                    key=lambda p: p.m)
        allp = [p for p in points if (p.target, p.dtype, p.layout) == (t, d, lay)]
        row: dict[str, Any] = {}
        for name in OUTPUTS:
            series = [(p.m, p.units[name]) for p in ms if name in p.units]
            if not series and not any(name in p.units for p in allp):
                continue
            row[name] = {
                "class": classify([m for m, _ in series], [e for _, e in series]),
                "units_at_largest_m": series[-1][1] if series else None,
                "max_must": max((p.must[name] for p in allp if name in p.must), default=None),
                "max_should": max((p.should[name] for p in allp if name in p.should), default=None),
            }
        errors = [p.error for p in allp if p.error]
        tgt = out.setdefault(t, {"series": {}, "class": "-", "errors": 0})
        tgt["series"][f"{d} {lay}"] = {"outputs": row, "errors": errors[:3], "error_count": len(errors)}
        tgt["errors"] += len(errors)
    for tgt in out.values():
        classes, must, should = [], 0.0, 0.0
        for s in tgt["series"].values():
            for o in s["outputs"].values():
                classes.append(o["class"])
                must = max(must, o["max_must"] or 0.0)
                should = max(should, o["max_should"] or 0.0)
        tgt["class"] = worst_class(classes)
        tgt["max_must"], tgt["max_should"] = must, should
        tgt["verdict"] = ("beyond a MUST tolerance somewhere (see its conformance report for declared findings)"
                          if must > 1 else "falls short of BN-QUAL-1" if should > 1 else "meets BN-QUAL-1")
    return out


# -- reports ---------------------------------------------------------------------------------------

def table(result: dict[str, Any], markdown: bool = False) -> str:
    """One row per target, dtype and layout: each output's growth class and its error in units at
    the largest m; the worst MUST and SHOULD budgets over the whole sweep."""
    head = ["target", "dtype", "layout", *[LABELS[o] for o in OUTPUTS], "MUST budget", "SHOULD budget"]
    rows = []
    for t, tgt in result["summary"].items():
        for key, s in tgt["series"].items():
            d, lay = key.split(" ", 1)
            cells = [t, d, lay]
            for o in OUTPUTS:
                v = s["outputs"].get(o)
                cells.append("-" if v is None else f"{v['class']} ({_num(v['units_at_largest_m'])})")
            ms = [v["max_must"] for v in s["outputs"].values() if v["max_must"] is not None]
            qs = [v["max_should"] for v in s["outputs"].values() if v["max_should"] is not None]
            cells += [_num(max(ms)) if ms else "-", _num(max(qs)) if qs else "-"]
            if s["error_count"]:
                cells[-1] += f" ({s['error_count']} points without a result)"
            rows.append(cells)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        classes = [f"| {t} | {tgt['class']} | {_num(tgt['max_must'])} | {_num(tgt['max_should'])} | {tgt['verdict']} |"
                   for t, tgt in result["summary"].items()]
        return "\n".join(["| target | accuracy class | worst MUST budget | worst SHOULD budget | verdict |",
                          "|---|---|---|---|---|", *classes, "", *lines]) + "\n"
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), *(fmt.format(*r) for r in rows), ""]
    lines += [f"{t}: accuracy class {tgt['class']}; worst budget {_num(tgt['max_must'])} of the MUST tolerance, "
              f"{_num(tgt['max_should'])} of the SHOULD one: {tgt['verdict']}" for t, tgt in result["summary"].items()]
    return "\n".join(lines) + "\n"


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0:
        return "0"
    if not math.isfinite(v):
        return "inf"
    return f"{v:.3g}"


def plots(result: dict[str, Any], out: Path) -> list[Path]:
    """``error-vs-m-<dtype>.png`` and ``error-vs-kappa-<dtype>.png`` in ``out``: one panel per
    output, one line per target (at each point the worst of its layouts; non-finite results drawn at
    1e12), the MUST and SHOULD bounds of one reduction in black. Raises ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = result["points"]
    targets = list(result["targets"])
    colours = {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(targets)}
    written = []
    dts = [d for d in DTYPES if any(p["dtype"] == d for p in points)]
    for d in dts:
        for sweep_name, xkey in (("m", "m"), ("kappa", "kappa")):
            sel = [p for p in points if p["dtype"] == d and p["sweep"] == sweep_name]
            if not sel:
                continue
            fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), sharex=True)
            for ax, name in zip(axes.ravel(), OUTPUTS):
                drawn = False
                for i, t in enumerate(targets):
                    # One line per target: at each point its worst layout (the table has each layout).
                    worst: dict[float, float] = {}
                    for p in sel:
                        if p["target"] == t and name in p["units"]:
                            v = p["units"][name]
                            worst[p[xkey]] = max(worst.get(p[xkey], 0.0), v if math.isfinite(v) else 1e12)
                    if not worst:
                        continue
                    xs = sorted(worst)
                    ys = [max(worst[x], 1e-2) for x in xs]
                    ax.plot(xs, ys, "-", color=colours[t], marker=MARKERS[i % len(MARKERS)], markersize=5,
                            markerfacecolor="none", linewidth=1.6, alpha=0.85, label=t)
                    drawn = True
                if sweep_name == "m":
                    mm = np.array(sorted({p["m"] for p in sel}), float)
                    ax.plot(mm, [reduction_units(int(m))[0] for m in mm], "k-", linewidth=1, alpha=0.6,
                            label="MUST bound: m - 1")
                    ax.plot(mm, [reduction_units(int(m))[1] for m in mm], "k:", linewidth=1.5,
                            label="SHOULD bound: 128 + log2 m")
                else:
                    m = result["m_kappa"]
                    must_b, should_b = reduction_units(m)
                    ax.axhline(must_b, color="k", linewidth=1, alpha=0.6, label=f"MUST bound: m - 1 (m = {m})")
                    ax.axhline(should_b, color="k", linestyle=":", linewidth=1.5, label="SHOULD bound: 128 + log2 m")
                ax.set_xscale("log", base=2 if sweep_name == "m" else 10)
                ax.set_yscale("log")
                ax.set_title(LABELS[name] + ("" if drawn else " (not measured)"))
                ax.grid(True, which="major", alpha=0.3)
            for ax in axes[1]:
                ax.set_xlabel("m, values per channel" if sweep_name == "m" else "conditioning |mean| / spread")
            for ax in axes[:, 0]:
                ax.set_ylabel("error / (u x natural scale)")
            handles, labels = axes.ravel()[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=9, frameon=False)
            what = (f"|mean| / spread = {KAPPA_M[d]:g}" if sweep_name == "m"
                    else f"m = {result['m_kappa']}")
            fig.suptitle(f"bnspec accuracy, {d}: error against {'m' if sweep_name == 'm' else 'conditioning'} "
                         f"({what}; one unit = one rounding error per reduction)", fontsize=12)
            rows = math.ceil(len(labels) / 4)
            fig.tight_layout(rect=(0, 0.035 * rows + 0.02, 1, 0.96))
            path = out / f"error-vs-{sweep_name}-{d}.png"
            fig.savefig(path, dpi=90)
            plt.close(fig)
            written.append(path)
    return written


# -- the command -----------------------------------------------------------------------------------

def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``accuracy`` to the ``bnspec`` command's subparsers."""
    p = subparsers.add_parser(
        "accuracy", help="measure adapters' accuracy over m and conditioning: table, JSON and plots",
        description=(
            "Sweep m = 2, 4, ..., 2^MAX_LOG2_M values per channel (two channels) and the conditioning "
            "|mean|/spread from 1 to the dtype's limit (float32 1e6, float64 1e15, float16 1e2, bfloat16 1e1), "
            "both layouts, each dtype the adapter claims, and measure y, the running statistics, dx, dgamma and "
            "dbeta against the reference. Errors are in units of u times each output's natural scale (one "
            "rounding error per reduction); the growth with m is classified as constant, log m, sqrt m or m. "
            "Bounds: the m sweep stops before the next size when the time spent, doubled, would pass --budget; "
            "memory grows with m, about 0.5 GB at m = 2^20 (the reference's double-double intermediates), so "
            "m is capped at 2^24. Plots need matplotlib (pip install 'bnspec[plot]'); without it the table and "
            "JSON are written."),
    )
    p.add_argument("targets", nargs="+", metavar="TARGET", help="adapter names (see 'bnspec list'), module:attr or path.py:attr")
    p.add_argument("--out", metavar="DIR", default="accuracy-report",
                   help="folder for accuracy.md, accuracy.json and the plots (default: accuracy-report)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                   help=f"time for the whole sweep, all targets together (default: {DEFAULT_BUDGET:g}): "
                        "bounds the largest m")
    p.add_argument("--max-log2-m", type=int, default=MAX_LOG2_M, metavar="N",
                   help=f"largest m is 2^N, 1..24 (default: {MAX_LOG2_M})")
    p.add_argument("--dtype", action="append", choices=DTYPES, help="only these dtypes (repeatable; default: every one claimed)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data (default: 0)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                   help="limit for one case in the worker process (default: 120)")
    p.add_argument("--no-plots", action="store_true", help="write the table and JSON only")
    return p


def command(args: argparse.Namespace) -> int:
    """Run ``bnspec accuracy``; exit status 0 when a sweep was written, 2 on misuse or when no
    target could be loaded."""
    from .errors import BnspecError

    try:
        result = sweep(list(args.targets), budget=args.budget, max_log2_m=args.max_log2_m,
                       dtypes=tuple(args.dtype) if args.dtype else None, seed=args.seed, timeout=args.timeout)
    except BnspecError as exc:
        print(f"bnspec accuracy: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    md = [f"# Accuracy sweep: {', '.join(args.targets)}", "",
          f"m up to {result['largest_m']} (budget {args.budget:g} s, {result['seconds']:g} s taken), seed {args.seed}. "
          "Cells: growth class of the error with m (its value at the largest m, in units of u times the natural "
          "scale). Budgets: the largest error over the whole sweep as a fraction of the MUST and of the SHOULD "
          "(BN-QUAL-1) tolerance.", "", table(result, markdown=True)]
    written: list[Path] = []
    if not args.no_plots:
        try:
            written = plots(result, out)
        except ImportError:
            print("bnspec accuracy: no plots: matplotlib is not installed (pip install 'bnspec[plot]'); "
                  "the table and JSON are written", file=sys.stderr)
    md += [f"![{p.stem}]({p.name})" for p in written]
    (out / "accuracy.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print(table(result))
    print(f"wrote {out / 'accuracy.md'}, {out / 'accuracy.json'}" + (f" and {len(written)} plots" if written else ""))
    loaded = [t for t, info in result["targets"].items() if "error" not in info]
    return 0 if loaded else 2


def main(argv: list[str] | None = None) -> int:
    """``python -m bnspec.accuracy TARGET...``: the command without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="bnspec")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return command(parser.parse_args(["accuracy", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
