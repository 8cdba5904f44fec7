"""Insertion/deletion curves against hand-computed values, and the removal baselines."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from sop import InputError
from sop.explainers import Explanation, explain
from sop.faithfulness import BASELINES, auc, gaussian_blur, group_sizes_of, insertion_deletion, \
    noisy_linear_impute, perturb, pixel_order


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


class LinearLogit(nn.Module):
    """logits = [sum(w * x), 0], so p(class 0) = sigmoid(w . x)."""

    def __init__(self, w):
        super().__init__()
        self.w = w

    def forward(self, x):
        z = (x * self.w).flatten(1).sum(1)
        return torch.stack([z, torch.zeros_like(z)], 1)


class OnePatch(nn.Module):
    """Reads only patch (row 1, col 2) of a 4x4 grid over an 8x8 image: logits = [10 * mean, 0]."""

    def forward(self, x):
        z = 10 * x[:, :, 2:4, 4:6].mean((1, 2, 3))
        return torch.stack([z, torch.zeros_like(z)], 1)


def explanation(attribution, **kw):
    return Explanation(method="custom", attribution=attribution.float(), target=0, seconds=0.0, **kw)


def test_linear_model_curves_match_hand_computation():
    w = torch.tensor([[3.0, 2.0], [1.0, -1.0]]).view(1, 1, 2, 2)
    x = torch.ones(1, 1, 2, 2)
    curves = insertion_deletion(LinearLogit(w), x, explanation(w[0, 0]), steps=4, grid=(2, 2))
    ins, dele = curves["insertion"], curves["deletion"]
    np.testing.assert_allclose(ins.fractions, [0, 0.25, 0.5, 0.75, 1])
    # pixels enter in the order 3, 2, 1, -1: partial sums 0, 3, 5, 6, 5
    want_ins = [sigmoid(z) for z in (0, 3, 5, 6, 5)]
    # deleting in the same order leaves 5, 2, 0, -1, 0
    want_del = [sigmoid(z) for z in (5, 2, 0, -1, 0)]
    np.testing.assert_allclose(ins.scores, want_ins, rtol=1e-6)
    np.testing.assert_allclose(dele.scores, want_del, rtol=1e-6)
    trap = lambda s: 0.25 * (s[0] / 2 + s[1] + s[2] + s[3] + s[4] / 2)
    assert ins.auc == pytest.approx(trap(want_ins), rel=1e-6)
    assert dele.auc == pytest.approx(trap(want_del), rel=1e-6)
    assert ins.target == dele.target == 0


@pytest.mark.parametrize("first", [True, False])
def test_one_patch_model_auc(first):
    attribution = torch.zeros(8, 8)
    if first:
        attribution[2:4, 4:6] = 1.0   # the patch the model reads is ranked first
    else:
        attribution += 1.0
        attribution[2:4, 4:6] = -1.0  # ... or last
    x = torch.ones(1, 1, 8, 8)
    curves = insertion_deletion(OnePatch(), x, explanation(attribution), steps=16, grid=(4, 4))
    s, half = sigmoid(10), 0.5
    if first:
        want_ins = (half + s) / 2 / 16 + s * 15 / 16
        want_del = (s + half) / 2 / 16 + half * 15 / 16
    else:
        want_ins = half * 15 / 16 + (half + s) / 2 / 16
        want_del = s * 15 / 16 + (s + half) / 2 / 16
    assert curves["insertion"].auc == pytest.approx(want_ins, rel=1e-6)
    assert curves["deletion"].auc == pytest.approx(want_del, rel=1e-6)


def test_grouped_sop_curve_uses_scored_groups_in_score_order_then_the_rest():
    groups = torch.zeros(3, 8, 8)
    groups[0, 0:4, 0:4] = 0.5       # 16 pixels, score 0.2
    groups[1, 2:4, 4:6] = 1.0       # the patch the model reads, score 0.8 -> first
    groups[1, 0:2, 0:2] = 0.3       # overlaps group 0: counted once
    groups[2, 6:8, 6:8] = 1.0       # score 0: not a step of its own
    exp = explanation(torch.zeros(8, 8), groups=groups, scores=torch.tensor([0.2, 0.8, 0.0]))
    curves = insertion_deletion(OnePatch(), torch.ones(1, 1, 8, 8), exp, mode="grouped", grid=(4, 4))
    ins = curves["insertion"]
    np.testing.assert_allclose(ins.fractions, [0, 8 / 64, 20 / 64, 1])
    s = sigmoid(10)
    np.testing.assert_allclose(ins.scores, [0.5, s, s, s], rtol=1e-6)
    np.testing.assert_allclose(curves["deletion"].scores, [s, 0.5, 0.5, 0.5], rtol=1e-6)
    assert group_sizes_of(exp) == [8, 12]


def test_grouped_per_pixel_method_matches_given_sizes_or_equal_chunks():
    torch.manual_seed(0)
    model, x = OnePatch(), torch.randn(1, 1, 8, 8)
    exp = explanation(torch.randn(8, 8))
    sized = insertion_deletion(model, x, exp, mode="grouped", group_sizes=[8, 12], grid=(4, 4))
    np.testing.assert_allclose(sized["insertion"].fractions, [0, 8 / 64, 20 / 64, 1])
    equal = insertion_deletion(model, x, exp, mode="grouped", num_groups=4, grid=(4, 4))
    np.testing.assert_allclose(equal["deletion"].fractions, [0, 0.25, 0.5, 0.75, 1])
    # with the chunks at the pixel curve's step positions, the two curves coincide
    pixel = insertion_deletion(model, x, exp, mode="pixel", steps=4, grid=(4, 4))
    np.testing.assert_allclose(pixel["insertion"].scores, equal["insertion"].scores)


def test_pixel_order_ranks_patches_by_summed_attribution():
    a = torch.zeros(4, 4)
    a[2:4, 0:2] = torch.tensor([[5.0, -4.0], [0.0, 0.0]])  # patch 2 sums to 1
    a[0:2, 2:4] = 0.9                                      # patch 1 sums to 3.6: first
    order = pixel_order(a, (2, 2))
    first_patch = {int(i) // 4 // 2 * 2 + int(i) % 4 // 2 for i in order[:4]}
    second_patch = {int(i) // 4 // 2 * 2 + int(i) % 4 // 2 for i in order[4:8]}
    assert first_patch == {1} and second_patch == {2}


@pytest.mark.parametrize("sop_model", [True, False])
def test_batched_equals_unbatched_and_auc_bounds(tiny_vit_sop, sop_model):
    torch.manual_seed(0)
    model = tiny_vit_sop if sop_model else tiny_vit_sop.backbone
    x = torch.randn(1, 3, 32, 32)
    exp = explain(tiny_vit_sop, x, "sop")
    for mode in ("pixel", "grouped"):
        big = insertion_deletion(model, x, exp, mode=mode, steps=8, batch_size=64, keep_inputs=True)
        one = insertion_deletion(model, x, exp, mode=mode, steps=8, batch_size=1)
        for kind in ("insertion", "deletion"):
            np.testing.assert_allclose(big[kind].scores, one[kind].scores, atol=1e-5)
            c = big[kind]
            assert 0.0 <= c.auc <= 1.0 and ((c.scores >= 0) & (c.scores <= 1)).all()
            assert c.fractions[0] == 0 and c.fractions[-1] == 1 and (np.diff(c.fractions) >= 0).all()
            assert c.auc == pytest.approx(auc(c.fractions, c.scores))
            assert c.inputs.shape == (len(c.fractions), 3, 32, 32)
        torch.testing.assert_close(big["deletion"].inputs[0], x[0])
        torch.testing.assert_close(big["insertion"].inputs[-1], x[0])
        assert (big["insertion"].inputs[0] == 0).all()  # zero baseline: everything removed


def test_target_is_the_prediction_unless_given():
    w = torch.full((1, 1, 2, 2), -1.0)   # predicts class 1 on x = 1
    x = torch.ones(1, 1, 2, 2)
    exp = explanation(torch.ones(2, 2))
    assert insertion_deletion(LinearLogit(w), x, exp, steps=2, grid=(2, 2))["insertion"].target == 1
    forced = insertion_deletion(LinearLogit(w), x, exp, steps=2, grid=(2, 2), target=0)["insertion"]
    assert forced.target == 0 and forced.scores[-1] == pytest.approx(sigmoid(-4))


def test_zero_and_blur_baselines_fill_removed_pixels():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 16, 16)
    keep = torch.zeros(2, 16, 16, dtype=torch.bool)
    keep[0, :, :8] = True
    zero = perturb(x, keep, "zero")
    assert (zero[0, :, :, 8:] == 0).all() and torch.equal(zero[0, :, :, :8], x[0, :, :, :8])
    assert (zero[1] == 0).all()
    blur = perturb(x, keep, "blur", grid=(4, 4))     # sigma = one patch = 4 px
    blurred = gaussian_blur(x, 4.0)[0]
    torch.testing.assert_close(blur[1], blurred)
    torch.testing.assert_close(blur[0, :, :, :8], x[0, :, :, :8])
    assert blurred.std() < 0.5 * x.std()              # detail is gone ...
    const = torch.full((1, 3, 16, 16), 0.7)
    torch.testing.assert_close(gaussian_blur(const, 4.0), const)  # ... but a flat image stays flat


def test_noisy_linear_fills_a_pixel_with_its_neighbours_weighted_mean():
    torch.manual_seed(0)
    x = torch.randn(2, 9, 9)
    removed = torch.zeros(9, 9, dtype=torch.bool)
    removed[4, 4] = True
    out = noisy_linear_impute(x, removed, generator=torch.Generator().manual_seed(0))
    direct = x[:, 3, 4] + x[:, 5, 4] + x[:, 4, 3] + x[:, 4, 5]
    diagonal = x[:, 3, 3] + x[:, 3, 5] + x[:, 5, 3] + x[:, 5, 5]
    want = direct / 6 + diagonal / 12
    assert (out[:, 4, 4] - want).abs().max() < 0.05     # noise std is 0.01
    assert not torch.equal(out[:, 4, 4], want)          # ... and the noise is there
    assert torch.equal(out[:, ~removed], x[:, ~removed])


def test_noisy_linear_reconstructs_a_ramp_through_a_hole():
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    ramp = (0.1 * yy - 0.05 * xx).expand(3, 16, 16).clone()
    removed = torch.zeros(16, 16, dtype=torch.bool)
    removed[4:12, 5:11] = True
    out = noisy_linear_impute(ramp, removed, generator=torch.Generator().manual_seed(0))
    err = (out - ramp)[:, removed]
    assert err.abs().max() < 0.05 and 0.005 < err.std() < 0.02  # linear fill + N(0, 0.01^2)
    everything = noisy_linear_impute(ramp, torch.ones(16, 16, dtype=torch.bool))
    assert everything.abs().max() < 0.06                          # nothing left: the mean colour


def test_noisy_linear_curve_and_every_baseline_runs(tiny_vit_sop):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    exp = explain(tiny_vit_sop, x, "sop")
    for baseline in BASELINES:
        c = insertion_deletion(tiny_vit_sop, x, exp, steps=4, baseline=baseline, keep_inputs=True)
        assert torch.isfinite(c["insertion"].inputs).all() and 0 <= c["insertion"].auc <= 1
        torch.testing.assert_close(c["deletion"].inputs[0], x[0])


@pytest.mark.parametrize("mode", ["pixel", "grouped"])
def test_a_curve_rebuilds_every_step_input_bit_for_bit_from_its_packed_masks(tiny_vit_sop, mode):
    """What the app shows at a step (`Curve.input_at`) is exactly what the model was fed, for every
    baseline (ROAD's noise included), while the curve keeps only 1 bit a pixel a step."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    exp = explain(tiny_vit_sop, x, "sop")
    for baseline in BASELINES:
        kept = insertion_deletion(tiny_vit_sop, x, exp, mode=mode, steps=6, baseline=baseline, keep_inputs=True)
        light = insertion_deletion(tiny_vit_sop, x, exp, mode=mode, steps=6, baseline=baseline)
        for kind in ("insertion", "deletion"):
            c = light[kind]
            assert c.inputs is None
            assert c.removal.kept_bits.nbytes == math.ceil(len(c.fractions) * 32 * 32 / 8)
            np.testing.assert_array_equal(c.scores, kept[kind].scores)
            for step in range(len(c.fractions)):
                assert torch.equal(c.input_at(x, step), kept[kind].inputs[step]), (baseline, kind, step)
    with pytest.raises(InputError, match="step"):
        light["insertion"].input_at(x, len(light["insertion"].fractions))


def test_bad_arguments_are_refused():
    x = torch.ones(1, 1, 2, 2)
    model = LinearLogit(torch.ones(1, 1, 2, 2))
    with pytest.raises(InputError, match="baseline"):
        insertion_deletion(model, x, explanation(torch.ones(2, 2)), baseline="mean")
    with pytest.raises(InputError, match="mode"):
        insertion_deletion(model, x, explanation(torch.ones(2, 2)), mode="blocks")
    with pytest.raises(InputError, match="attribution shape"):
        insertion_deletion(model, x, explanation(torch.ones(3, 3)))


def test_curves_and_explanations_run_in_eval_mode_and_restore_the_model_mode():
    """One context manager (sop.explainers.eval_mode) for both: dropout off inside, the mode restored."""
    from sop.explainers import eval_mode
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(64, 2)).train()
    x = torch.rand(1, 1, 8, 8)
    exp = explanation(torch.rand(8, 8))
    a = insertion_deletion(model, x, exp, grid=(4, 4), steps=4)
    b = insertion_deletion(model, x, exp, grid=(4, 4), steps=4)
    np.testing.assert_array_equal(a["insertion"].scores, b["insertion"].scores)  # no dropout noise
    assert model.training and model[1].training
    explain(model, x, "occlusion", grid=(4, 4))
    assert model.training and model[1].training
    model.eval()
    model[1].train()  # a half-eval model: eval inside, and back to eval (its top-level mode) after
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert not model.training
