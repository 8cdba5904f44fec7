"""The design-study knobs: each keeps SOP's invariants on real forward passes."""
import pytest
import torch

from sop import InputError, create_model, load, save
from sop.regularisers import area_penalty, group_penalty, ramp_factor, tv_penalty

from conftest import TINY_VIT


def tiny(**kw):
    torch.manual_seed(0)
    kw = dict(dict(num_groups=6, group_heads=2, group_dim=16, max_group_frac=0.4), **kw)
    return create_model("vit_tiny_patch16_224", num_classes=5, img_size=(32, 32), in_chans=3,
                        backbone_kwargs=TINY_VIT, **kw).eval()


def per_class_output(batch: int):
    """A per-class model with spread selection logits (exact zeros), and its output on random inputs."""
    model = tiny(group_select="per_class")
    model.group_select.log_scale.data.fill_(3.0)
    x = torch.randn(batch, 3, 32, 32)
    with torch.no_grad():
        return model, x, model(x)


def test_per_class_scores_make_up_each_class_logit():
    _, _, out = per_class_output(3)
    assert out.class_scores.shape == (3, 6, 5)
    torch.testing.assert_close(out.class_scores.sum(1), torch.ones(3, 5))
    manual = (out.class_scores.double() * out.group_logits.double()).sum(1)
    torch.testing.assert_close(out.logits.double(), manual, rtol=0, atol=1e-6)
    # group_scores are the predicted class's column; scores_for picks any class's
    pred = out.logits.argmax(-1)
    for b in range(3):
        torch.testing.assert_close(out.group_scores[b], out.class_scores[b, :, pred[b]])
        torch.testing.assert_close(out.scores_for(2)[b], out.class_scores[b, :, 2])
    assert (out.class_scores == 0).any(), "sparsemax over groups should give exact zeros per class"
    torch.testing.assert_close(out.selected, (out.class_scores > 0).any(-1))


def test_per_class_explanation_follows_the_target():
    from sop.explainers import explain
    model, x, out = per_class_output(1)
    for t in (0, 3):
        e = explain(model, x, "sop", target=t)
        torch.testing.assert_close(e.scores, out.class_scores[0, :, t])
        torch.testing.assert_close(e.attribution, (e.scores[:, None, None] * out.pixel_masks[0]).sum(0))


def test_authors_group_gen_gives_binary_top_k_groups_and_gated_logits():
    model = tiny(group_gen="patch", group_blur=1.0)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        masks, gates = model.group_gen.propose(model.adapter.patch_tokens(x))
        _, raw_logits = model.adapter.forward_groups(x, masks)
    k = model.group_gen.max_patches
    assert set(out.group_masks.unique().tolist()) <= {0.0, 1.0}
    assert ((out.group_masks > 0).sum(-1) == k).all()
    assert ((gates >= -1) & (gates <= 1)).all()
    torch.testing.assert_close(out.group_gates, gates)
    torch.testing.assert_close(out.group_logits, raw_logits)      # what each group alone predicts
    manual = ((out.group_scores * out.group_gates).unsqueeze(-1) * out.group_logits).sum(1)
    torch.testing.assert_close(out.logits, manual, rtol=0, atol=1e-6)
    # replaying the same groups and gates gives the same logits
    with torch.no_grad():
        again = model(x, group_masks=out.group_masks, group_gates=out.group_gates)
    torch.testing.assert_close(again.logits, out.logits)
    # gradients reach GroupGen through the gates although the masks are hard
    model.train()
    model(x).logits.sum().backward()
    assert model.group_gen.query.weight.grad.abs().sum() > 0


