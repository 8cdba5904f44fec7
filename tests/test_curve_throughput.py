"""The curve runner does no work twice: equal perturbed inputs run once, a memo carries inputs
across calls (coarse, then refined), the ViT adapter runs groups in length buckets without
gradients (same numbers), and the batch size follows the model's size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sop.explainers import explain
from sop.faithfulness import default_batch_size, insertion_deletion

from conftest import TINY_VIT  # tests/ is on pytest's pythonpath


class Counting(nn.Module):
    """Wraps a model and counts the inputs it is shown."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.seen = model, 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.model(x)

    @property
    def config(self):
        return self.model.config


@pytest.mark.parametrize("baseline, expected", [("zero", 2 * 8), ("blur", 2 * 8), ("noisy_linear", 2 * 9)])
def test_equal_inputs_run_once(tiny_vit_sop, baseline, expected):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    exp = explain(tiny_vit_sop, x, "sop")
    counted = Counting(tiny_vit_sop)
    curves = insertion_deletion(counted, x, exp, steps=8, baseline=baseline, grid=(4, 4), keep_inputs=True)
    assert counted.seen == expected
    # ... and the scores are those of every perturbed input, one at a time
    for kind in ("insertion", "deletion"):
        with torch.no_grad():
            one = torch.stack([tiny_vit_sop(curves[kind].inputs[i:i + 1]).probs[0] for i in range(9)])
        np.testing.assert_allclose(curves[kind].scores, one[:, curves[kind].target].numpy(), atol=1e-5)


def test_memo_runs_only_new_inputs_and_changes_nothing(tiny_vit_sop):
    torch.manual_seed(2)
    x = torch.randn(1, 3, 32, 32)
    exp = explain(tiny_vit_sop, x, "sop")
    counted, memo = Counting(tiny_vit_sop), {}
    insertion_deletion(counted, x, exp, steps=4, memo=memo)
    assert counted.seen == 8
    fine = insertion_deletion(counted, x, exp, steps=16, memo=memo)
    # 16 steps: 32 distinct inputs, of which the coarse call's 8 are remembered
    assert counted.seen == 8 + 32 - 8
    plain = insertion_deletion(tiny_vit_sop, x, exp, steps=16)
    for kind in ("insertion", "deletion"):
        np.testing.assert_allclose(fine[kind].scores, plain[kind].scores, atol=1e-5)
        assert fine[kind].auc == pytest.approx(plain[kind].auc, abs=1e-5)
    seen = counted.seen
    insertion_deletion(counted, x, exp, mode="grouped", memo=memo)  # empty and full inputs are known
    grouped_steps = len(plain["insertion"].scores)  # not the same sets, but x and nothing are shared
    assert counted.seen - seen <= 2 * grouped_steps - 2


def test_bucketed_token_dropping_equals_the_padded_pass():
    import sop
    torch.manual_seed(0)
    kw = dict(TINY_VIT, img_size=64, patch_size=8)  # 8x8 grid: groups up to 40 patches
    model = sop.create_model("vit_tiny_patch16_224", num_classes=4, img_size=(64, 64), in_chans=3,
                             backbone_kwargs=kw, num_groups=6, group_heads=2, group_dim=16,
                             max_group_frac=0.6).eval()
    x = torch.randn(4, 3, 64, 64)
    masks = torch.zeros(4, 6, 64)
    for b in range(4):
        for g in range(6):
            masks[b, g, torch.randperm(64)[: 1 + (b * 6 + g * 7) % 40]] = torch.rand(1).item() + 0.1
    with torch.enable_grad():
        emb_ref, logits_ref = model.adapter.forward_groups(x, masks)   # one padded pass
    with torch.inference_mode():
        emb, logits = model.adapter.forward_groups(x, masks)           # length buckets
    torch.testing.assert_close(emb, emb_ref.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, logits_ref.detach(), atol=1e-5, rtol=1e-5)


def test_batch_size_follows_model_size(tiny_vit_sop):
    def linear(n: int) -> nn.Module:  # n * n parameters, never allocated
        return nn.Linear(n, n, bias=False, device="meta")

    assert default_batch_size(tiny_vit_sop) == 64
    assert default_batch_size(linear(4000)) == 64   # 16 M parameter uses per input
    assert default_batch_size(linear(20000)) == 8   # 400 M: a ViT-S/16 SOP with G = 20
    assert default_batch_size(linear(70000)) == 1
