"""The evaluation report and `python -m sop evaluate`, end to end on tiny checkpoints."""
import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

from sop import create_model, save
from sop.cli import main
from sop.evaluation import EvalSettings, evaluate, iou, model_statistics, top_region, twin_path
from sop.explainers import METHODS

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, global_pool="token")
FAST = ["--set", "lime.n_samples=20", "--set", "kernelshap.n_samples=20", "--set", "rise.n_masks=20",
        "--set", "ig.n_steps=4"]


def tiny_pair(tmp_path, dataset, in_chans, num_classes):
    """A random SOP model and its backbone twin, saved as <dataset>_sop / <dataset>_backbone."""
    torch.manual_seed(0)
    model = create_model("vit_tiny_patch16_224", num_classes=num_classes, img_size=(32, 32), in_chans=in_chans,
                         backbone_kwargs=TINY, num_groups=4, group_heads=2, group_dim=16, dataset=dataset)
    sop_path = save(model, tmp_path / f"{dataset}_sop.safetensors")
    twin_cfg = dataclasses.replace(model.config, kind="backbone")
    save(model.backbone, tmp_path / f"{dataset}_backbone.safetensors", config=twin_cfg)
    return sop_path


@pytest.mark.parametrize("dataset,in_chans,classes,methods",
                         [("parts", 3, 2, "all"), ("digits", 1, 10, "sop,occlusion")])
