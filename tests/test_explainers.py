"""Every explainer: shapes, finiteness, closed-form cases, settings, and the embedded models."""
import pytest
import torch
from torch import nn

from sop import InputError
from sop.explainers import METHODS, Explanation, default_settings, explain, patch_ids
from sop.methods import get_method

FAST = {"lime": dict(n_samples=60), "kernelshap": dict(n_samples=60), "rise": dict(n_masks=64),
        "ig": dict(n_steps=8)}


class PatchLinear(nn.Module):
    """logits = [sum_p v_p * mean(x over patch p), 0] on a 4x4 grid of 2x2 patches (8x8, 1 channel)."""

    def __init__(self, v):
        super().__init__()
        self.v = v  # (16,)

    def contributions(self, x):
        return torch.nn.functional.avg_pool2d(x, 2).flatten(1) * self.v  # (B, 16)

    def forward(self, x):
        z = self.contributions(x).sum(1)
        return torch.stack([z, torch.zeros_like(z)], 1)


def per_pixel(patch_values):
    return patch_values[patch_ids((4, 4), (8, 8))]


@pytest.fixture
def linear_case():
    torch.manual_seed(0)
    v = torch.randn(16)
    x = torch.rand(1, 1, 8, 8) + 0.5
    return PatchLinear(v), x


def test_default_settings_are_documented_and_copied():
    assert set(METHODS) == {"sop", "lime", "kernelshap", "ig", "gradcam", "rise", "occlusion"}
    assert default_settings("lime")["n_samples"] == 1000
    assert default_settings("kernelshap")["n_samples"] == 1000
    assert default_settings("ig")["n_steps"] == 50
    assert default_settings("rise")["n_masks"] == 1000
    default_settings("lime")["n_samples"] = 1                 # a copy: the defaults stay put
    assert default_settings("lime")["n_samples"] == 1000
    with pytest.raises(InputError, match="unknown method"):
        default_settings("shap")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_a_finite_map_on_sop_and_plain_models(tiny_vit_sop, method):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    models = [tiny_vit_sop] if method == "sop" else [tiny_vit_sop, tiny_vit_sop.backbone]
    for model in models:
        seen = []
        exp = explain(model, x, method, progress=seen.append, **FAST.get(method, {}))
        assert isinstance(exp, Explanation) and exp.method == method
        assert exp.attribution.shape == (32, 32) and exp.attribution.dtype == torch.float32
        assert torch.isfinite(exp.attribution).all()
        assert 0 <= exp.target < 5 and exp.seconds >= 0
        assert seen[-1] == 1.0 and all(a <= b for a, b in zip(seen, seen[1:]))
        out = model(x)
        pred = int((out.logits if hasattr(out, "logits") else out).argmax())
        assert exp.target == pred
    assert model.training is False


def test_progress_is_reported_before_each_batch_and_before_the_surrogate_fit(tiny_vit_sop, monkeypatch):
    """The app's Cancel is seen at a progress call: one must come before the first forward pass,
    before every batch of perturbed inputs and before LIME's surrogate fit (its last step)."""
    from captum._utils.models.linear_model import SkLearnRidge
    events: list[tuple[str, float]] = []
    fit = SkLearnRidge.fit

    def recorded_fit(self, *args, **kwargs):
        events.append(("fit", 0))
        return fit(self, *args, **kwargs)
    monkeypatch.setattr(SkLearnRidge, "fit", recorded_fit)
    hook = tiny_vit_sop.register_forward_pre_hook(lambda _m, inputs: events.append(("forward", inputs[0].shape[0])))
    try:
        explain(tiny_vit_sop, torch.randn(1, 3, 32, 32), "lime", n_samples=60, batch_size=20,
                progress=lambda f: events.append(("progress", f)))
    finally:
        hook.remove()
    kinds = [kind for kind, _ in events]
    shares = [f for kind, f in events if kind == "progress"]
    assert kinds[0] == "progress" and shares[0] == 0.0       # before any forward pass (even the target's)
    assert shares[-1] == 1.0 and kinds[-1] == "progress"      # 1.0 once, at the end
    assert all(0.0 <= f < 1.0 for f in shares[:-1])
    assert all(a <= b for a, b in zip(shares, shares[1:]))   # monotone
    batches = [i for i, (kind, n) in enumerate(events) if kind == "forward" and n == 20]
    assert len(batches) == 3
    assert all(kinds[i - 1] == "progress" for i in batches)   # a progress call right before each batch
    assert all(kinds[i + 1] == "progress" for i in batches)   # and right after it
    [fit_at] = [i for i, kind in enumerate(kinds) if kind == "fit"]
    assert fit_at > batches[-1] and kinds[fit_at - 1] == "progress"


