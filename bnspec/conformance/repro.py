"""Standalone reproducers: a short Python script that rebuilds a failing case bit for bit.

Small arrays are written as literals (``repr`` of a float64 round-trips exactly); larger ones as
base64 of their bytes, so the script needs nothing but NumPy and bnspec.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from ..adapters.contract import Case
from ..dtypes import dtype_name

_LITERAL_LIMIT = 64


def array_source(a: np.ndarray) -> str:
    """Python source that rebuilds ``a`` exactly."""
    name = dtype_name(a.dtype) or a.dtype.name
    dt = "bfloat16()" if name == "bfloat16" else f"np.{name}"
    if a.size <= _LITERAL_LIMIT and name != "bfloat16":
        values = a.astype(np.float64).ravel().tolist() if a.dtype.kind == "f" else a.ravel().tolist()
        body = ", ".join("float('nan')" if v != v else repr(v).replace("inf", "float('inf')") if "inf" in repr(v) else repr(v)
                         for v in values)
        return f"np.array([{body}], dtype={dt}).reshape({a.shape})"
    data = base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()
    return f"np.frombuffer(base64.b64decode({data!r}), dtype={dt}).reshape({a.shape}).copy()"


def case_source(case: Case) -> str:
    """``bnspec.Case(...)`` source for ``case``."""
    fields = [f"    x={array_source(case.x)},"]
    for name in ("axis", "training", "eps", "momentum", "num_batches_tracked"):
        fields.append(f"    {name}={getattr(case, name)!r},")
    if case.shards is not None:  # split over replicas (section 10)
        fields.append(f"    shards={case.shards!r},")
    if case.order != 1:
        fields.append(f"    order={case.order!r},")
    for name in ("weight", "bias", "running_mean", "running_var", "grad_output", "tangent_x", "tangent_weight",
                 "tangent_bias", "tangent_grad_output", "cotangent_input", "cotangent_weight", "cotangent_bias"):
        value = getattr(case, name)
        if value is not None:
            fields.append(f"    {name}={array_source(value)},")
    return "case = bnspec.Case(\n" + "\n".join(fields) + "\n)"


def reproducer(target: str, subject: Any, output: str | None = None, index: list[int] | None = None) -> str:
    """A script that runs ``subject`` (a case, or a scenario's first case) on ``target`` and on the
    reference, and prints the output the check flagged."""
    case = getattr(subject, "case", subject)
    if not isinstance(case, Case):
        return ""
    lines = ["import base64", "import numpy as np", "import bnspec", "from bnspec.dtypes import bfloat16",
             "from bnspec.conformance.check import Context, expected", "", case_source(case), "",
             f"adapter = bnspec.load({target!r})",
             "want = expected(case, Context(adapter.capabilities))  # exact, float64",
             "got = adapter.run(case)"]
    if hasattr(subject, "steps"):
        lines.insert(0, f"# first of {subject.steps} training steps, then eval (later batches from seed {subject.seed})")
    if output:
        at = f"[{', '.join(map(str, index))}]" if index else ""
        lines.append(f"print({output + at!r}, getattr(got, {output!r}){at}, 'expected', getattr(want, {output!r}){at})")
    else:
        lines.append("print(got)")
    return "\n".join(lines) + "\n"
