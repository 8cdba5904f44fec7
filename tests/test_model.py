"""SOP's invariants, checked on real forward passes."""
import pytest
import torch
from torch import nn

from sop import InputError, create_model


def test_logits_are_score_weighted_sum_of_group_logits(tiny_vit_sop):
    x = torch.randn(3, 3, 32, 32)
    out = tiny_vit_sop(x)
    manual = (out.group_scores.double().unsqueeze(-1) * out.group_logits.double()).sum(1)
    torch.testing.assert_close(out.logits.double(), manual, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.probs, out.logits.softmax(-1))


def test_sparsemax_outputs_are_on_the_simplex_and_sparse(tiny_vit_sop):
    x = torch.randn(4, 3, 32, 32)
    gen = tiny_vit_sop.group_gen
    with torch.no_grad():
        tokens = tiny_vit_sop.adapter.patch_tokens(x)
        att = gen.logits(tokens)
        k = gen.max_patches
        kth = att.topk(k, dim=-1).values[..., -1:]
        from entmax import sparsemax
        weights = sparsemax(att.masked_fill(att < kth, float("-inf")), dim=-1)
        out = tiny_vit_sop(x)
    for w in (weights, out.group_scores):
        assert (w >= 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    # groups never exceed max_patches, and some patches are outside every group row
    assert ((out.group_masks > 0).sum(-1) <= k).all()
    assert (out.group_masks == 0).any()
    assert torch.allclose(out.group_masks.amax(-1), torch.ones(4, 6))
    # scores become sparse when the selection logits are spread out
    tiny_vit_sop.group_select.log_scale.data.fill_(4.0)
    with torch.no_grad():
        assert (tiny_vit_sop(x).group_scores == 0).any()


def outside_pixels(adapter, masks, selected):
    """Pixel mask (B, 1, H, W) of pixels outside every group in `selected` (B, G)."""
    inside = (masks > 0) & selected.unsqueeze(-1)
    patch_in = inside.any(1).float().unsqueeze(1)  # (B, 1, N)
    return adapter.pixel_masks(patch_in, (32, 32)) == 0


@pytest.mark.parametrize("kind", ["vit", "pixel"])
def test_pixels_outside_selected_groups_do_not_change_the_logits(kind, tiny_vit_sop):
    torch.manual_seed(1)
    if kind == "vit":
        model = tiny_vit_sop
    else:
        cnn = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(8, 5))
        model = create_model(cnn, num_classes=5, img_size=(32, 32), in_chans=3, num_groups=6,
                             adapter_kwargs={"grid": (4, 4)}, max_group_frac=0.4).eval()
    model.group_select.log_scale.data.fill_(3.0)  # make some scores exactly zero
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        selected = out.group_scores > 0
        assert (~selected).any(), "test needs some unselected groups"
        # 1) pixels outside every group: always exactly invariant
        outside_all = outside_pixels(model.adapter, out.group_masks, torch.ones_like(selected))
        assert outside_all.any()
        x2 = torch.where(outside_all, torch.randn_like(x) * 5, x)
        again = model(x2, group_masks=out.group_masks)
        torch.testing.assert_close(again.logits, out.logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(again.group_scores, out.group_scores, rtol=0, atol=1e-6)
        # 2) pixels outside every *selected* group: invariant while the selection holds
        outside_sel = outside_pixels(model.adapter, out.group_masks, selected)
        x3 = torch.where(outside_sel, x + 0.05 * torch.randn_like(x), x)
        moved = model(x3, group_masks=out.group_masks)
        same_support = ((moved.group_scores > 0) == selected).all(-1)
        assert same_support.any()
        torch.testing.assert_close(moved.logits[same_support], out.logits[same_support], rtol=0, atol=1e-5)
        # ...and pixels inside a selected group do change them
        inside = ~outside_sel
        x4 = torch.where(inside, torch.randn_like(x) * 5, x)
        assert not torch.allclose(model(x4, group_masks=out.group_masks).logits, out.logits, atol=1e-3)


def test_token_dropping_equals_attention_masking(tiny_vit_sop):
    """The gathered short sequences give what the full sequence with masked keys gives."""
    vit = tiny_vit_sop.backbone
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        masks = tiny_vit_sop.groups(x)
        emb, logits = tiny_vit_sop.adapter.forward_groups(x, masks)
        b, g, n = masks.shape
        t = tiny_vit_sop.adapter._embed(x)
        t = t.unsqueeze(1).expand(-1, g, -1, -1).reshape(b * g, 1 + n, -1).clone()
        m = masks.reshape(b * g, n)
        t[:, 1:] = t[:, 1:] * m.unsqueeze(-1)
        keep = torch.cat([torch.ones(b * g, 1, dtype=torch.bool), m > 0], 1)
        bias = torch.zeros(keep.shape).masked_fill(~keep, float("-inf"))[:, None, None, :]
        for blk in vit.blocks:
            t = blk(t, attn_mask=bias)
        ref = vit.head(vit.fc_norm(vit.norm(t)[:, 0]))
    torch.testing.assert_close(logits.reshape(b * g, -1), ref, rtol=1e-4, atol=1e-5)


def test_gradients_reach_groupgen_groupselect_and_backbone(tiny_vit_sop):
    tiny_vit_sop.train()
    out = tiny_vit_sop(torch.randn(2, 3, 32, 32))
    nn.functional.cross_entropy(out.logits, torch.tensor([0, 1])).backward()
    for name in ("group_gen.key.weight", "group_gen.query", "group_select.key.weight", "group_select.query",
                 "adapter.backbone.head.weight", "adapter.backbone.patch_embed.proj.weight"):
        grad = dict(tiny_vit_sop.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("name,kwargs,adapter", [
    ("resnet18", {}, "pixel"),
    ("vit_tiny_patch16_224", dict(img_size=32, patch_size=16), "vit"),
    ("convnext_atto", {}, "pixel"),
])
def test_any_timm_model_name_wraps(name, kwargs, adapter):
    model = create_model(name, num_classes=3, img_size=(32, 32), backbone_kwargs=kwargs, num_groups=4).eval()
    assert model.adapter.adapter_name == adapter
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.logits.shape == (2, 3) and out.pixel_masks.shape == (2, 4, 32, 32)
    assert torch.isfinite(out.logits).all()


def test_plain_module_wraps():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(1 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 4))
    model = create_model(mlp, num_classes=4, img_size=(8, 8), in_chans=1, num_groups=3,
                         adapter_kwargs={"grid": (8, 8)}).eval()
    out = model(torch.randn(5, 1, 8, 8))
    assert out.group_masks.shape == (5, 3, 64) and out.logits.shape == (5, 4)


@pytest.mark.parametrize("bad,msg", [
    (torch.randn(3, 32, 32), "shape"),
    (torch.randn(1, 1, 32, 32), "shape"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.long), "floating"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.float64), "dtype"),
    (torch.full((1, 3, 32, 32), float("nan")), "NaN"),
    (torch.full((1, 3, 32, 32), float("inf")), "NaN or Inf"),
    (torch.zeros(1, 3, 32, 32, device="meta"), "device"),
    ([[1.0]], "torch.Tensor"),
])
def test_bad_tensors_get_clear_value_errors(tiny_vit_sop, bad, msg):
    with pytest.raises(InputError, match=msg):
        tiny_vit_sop(bad)
    assert issubclass(InputError, ValueError)