def test_sop_map_is_the_score_weighted_sum_of_its_groups(tiny_vit_sop):
    x = torch.randn(1, 3, 32, 32)
    exp = explain(tiny_vit_sop, x, "sop")
    out = tiny_vit_sop(x)
    torch.testing.assert_close(exp.groups, out.pixel_masks[0])
    torch.testing.assert_close(exp.scores, out.group_scores[0])
    torch.testing.assert_close(exp.attribution, (out.group_scores[0, :, None, None] * out.pixel_masks[0]).sum(0))
    assert explain(tiny_vit_sop, x, "sop", target=3).target == 3


def test_kernelshap_and_occlusion_recover_patch_contributions_of_a_linear_model(linear_case):
    model, x = linear_case
    want = per_pixel(model.contributions(x)[0])
    shap = explain(model, x, "kernelshap", target=0, output="logit", n_samples=300, grid=(4, 4))
    torch.testing.assert_close(shap.attribution, want, atol=1e-3, rtol=1e-3)
    occ = explain(model, x, "occlusion", target=0, output="logit", grid=(4, 4))
    torch.testing.assert_close(occ.attribution, want, atol=1e-5, rtol=1e-5)


def test_lime_ranks_patches_of_a_linear_model(linear_case):
    model, x = linear_case
    want = model.contributions(x)[0]
    lime = explain(model, x, "lime", target=0, output="logit", n_samples=300, grid=(4, 4))
    got = lime.attribution[::2, ::2].flatten()
    assert int(got.argmax()) == int(want.argmax()) and int(got.argmin()) == int(want.argmin())
    assert torch.corrcoef(torch.stack([got, want]))[0, 1] > 0.95


def test_integrated_gradients_is_complete(linear_case):
    model, x = linear_case
    ig = explain(model, x, "ig", target=0)  # explains the probability, from the zero input
    p = model(x).softmax(-1)[0, 0] - model(torch.zeros_like(x)).softmax(-1)[0, 0]
    assert float(ig.attribution.sum()) == pytest.approx(float(p), rel=1e-3)


def test_rise_finds_the_patch_a_model_reads():
    class OnePatch(nn.Module):
        def forward(self, x):
            z = 20 * (x[:, 0, 2:4, 4:6].mean((1, 2)) - 0.5)  # p(class 0) moves with this patch only
            return torch.stack([z, torch.zeros_like(z)], 1)

    rise = explain(OnePatch(), torch.ones(1, 1, 8, 8), "rise", target=0, grid=(4, 4), n_masks=400)
    top = divmod(int(rise.attribution.argmax()), 8)
    assert 2 <= top[0] < 4 and 4 <= top[1] < 6


def test_gradcam_lights_up_the_activations_that_raise_the_target():
    class PooledCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 1, bias=False)
            with torch.no_grad():
                self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))

        def forward(self, x):
            z = torch.relu(self.conv(x)).mean((2, 3))  # channel 0 raises class 0, channel 1 class 1
            return z

    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 2:4, 4:6] = 1.0   # lights channel 0 here
    x[0, 0, 6:8, 0:2] = -1.0  # lights channel 1 there
    cam = explain(PooledCNN(), x, "gradcam", target=0, grid=(4, 4)).attribution
    assert cam[2:4, 4:6].min() > 0 and cam.sum() == pytest.approx(float(cam[2:4, 4:6].sum()))
    cam1 = explain(PooledCNN(), x, "gradcam", target=1, grid=(4, 4)).attribution
    assert cam1[6:8, 0:2].min() > 0 and cam1.sum() == pytest.approx(float(cam1[6:8, 0:2].sum()))


