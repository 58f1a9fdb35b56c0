"""The compiled, jitted and exported forms (``bnspec/adapters/compiled.py``, issue 16): each is registered
beside its eager twin, runs one step as its twin maps it, and shows the findings its conventions entry
states (``spec/conventions.md``, section 4, "Compiled, jitted and exported forms"). Default runs are
checked for the forms cheap enough for CI (the compilers' forms take minutes on 2 cores; their default
runs are measured in the issue's note instead).

Keras and JAX take process-wide settings, so those forms run in a subprocess."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from bnspec import Case
from bnspec.adapters import load
from bnspec.adapters.registry import BUILTIN, FAMILIES, TWINS
from tests.adapters.conformance import assert_conforms


def _have(*mods: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in mods)


def needs(*mods: str):  # noqa: ANN201 - a pytest mark
    return pytest.mark.skipif(not _have(*mods), reason=f"needs {', '.join(mods)}")


def test_every_builtin_has_one_family_and_every_form_an_eager_twin_in_it():
    members = [n for names in FAMILIES.values() for n in names]
    assert sorted(members) == sorted(BUILTIN) and len(set(members)) == len(members)
    for form, twin in TWINS.items():
        assert BUILTIN[form].twin == twin and twin in BUILTIN and not BUILTIN[twin].twin
        assert BUILTIN[form].family == BUILTIN[twin].family
        assert BUILTIN[form].requires[:len(BUILTIN[twin].requires)] == BUILTIN[twin].requires or \
            set(BUILTIN[twin].requires) <= set(BUILTIN[form].requires)


def _one_step(x, momentum=0.25, grad=True):
    c = x.shape[1]
    one, zero = np.ones(c, x.dtype), np.zeros(c, x.dtype)
    return Case(x=x, momentum=momentum, weight=one, bias=zero, running_mean=zero, running_var=zero,
                grad_output=np.eye(*x.shape, dtype=x.dtype) if grad else None)


# -- ONNX: the exporter-shaped model -------------------------------------------------------------------

ONNX_FORMS = ["onnxruntime-exported", "onnxruntime-exported-noopt", "onnxruntime-exported-dangling",
              "onnxruntime-exported-dangling-noopt"]


@needs("onnx", "onnxruntime")
@pytest.mark.parametrize("name", ONNX_FORMS)
def test_exported_onnx_forms_conform_with_the_operator_findings(name, tmp_path):
    assert_conforms(name, tmp_path, draw_dependent=frozenset({"dtype-half"}))


@needs("onnx", "onnxruntime")
@pytest.mark.parametrize("name", ONNX_FORMS)
def test_exported_onnx_forms_hold_the_state_in_initializers_and_match_the_one_node_model(name):
    """BN-RUN-1, BN-RUN-2 (biased-running-var), BN-EVAL-1: the exported forms give the plain operator's
    results bit for bit, in training (with the running outputs consumed or dangling) and in eval."""
    from bnspec.adapters.compiled import exported_model

    x = np.random.default_rng(3).standard_normal((6, 3, 2)).astype(np.float32)
    for training in (True, False):
        case = Case(**{**vars(_one_step(x, grad=False)), "training": training})
        mdl = exported_model(case, training, consumed=name.count("dangling") == 0)
        assert [i.name for i in mdl.graph.input] == ["X"] and len(mdl.graph.initializer) == 4
        got, plain = load(name).run(case), load("onnxruntime").run(case)
        for field in ("y", "running_mean", "running_var"):
            assert np.array_equal(getattr(got, field), getattr(plain, field)), (training, field)
