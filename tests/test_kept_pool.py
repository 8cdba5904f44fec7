"""The pixel adapter's `pool="kept"` option (issue 13's lensing experiment): a group's CNN features
averaged only over the feature-map positions its mask keeps.  Real forward passes on a timm ConvNeXt
of the size the lensing experiment used (66x66 maps -> a 2x2 feature map; the embedded lensing model
has since moved to a ViT, docs/lensing.md), with seeded random weights: the properties tested hold
for any weights."""
import pytest
import torch
from torch import nn

from sop.adapters import PixelMaskAdapter
from sop.errors import InputError


@pytest.fixture(scope="module")
def twin():
    import timm
    torch.manual_seed(0)
    return timm.create_model("test_convnext", num_classes=2, in_chans=1).eval()


def _adapters(backbone):
    kw = dict(img_size=(66, 66), in_chans=1, grid=(11, 11), context=2)
    return (PixelMaskAdapter(backbone, **kw).eval(), PixelMaskAdapter(backbone, pool="kept", **kw).eval())


def _maps(n=3):
    return torch.randn(n, 1, 66, 66, generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def test_kept_pool_on_an_all_ones_mask_is_the_plain_backbone(twin):
    full, kept = _adapters(twin)
    x = _maps()
    ones = torch.ones(len(x), 2, 121)
    emb_k, out_k = kept.forward_groups(x, ones)
    emb_f, out_f = full.forward_groups(x, ones)
    plain = twin(x)
    for g in range(2):
        torch.testing.assert_close(out_k[:, g], plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(emb_k, emb_f, rtol=1e-5, atol=1e-6)
    # The twin's own path (the whole map) is the same under both pools.
    torch.testing.assert_close(kept.forward_full(x), full.forward_full(x))


@torch.no_grad()
def test_kept_pool_averages_the_feature_map_over_the_kept_share_of_each_position(twin):
    _, kept = _adapters(twin)
    x = _maps(2)
    masks = torch.zeros(2, 1, 121)
    masks[0, 0, :11 * 3] = 1                        # the top three patch rows (18 of 66 pixel rows)
    masks[1, 0, [0, 1, 11, 12, 60, 120]] = 1        # scattered patches
    _, out = kept.forward_groups(x, masks)
    pix = kept.pixel_masks(masks, (66, 66))[:, 0]   # (2, 66, 66)
    feats = twin.forward_features(x * pix[:, None])  # (2, C, 2, 2): each position covers 33x33 pixels
    h, w = feats.shape[-2:]
    for i in range(2):
        # By hand: weight of a position = the share of its 33x33 pixel block the mask keeps.
        weight = torch.tensor([[float(pix[i, 33 * r:33 * r + 33, 33 * c:33 * c + 33].mean()) for c in range(w)]
                               for r in range(h)])
        pooled = (feats[i] * weight).sum((-2, -1)) / weight.sum()
        want = twin.forward_head(pooled[None, :, None, None])
        torch.testing.assert_close(out[i, 0], want[0], rtol=1e-4, atol=1e-5)
    # The top-rows group keeps nothing of the bottom positions: plain pooling would dilute it.
    full, _ = _adapters(twin)
    assert not torch.allclose(full.forward_groups(x, masks)[1], out, atol=1e-3)


@torch.no_grad()
def test_the_pool_is_recorded_in_the_config_and_survives_a_checkpoint(tmp_path, twin):
    from sop.checkpoint import load, save
    from sop.model import create_model
    torch.manual_seed(0)
    model = create_model("test_convnext", num_classes=2, img_size=(66, 66), in_chans=1, group_gen="patch",
                         adapter_kwargs=dict(grid=(11, 11), context=2, pool="kept")).eval()
    assert model.adapter.pool == "kept"
    save(model, tmp_path / "kept.safetensors")
    again = load(tmp_path / "kept.safetensors").eval()
    assert again.config.adapter_kwargs["pool"] == "kept" and again.adapter.pool == "kept"
    x = _maps(2)
    torch.testing.assert_close(again(x).logits, model(x).logits)
    # Default unchanged: no pool key means the backbone's own head.
    assert create_model("test_convnext", num_classes=2, img_size=(66, 66), in_chans=1,
                        adapter_kwargs=dict(grid=(11, 11))).adapter.pool == "full"


def test_bad_pool_values_get_clear_errors(twin):
    with pytest.raises(InputError, match="unknown pool 'mean'"):
        PixelMaskAdapter(twin, img_size=(66, 66), in_chans=1, grid=(11, 11), pool="mean")
    plain = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))   # no spatial feature map
    with pytest.raises(InputError, match="needs a timm CNN"):
        PixelMaskAdapter(plain, img_size=(4, 4), in_chans=1, grid=(2, 2), pool="kept")


def test_train_cli_records_pool_in_the_adapter_settings(monkeypatch, tmp_path):
    import argparse

    import sop.train
    from sop.commands import train as train_cmd
    seen = {}
    monkeypatch.setattr(sop.train, "train_pair", lambda preset, out, **kw: seen.update(preset) or {"test": {}})
    parser = argparse.ArgumentParser()
    train_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--preset", "digits", "--pool", "kept", "--no-pin", "--out", str(tmp_path / "m")])
    assert args.func(args) == 0
    assert seen["adapter_kwargs"] == dict(grid=(8, 8), context=2, pool="kept")


def test_an_adapter_setting_the_adapter_does_not_take_is_named(tmp_path):
    """`train --pool kept` on the lensing preset (a ViT behind token dropping) gives a clear error,
    not a TypeError from inside the adapter's constructor."""
    from sop.errors import ConfigError
    from sop.model import create_model
    vit = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, global_pool="avg")
    with pytest.raises(ConfigError, match=r"the 'vit' adapter takes no setting 'pool'; its settings: token_layer"):
        create_model("vit_tiny_patch16_224", num_classes=2, img_size=(32, 32), in_chans=1, backbone_kwargs=vit,
                     adapter_kwargs=dict(pool="kept"))


def test_training_refuses_such_a_setting_before_the_first_stage(monkeypatch, tmp_path):
    """The lensing preset's backbone and adapter (on the shipped digits data, to stay cheap) with a
    pixel-adapter setting: refused before stage 1 starts, not after the twin has trained."""
    from sop import train
    from sop.errors import ConfigError
    from sop.presets import PRESETS
    monkeypatch.setattr(train, "_backbone_stage", lambda *a, **k: pytest.fail("stage 1 must not start"))
    preset = dict(PRESETS["lensing"], dataset="digits", adapter_kwargs=dict(pool="kept"))
    with pytest.raises(ConfigError, match="takes no setting 'pool'"):
        train.train_pair(preset, tmp_path / "m")
