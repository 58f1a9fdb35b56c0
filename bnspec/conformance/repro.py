"""Standalone reproducers: a short Python script that rebuilds a failing case bit for bit.

Small arrays are written as literals (``repr`` of a float64 round-trips exactly); larger ones as
base64 of their bytes, so the script needs nothing but NumPy and bnspec.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import numpy as np

from ..adapters.contract import Case
from ..dtypes import dtype_name

_LITERAL_LIMIT = 64
# Outputs of the higher-order checks, whose exact values come from tolerance_higher.expected_higher.
HIGHER = ("y_dot", "grad_input_dot", "grad_weight_dot", "grad_bias_dot", "grad2_input", "grad2_weight", "grad2_bias",
          "grad2_output")


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
    if case.by_reverse:
        fields.append("    by_reverse=True,")
    for name in ("weight", "bias", "running_mean", "running_var", "grad_output", "tangent_x", "tangent_weight",
                 "tangent_bias", "tangent_grad_output", "cotangent_input", "cotangent_weight", "cotangent_bias"):
        value = getattr(case, name)
        if value is not None:
            fields.append(f"    {name}={array_source(value)},")
    return "case = bnspec.Case(\n" + "\n".join(fields) + "\n)"


def portable_target(target: str) -> str:
    """``target`` as it loads from any directory: a ``path/to/file.py:attr`` made absolute."""
    path, sep, attr = target.rpartition(":")
    if sep and path.endswith(".py") and not os.path.isabs(path):
        return f"{os.path.abspath(path)}:{attr}"
    return target


def reproducer(target: str, subject: Any, output: str | None = None, index: list[int] | None = None,
               refusal: bool = False) -> str:
    """A standalone script that runs ``subject`` on ``target`` and shows what the check flagged.

    ``subject`` is a case, or a scenario (``steps`` training steps then eval, later batches drawn
    from ``seed``): the script then rebuilds every step, chaining the adapter's state and the
    reference's, and prints each step's flagged output. With ``refusal`` (a check that judges an
    exception) it calls the adapter alone, since the reference itself refuses invalid use, and prints
    whether it raised. A file target is written as an absolute path, so the script runs from any
    directory.
    """
    case = getattr(subject, "case", subject)
    if not isinstance(case, Case):
        return ""
    target = portable_target(target)
    head = ["import base64", "import numpy as np", "import bnspec", "from bnspec.dtypes import bfloat16"]
    if refusal:
        return "\n".join([*head, "", case_source(case), "", f"adapter = bnspec.load({target!r})",
                          "try:",
                          "    got = adapter.run(case)",
                          "except Exception as exc:",
                          "    print('raised', type(exc).__name__, exc)",
                          "else:",
                          "    print('returned without raising:', got)"]) + "\n"
    head += ["from bnspec.conformance.check import Context, expected", ""]
    at = f"[{', '.join(map(str, index))}]" if index else ""
    if hasattr(subject, "steps"):
        return "\n".join([*head, f"# {subject.steps} training steps, then eval; later batches from seed {subject.seed}",
                          "from dataclasses import replace", "", case_source(case), "",
                          f"adapter = bnspec.load({target!r})", "ctx = Context(adapter.capabilities)",
                          f"rng = np.random.default_rng({subject.seed})",
                          "got_state = want_state = (case.running_mean, case.running_var, 0)",
                          f"for k in range({subject.steps} + 1):",
                          f"    training = k < {subject.steps}",
                          "    x = case.x if k == 0 else (case.x.astype(np.float64) * rng.uniform(0.5, 2.0)",
                          "                               + rng.normal(0, 1)).astype(case.x.dtype)",
                          "    step = replace(case, x=x, training=training, running_mean=got_state[0],",
                          "                   running_var=got_state[1], num_batches_tracked=got_state[2])",
                          "    want = expected(replace(step, running_mean=want_state[0], running_var=want_state[1],",
                          "                            num_batches_tracked=want_state[2]), ctx)",
                          "    got = adapter.run(step)",
                          "    if training:",
                          "        print(f'step {k + 1}: running_mean', got.running_mean, 'expected', want.running_mean)",
                          "        print(f'step {k + 1}: running_var', got.running_var, 'expected', want.running_var)",
                          "        got_state = (got.running_mean, got.running_var, got.num_batches_tracked)",
                          "        want_state = (want.running_mean, want.running_var, want.num_batches_tracked)",
                          "    else:",
                          f"        print('eval: y{at}', got.y{at}, 'expected', want.y{at})"]) + "\n"
    exact = "want = expected(case, Context(adapter.capabilities))  # exact, float64"
    if output in HIGHER:  # forward mode and double backward (BN-GRAD-4..7)
        head.append("from bnspec.conformance.tolerance_higher import expected_higher")
        exact = "want = expected_higher(case)  # exact, float64"
    lines = [*head, case_source(case), "", f"adapter = bnspec.load({target!r})", exact, "got = adapter.run(case)"]
    if output:
        lines.append(f"print({output + at!r}, getattr(got, {output!r}){at}, 'expected', getattr(want, {output!r}){at})")
    else:
        lines.append("print(got)")
    return "\n".join(lines) + "\n"
