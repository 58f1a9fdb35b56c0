"""``bnspec accuracy``: the growth classifier, a small sweep end to end, the report without matplotlib."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from bnspec import accuracy
from bnspec.errors import InvalidArgument

MS = [2**e for e in range(1, 21)]


@pytest.mark.parametrize(("name", "curve"), [
    ("constant", lambda m: 3.0), ("log m", lambda m: 5 * np.log2(m)), ("sqrt m", lambda m: 2 * np.sqrt(m)),
    ("m", lambda m: 0.2 * m),
])
def test_classify_recovers_the_growth_under_noise(name, curve):
    """The classifier names the model a noisy series was made from (factor-of-1.5 noise)."""
    rng = np.random.default_rng(0)
    errors = [curve(m) * float(np.exp(rng.uniform(-0.4, 0.4))) for m in MS]
    assert accuracy.classify(MS, errors) == name


def test_classify_exact_sub_unit_and_too_few_points():
    """All zeros: exact; errors below one unit count as one (a single rounding, no growth); under
    three points at m >= 64: no class."""
    assert accuracy.classify(MS, [0.0] * len(MS)) == "exact"
    rng = np.random.default_rng(1)
    assert accuracy.classify(MS, list(rng.uniform(0.01, 0.9, len(MS)))) == "constant"
    assert accuracy.classify([2, 4, 64, 128], [1.0, 2.0, 3.0, 4.0]) == "-"
    assert accuracy.worst_class(["constant", "m", "log m", "-"]) == "m"


def test_bounds_in_units():
    """BN-QUAL-1: the SHOULD line is 128 + ceil(log2 m) once that is below the MUST line m - 1."""
    assert accuracy.reduction_units(2**16) == (65535.0, 144.0)
    assert accuracy.reduction_units(64) == (63.0, 63.0)


def test_sweep_of_the_reference_and_a_sequential_accumulator(tmp_path):
    """BN-QUAL-1: the reference meets the quality tier at every point; the sequential float32
    accumulator of tests/impls falls short, and its running mean's error grows like m."""
    seq = "tests.impls.quality_impls:SequentialFloat32"
    result = accuracy.sweep(["reference", seq], budget=120, max_log2_m=17, dtypes=("float32",), progress=False)
    assert result["largest_m"] == 2**17
    ref, poor = result["summary"]["reference"], result["summary"][seq]
    assert ref["max_should"] <= 1 and ref["max_must"] <= 1
    assert poor["max_must"] <= 1 < poor["max_should"]
    assert poor["series"]["float32 channel-first"]["outputs"]["running_mean"]["class"] == "m"
    assert {p["layout"] for p in result["points"]} == {"channel-first", "channel-last", "rank-2"}
    assert {p["sweep"] for p in result["points"]} == {"m", "kappa"}
    json.dumps(result)  # JSON-able
    text = accuracy.table(result)
    assert "reference" in text and "meets BN-QUAL-1" in text and "falls short of BN-QUAL-1" in text


def test_command_without_matplotlib_still_writes_table_and_json(tmp_path, monkeypatch, capsys):
    """Without matplotlib the table and JSON come out and the message says what to install."""
    def no_plots(result, out):
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr("bnspec.accuracy.cli.plots", no_plots)
    args = argparse.Namespace(targets=["reference"], out=str(tmp_path / "acc"), budget=30.0, max_log2_m=8,
                              dtype=["float64"], seed=0, timeout=60.0, no_plots=False)
    assert accuracy.command(args) == 0
    err = capsys.readouterr().err
    assert "pip install 'bnspec[plot]'" in err
    data = json.loads((tmp_path / "acc" / "accuracy.json").read_text())
    assert data["summary"]["reference"]["class"] in ("exact", "constant")
    assert "| reference | float64 | channel-first |" in (tmp_path / "acc" / "accuracy.md").read_text()


def test_bad_arguments_name_the_parameter():
    """A non-positive budget or an m beyond 2**24 is refused naming the parameter."""
    with pytest.raises(InvalidArgument, match="budget=0"):
        accuracy.sweep(["reference"], budget=0)
    with pytest.raises(InvalidArgument, match="max_log2_m=30"):
        accuracy.sweep(["reference"], max_log2_m=30)