def test_cli_writes_csv_and_json_with_the_report_columns(tmp_path, capsys, dataset, in_chans, classes, methods):
    sop_path = tiny_pair(tmp_path, dataset, in_chans, classes)
    out = tmp_path / "report"
    rc = main(["evaluate", "--model", str(sop_path), "--samples", "3", "--steps", "4", "--methods", methods,
               *FAST, "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| method |" in printed and "insertion AUC" in printed
    with (out / f"{dataset}.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == (list(METHODS) if methods == "all" else methods.split(","))
    want = {"dataset", "method", "model", "accuracy", "insertion", "deletion", "grouped_insertion",
            "grouped_deletion", "seconds"}
    if dataset == "parts":
        want |= {"iou", "iou_gt_area", "pointing_game", "mass_accuracy", "rank_accuracy"}
    assert want <= set(rows[0])
    assert ("iou" in rows[0]) == ("pointing_game" in rows[0]) == (dataset == "parts")
    if dataset == "parts":
        assert "pointing ↑" in printed and "mass acc. ↑" in printed and "rank acc. ↑" in printed
    for r in rows:
        assert r["model"] == ("sop" if r["method"] == "sop" else "backbone")
        for k in ("insertion", "deletion", "grouped_insertion", "grouped_deletion"):
            assert 0.0 <= float(r[k]) <= 1.0
    report = json.loads((out / f"{dataset}.json").read_text())
    assert report["dataset"] == dataset and report["samples"] == 3
    assert len(report["per_input"]) == 3 * len(rows)  # one record per input and method
    assert report["settings"]["baselines_on"] == "backbone" and report["settings"]["steps"] == 4
    if methods == "all":
        lime = report["settings"]["method_settings"]["lime"]
        assert lime["n_samples"] == 20 and lime["kernel_width"] == 0.25  # overrides on top of the defaults
    assert report["backbone"].endswith(f"{dataset}_backbone.safetensors")
    assert {"accuracy", "backbone_accuracy", "fidelity", "groups_used", "pixels_per_group"} <= set(report["model"])
    assert report["command"].startswith("python -m sop evaluate --model")
    assert "--samples 3" in report["command"] and "lime.n_samples=20" in report["command"]


def test_cli_rejects_bad_arguments(tmp_path):
    sop_path = tiny_pair(tmp_path, "digits", 1, 10)
    assert main(["evaluate", "--model", str(sop_path), "--methods", "sop,shap"]) == 2
    assert main(["evaluate", "--model", str(sop_path), "--set", "lime-n=3"]) == 2
    assert main(["evaluate", "--model", str(tmp_path / "digits_backbone.safetensors")]) == 2


def test_twin_path_and_missing_twin_falls_back_to_the_sop_model(tmp_path):
    assert twin_path(tmp_path / "parts_sop.safetensors") == tmp_path / "parts_backbone.safetensors"
    from sop.evaluation import evaluate_checkpoint
    sop_path = tiny_pair(tmp_path, "digits", 1, 10)
    (tmp_path / "digits_backbone.safetensors").unlink()
    report = evaluate_checkpoint(sop_path, settings=EvalSettings(methods=["gradcam"], samples=1, steps=2))
    assert report["settings"]["baselines_on"] == "sop" and report["rows"][0]["model"] == "sop"
    assert report["backbone"] is None


def test_iou_and_top_region():
    a = torch.zeros(4, 4, dtype=torch.bool)
    a[:2] = True
    b = torch.zeros(4, 4, dtype=torch.bool)
    b[1:3] = True
    assert iou(a, b) == pytest.approx(4 / 12)
    assert iou(a, torch.zeros_like(a)) == 0.0
    attribution = torch.zeros(4, 4)
    attribution[2:, 2:] = 1.0
    torch.testing.assert_close(top_region(attribution, (2, 2), 4), attribution.bool())


def test_report_iou_uses_sop_groups_and_same_area_baselines(tiny_vit_sop):
    """On a fake scene whose decisive mask is exactly SOP's selected region, SOP's IoU is 1."""
    from sop.data import DatasetInfo, Split
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    out = tiny_vit_sop(x)
    selected = ((out.pixel_masks > 0) & (out.group_scores > 0)[..., None, None]).any(1)
    info = DatasetInfo(name="fake", class_names=[str(i) for i in range(5)], in_chans=3, img_size=(32, 32),
                       mean=(0, 0, 0), std=(1, 1, 1))
    split = Split(torch.utils.data.TensorDataset(x, torch.tensor([1, 1])), info)
    report = evaluate(tiny_vit_sop, tiny_vit_sop.backbone, split,
                      EvalSettings(methods=["sop", "occlusion"], samples=2, steps=4),
                      decisive=selected.numpy())
    rows = {r["method"]: r for r in report["rows"]}
    assert rows["sop"]["iou"] == pytest.approx(1.0)
    assert 0.0 <= rows["occlusion"]["iou"] <= 1.0 and report["iou_samples"] == 2
    assert rows["occlusion"]["model"] == "backbone"
    # SOP's map is zero outside its selected region and that region is the mask: all its mass is inside
    assert rows["sop"]["mass_accuracy"] == pytest.approx(1.0) and rows["sop"]["pointing_game"] == 1.0


def test_report_localisation_is_the_mean_of_the_per_input_values(tiny_vit_sop):
    """Only inputs with a non-empty mask are scored; the rows hold the mean and sem of report["per_input"]."""
    from sop.data import DatasetInfo, Split
    from sop.explainers import explain
    from sop.localisation import localisation_scores
    torch.manual_seed(1)
    x = torch.randn(3, 3, 32, 32)
    masks = np.zeros((3, 32, 32), bool)
    masks[0, :8, :16] = True
    masks[2, 20:, 4:30] = True
    info = DatasetInfo(name="fake", class_names=[str(i) for i in range(5)], in_chans=3, img_size=(32, 32),
                       mean=(0, 0, 0), std=(1, 1, 1))
    split = Split(torch.utils.data.TensorDataset(x, torch.tensor([0, 1, 2])), info)
    report = evaluate(tiny_vit_sop, tiny_vit_sop.backbone, split,
                      EvalSettings(methods=["sop", "gradcam"], samples=3, steps=4), decisive=masks)
    assert report["iou_samples"] == 2
    per = report["per_input"]
    assert [(r["index"], r["method"]) for r in per] == [(i, m) for i in range(3) for m in ("sop", "gradcam")]
    assert all(("rank_accuracy" in r) == (r["index"] != 1) for r in per)
    for row in report["rows"]:
        on = tiny_vit_sop if row["method"] == "sop" else tiny_vit_sop.backbone
        want = [localisation_scores(explain(on, x[i:i + 1], row["method"]).attribution, masks[i]) for i in (0, 2)]
        for k in ("pointing_game", "mass_accuracy", "rank_accuracy"):
            vals = [w[k] for w in want]
            assert row[k] == pytest.approx(np.mean(vals))
            assert row[f"{k}_sem"] == pytest.approx(np.std(vals, ddof=1) / np.sqrt(2))
            assert [r[k] for r in per if r["method"] == row["method"] and k in r] == pytest.approx(vals)


def test_localisation_study_scores_a_seeded_sample_of_inputs_with_ground_truth(tiny_vit_sop):
    from sop.data import DatasetInfo, Split
    from sop.evaluation import localisation_study
    torch.manual_seed(2)
    x = torch.randn(5, 3, 32, 32)
    masks = np.zeros((5, 32, 32), bool)
    for i in (1, 2, 4):
        masks[i, 4 * i:4 * i + 8, 8:24] = True
    info = DatasetInfo(name="fake", class_names=[str(i) for i in range(5)], in_chans=3, img_size=(32, 32),
                       mean=(0, 0, 0), std=(1, 1, 1))
    split = Split(torch.utils.data.TensorDataset(x, torch.zeros(5, dtype=torch.long)), info)
    seen = []
    study = localisation_study(tiny_vit_sop, split, masks, "sop", samples=2, seed=0, progress=seen.append)
    assert study["samples"] == 2 and seen == [0.5, 1.0]
    assert {r["index"] for r in study["per_input"]} <= {1, 2, 4}
    assert study["rank_accuracy"] == pytest.approx(np.mean([r["rank_accuracy"] for r in study["per_input"]]))
    assert localisation_study(tiny_vit_sop, split, masks, "sop", samples=10)["samples"] == 3


def test_model_statistics_counts_groups_and_agreement(tiny_vit_sop):
    from sop.data import DatasetInfo, Split
    torch.manual_seed(0)
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, 5, (6,))
    info = DatasetInfo(name="fake", class_names=[str(i) for i in range(5)], in_chans=3, img_size=(32, 32),
                       mean=(0, 0, 0), std=(1, 1, 1))
    stats = model_statistics(tiny_vit_sop, tiny_vit_sop.backbone, Split(torch.utils.data.TensorDataset(x, y), info))
    out = tiny_vit_sop(x)
    pred, bb = out.logits.argmax(-1), tiny_vit_sop.backbone(x).argmax(-1)
    assert stats["accuracy"] == pytest.approx(float((pred == y).float().mean()))
    assert stats["fidelity"] == pytest.approx(float((pred == bb).float().mean()))
    assert stats["groups_used"] == pytest.approx(float((out.group_scores > 0).sum(1).float().mean()))
    assert 0 < stats["selected_fraction"] <= 1
    assert np.isfinite(stats["pixels_per_group"]) and stats["pixels_per_group"] > 0
