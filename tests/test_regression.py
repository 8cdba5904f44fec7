"""Regression through the core: training on a tiny lensing set, checkpoints, statistics, curves."""
import json

import numpy as np
import pytest
import torch

import sop

pytest.importorskip("pyccl")

from sop.data import lensing as L  # noqa: E402

TINY = L.LensingSettings(cosmologies=(4, 2, 2), maps_per_cosmology=2, size=32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A regression SOP model and its twin, trained for two steps a stage on tiny lensing maps."""
    from sop.data import registry
    from sop.presets import PRESETS
    from sop.train import train_pair
    tmp = tmp_path_factory.mktemp("lensing")
    saved = dict(registry._DATASETS)
    registry.register_dataset("lensing_tiny", label="Tiny lensing", task="regression")(
        lambda split, *, img_size=None, seed=0: L.load_lensing_split(split, seed=seed, settings=TINY,
                                                                     name="lensing_tiny", cache_dir=tmp / "cache"))
    # The preset's backbone on 32x32 maps: 8x8-pixel patches, a 4x4 grid.
    preset = dict(PRESETS["lensing"], dataset="lensing_tiny",
                  backbone_kwargs=dict(PRESETS["lensing"]["backbone_kwargs"], img_size=32, patch_size=8),
                  backbone_epochs=1, sop_epochs=1, batch_size=4)
    try:
        metrics = train_pair(preset, tmp / "tiny", command="test", max_steps=2)
        yield metrics, tmp / "tiny_sop.safetensors", tmp / "tiny_backbone.safetensors"
    finally:
        registry._DATASETS.clear()
        registry._DATASETS.update(saved)


def test_training_records_the_targets_and_regression_statistics(trained):
    metrics, sop_path, twin_path = trained
    cfg = sop.read_config(sop_path)
    train = L.load_lensing_split("train", settings=TINY, cache_dir=sop_path.parent / "cache")
    y = train.dataset.tensors[1].double()
    assert cfg.task == "regression" and cfg.num_classes == 2
    assert cfg.target_names == ["Omega_m", "sigma_8"]
    assert cfg.target_mean == pytest.approx(y.mean(0).tolist()) and cfg.target_std == pytest.approx(
        y.std(0, unbiased=False).tolist())
    assert sop.read_config(twin_path).target_mean == cfg.target_mean
    test = metrics["test"]
    assert set(test["r2"]) == set(test["rmse"]) == {"Omega_m", "sigma_8"}
    assert {"backbone_r2", "backbone_rmse", "fidelity_r2", "groups_used", "selected_fraction"} <= set(test)
    assert set(metrics["backbone_test_r2"]) == {"Omega_m", "sigma_8"}
    assert "val_r2" in metrics["history"][0] and "train_mse" in metrics["history"][0]


def test_predictions_come_back_in_physical_units_and_round_trip(trained, tmp_path):
    from sop.regression import r2_rmse, standardise, to_physical
    _, sop_path, _ = trained
    model = sop.load(sop_path)
    x = torch.randn(3, 1, 32, 32)
    out = model(x)
    # the prediction is the score-weighted sum of what each group alone predicts (standardised)
    gates = out.group_gates if out.group_gates is not None else torch.ones_like(out.group_scores)
    assert torch.allclose(out.logits, torch.einsum("bg,bgk->bk", out.group_scores * gates, out.group_logits),
                          atol=1e-6)
    phys = to_physical(out.logits, model.config)
    assert torch.allclose(standardise(phys, model.config), out.logits, atol=1e-5)
    again = sop.load(sop.save(model, tmp_path / "again.safetensors"))
    assert torch.equal(again(x).logits, out.logits)
    r2, rmse = r2_rmse(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [2.0], [4.0]]))
    assert r2[0] == pytest.approx(1 - 1 / (14 / 3)) and rmse[0] == pytest.approx(np.sqrt(1 / 3))



def test_training_sees_targets_standardised_by_the_recorded_statistics(trained):
    """The task standardises from the training split's statistics directly (no config needed), exactly
    as the checkpoint's recorded target_mean / target_std standardise."""
    from sop.regression import standardise
    from sop.tasks import get_task
    _, sop_path, _ = trained
    cfg = sop.read_config(sop_path)
    train = L.load_lensing_split("train", settings=TINY, cache_dir=sop_path.parent / "cache")
    task = get_task("regression")
    fields = task.config_fields(train)
    assert fields["target_mean"] == cfg.target_mean and fields["target_std"] == cfg.target_std
    seen = task.training_split(train, fields).dataset.tensors[1]
    assert torch.equal(seen, standardise(train.dataset.tensors[1], cfg))
    assert seen.double().mean(0).abs().max() < 1e-5 and (seen.double().std(0, unbiased=False) - 1).abs().max() < 1e-5
    assert get_task("classification").training_split(train, {}) is train

def test_regression_curves_score_the_distance_to_the_full_input_prediction(trained):
    from sop.explainers import explain
    from sop.faithfulness import insertion_deletion
    _, sop_path, twin_path = trained
    model = sop.load(sop_path)
    x = torch.randn(1, 1, 32, 32)
    e = explain(model, x, "sop")
    for mode in ("pixel", "grouped"):
        curves = insertion_deletion(model, x, e, mode=mode, steps=4)
        ins, dele = curves["insertion"], curves["deletion"]
        assert dele.scores[0] == pytest.approx(1, abs=1e-6) and ins.scores[-1] == pytest.approx(1, abs=1e-6)
        assert np.all(ins.scores <= 1 + 1e-6) and ins.auc <= 1 and ins.target == -1
        # the score is the mean over parameters of 1 - |output - full-input output| (standardised)
        full = dele.outputs[0]
        assert np.allclose(ins.scores, (1 - np.abs(ins.outputs - full)).mean(1), atol=1e-6)
    twin = sop.load(twin_path)
    curves = insertion_deletion(twin, x, explain(twin, x, "occlusion", target=0), steps=4)  # a parameter index
    assert curves["deletion"].scores[0] == pytest.approx(1, abs=1e-6)


def test_evaluate_reports_r2_rmse_fidelity_and_the_baselines_per_parameter(trained):
    from sop.commands._evaluate_report import format_parameter_table, format_summary, format_table
    from sop.data import load_split, registry
    from sop.evaluation import EvalSettings, evaluate_checkpoint
    from sop.explainers import explain
    from sop.regression_explain import regression_curves
    _, sop_path, twin_path = trained
    registry.register_dataset("lensing_tiny", label="Tiny lensing", task="regression")(
        lambda split, *, img_size=None, seed=0: L.load_lensing_split(split, seed=seed, settings=TINY,
                                                                     name="lensing_tiny",
                                                                     cache_dir=sop_path.parent / "cache"))
    report = evaluate_checkpoint(sop_path, settings=EvalSettings(methods=["sop", "occlusion"], samples=2, steps=4))
    stats = report["model"]
    assert set(stats["r2"]) == {"Omega_m", "sigma_8"} and "backbone_rmse" in stats and "fidelity_r2" in stats
    assert report["parameters"] == ["Omega_m", "sigma_8"]
    assert [(r["method"], r["model"]) for r in report["rows"]] == [("sop", "sop"), ("occlusion", "backbone")]
    assert isinstance(report["per_input"][0]["label"], list)
    for rec in report["per_input"]:
        for key in ("insertion", "deletion", "grouped_insertion", "grouped_deletion"):
            # the summary figure is the mean over the parameters of the per-parameter AUCs
            assert rec[key] == pytest.approx((rec[f"{key}_Omega_m"] + rec[f"{key}_sigma_8"]) / 2)
    # a baseline's AUC for parameter p = its explanation of the twin's estimate of p, scored on p
    # (the explorer's regression_curves), on the same input
    first = report["per_input"][0]["index"]
    x = load_split("lensing_tiny", "test").dataset[first][0].unsqueeze(0)
    twin = sop.load(twin_path)
    occ = [r for r in report["per_input"] if r["method"] == "occlusion" and r["index"] == first][0]
    for p, name in enumerate(["Omega_m", "sigma_8"]):
        curves = regression_curves(twin, x, explain(twin, x, "occlusion", target=p), steps=4, parameters=[p])[p]
        assert occ[f"insertion_{name}"] == pytest.approx(curves["insertion"].auc, abs=1e-6)
        assert occ[f"deletion_{name}"] == pytest.approx(curves["deletion"].auc, abs=1e-6)
    table, per_parameter = format_table(report), format_parameter_table(report)
    assert "| occlusion | backbone |" in table and "accuracy" not in table   # no column of dashes
    assert "| occlusion | backbone | sigma_8 |" in per_parameter and "| sop | sop | Omega_m |" in per_parameter
    assert "target = p" in format_summary(report)
    json.dumps(report, default=float)


def test_classification_checkpoints_keep_loading_without_the_regression_fields(embedded):
    cfg = sop.read_config(embedded["digits"].sop_path)
    assert cfg.task == "classification" and cfg.target_names == [] and cfg.target_mean == []


def test_the_lensing_study_measures_shares_and_pulls():
    from sop.lensing_study import format_study, map_record, summarise
    kappa = np.zeros((10, 10))
    kappa[0, :] = -1.0                        # a void row (below -1 sigma)
    kappa[9, 0] = 8.0                         # one peak (above +2 sigma)
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 0, :5] = True                    # group 0: five void pixels
    masks[1, 9, :2] = True                    # group 1: the peak and one plain pixel
    rec = map_record(kappa, masks, np.array([0.75, 0.25]), np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.5, 0.5]))
    assert rec.sky == pytest.approx([0.10, 0.01, 0.89])
    # score-weighted: (0.75 * [5, 0, 0] + 0.25 * [0, 1, 1]) / (0.75 * 5 + 0.25 * 2)
    assert rec.inside == pytest.approx(np.array([3.75, 0.25, 0.25]) / 4.25)
    assert rec.pulls["void"] == pytest.approx([0.5, -0.5]) and rec.pulls["cluster"] == pytest.approx([-0.5, 0.5])
    assert rec.weight == {"void": 0.75, "cluster": 0.25}
    report = summarise([rec, rec], ["Omega_m", "sigma_8"])
    assert report["shares"]["cluster"]["enrichment"] == pytest.approx((0.25 / 4.25) / 0.01)
    assert "| void-dominated | 2 |" in format_study(report)
    # Only the void group selected (the embedded model's case: its 3/4-map groups are all void-dominated):
    # the cluster row has no map to average and says so, with NaN pulls, instead of failing.
    only_void = map_record(kappa, masks, np.array([1.0, 0.0]), np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.5, 0.5]))
    report = summarise([only_void, only_void], ["Omega_m", "sigma_8"])
    assert report["pulls"]["cluster"]["maps"] == 0 and np.isnan(report["pulls"]["cluster"]["sigma_8"]["pull"])
    assert report["pulls"]["void"]["Omega_m"]["pull"] == pytest.approx(0.5)
    assert "| cluster-dominated | 0 | 0.000 | – | – |" in format_study(report)