def test_help_states_the_bounds():
    """--help says how m is bounded (time budget, memory) and what to install for plots."""
    parser = argparse.ArgumentParser(prog="bnspec")
    accuracy.add_parser(parser.add_subparsers(dest="command"))
    text = parser._subparsers._group_actions[0].choices["accuracy"].format_help()  # type: ignore[union-attr]
    assert "--budget" in text and "2^24" in text and "GB" in text


def test_plots_are_written_with_both_bounds_when_matplotlib_is_there(tmp_path):
    """The figures a reader looks at: one per dtype and sweep, PNG, with the MUST and SHOULD lines."""
    pytest.importorskip("matplotlib", reason="the plots need matplotlib (pip install 'bnspec[plot]')")
    result = accuracy.sweep(["reference"], budget=30, max_log2_m=8, dtypes=("float64",), progress=False)
    written = accuracy.plots(result, tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["error-vs-kappa-float64.png", "error-vs-m-float64.png"], names
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_all_expands_to_the_sweepable_registered_adapters_with_reasons_for_the_rest():
    """'all' is every registered adapter usable here that runs single-replica training steps; the rest are
    named with the reason (inference only, synchronized, not usable here); the reference is the judge."""
    from bnspec.accuracy.cli import expand, group_of

    targets, skipped = expand(["all"])
    why = dict(skipped)
    assert "reference" not in targets and "torch" in targets
    if "openvino" in why:
        assert why["openvino"].startswith("inference only")
    if "flax-sync" in why:
        assert why["flax-sync"].startswith("synchronized")
    assert not set(targets) & set(why)
    assert group_of("torch-compile") == "torch" and group_of("keras-torch") == "keras" and group_of("haiku") == "jax"
    assert group_of("tests.impls.quality_impls:SequentialFloat32") == "other"
    assert expand(["torch", "mlx"]) == (["torch", "mlx"], [])


def test_by_group_writes_one_folder_per_group_and_links_the_matrix_to_it(tmp_path):
    """--by-group: DIR/<group>/ holds each group's table, JSON and plots; DIR/accuracy.json merges the
    summaries with each target's group, which the matrix's accuracy-class link follows."""
    from bnspec.conformance.differential import accuracy_classes

    seq = "tests.impls.quality_impls:SequentialFloat32"
    args = argparse.Namespace(targets=["reference", seq], out=str(tmp_path / "accuracy"), budget=30.0, max_log2_m=6,
                              dtype=["float32"], seed=0, timeout=60.0, no_plots=True, by_group=True)
    assert accuracy.command(args) == 0
    merged = json.loads((tmp_path / "accuracy" / "accuracy.json").read_text())
    assert set(merged["groups"]) == {"reference", "other"}
    assert merged["targets"][seq]["group"] == "other"
    assert (tmp_path / "accuracy" / "other" / "accuracy.json").is_file()
    assert "[other](other/accuracy.md)" in (tmp_path / "accuracy" / "accuracy.md").read_text()
    assert accuracy_classes(tmp_path)[seq][1] == "accuracy/other/error-vs-m-float32.png"


def test_no_point_goes_past_max_log2_m_and_a_bad_out_is_refused_before_the_sweep(tmp_path, capsys):
    """--max-log2-m bounds the conditioning sweep too (its m is 4096 or 2^N if smaller); an --out that
    cannot be a folder is refused naming the option before anything runs; nothing loadable, nothing written."""
    result = accuracy.sweep(["reference"], budget=30, max_log2_m=3, dtypes=("float64",), progress=False)
    assert result["m_kappa"] == 8 and max(p["m"] for p in result["points"]) == 8
    (tmp_path / "afile").write_text("")
    base = dict(budget=30.0, max_log2_m=3, dtype=["float64"], seed=0, timeout=60.0, no_plots=True)
    args = argparse.Namespace(targets=["reference"], out=str(tmp_path / "afile" / "acc"), **base)
    assert accuracy.command(args) == 2
    assert "argument --out" in capsys.readouterr().err
    args = argparse.Namespace(targets=["no-such-adapter"], out=str(tmp_path / "none"), **base)
    assert accuracy.command(args) == 2 and not (tmp_path / "none").exists()
