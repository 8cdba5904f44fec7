"""The explorer app, page by page, with streamlit.testing.v1.AppTest (no browser).

Every number the app shows is checked against the library computing the same thing on
the same input: prediction, number of groups, group scores, curve AUCs, accuracy.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sop
from sop.data import load_split
from sop.explainers import default_settings, explain
from sop.faithfulness import group_sizes_of, insertion_deletion
from sop.image_io import image_to_tensor, load_image

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = streamlit_testing.AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
MODELS = ROOT / "assets" / "models"
SAMPLES = ROOT / "assets" / "samples"
TIMEOUT = 300


# --------------------------------------------------------------------------- library references

@lru_cache(maxsize=None)
def lib_model(name: str, kind: str = "sop"):
    return sop.load(MODELS / f"{name}_{kind}.safetensors")


@lru_cache(maxsize=None)
def lib_split(name: str):
    return load_split(name, "test")


def sample(name: str, index: int) -> tuple[torch.Tensor, int]:
    x, y = lib_split(name).dataset[index]
    return x.unsqueeze(0), int(y)


def forward(name: str, x: torch.Tensor):
    with torch.no_grad():
        return lib_model(name)(x)


def sop_curves(name: str, x, mode="pixel", baseline="zero", steps=16):
    model = lib_model(name)
    return insertion_deletion(model, x, explain(model, x, "sop"), mode=mode, baseline=baseline, steps=steps)


# --------------------------------------------------------------------------- app helpers

def new_app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = str(v)
    return at


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def switch(at: AppTest, page: str) -> AppTest:
    # AppTest's first run after switch_page does not restore widgets kept with persist_state
    # (a real browser does); the second run sees them.
    at.switch_page(f"explorer/pages/{page}.py")
    run(at)
    return run(at)


def metric(at: AppTest, label: str, nth: int = 0) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert len(values) > nth, f"no metric {label!r}; have {[m.label for m in at.metric]}"
    return values[nth]


def group_scores_shown(at: AppTest) -> dict[int, float]:
    """Scores in the group gallery ('**Group g** · score 0.123')."""
    found = {}
    for m in at.markdown:
        hit = re.search(r"\*\*Group (\d+)\*\* · score ([0-9.]+)", m.value)
        if hit:
            found[int(hit.group(1))] = float(hit.group(2))
    return found


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


# --------------------------------------------------------------------------- Explain

def test_explain_default_model_matches_library():
    at = run(new_app())
    x, y = sample("digits", 0)
    out = forward("digits", x)
    cfg = lib_model("digits").config
    pred = int(out.logits.argmax())
    assert metric(at, "Predicted class") == cfg.class_names[pred]
    # one gallery card and one isolate button per group, scores as the library's
    scores = group_scores_shown(at)
    assert len(scores) == cfg.num_groups
    lib_scores = out.group_scores[0].numpy()
    for g, s in scores.items():
        assert s == pytest.approx(float(lib_scores[g]), abs=5e-4)
    assert len([b for b in at.button if b.label in ("Isolate", "Isolated")]) == cfg.num_groups
    # curves: pixel-wise, zero baseline, 16 steps by default
    curves = sop_curves("digits", x)
    assert metric(at, "Insertion AUC") == f"{curves['insertion'].auc:.3f}"
    assert metric(at, "Deletion AUC") == f"{curves['deletion'].auc:.3f}"
    assert f"True class: **{y}**" in texts(at)
    # the URL holds the view
    assert at.query_params["model"] == "digits"
    assert at.query_params["input"] == "test:0"
    assert at.query_params["mode"] == "pixel"


def test_shared_url_reopens_the_view_parts_grouped_blur():
    at = run(new_app(model="parts", input="test:3", mode="grouped", baseline="blur", group="1", step="2"))
    x, _ = sample("parts", 3)
    out = forward("parts", x)
    names = lib_model("parts").config.class_names
    assert metric(at, "Predicted class") == names[int(out.logits.argmax())]
    assert at.segmented_control(key="curve_mode").value == "grouped"
    assert at.selectbox(key="curve_baseline").value == "blur"
    assert at.slider(key="curve_step").value == 2
    curves = sop_curves("parts", x, mode="grouped", baseline="blur")
    assert metric(at, "Insertion AUC") == f"{curves['insertion'].auc:.3f}"
    assert metric(at, "Deletion AUC") == f"{curves['deletion'].auc:.3f}"
    # group 1 is isolated: its panel shows what it alone predicts
    assert any("**Group 1 alone**" in m.value for m in at.markdown)
    alone = out.group_logits[0, 1].softmax(-1)
    contribution = float(out.group_scores[0, 1] * out.group_logits[0, 1, int(out.logits.argmax())])
    contribution = 0.0 if abs(contribution) < 5e-4 else contribution
    assert metric(at, f"Contribution to the logit of {names[int(out.logits.argmax())]}") == f"{contribution:+.3f}"
    assert alone.shape[0] == len(names)
    # true parts are outlined for parts scenes
    assert at.toggle(key="show_parts").value is True
    assert at.query_params["group"] == "1" and at.query_params["model"] == "parts"


def test_pick_sample_isolate_group_and_move_step():
    at = run(new_app())
    at.number_input(key="sample_index").set_value(5)
    run(at)
    x, _ = sample("digits", 5)
    out = forward("digits", x)
    assert metric(at, "Predicted class") == lib_model("digits").config.class_names[int(out.logits.argmax())]
    top = int(torch.argsort(-out.group_scores[0], stable=True)[0])
    at.button(key=f"gallery_{top}").click()
    run(at)
    assert any(f"**Group {top} alone**" in m.value for m in at.markdown)
    assert at.button(key=f"gallery_{top}").label == "Isolated"
    assert at.query_params["group"] == str(top)
    at.slider(key="curve_step").set_value(8)
    run(at)
    assert "step 8/16" in texts(at)
    at.button(key="clear_group").click()
    run(at)
    assert not any("alone**" in m.value for m in at.markdown)
    assert at.query_params["input"] == "test:5" and at.query_params["step"] == "8"


def test_upload_image_from_assets_matches_library():
    path = next(SAMPLES.glob("digit_7_*.png"))
    at = run(new_app())
    at.segmented_control(key="input_source").set_value("Upload")
    run(at)
    at.file_uploader(key="upload_file").upload(path.name, path.read_bytes(), "image/png")
    run(at)
    cfg = lib_model("digits").config
    x = image_to_tensor(load_image(path.read_bytes(), mode="L"), img_size=cfg.img_size, mean=cfg.mean,
                        std=cfg.std, in_chans=cfg.in_chans)
    out = forward("digits", x)
    assert metric(at, "Predicted class") == cfg.class_names[int(out.logits.argmax())]
    scores = group_scores_shown(at)
    for g, s in scores.items():
        assert s == pytest.approx(float(out.group_scores[0, g]), abs=5e-4)
    assert "digit\\_7" in texts(at)
    assert at.query_params["input"] == "upload"


def test_large_jpeg_upload_is_resized_as_the_checkpoint_says():
    path = next(SAMPLES.glob("digit_3_*_large.jpg"))
    at = run(new_app())
    at.segmented_control(key="input_source").set_value("Upload")
    run(at)
    at.file_uploader(key="upload_file").upload(path.name, path.read_bytes(), "image/jpeg")
    run(at)
    cfg = lib_model("digits").config
    x = image_to_tensor(load_image(path.read_bytes(), mode="L"), img_size=cfg.img_size, mean=cfg.mean,
                        std=cfg.std, in_chans=cfg.in_chans)
    assert metric(at, "Predicted class") == cfg.class_names[int(forward("digits", x).logits.argmax())]


def test_bad_upload_shows_error_and_keeps_previous_view():
    at = run(new_app(input="test:2"))
    before = metric(at, "Predicted class")
    at.segmented_control(key="input_source").set_value("Upload")
    run(at)
    at.file_uploader(key="upload_file").upload("evil.png", b"this is not an image", "image/png")
    run(at)
    errors = [e.value for e in at.error]
    assert any("not an image we can read" in e for e in errors), errors
    assert metric(at, "Predicted class") == before  # the previous input is still explained
    assert any("Still showing the previous input" in c.value for c in at.caption)


def test_bad_checkpoints_show_errors_and_keep_the_model(tmp_path):
    at = run(new_app())
    before = metric(at, "Predicted class")
    junk = tmp_path / "broken_sop.safetensors"
    junk.write_bytes(b"\x00" * 64)
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"whatever")
    at.segmented_control(key="model_source").set_value("Checkpoint file")
    run(at)
    for path, message in ((junk, "not a readable safetensors file"), (pickle, "pickle checkpoints"),
                          (tmp_path / "missing.safetensors", "does not exist"),
                          (MODELS / "digits_backbone.safetensors", "plain backbone checkpoint")):
        at.text_input(key="model_path").set_value(str(path))
        run(at)
        errors = [e.value for e in at.error]
        assert any(message in e for e in errors), (path, errors)
        assert metric(at, "Predicted class") == before


def test_checkpoint_file_and_timm_checkpoint_sources():
    at = run(new_app())
    at.segmented_control(key="model_source").set_value("Checkpoint file")
    run(at)
    at.text_input(key="model_path").set_value(str(MODELS / "parts_sop.safetensors"))
    run(at)
    assert not at.error
    x, _ = sample("parts", 0)
    names = lib_model("parts").config.class_names
    assert metric(at, "Predicted class") == names[int(forward("parts", x).logits.argmax())]
    assert at.query_params["model"] == str(MODELS / "parts_sop.safetensors")

    at.segmented_control(key="model_source").set_value("timm + checkpoint")
    run(at)
    at.text_input(key="model_timm").set_value("resnet18")
    at.text_input(key="model_timm_path").set_value(str(MODELS / "digits_sop.safetensors"))
    run(at)
    assert any("was trained on the timm model" in e.value for e in at.error)
    backbone = lib_model("digits").config.backbone
    at.text_input(key="model_timm").set_value(backbone)
    run(at)
    assert not at.error
    x, _ = sample("digits", 0)
    assert metric(at, "Predicted class") == str(int(forward("digits", x).logits.argmax()))
    assert at.query_params["timm"] == backbone


# --------------------------------------------------------------------------- Compare

def test_compare_page_matches_library():
    at = run(new_app(input="test:1"))
    switch(at, "compare")
    x, _ = sample("digits", 1)
    sop_model, twin = lib_model("digits"), lib_model("digits", "backbone")
    expected = {"sop": insertion_deletion(sop_model, x, explain(sop_model, x, "sop"))}
    for m in ("gradcam", "occlusion"):
        expected[m] = insertion_deletion(twin, x, explain(twin, x, m))
    ins = [m.value for m in at.metric if m.label == "Insertion AUC"]
    dels = [m.value for m in at.metric if m.label == "Deletion AUC"]
    # cards in METHODS order; the expensive ones wait for a click
    assert ins[:3] == [f"{expected[m]['insertion'].auc:.3f}" for m in ("sop", "gradcam", "occlusion")]
    assert dels[:3] == [f"{expected[m]['deletion'].auc:.3f}" for m in ("sop", "gradcam", "occlusion")]
    assert at.button(key="run_all").label.startswith("Run 4 expensive")
    # run one expensive method with a small budget
    at.select_slider(key="cmp_budget").set_value(100)
    run(at)
    at.button(key="run_rise").click()
    run(at)
    settings = default_settings("rise") | {"n_masks": 100}
    rise = insertion_deletion(twin, x, explain(twin, x, "rise", **settings))
    table = at.dataframe[0].value
    row = table[table["method"] == "RISE"].iloc[0]
    assert row["insertion AUC ↑"] == pytest.approx(round(rise["insertion"].auc, 4), abs=1e-4)
    assert row["deletion AUC ↓"] == pytest.approx(round(rise["deletion"].auc, 4), abs=1e-4)
    assert at.query_params["input"] == "test:1"


def test_compare_grouped_curves_share_sop_group_sizes():
    at = run(new_app(input="test:4", mode="grouped"))
    switch(at, "compare")
    x, _ = sample("digits", 4)
    sop_model, twin = lib_model("digits"), lib_model("digits", "backbone")
    exp_sop = explain(sop_model, x, "sop")
    gradcam = insertion_deletion(twin, x, explain(twin, x, "gradcam"), mode="grouped",
                                 group_sizes=group_sizes_of(exp_sop))
    table = at.dataframe[0].value
    row = table[table["method"] == "Grad-CAM"].iloc[0]
    assert row["insertion AUC ↑"] == pytest.approx(round(gradcam["insertion"].auc, 4), abs=1e-4)


def test_compare_parts_scene_shows_localisation_per_input_and_over_test_inputs():
    from sop.evaluation import localisation_study
    from sop.localisation import ground_truth_masks, localisation_scores
    at = run(new_app(model="parts", input="test:2"))  # a positive scene: its decisive parts are known
    switch(at, "compare")
    x, _ = sample("parts", 2)
    masks = ground_truth_masks("parts", "test")
    sop_model, twin = lib_model("parts"), lib_model("parts", "backbone")
    table = at.dataframe[0].value
    for m, name, on in (("sop", "SOP", sop_model), ("gradcam", "Grad-CAM", twin), ("occlusion", "Occlusion", twin)):
        want = localisation_scores(explain(on, x, m).attribution, masks[2])
        row = table[table["method"] == name].iloc[0]
        for k, col in (("pointing_game", "pointing ↑"), ("mass_accuracy", "mass acc. ↑"),
                       ("rank_accuracy", "rank acc. ↑")):
            # an all-zero map (Grad-CAM can give one) has no mass: NaN on both sides, as in quantus
            assert row[col] == pytest.approx(round(want[k], 4), abs=1e-4, nan_ok=True)
    # the mean over test inputs with ground truth runs on request, for the methods on the page
    at.select_slider(key="loc_samples").set_value(10)
    run(at)
    at.button(key="loc_run").click()
    run(at)
    means = at.dataframe[1].value
    assert list(means["method"]) == ["SOP", "Grad-CAM", "Occlusion"] and set(means["inputs"]) == {10}
    study = localisation_study(sop_model, lib_split("parts"), masks, "sop", samples=10)
    assert means.iloc[0]["rank acc. ↑"] == f"{study['rank_accuracy']:.3f} ± {study['rank_accuracy_sem']:.3f}"


def test_compare_input_without_ground_truth_has_no_localisation_columns():
    at = run(new_app(model="parts", input="test:1"))  # a negative scene
    switch(at, "compare")
    assert "pointing ↑" not in at.dataframe[0].value.columns
    assert "no ground-truth mask" in texts(at)


# --------------------------------------------------------------------------- Mistakes

def test_mistakes_page_matches_library_and_opens_in_explain():
    at = run(new_app())
    switch(at, "mistakes")
    model = lib_model("digits")
    xs, ys = lib_split("digits").dataset.tensors
    with torch.no_grad():
        preds = torch.cat([model(xs[i:i + 64]).logits.argmax(-1) for i in range(0, len(xs), 64)])
    wrong = torch.nonzero(preds != ys).flatten().tolist()
    assert metric(at, "Test accuracy") == f"{float((preds == ys).float().mean()):.1%}"
    assert metric(at, "Misclassified") == f"{len(wrong)} of {len(ys)}"
    if not wrong:
        pytest.skip("the embedded model makes no mistakes on its test split")
    i = wrong[0]
    at.button(key=f"open_{i}").click()
    run(at)
    names = model.config.class_names
    header = f"Test example #{i}: true **{names[int(ys[i])]}**, predicted **{names[int(preds[i])]}**"
    assert any(header in m.value for m in at.markdown)
    out = forward("digits", xs[i:i + 1])
    contrib = out.group_scores[0] * (out.group_logits[0, :, int(preds[i])] - out.group_logits[0, :, int(ys[i])])
    worst = int(torch.argmax(contrib))
    if contrib[worst] > 0:
        assert any(f"drove the wrong class:** group {worst} " in m.value for m in at.markdown)
    assert at.query_params["example"] == str(i)
    # a confusion-matrix cell filter from the URL
    t, p = int(ys[i]), int(preds[i])
    at2 = run(new_app(cell=f"{t},{p}"))
    switch(at2, "mistakes")
    n = int(((ys == t) & (preds == p)).sum())
    assert any(f"predicted {names[p]}** · {n} example(s)" in m.value for m in at2.markdown)
    # open it on the Explain page
    at.button(key="open_in_explain").click()
    run(at)  # st.switch_page: this run is the Explain page (AppTest's next run would return to Mistakes)
    assert any(f"test sample \\#{i}" in m.value for m in at.markdown)
    assert at.number_input(key="sample_index").value == i
    assert metric(at, "Predicted class") == names[int(preds[i])]


# --------------------------------------------------------------------------- exports and drawing helpers

def test_export_json_and_png_hold_the_library_values():
    from explorer import compute, export
    from explorer.inputs import ModelInput
    from explorer.models import load_spec, spec_for_embedded
    lm = load_spec(spec_for_embedded("digits"))
    x, y = sample("digits", 0)
    mi = ModelInput("sample", x, compute.tensor_key(x), "test sample #0", y, "test", 0)
    with torch.no_grad():
        out = lm.model(x)
    fwd = compute.Forward(out.probs[0].numpy(), out.logits[0].numpy(), out.group_scores[0].numpy(),
                          out.group_logits[0].numpy(), out.pixel_masks[0].numpy(), out.group_masks[0].numpy())
    exp = explain(lm.model, x, "sop")
    curves = {m: insertion_deletion(lm.model, x, exp, mode=m) for m in ("pixel", "grouped")}
    record = json.loads(export.to_json(export.explanation_record(lm, mi, fwd, curves, baseline="zero", steps=16)))
    assert record["prediction"]["class_index"] == int(out.logits.argmax())
    assert len(record["groups"]) == lm.config.num_groups
    for g in record["groups"]:
        assert g["score"] == pytest.approx(float(out.group_scores[0, g["group"]]), abs=1e-6)
    assert [g["score"] for g in record["groups"]] == sorted((g["score"] for g in record["groups"]), reverse=True)
    for mode in ("pixel", "grouped"):
        for kind in ("insertion", "deletion"):
            assert record["curves"][mode][kind]["auc"] == pytest.approx(curves[mode][kind].auc, abs=1e-6)
    png = export.explanation_png(lm, mi, fwd, curves["pixel"])
    img = Image.open(__import__("io").BytesIO(png))
    assert img.format == "PNG" and img.width > 300


def test_visualize_palette_and_overlays_are_consistent():
    from sop import visualize as viz
    assert len(set(viz.PALETTE)) == len(viz.PALETTE) == 20
    assert viz.group_colour(3) == viz.group_colour(23) == viz.PALETTE[3]
    img = np.zeros((8, 8, 3), np.uint8)
    masks = np.zeros((2, 8, 8), np.float32)
    masks[0, :4] = 1.0
    masks[1, 4:] = 1.0
    both = viz.overlay_groups(img, masks, [0, 1], alpha=1.0, outline=False, dim_outside=0.0)
    assert tuple(both[0, 0]) == viz.group_rgb(0) and tuple(both[7, 7]) == viz.group_rgb(1)
    only0 = viz.overlay_groups(img, masks, [0], alpha=1.0, outline=False, dim_outside=0.0)
    assert tuple(only0[7, 7]) == (0, 0, 0)
    owner = viz.group_assignment(masks, [0, 1])
    assert owner[0, 0] == 0 and owner[7, 0] == 1
    heat = viz.overlay_heatmap(img, np.linspace(-1, 1, 64).reshape(8, 8))
    assert heat.shape == (8, 8, 3) and heat.dtype == np.uint8
    assert viz.upscale(img, 64).shape == (64, 64, 3)
    assert viz.to_png(img)[:8] == b"\x89PNG\r\n\x1a\n"


def test_theory_page_is_in_the_navigation():
    at = run(new_app())
    at.switch_page("explorer/pages/theory.py")
    run(at)
    assert at.markdown, "the Theory page drew nothing"
