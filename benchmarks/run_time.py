"""How long a default ``bnspec run`` takes, and where the time goes.

    python benchmarks/run_time.py [TARGET ...] [--examples N] [--seed N] [--repeat N]

For each target (default: reference and torch) it runs the whole suite as ``bnspec run`` does,
timing separately the adapter's ``run`` calls (the backend under test), the judge (the exact
reference and the precision model) and the rest (hypothesis' generation and shrinking, case
building). It prints the wall time against the targets (``bnspec run torch`` <= 30 s,
``bnspec run reference`` <= 30 s on a 2-core machine) and each target's ratio to the reference,
measured in the same process. Not a test: run it on demand.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

from bnspec.adapters import load
from bnspec.conformance import DEFAULT_EXAMPLES, check, run

TARGETS_S = {"reference": 30.0, "torch": 30.0}  # issues 13-17: a default run of torch within 30 s on 2 cores
# issue 16: each compiled, jitted or exported form within 90 s; issue 18: each of the four added frameworks within 60 s
TARGETS_S.update({form: 90.0 for form in (
    "torch-compile", "torch-onnx", "onnxruntime-exported", "onnxruntime-exported-noopt", "onnxruntime-exported-dangling",
    "onnxruntime-exported-dangling-noopt", "tf-fused-xla", "tf-nn-xla", "flax-linen-jit", "keras-jax-jit",
    "keras-tensorflow-xla", "mlx-compile", "tinygrad-jit")})
TARGETS_S.update({name: 60.0 for name in ("paddle", "haiku", "equinox", "equinox-ema", "openvino")})


class Timed:
    """Wraps an adapter, adding up the seconds spent in its ``run``."""

    def __init__(self, adapter):
        self.inner, self.name, self.capabilities, self.seconds, self.calls = adapter, adapter.name, adapter.capabilities, 0.0, 0

    def run(self, case):
        t = time.perf_counter()
        try:
            return self.inner.run(case)
        finally:
            self.seconds += time.perf_counter() - t
            self.calls += 1


def measure(target: str, examples: int, seed: int) -> dict:
    judge = {"s": 0.0}
    original = check.expected

    def timed_expected(case, ctx):
        t = time.perf_counter()
        try:
            return original(case, ctx)
        finally:
            judge["s"] += time.perf_counter() - t

    check.expected = timed_expected
    adapter = Timed(load(target))
    t0 = time.perf_counter()
    try:
        report = run(adapter, target=target, examples=examples, run_seed=seed)
    finally:
        check.expected = original
    wall = time.perf_counter() - t0
    per_check = sorted(((r.seconds, r.name) for r in report.results), reverse=True)
    return {"wall": wall, "adapter": adapter.seconds, "calls": adapter.calls, "judge": judge["s"],
            "per_check": per_check, "ok": report.ok}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("targets", nargs="*", default=["reference", "torch"])
    p.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    print(f"cores: {os.cpu_count()}; examples per check: {args.examples}; seed {args.seed}")
    results = defaultdict(list)
    for _ in range(args.repeat):
        for target in args.targets:
            results[target].append(measure(target, args.examples, args.seed))
    base = min(r["wall"] for r in results["reference"]) if "reference" in results else None
    for target, runs in results.items():
        best = min(runs, key=lambda r: r["wall"])
        rest = best["wall"] - best["adapter"] - best["judge"]
        line = (f"{target:<18} wall {best['wall']:6.1f} s  adapter {best['adapter']:5.1f} s ({best['calls']} calls)"
                f"  judge {best['judge']:5.1f} s  other {rest:5.1f} s")
        if target in TARGETS_S:
            line += f"  target {TARGETS_S[target]:.0f} s: {best['wall'] / TARGETS_S[target]:.2f} of it"
        if base:
            line += f"  x{best['wall'] / base:.2f} the reference"
        print(line + ("" if best["ok"] else "  (does not conform)"))
        print("    slowest checks: " + ", ".join(f"{n} {s:.1f}s" for s, n in best["per_check"][:5]))


if __name__ == "__main__":
    main()
