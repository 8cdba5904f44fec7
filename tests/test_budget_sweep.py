"""The budget sweep (`sop.budget`, `python -m sop evaluate --budgets`) on the embedded digits models."""
import csv
import json
import math
from pathlib import Path

import pytest
import torch

from sop.budget import (CURVES, budget_sweep, pareto_chart, pareto_front, pareto_grid, pass_count, sop_frontier,
                        sweep_plan)
from sop.checkpoint import load_pair
from sop.cli import main
from sop.data import load_split
from sop.evaluation import EvalSettings, sample_indices
from sop.explainers import explain, model_grid
from sop.methods import get_method, list_methods

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "assets" / "models" / "digits_sop.safetensors"
BUDGETS = (9, 18)


@pytest.fixture(scope="module")
def digits():
    model, backbone, _ = load_pair(DIGITS, None)
    split = load_split(model.config.dataset, "test", seed=int(model.config.training.get("seed", 0)))
    return model, backbone, split


@pytest.fixture(scope="module")
def sweep(digits):
    model, backbone, split = digits
    return budget_sweep(model, backbone, split, BUDGETS, EvalSettings(samples=2, steps=4))


def test_one_row_per_sampling_method_and_budget_ig_rows_and_one_row_per_fixed_method(sweep):
    keys = [(r["method"], r["budget"]) for r in sweep["rows"]]
    assert len(keys) == len(set(keys))
    sampling = list_methods(samples=True)
    assert set(sampling) == {"lime", "kernelshap", "rise"}
    for m in sampling:
        assert sorted(b for k, b in keys if k == m) == list(BUDGETS)
    assert sorted(b for k, b in keys if k == "ig") == list(BUDGETS)  # IG: the budgets as step counts
    for m in ("occlusion", "gradcam", "sop"):
        assert [b for k, b in keys if k == m] == [None]
    assert len(sweep["per_input"]) == 2 * len(keys)
    for r in sweep["rows"]:
        for k in CURVES:
            assert 0.0 <= r[k] <= 1.0
        assert r["seconds"] > 0
    assert sweep["count_rule"]["sampling"] and sweep["count_rule"]["sop"]


def test_forward_pass_counts_follow_the_rule(sweep, digits):
    model = digits[0]
    gh, gw = model_grid(model)
    rows = {(r["method"], r["budget"]): r for r in sweep["rows"]}
    for m in ("lime", "kernelshap", "rise"):
        for b in BUDGETS:
            assert (rows[m, b]["forward"], rows[m, b]["backward"]) == (b + 1, 0)
    for b in BUDGETS:
        assert (rows["ig", b]["forward"], rows["ig", b]["backward"], rows["ig", b]["cost"]) == (b + 1, b, 2 * b + 1)
    assert rows["occlusion", None]["forward"] == gh * gw + 2
    assert (rows["gradcam", None]["forward"], rows["gradcam", None]["backward"]) == (2, 1)
    assert rows["sop", None]["forward"] == model.num_groups + 1


def test_ig_steps_are_capped_and_deduplicated():
    plan = sweep_plan(["ig", "lime"], [9, 300, 1000], ig_max_steps=300)
    assert [b for m, b, _ in plan if m == "ig"] == [9, 300]
    assert [s["n_samples"] for m, _, s in plan if m == "lime"] == [9, 300, 1000]


@pytest.mark.parametrize("method,settings", [("lime", {"n_samples": 9}), ("lime", {"n_samples": 18}),
                                             ("kernelshap", {"n_samples": 9}), ("rise", {"n_masks": 18}),
                                             ("ig", {"n_steps": 9}), ("occlusion", {}), ("gradcam", {})])
def test_the_rule_counts_the_images_the_model_really_sees(digits, method, settings):
    """A forward hook on the explained backbone counts the images of one explanation."""
    model, backbone, split = digits
    seen = []
    hook = backbone.register_forward_pre_hook(lambda _m, inp: seen.append(inp[0].shape[0]))
    try:
        x = split.dataset[sample_indices(len(split.dataset), 1)[0]][0].unsqueeze(0)
        explain(backbone, x, method, **settings)
    finally:
        hook.remove()
    want = pass_count(method, {**get_method(method).settings(), **settings}, grid=model_grid(backbone),
                      image_size=tuple(x.shape[-2:]), num_groups=model.num_groups)
    assert sum(seen) == want["forward"]


