"""Finding adapters: names, module:attr, file paths, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import bnspec
from bnspec.adapters import available, load
from bnspec.errors import AdapterNotFound

HERE = Path(__file__).resolve().parent


def test_importing_bnspec_imports_no_framework():
    import subprocess
    import sys

    code = "import sys, bnspec, bnspec.conformance, bnspec.adapters; print(sorted(m for m in ('torch','jax','tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_load_by_name_module_attr_and_path():
    assert load("reference").name == "reference"
    assert load("tests.adapters.variants:MinimalReference").name == "minimal"
    assert load("tests.adapters.variants:biased").name == "biased-reference"
    assert load(f"{HERE / 'adapters' / 'variants.py'}:StaleDeviation").name == "stale"


def test_unknown_name_lists_what_is_available():
    with pytest.raises(AdapterNotFound) as info:
        load("nonesuch")
    assert "reference" in str(info.value) and isinstance(info.value, LookupError)
    assert set(available()) >= {"reference", "torch", "torch-cuda"}


@pytest.mark.parametrize("target,match", [
    ("tests.adapters.variants:Nope", "has no attribute 'Nope'"),
    ("no_such_module_xyz:Thing", "cannot import module"),
    ("does/not/exist.py:A", "no such file"),
    ("tests.adapters.variants:replace", "not an adapter"),
])
def test_bad_targets_say_why(target, match):
    with pytest.raises(AdapterNotFound, match=match):
        load(target)


def test_case_defaults_follow_the_contract():
    import numpy as np

    c = bnspec.Case(x=np.zeros((2, 3)))
    assert (c.axis, c.training, c.eps, c.momentum, c.num_batches_tracked) == (1, True, 1e-5, 0.1, 0)
    assert c.weight is None and c.running_mean is None and c.grad_output is None
    caps = bnspec.Capabilities()
    assert caps.dtypes == ("float32", "float64") and caps.channel_axes == (1,) and caps.running_var == "unbiased"