def test_unknown_backbone_name_is_a_clear_error():
    with pytest.raises(InputError, match="unknown backbone 'no_such_net'"):
        create_model("no_such_net", num_classes=2)


@pytest.mark.parametrize("context, reach", [(0, 0), (1, 1), (2, 2)])
def test_pixel_adapter_patch_tokens_see_context_patches_away(context, reach):
    """`context` 3x3 convolutions over the grid let a patch token depend on patches up to
    `context` cells away, and no further (digits uses 2 so groups can follow strokes)."""
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model = create_model(cnn, num_classes=3, img_size=(32, 32), in_chans=1,
                         adapter_kwargs={"grid": (8, 8), "context": context}).eval()
    x = torch.randn(1, 1, 32, 32)
    changed = x.clone()
    changed[..., 12:16, 12:16] += 1.0  # patch (3, 3) of the 8x8 grid
    with torch.no_grad():
        delta = (model.adapter.patch_tokens(changed) - model.adapter.patch_tokens(x)).abs().sum(-1)[0]
    moved = (delta > 1e-6).reshape(8, 8).nonzero().tolist()
    assert moved, "the changed patch must move its own token"
    assert max(max(abs(r - 3), abs(c - 3)) for r, c in moved) == reach


def test_an_adapter_missing_part_of_the_interface_is_refused_at_construction():
    from sop.adapters import BackboneAdapter

    class HalfDone(BackboneAdapter):
        def patch_tokens(self, x):
            return x

    with pytest.raises(TypeError, match="forward_groups"):
        HalfDone()
