"""Named recipes for the embedded default models (timm-style: one name, one config).

Each preset fixes the dataset, the backbone (a timm model name plus kwargs that shrink
it for 2 CPU cores), the SOP settings and the training schedule; CLI flags override.
"""
from __future__ import annotations

# A 4-block, 64-wide ViT with 4x4 patches: 64 tokens on a 32x32 input, ~0.15 M parameters.
TINY_VIT = dict(patch_size=4, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0, global_pool="token")

PRESETS: dict[str, dict] = {
    "digits": dict(
        # A ViT from scratch on 1,257 digit scans plateaued at ~93 % after 100 epochs here, so the
        # digits default is a small timm ConvNeXt behind the pixel-masking adapter (8x8 groups grid,
        # one patch = one original pixel); the parts default shows the ViT token-dropping adapter.
        # context=2: GroupGen's patch encoder sees each pixel's 5x5 neighbourhood (SOP test
        # accuracy 94.2 % -> 96.1 % on the same backbone); 60 + 40 epochs: +0.6 points of val. accuracy;
        # random shifts hurt (digits fill the frame).  threads=1: float sums, hence the trained
        # weights, no longer depend on the core count (4.6 min instead of 3.5 min on two threads).
        dataset="digits", backbone="test_convnext", backbone_kwargs={},
        adapter_kwargs=dict(grid=(8, 8), context=2),
        # Design study (docs/design-study.md): a total-variation penalty (weight 0.3) gives fewer,
        # compact groups (2.6 used instead of 3.2) at -0.6 points of accuracy; max_group_frac 0.25 with
        # an area penalty covered less but cost 1.4 points at the full schedule.
        num_groups=8, group_heads=2, max_group_frac=0.5, tv_weight=0.3,
        backbone_epochs=60, sop_epochs=40, batch_size=32, lr=2e-3, backbone_lr=5e-4, weight_decay=0.05,
        shift=0, threads=1,
    ),
    "parts": dict(
        dataset="parts", backbone="vit_tiny_patch16_224",
        backbone_kwargs=dict(img_size=32, **TINY_VIT),
        # Design study: a total-variation penalty over the patch grid turns scattered fragments into
        # compact groups on the decisive shape; ramped in over 3 epochs because at full weight from
        # the first step it collapsed one run to single-patch groups (82 % accuracy).
        num_groups=8, group_heads=2, max_group_frac=0.25, tv_weight=1.0, penalty_ramp_epochs=3,
        backbone_epochs=20, sop_epochs=10, batch_size=32, lr=1e-3, backbone_lr=2.5e-4, weight_decay=0.05,
        shift=0,
    ),
    "lensing": dict(
        # Regression of (Omega_m, sigma_8) from 66x66 mock convergence maps (sop.data.lensing).  As in the
        # paper, groups live on 6x6-pixel patches (an 11x11 grid).  The maps are periodic, so random rolls
        # (shift) are exact augmentations.  Sized for <= 30 min on 2 shared CPU cores (README: measured).
        # A tiny ViT with one token per patch, behind the token-dropping adapter: a group's pass reads only
        # its own patches (mean-pooled over them), nothing of the masked area.  With a timm ConvNeXt behind
        # pixel masking (masked pixels = kappa 0; a 2x2 feature map on 66x66 maps) a half-map group read as
        # much lower Omega_m and sigma_8: SOP reached test R2 0.68 / 0.19 against its twin's 0.84 / 0.63;
        # a patch-grid ConvNeXt pooled over the kept patches did no better (0.62 / 0.21).  This ViT with
        # half-map groups: SOP 0.81 / 0.51 against its twin's 0.88 / 0.78, its eight groups nearly one and
        # the same half; groups of 3/4 of the map: 0.86 / 0.67 (docs/lensing.md, "Backbones, group size and
        # spread groups").
        # The authors' GroupGen (hard 0/1 masks over the top patches, with gates): the learned sparsemax
        # GroupGen gives soft masks, which scale a group's input down -- and kappa's amplitude is what
        # sigma_8 sets.
        # Spread groups (group_spread 3): top-k groups of 3/4 of the map settled on one and the same view
        # (pairwise overlap 0.87-0.90; SOP 0.86 / 0.70 against the twin's 0.88 / 0.77); each group pushed
        # off the patches earlier groups hold gives different views, whose sum reads sigma_8 as well as
        # the twin: 0.89 / 0.77 (spread 1: 0.88 / 0.75).
        dataset="lensing", backbone="vit_tiny_patch16_224",
        backbone_kwargs=dict(img_size=66, patch_size=6, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0,
                             global_pool="avg"),
        num_groups=8, group_heads=2, max_group_frac=0.75, group_gen="patch", group_spread=3.0,
        backbone_epochs=60, sop_epochs=20, batch_size=32, lr=2e-3, backbone_lr=5e-4, weight_decay=0.05,
        shift=33, threads=1,
        # The SOP stage keeps its last epoch (the learning rate has decayed to 0 there): validation R2 over
        # 32 cosmologies moves by +-0.05 from epoch to epoch, so "best" picked epoch 3 of 20 in one run
        # (test R2 0.76 / 0.50 against 0.86 / 0.68 for epoch 8 of the same configuration in another).
        sop_keep="last",
    ),
    "reviews": dict(
        # Text: all-MiniLM-L6-v2 from the installed package (sop.text), 32 tokens, its top encoder
        # layer and a linear head fine-tuned, the five lower layers frozen (the package's weights,
        # not stored in checkpoints; frozen layers run without autograd, which keeps a step cheap
        # on 2 shared cores).  GroupGen reads the second-to-last layer's token states.
        dataset="reviews", backbone="minilm", img_size=(1, 32), backbone_kwargs=dict(train_layers=1),
        # Groups start as whole sentences (group_scale 0.05: flat attention, so sparsemax keeps every
        # content token; max_group_frac 0.75 = 24 tokens >= the longest review's 20), so SOP starts
        # where its twin is; a small area penalty, ramped in over 2 epochs, then shrinks them, and the
        # learnable temperature sharpens them.  Why: dropping a "not" flips a review, so random partial
        # groups are confidently wrong: with 8-token groups (0.25) two pilots stalled at 60-69 %
        # validation accuracy, and even near-whole groups (0.5, scale 0.3) started at 59 % vs the twin's 100 %.
        num_groups=8, group_heads=1, max_group_frac=0.75, group_scale=0.05, area_weight=0.1, penalty_ramp_epochs=2,
        # Measured on 2 shared cores, one pinned thread: ~0.6 s per backbone step, ~1.8 s per SOP step (batch 32).
        backbone_epochs=8, sop_epochs=4, batch_size=32, lr=5e-4, sop_lr=2e-3, backbone_lr=3e-4, weight_decay=0.01,
        warmup_epochs=0.2, shift=0, threads=2,
    ),
}


def preset_names() -> list[str]:
    return sorted(PRESETS)
