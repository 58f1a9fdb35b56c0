"""The matrix's differential view (issue 16): forms of one framework side by side where they disagree."""

from __future__ import annotations

from bnspec.conformance import matrix, matrix_html
from bnspec.conformance.differential import disagreements, family
from bnspec.conformance.results import Column


def _col(target: str, verdict: str, **checks: tuple[str, float]) -> Column:
    return Column(target, report={"summary": {"verdict": verdict, "counts": {}}, "environment": {}},
                  checks={k.replace("_", "-"): {"status": s, "budget": b, "message": "m", "clauses": ["BN-TRAIN-1"]}
                          for k, (s, b) in checks.items()})


EAGER = _col("torch", "conforms", train_output=("pass", 0.3), eval_output=("pass", 0.1), grad_train=("pass", 0.1))
COMPILED = _col("torch-compile", "DOES NOT CONFORM", train_output=("fail", 5.0), eval_output=("pass", 0.2),
                grad_train=("pass", 3.0))
OTHER = _col("tf-fused", "conforms", train_output=("pass", 0.3))


def test_forms_are_grouped_by_framework():
    assert family("torch-compile") == family("torch") == family("torch-functional") == "torch"
    # The registry names each adapter's framework (Entry.family); outside it, the name before the first dash.
    assert family("tf-fused") == "tensorflow" and family("my-thing") == "my"


def test_a_check_that_passes_eagerly_and_fails_compiled_is_shown_and_agreement_is_not():
    [(fam, cols, differ)] = disagreements([EAGER, COMPILED, OTHER])
    assert fam == "torch" and [c.target for c in cols] == ["torch", "torch-compile"]
    # A status that differs, and a budget 30 times larger; eval-output agrees within a factor of 10.
    assert differ == ["train-output", "grad-train"]
    md = matrix.render([EAGER, COMPILED, OTHER], 0, 1, "bnspec matrix")
    assert "### torch: 2 forms, 2 checks where they disagree" in md and "tf: " not in md.split("## Adapters")[0]
    html = matrix_html.render([EAGER, COMPILED, OTHER], 0, 1, "bnspec matrix")
    assert "<h3>torch: 2 forms, 2 checks where they disagree</h3>" in html
    assert html.index("<table class=results>") < html.index("<table class=differential>")


def test_each_adapters_accuracy_class_is_shown_and_linked_to_its_plot(tmp_path):
    """BN-QUAL-1: the matrix reads the sweep committed beside it (OUT/accuracy/accuracy.json)."""
    import json

    from bnspec.conformance.differential import accuracy_classes

    (tmp_path / "accuracy").mkdir()
    (tmp_path / "accuracy" / "accuracy.json").write_text(json.dumps(
        {"summary": {"torch": {"class": "m"}}, "targets": {"torch": {"dtypes": ["float16", "float32"]}}}))
    acc = accuracy_classes(tmp_path)
    assert acc == {"torch": ("m", "accuracy/error-vs-m-float32.png")}
    md = matrix.render([EAGER, OTHER], 0, 1, "bnspec matrix", (), acc)
    assert "| **accuracy class** | BN-QUAL-1 | [m](accuracy/error-vs-m-float32.png) | - |" in md
    assert '<a href="accuracy/error-vs-m-float32.png">m</a>' in matrix_html.render([EAGER], 0, 1, "m", (), acc)
    assert accuracy_classes(tmp_path / "nowhere") == {}