def test_random_methods_are_seeded_and_leave_the_global_rng_alone(tiny_vit_sop):
    x = torch.randn(1, 3, 32, 32)
    torch.manual_seed(123)
    a = explain(tiny_vit_sop.backbone, x, "lime", **FAST["lime"])
    after = torch.rand(1)
    torch.manual_seed(123)
    expected = torch.rand(1)
    b = explain(tiny_vit_sop.backbone, x, "lime", **FAST["lime"])
    assert torch.equal(after, expected)
    torch.testing.assert_close(a.attribution, b.attribution)
    c = explain(tiny_vit_sop.backbone, x, "rise", **FAST["rise"])
    torch.testing.assert_close(c.attribution, explain(tiny_vit_sop.backbone, x, "rise", **FAST["rise"]).attribution)


def test_bad_calls_are_refused(tiny_vit_sop):
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(InputError, match="SOPModel"):
        explain(tiny_vit_sop.backbone, x, "sop")
    with pytest.raises(InputError, match="unknown setting"):
        explain(tiny_vit_sop.backbone, x, "ig", n_samples=3)
    with pytest.raises(InputError, match="unknown method"):
        explain(tiny_vit_sop.backbone, x, "shap")
    with pytest.raises(InputError, match=r"\(1, C, H, W\)"):
        explain(tiny_vit_sop, torch.randn(2, 3, 32, 32), "sop")
    with pytest.raises(InputError, match="gradcam"):
        explain(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5)), x, "gradcam")


# ----------------------------------------------------------------------------- embedded models

def embedded_or_skip():
    from sop import embedded_models
    models = {m.name: m for m in embedded_models()}
    if not {"digits", "parts"} <= set(models):
        pytest.skip(f"embedded models not present under assets/models (found {sorted(models)})")
    return models


@pytest.mark.parametrize("name", ["digits", "parts"])
def test_every_method_runs_on_the_embedded_models(name):
    import sop
    from sop.data import load_split
    entry = embedded_or_skip()[name]
    model, backbone = sop.load(entry.sop_path), sop.load(entry.backbone_path)
    x = load_split(name, "test").dataset[0][0].unsqueeze(0)
    for method in METHODS:
        # default settings except the sample counts (same code path, a fifth of the time)
        budget = get_method(method).budget_setting  # n_samples, n_masks, n_steps
        small = {budget: default_settings(method)[budget] // 5} if budget else {}
        exp = explain(model if method == "sop" else backbone, x, method, **small)
        assert exp.attribution.shape == x.shape[-2:], method
        assert torch.isfinite(exp.attribution).all(), method
        if method == "gradcam":  # ReLU(sum of weighted channels) is legitimately all zero on some inputs
            assert (exp.attribution >= 0).all()
        else:
            assert exp.attribution.abs().sum() > 0, f"{method} gave an all-zero map"


def test_gradcam_skips_conv_maps_too_small_to_localise():
    from sop.explainers import _conv_for_gradcam
    wide, narrow = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 8, stride=8)
    # a small input: the last conv map is 1x1, so the last one that can localise is chosen
    assert _conv_for_gradcam({wide: torch.zeros(1, 4, 8, 8), narrow: torch.zeros(1, 4, 1, 1)}) is wide
    # an ImageNet-like input: the last conv's map is 8x8, the usual choice
    assert _conv_for_gradcam({wide: torch.zeros(1, 4, 64, 64), narrow: torch.zeros(1, 4, 8, 8)}) is narrow
    assert _conv_for_gradcam({wide: torch.zeros(1, 4, 2, 2), narrow: torch.zeros(1, 4, 1, 1)}) is narrow
    cnn = nn.Sequential(wide, nn.ReLU(), narrow, nn.Flatten(), nn.Linear(4, 3))
    cam = explain(cnn, torch.randn(1, 1, 8, 8), "gradcam", grid=(4, 4)).attribution
    assert cam.shape == (8, 8) and torch.isfinite(cam).all()