def test_sop_passes_are_one_per_group_plus_the_feature_pass(digits):
    """SOP's explanation: one feature pass for GroupGen, then the G groups through the backbone."""
    model, _, split = digits
    x = split.dataset[0][0].unsqueeze(0)
    tokens, groups = [], []
    orig_tokens, orig_groups = model.adapter.patch_tokens, model.adapter.forward_groups
    model.adapter.patch_tokens = lambda x_: tokens.append(x_.shape[0]) or orig_tokens(x_)
    model.adapter.forward_groups = lambda x_, m: groups.append(m.shape[0] * m.shape[1]) or orig_groups(x_, m)
    try:
        explain(model, x, "sop")
    finally:
        del model.adapter.patch_tokens, model.adapter.forward_groups
    assert sum(tokens) + sum(groups) == model.num_groups + 1 == pass_count(
        "sop", {}, grid=model_grid(model), image_size=tuple(x.shape[-2:]), num_groups=model.num_groups)["forward"]


def test_pareto_front_on_hand_made_points():
    costs = [1, 2, 3, 4, 4, 10, float("nan")]
    aucs = [0.2, 0.5, 0.4, 0.7, 0.6, 0.7, 0.9]
    assert pareto_front(costs, aucs) == [True, True, False, True, False, False, False]
    # lower is better (deletion): the cheapest point is on; ties in both coordinates do not dominate
    assert pareto_front([1, 2, 2, 5], [0.5, 0.3, 0.3, 0.1], higher_is_better=False) == [True, True, True, True]
    assert pareto_front([1, 2, 5], [0.3, 0.4, 0.3], higher_is_better=False) == [True, False, False]


def test_chart_has_one_trace_per_method_and_sop_as_a_marker(sweep):
    fig = pareto_chart(sweep, "deletion")
    names = [t.name for t in fig.data]
    labels = list(dict.fromkeys(r["label"] for r in sweep["rows"]))
    assert names == labels
    sop = next(t for t in fig.data if t.name == "SOP")
    assert sop.mode == "markers" and sop.marker.symbol == "star" and len(sop.x) == 1
    lime = next(t for t in fig.data if t.name == "LIME")
    assert "lines" in lime.mode and len(lime.x) == len(BUDGETS)
    assert fig.layout.xaxis.type == "log" and "lower is better" in fig.layout.yaxis.title.text
    grid = pareto_grid(sweep)
    assert len(grid.data) == 4 * len(labels)
    assert set(sop_frontier(sweep)) <= set(CURVES)


def test_cli_writes_the_sweep_files(tmp_path, capsys):
    out = tmp_path / "budget"
    threads = torch.get_num_threads()
    try:
        rc = main(["evaluate", "--model", str(DIGITS), "--budgets", "9,18", "--samples", "1", "--steps", "4",
                   "--methods", "sop,lime,ig,occlusion", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    printed = capsys.readouterr().out
    assert "SOP (9 passes) on the frontier for:" in printed and "| method | budget |" in printed
    with (out / "digits_budget.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["budget"]) for r in rows] == [("sop", ""), ("lime", "9"), ("lime", "18"), ("ig", "9"),
                                                         ("ig", "18"), ("occlusion", "")]
    report = json.loads((out / "digits_budget.json").read_text())
    assert report["budgets"] == [9, 18] and "--budgets 9,18" in report["command"]
    assert "forward" in report["count_rule"]["ig"] or "n_steps" in report["count_rule"]["ig"]
    html = (out / "digits_budget.html").read_text()
    assert "plotly" in html.lower() and "LIME" in html
    png = out / "digits_budget.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not png.exists()
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for r in rows:
        assert math.isfinite(float(r["insertion"]))
