"""The PyTorch adapters: a default run conforms (known deviations declared), and what it maps."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bnspec.adapters import load, unavailable_reason  # noqa: E402
from bnspec.conformance import run  # noqa: E402


def test_torch_default_run_conforms():
    report = run(load("torch"), run_seed=0)
    failed = [(r.name, r.message) for r in report.results if r.failed]
    assert not failed, failed
    by = {r.name: r.status for r in report.results}
    assert by["arg-momentum-range"] == "deviation" and by["empty-batch"] == "deviation"
    assert by["train-output"] == "pass" and by["grad-train"] == "pass"


def test_torch_functional_has_no_counter():
    report = run(load("torch-functional"), examples=5, run_seed=0, pattern="RUN")
    by = {r.name: r.status for r in report.results}
    assert by["running-cumulative"] == "unsupported" and by["running-counter"] == "unsupported"
    assert report.ok, [(r.name, r.message) for r in report.results if r.failed]


def test_channel_last_runs_on_channels_last_memory():
    """BN-LAYOUT-2"""
    from bnspec import Case

    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    out = load("torch").run(Case(x=x, axis=-1, grad_output=np.ones_like(x)))
    assert out.y.shape == x.shape and out.grad_input.shape == x.shape


@pytest.mark.gpu
def test_torch_cuda_conforms_where_a_gpu_exists():
    reason = unavailable_reason("torch-cuda")
    if reason:
        pytest.skip(reason)
    report = run(load("torch-cuda"), run_seed=0)
    assert report.ok, [(r.name, r.message) for r in report.results if r.failed]
