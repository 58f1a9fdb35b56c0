"""What a sweep becomes: growth classes, the summary, the table (terminal and Markdown) and the plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .model import DTYPES, KAPPA_M, LABELS, MARKERS, OUTPUTS, Point, classify, reduction_units, worst_class


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

