"""The sweep itself: cases over m and conditioning, run on each target in a worker process, every
output measured against the reference in units of one rounding error per reduction."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np

from .model import DEFAULT_BUDGET, DTYPES, KAPPA_LIMIT, KAPPA_M, LAYOUTS, M_KAPPA, MAX_LOG2_M, OUTPUTS, Point, _round
from .report import summarize


def make_case(dtype: str, m: int, kappa: float, seed: int, caps: Any) -> Any:
    """The channel-first case: shape ``(N, 2, m / N)``, channel 0 at mean ``+kappa``, channel 1 at
    ``-kappa``, spread 1; gradients asked where the adapter has them; momentum 1 from zero state, so
    the running statistics are the batch's own."""
    from ..adapters.contract import Case
    from ..dtypes import numpy_dtype

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
            from ..conformance.check import Context, expected
            from ..conformance.quality import quality_tolerances
            from ..conformance.tolerance import tolerances

            if len(self.cache) > 8:  # keep memory bounded: the sweep moves on to larger cases
                self.cache.pop(next(iter(self.cache)))
            from ..adapters.contract import Capabilities

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
    while the time spent so far plus 2.2 times the last size's cost fits. The conditioning sweep
    runs at ``M_KAPPA`` values per channel, or ``2**max_log2_m`` where that is smaller. Raises ``InvalidArgument`` for a
    non-positive budget or a ``max_log2_m`` outside 1..24.
    """
    from ..conformance.isolation import WorkerAdapter, WorkerFault, WorkerLoadError
    from ..dtypes import unavailable
    from ..errors import InvalidArgument

    if not (budget > 0 and math.isfinite(budget)):
        raise InvalidArgument(f"budget={budget!r} must be a positive number of seconds")
    if not 1 <= max_log2_m <= 24:
        raise InvalidArgument(f"max_log2_m={max_log2_m!r} must lie in 1..24 (m up to 2**24 values per channel)")
    start = time.monotonic()
    judge = Judge()
    adapters: dict[str, Any] = {}
    m_kappa = min(M_KAPPA, 2**max_log2_m)  # never past the m the caller allowed
    result: dict[str, Any] = {"version": 1, "seed": seed, "budget": budget, "max_log2_m": max_log2_m,
                              "m_kappa": m_kappa, "kappa_m": KAPPA_M, "targets": {}, "points": []}
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
            one(t, d, lay, "kappa", m_kappa, kappa)
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