def test_the_lensing_study_command_writes_its_table_and_plots(trained, tmp_path, capsys):
    from sop.cli import main
    from sop.data import registry
    _, sop_path, _ = trained
    registry.register_dataset("lensing_tiny", label="Tiny lensing", task="regression")(
        lambda split, *, img_size=None, seed=0: L.load_lensing_split(split, seed=seed, settings=TINY,
                                                                     name="lensing_tiny",
                                                                     cache_dir=sop_path.parent / "cache"))
    assert main(["lensing-study", "--model", str(sop_path), "--out", str(tmp_path)]) == 0
    assert "share of sky" in capsys.readouterr().out
    assert {p.name for p in tmp_path.iterdir()} == {"study.json", "study.png", "study.pdf"}
    assert json.loads((tmp_path / "study.json").read_text())["maps"] == 4


def test_the_embedded_lensing_model_gives_exactly_its_recorded_test_metrics():
    from sop.verification import quick
    embedded = {m.name: m for m in sop.embedded_models()}
    if "lensing" not in embedded:
        pytest.skip("no embedded lensing model")
    v = quick(embedded["lensing"].sop_path)       # generates (or reads the cached) lensing test maps
    assert v.metrics_identical, v.format()            # to 1e-6: pinned training vs this unpinned check
    assert v.tolerance == 1e-6 and max(abs(a - b) for a, b in v.metrics.values()) < 1e-6
    assert {"r2 Omega_m", "r2 sigma_8", "backbone_r2 Omega_m", "fidelity", "groups_used"} <= set(v.metrics)


def test_a_view_kind_without_pages_is_held_back_with_a_note(monkeypatch):
    """A view kind whose module does not exist (explorer/views.py): the picker leaves its models out,
    lists them as held back, and such a checkpoint opened by path gets a clear error."""
    from explorer import views
    from explorer.models import all_embedded, embedded_table, held_back, load_spec, spec_for_file
    embedded = {m.name: m for m in sop.embedded_models(modality=None)}
    if "lensing" not in embedded:
        pytest.skip("no embedded lensing model")
    assert "lensing" in {r["name"] for r in embedded_table()}          # the regression pages exist
    monkeypatch.setitem(views.VIEW_MODULES, "regression", "explorer.no_such_pages")
    all_embedded_names = {r["name"] for r in all_embedded()}
    assert "lensing" not in {r["name"] for r in embedded_table()}
    assert {"digits", "parts"} <= {r["name"] for r in embedded_table()} <= all_embedded_names
    assert ("lensing", "regression") in [(r["name"], r["task"]) for r in held_back()]
    with pytest.raises(sop.CheckpointError, match="regression model.*sop evaluate"):
        load_spec(spec_for_file(str(embedded["lensing"].sop_path)))
