"""The live Explain page: progressive curves (coarse, then refined), the library's progress
callback, and the coarse default for large patch grids."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sop.explainers import explain
from sop.faithfulness import insertion_deletion

from conftest import TINY_VIT  # tests/ is on pytest's pythonpath
from test_app import lib_model, metric, new_app, run, sample, texts

from explorer import compute


def test_progress_callback_reports_every_batch_and_changes_nothing(tiny_vit_sop):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 32, 32)
    exp = explain(tiny_vit_sop, x, "sop")
    seen: list[float] = []
    with_cb = insertion_deletion(tiny_vit_sop, x, exp, steps=8, batch_size=5, progress=seen.append)
    plain = insertion_deletion(tiny_vit_sop, x, exp, steps=8, batch_size=5)
    # 2 * (8 + 1) = 18 inputs, of which 16 differ (insertion's last and first are deletion's first
    # and last), in batches of 5: four calls, increasing, ending at 1
    assert seen == pytest.approx([5 / 16, 10 / 16, 15 / 16, 1.0])
    for kind in ("insertion", "deletion"):
        np.testing.assert_allclose(with_cb[kind].scores, plain[kind].scores, atol=1e-6)


def test_progress_callback_can_stop_the_work(tiny_vit_sop):
    x = torch.randn(1, 3, 32, 32)
    exp = explain(tiny_vit_sop, x, "sop")

    class Stop(Exception):
        pass

    def stop(p: float) -> None:
        raise Stop

    with pytest.raises(Stop):
        insertion_deletion(tiny_vit_sop, x, exp, steps=8, batch_size=4, progress=stop)


def test_curve_schedule_is_coarse_then_fine():
    assert compute.curve_schedule("pixel", 16) == [compute.COARSE_STEPS, 16]
    assert compute.curve_schedule("pixel", compute.COARSE_STEPS) == [compute.COARSE_STEPS]
    assert compute.curve_schedule("grouped", 16) == [16]


def test_refined_curve_equals_the_library_at_the_chosen_steps():
    at = run(new_app(model="digits", input="test:4", steps="24"))
    x, _ = sample("digits", 4)
    model = lib_model("digits")
    curves = insertion_deletion(model, x, explain(model, x, "sop"), steps=24)
    assert metric(at, "Insertion AUC") == f"{curves['insertion'].auc:.3f}"
    assert metric(at, "Deletion AUC") == f"{curves['deletion'].auc:.3f}"
    assert "Curves at 24 steps." in texts(at)
    # the small (8x8) grid offers no one-patch toggle: its slider reaches one patch a step
    assert not [t for t in at.toggle if t.key == "curve_fine"]


def grid9_checkpoint_and_photo(tmp_path):
    import sop
    torch.manual_seed(0)
    kw = dict(TINY_VIT, img_size=72, patch_size=8)  # a 9x9 grid: 81 patches > 64
    model = sop.create_model("vit_tiny_patch16_224", num_classes=3, img_size=(72, 72), in_chans=3,
                             backbone_kwargs=kw, num_groups=4, group_heads=1, group_dim=16,
                             class_names=["a", "b", "c"]).eval()
    path = sop.save(model, tmp_path / "grid9_sop.safetensors")
    from PIL import Image
    img = Image.fromarray((np.random.default_rng(0).random((60, 90, 3)) * 255).astype(np.uint8))
    png = tmp_path / "photo.png"
    img.save(png)
    return path, png


def test_large_grid_defaults_to_the_coarse_schedule(tmp_path):
    path, png = grid9_checkpoint_and_photo(tmp_path)
    at = run(new_app(model=str(path), input="upload"))
    at.file_uploader(key="upload_file").upload(png.name, png.read_bytes(), "image/png")
    run(at)
    fine = at.toggle(key="curve_fine")
    assert fine.label == "Curves at one-patch resolution (81 steps)" and fine.value is False
    assert "Curves at 16 steps." in texts(at)
    fine.set_value(True)
    run(at)
    assert "Curves at 81 steps." in texts(at)
    assert at.query_params["steps"] == "16" and at.query_params["fine"] == "1"
    at.toggle(key="curve_fine").set_value(False)
    run(at)
    link = [c.value for c in at.sidebar.code]
    assert link and "fine=" not in link[0] and "steps=16" in link[0]


def test_a_link_reopens_one_patch_curves(tmp_path):
    path, png = grid9_checkpoint_and_photo(tmp_path)
    at = run(new_app(model=str(path), input="upload", fine="1"))
    at.file_uploader(key="upload_file").upload(png.name, png.read_bytes(), "image/png")
    run(at)
    assert at.toggle(key="curve_fine").value is True
    assert "Curves at 81 steps." in texts(at)
    assert at.query_params["fine"] == "1"


def test_downloads_reuse_the_cached_curves(monkeypatch):
    """The figure and JSON downloads read SOP's curves through compute.get_curves: what the page drew
    is not recomputed, and what a download computes is cached for the next one."""
    from explorer import export
    from explorer.inputs import ModelInput
    from explorer.models import load_spec, spec_for_embedded
    lm = load_spec(spec_for_embedded("digits"))
    x, y = sample("digits", 7)
    mi = ModelInput("sample", x, compute.tensor_key(x), "test sample #7", y, "test", 7)
    exp = compute.get_explanation(lm, x, "sop", x_key=mi.key)
    shown = compute.get_curves(lm, x, exp, mode="pixel", steps=12, baseline="blur", x_key=mi.key)  # the page's
    calls: list[str] = []
    real = compute.insertion_deletion

    def counting(*args, **kwargs):
        calls.append(kwargs["mode"])
        return real(*args, **kwargs)

    monkeypatch.setattr(compute, "insertion_deletion", counting)
    first = export.sop_curve_pairs(lm, mi, None, baseline="blur", steps=12)
    assert calls == ["grouped"] and first["pixel"]["insertion"].auc == shown["insertion"].auc
    fwd = compute.sop_forward(lm, x, mi.key)
    pdf = export.explanation_figure_bytes(lm, mi, fwd, {}, "pdf", baseline="blur", steps=12)
    assert pdf.startswith(b"%PDF") and calls == ["grouped"]  # both kinds cached now
    want = insertion_deletion(lm.model, x, explain(lm.model, x, "sop"), mode="grouped", baseline="blur")
    assert first["grouped"]["deletion"].auc == pytest.approx(want["deletion"].auc, abs=1e-6)


def test_curves_start_from_the_pages_forward_pass():
    """The untouched input's outputs come from the page's SOP forward pass (no second pass)."""
    from explorer.models import load_spec, spec_for_embedded
    from sop.explainers import model_grid
    from sop.faithfulness import memo_key
    lm = load_spec(spec_for_embedded("digits"))
    x, _ = sample("digits", 11)
    key = compute.tensor_key(x)
    fwd = compute.sop_forward(lm, x, key)
    exp = compute.get_explanation(lm, x, "sop", x_key=key)
    curves = compute.get_curves(lm, x, exp, mode="pixel", steps=4, baseline="zero", x_key=key)
    memo = compute.curve_memo(lm.key, key)
    assert len(memo) == 8  # 2 x 4 distinct inputs, of which x came from the forward pass
    full = memo[memo_key(torch.ones(x.shape[-2:], dtype=torch.bool), "zero", None, model_grid(lm.model))]
    assert torch.equal(full, torch.from_numpy(fwd.logits).float())
    assert curves["deletion"].scores[0] == pytest.approx(float(fwd.probs[curves["deletion"].target]))