def test_blur_smooths_attention_over_the_grid():
    sharp, blurred = tiny(), tiny(group_blur=1.5)
    blurred.load_state_dict(sharp.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        tokens = sharp.adapter.patch_tokens(x)
        a, b = sharp.group_gen.logits(tokens), blurred.group_gen.logits(tokens)
    grid = sharp.adapter.grid

    def roughness(t):
        g = t.reshape(*t.shape[:2], *grid)
        return (g[..., 1:, :] - g[..., :-1, :]).abs().mean() + (g[..., :, 1:] - g[..., :, :-1]).abs().mean()
    assert roughness(b) < 0.6 * roughness(a)


def test_group_dropout_acts_in_training_only():
    model = tiny(group_dropout=0.5)
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(model(x).group_scores, ref.group_scores)   # eval: deterministic, no dropout
        model.train()
        torch.manual_seed(1)
        dropped = model(x)
    assert not torch.equal(dropped.group_scores, ref.group_scores)
    torch.testing.assert_close(dropped.group_scores.sum(-1), torch.ones(8))  # renormalised over kept groups


def test_penalties_measure_area_and_fragmentation():
    grid = (4, 4)
    blob = torch.zeros(1, 1, 16)
    blob[0, 0, [0, 1, 4, 5]] = 1            # a 2x2 square
    scattered = torch.zeros(1, 1, 16)
    scattered[0, 0, [0, 2, 8, 10]] = 1      # four isolated patches, same area
    s = torch.ones(1, 1)
    assert area_penalty(blob, s) == area_penalty(scattered, s) == 0.25
    assert tv_penalty(blob, s, grid) < tv_penalty(scattered, s, grid)
    assert tv_penalty(blob, s, grid) == pytest.approx(4 / 16)
    assert tv_penalty(scattered, s, grid) == pytest.approx(12 / 16)


def test_penalty_ramp_starts_at_zero_and_reaches_full_weight():
    assert ramp_factor(0, 10) == 0.0
    assert ramp_factor(5, 10) == 0.5
    assert ramp_factor(25, 10) == 1.0
    assert ramp_factor(0, 0) == 1.0          # no ramp: full weight from the first step


def test_penalties_train_groups_smaller():
    model = tiny(max_group_frac=1.0)
    model.train()
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if "group_gen" in n], lr=0.05)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 5, (8,))
    with torch.no_grad():
        before = area_penalty(model(x).group_masks, model(x).scores_for(y))
    for _ in range(30):
        out = model(x)
        loss = group_penalty(out, y, model.adapter.grid, area=1.0, tv=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = area_penalty(model(x).group_masks, model(x).scores_for(y))
    assert after < 0.7 * before


def test_design_knobs_round_trip_through_checkpoints(tmp_path):
    model = tiny(group_gen="patch", group_blur=0.5, group_select="per_class", group_dropout=0.2)
    path = save(model, tmp_path / "m.safetensors")
    again = load(path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = model(x), again(x)
    assert again.config.group_gen == "patch" and again.config.group_select == "per_class"
    assert torch.equal(a.logits, b.logits) and torch.equal(a.class_scores, b.class_scores)


@pytest.mark.parametrize("kw", [dict(group_gen="nope"), dict(group_select="x"), dict(group_dropout=1.0)])
def test_bad_design_settings_are_refused(kw):
    with pytest.raises(InputError):
        tiny(**kw)


@pytest.mark.parametrize("kw", [dict(group_gen="patch", group_spread=-1.0),
                                dict(group_gen="patch", group_spread=float("nan")), dict(group_spread=1.0)])
def test_bad_group_spread_is_refused_naming_the_field(kw):
    from sop import ConfigError
    with pytest.raises(ConfigError) as err:
        tiny(**kw)
    assert err.value.field == "group_spread"


def test_group_spread_makes_large_groups_differ():
    """Large top-k groups over identical logits are one and the same group; spread ones differ,
    the number of groups holding a patch evens out, and the sum stays exact."""
    same = dict(group_gen="patch", group_heads=1, max_group_frac=0.75)
    plain, spread = tiny(**same), tiny(**same, group_spread=4.0)
    spread.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    for model in (plain, spread):
        # one head, every anchor the same token: every group query sees the same logits
        model.group_gen.anchors.fill_(0)
    with torch.no_grad():
        a, b = plain(x), spread(x)
    k = plain.group_gen.max_patches
    assert ((b.group_masks > 0).sum(-1) == k).all()                  # same group size
    assert all(torch.equal(a.group_masks[:, g], a.group_masks[:, 0]) for g in range(6))
    overlap = torch.einsum("bgn,bhn->bgh", b.group_masks, b.group_masks) / k
    off_diagonal = overlap[:, ~torch.eye(6, dtype=torch.bool)]
    assert off_diagonal.max() < 1 and off_diagonal.mean() < 0.8
    held_plain, held = a.group_masks.sum(1), b.group_masks.sum(1)    # (B, N): groups holding each patch
    assert set(held_plain.unique().tolist()) == {0.0, 6.0}
    assert (held.std(-1) < 0.6 * held_plain.std(-1)).all() and (held.amin(-1) >= 1).all()
    manual = ((b.group_scores * b.group_gates).unsqueeze(-1) * b.group_logits).sum(1)
    torch.testing.assert_close(b.logits, manual, rtol=0, atol=1e-6)
    spread.train()
    spread(x).logits.sum().backward()                                # gradients still reach GroupGen
    assert spread.group_gen.query.weight.grad.abs().sum() > 0


def test_group_spread_round_trips_and_older_checkpoints_read_as_zero(tmp_path):
    import json
    from sop import read_config
    model = tiny(group_gen="patch", group_spread=2.0)
    again = load(save(model, tmp_path / "m.safetensors"))
    assert again.config.group_spread == 2.0 and again.group_gen.spread == 2.0
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x).group_masks, again(x).group_masks)
    old = json.loads(read_config(tmp_path / "m.safetensors").to_json())
    del old["group_spread"]
    from sop.config import SOPConfig
    assert SOPConfig.from_dict(old).group_spread == 0.0


