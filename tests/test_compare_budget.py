"""The budget sweep on the Compare page: `sop.budget.find_sweep`, `sweep_reading`, and the page's section."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sop import budget
from sop.zoo import ASSETS, MODELS_DIR

ROOT = Path(__file__).resolve().parent.parent


def row(method: str, cost: float, budget_: int | None = None, **aucs) -> dict:
    label = {"sop": "SOP", "lime": "LIME", "gradcam": "Grad-CAM"}[method]
    base = dict(insertion=0.5, deletion=0.5, grouped_insertion=0.5, grouped_deletion=0.5)
    return dict(method=method, label=label, budget=budget_, forward=cost, backward=0, cost=cost,
                seconds=cost / 100, **(base | aucs))


def hand_report() -> dict:
    """SOP at 9 passes; Grad-CAM cheaper but worse; LIME beats SOP's insertion at 10 passes and its
    deletion only at 101; SOP's grouped insertion is dominated by a cheaper LIME point."""
    rows = [row("sop", 9, insertion=0.80, deletion=0.20, grouped_insertion=0.70, grouped_deletion=0.30),
            row("gradcam", 3, insertion=0.55, deletion=0.56, grouped_insertion=0.72, grouped_deletion=0.56),
            row("lime", 10, 9, insertion=0.85, deletion=0.28, grouped_insertion=0.60, grouped_deletion=0.40),
            row("lime", 101, 100, insertion=0.90, deletion=0.10, grouped_insertion=0.65, grouped_deletion=0.35)]
    return dict(dataset="toy", samples=7, budgets=[9, 100], rows=budget.mark_fronts(rows))


# --------------------------------------------------------------------------- library

def test_sweep_reading_names_frontier_kinds_and_the_cheapest_point_that_beats_sop():
    report = hand_report()
    assert budget.sop_frontier(report) == ["insertion", "deletion", "grouped_deletion"]
    text = budget.sweep_reading(report, "insertion")
    assert text.startswith("SOP (9 passes per explanation) is on the Pareto frontier (by passes) for "
                           "insertion, deletion and grouped deletion AUC")
    assert "it is not for grouped insertion." in text
    assert "The cheapest point that beats SOP's insertion AUC 0.800 is LIME at 9 (10 passes, 0.850)." in text
    assert "N = 7 test inputs" in text
    # lower is better for deletion: LIME at 9 (0.28) does not beat SOP's 0.20, LIME at 100 (0.10) does
    assert "is LIME at 100 (101 passes, 0.100)" in budget.sweep_reading(report, "deletion")
    assert "No point of the sweep beats SOP's grouped deletion AUC 0.300" in budget.sweep_reading(
        report, "grouped_deletion")
    # nothing hard-coded: flip the data and the reading follows
    report["rows"][0]["insertion"] = 0.95
    budget.mark_fronts(report["rows"])
    assert "No point of the sweep beats SOP's insertion AUC 0.950" in budget.sweep_reading(report, "insertion")
    report["rows"] = [r for r in report["rows"] if r["method"] != "sop"]
    assert "no SOP point" in budget.sweep_reading(report)


def test_find_sweep_embedded_and_unknown(tmp_path):
    for name in ("digits", "parts"):
        report = budget.find_sweep(MODELS_DIR / f"{name}_sop.safetensors")
        assert report is not None and report["dataset"] == name
        assert report["sweep_path"] == f"assets/budget/{name}_budget.json"
        assert any(r["method"] == "sop" for r in report["rows"])
    assert budget.find_sweep(tmp_path / "nope_sop.safetensors") is None
    assert budget.find_sweep("") is None
    # a user's checkpoint named like an embedded one does not get the embedded sweep
    own = tmp_path / "parts_sop.safetensors"
    own.write_bytes(b"x")
    assert budget.find_sweep(own, dirs=[ASSETS / "budget"]) is None


def test_find_sweep_reads_a_run_for_that_checkpoint_only(tmp_path):
    ckpt = tmp_path / "models" / "mine_sop.safetensors"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"x")
    runs = tmp_path / "runs"
    runs.mkdir()
    report = hand_report() | {"checkpoint": str(ckpt)}
    (runs / "mine_budget.json").write_text(json.dumps(report))
    found = budget.find_sweep(ckpt, dirs=[runs])
    assert found is not None and found["dataset"] == "toy" and found["sweep_path"] == str(runs / "mine_budget.json")
    other = tmp_path / "elsewhere" / "mine_sop.safetensors"  # same name, another file that exists
    other.parent.mkdir()
    other.write_bytes(b"y")
    assert budget.find_sweep(other, dirs=[runs]) is None
    cmd = budget.sweep_command(other)
    assert cmd.startswith(f"python -m sop evaluate --model {other} --budgets 9,18,36,72,144,288,1000")
    assert cmd.endswith("--out runs/budget")


def test_shipped_sweeps_are_small_and_portable():
    for name in ("digits", "parts"):
        path = ASSETS / "budget" / f"{name}_budget.json"
        assert path.stat().st_size < 200_000
        text = path.read_text()
        assert "/work/" not in text and str(ROOT) not in text  # no machine-specific paths


# --------------------------------------------------------------------------- app

def test_compare_page_shows_the_pareto_chart_and_reading_for_the_embedded_parts_model():
    AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.query_params["model"] = "parts"
    at.query_params["input"] = "test:1"
    at.run()
    at.switch_page("explorer/pages/compare.py")
    at.run()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (section,) = [e for e in at.expander if e.label == "Faithfulness per unit of compute"]
    charts = [c for c in section.get("plotly_chart") if "vs cost" in c.proto.spec]
    assert len(charts) == 1 and "parts: insertion AUC vs cost" in charts[0].proto.spec
    report = budget.find_sweep(MODELS_DIR / "parts_sop.safetensors")
    reading = [m.value for m in section.markdown if m.value.startswith("SOP (")]
    assert reading == [budget.sweep_reading(report, "insertion")] and "SOP" in reading[0]
    # another curve kind redraws the chart and the reading
    at.selectbox(key="budget_curve").set_value("grouped_deletion")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (section,) = [e for e in at.expander if e.label == "Faithfulness per unit of compute"]
    assert any("parts: grouped deletion AUC vs cost" in c.proto.spec for c in section.get("plotly_chart"))
    assert budget.sweep_reading(report, "grouped_deletion") in [m.value for m in section.markdown]