@pytest.mark.parametrize("kw", [dict(group_select="per_class"), dict(group_gen="patch"), {}])
def test_explorer_contributions_add_up_to_each_logit(kw):
    """The Mistakes page splits a margin into per-group contributions; they must sum exactly."""
    from explorer.compute import Forward
    model = tiny(**kw)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32))
    f = Forward(out.probs[0].numpy(), out.logits[0].numpy(), out.group_scores[0].numpy(),
                out.group_logits[0].numpy(), out.pixel_masks[0].numpy(), out.group_masks[0].numpy(),
                class_scores=None if out.class_scores is None else out.class_scores[0].numpy(),
                gates=None if out.group_gates is None else out.group_gates[0].numpy())
    for k in range(5):
        assert f.contributions(k).sum() == pytest.approx(float(out.logits[0, k]), abs=1e-5)


def test_training_penalties_and_their_ramp_are_recorded(tmp_path):
    from sop.cli import main
    from sop import read_config
    assert main(["train", "--preset", "digits", "--backbone-epochs", "1", "--epochs", "1", "--groups", "4",
                 "--max-steps", "2", "--tv-weight", "0.5", "--area-weight", "0.25", "--penalty-ramp", "1.5",
                 "--no-pin", "--out", str(tmp_path / "m")]) == 0
    stage = read_config(tmp_path / "m_sop.safetensors").training["sop_stage"]
    assert (stage["tv_weight"], stage["area_weight"], stage["penalty_ramp_epochs"]) == (0.5, 0.25, 1.5)


def test_train_cli_sets_group_spread(tmp_path, capsys):
    from sop.cli import main
    from sop import read_config
    common = ["train", "--preset", "digits", "--backbone-epochs", "1", "--epochs", "1", "--groups", "4",
              "--max-steps", "2", "--no-pin", "--tv-weight", "0", "--area-weight", "0"]
    assert main(common + ["--group-gen", "patch", "--group-spread", "1.5", "--out", str(tmp_path / "m")]) == 0
    assert read_config(tmp_path / "m_sop.safetensors").group_spread == 1.5
    # the learned GroupGen has no top-k to spread: refused before any training, naming the setting
    assert main(common + ["--group-gen", "learned", "--group-spread", "1", "--out", str(tmp_path / "n")]) != 0
    assert "group_spread" in capsys.readouterr().err
    assert not (tmp_path / "n_backbone.safetensors").exists()
