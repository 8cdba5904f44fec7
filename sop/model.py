"""SOPModel: any classifier turned into a Sum-of-Parts self-attributing network.

    x -> GroupGen -> G masks over patches -> backbone sees each group alone
      -> per-group embeddings and logits -> GroupSelect -> scores s (sparse, sum 1)
      -> logits = sum_g s_g * group_logits_g

Given its groups, the prediction depends only on the pixels of groups with a non-zero
score: the groups and scores are the whole computation, not a post-hoc story about it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .adapters import BackboneAdapter, build_adapter
from .config import SOPConfig
from .errors import InputError
from .groups import GroupGen, GroupSelect


@dataclass
class SOPOutput:
    logits: torch.Tensor          # (B, K)  = sum_g scores[:, g] * group_logits[:, g]
    probs: torch.Tensor           # (B, K)  softmax of logits
    group_masks: torch.Tensor     # (B, G, N) patch-space masks in [0, 1]
    pixel_masks: torch.Tensor     # (B, G, H, W) the same masks at input resolution
    group_scores: torch.Tensor    # (B, G)  sparsemax scores, non-negative, sum to 1
    group_logits: torch.Tensor    # (B, G, K) what each group alone predicts
    group_embeddings: torch.Tensor  # (B, G, E)

    @property
    def prediction(self) -> torch.Tensor:
        return self.logits.argmax(-1)

    def detach(self) -> "SOPOutput":
        return SOPOutput(**{k: v.detach() for k, v in self.__dict__.items()})


def create_backbone(cfg: SOPConfig, pretrained: bool = False) -> nn.Module:
    """The plain classifier named by the config (any timm model)."""
    import timm
    try:
        return timm.create_model(cfg.backbone, pretrained=pretrained, num_classes=cfg.num_classes,
                                 in_chans=cfg.in_chans, **cfg.backbone_kwargs)
    except RuntimeError as err:  # timm's "Unknown model" is a RuntimeError
        if "Unknown model" in str(err):
            raise InputError(f"unknown backbone {cfg.backbone!r}: not a timm model name") from err
        raise


class SOPModel(nn.Module):
    def __init__(self, adapter: BackboneAdapter, config: SOPConfig):
        super().__init__()
        self.config = config
        self.adapter = adapter
        n = adapter.num_patches
        max_patches = None if config.max_group_frac is None else max(1, math.ceil(config.max_group_frac * n))
        self.group_gen = GroupGen(adapter.token_dim, config.num_groups, heads=config.group_heads,
                                  dim=config.group_dim, max_patches=max_patches, scale=config.group_scale)
        self.group_select = GroupSelect(adapter.embed_dim, dim=config.group_dim, scale=config.select_scale)

    @property
    def backbone(self) -> nn.Module:
        return self.adapter.backbone

    @property
    def num_groups(self) -> int:
        return self.config.num_groups

    def check_input(self, x: torch.Tensor) -> None:
        """Clear errors for the tensors users actually pass by mistake."""
        if not isinstance(x, torch.Tensor):
            raise InputError(f"expected a torch.Tensor, got {type(x).__name__}")
        want = (self.config.in_chans, *self.config.img_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise InputError(f"expected input of shape (B, {', '.join(map(str, want))}), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"expected a floating-point tensor, got {x.dtype}")
        param = next(self.parameters())
        if x.device != param.device:
            raise InputError(f"input is on device {x.device} but the model is on {param.device}; move one of them")
        if x.dtype != param.dtype:
            raise InputError(f"input dtype {x.dtype} does not match the model's {param.dtype}")
        if not torch.isfinite(x).all():
            raise InputError("input contains NaN or Inf values")

    def groups(self, x: torch.Tensor) -> torch.Tensor:
        """GroupGen alone: patch masks (B, G, N)."""
        return self.group_gen(self.adapter.patch_tokens(x))

    def forward(self, x: torch.Tensor, group_masks: torch.Tensor | None = None) -> SOPOutput:
        """Full SOP pass.  Pass `group_masks` (B, G, N) to evaluate fixed groups."""
        self.check_input(x)
        masks = self.groups(x) if group_masks is None else group_masks
        emb, group_logits = self.adapter.forward_groups(x, masks)
        scores = self.group_select(emb)
        logits = torch.einsum("bg,bgk->bk", scores, group_logits)
        return SOPOutput(logits=logits, probs=logits.softmax(-1), group_masks=masks,
                         pixel_masks=self.adapter.pixel_masks(masks, x.shape[-2:]),
                         group_scores=scores, group_logits=group_logits, group_embeddings=emb)

    def backbone_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped backbone on the whole input (no groups)."""
        return self.adapter.forward_full(x)


def create_model(backbone: str | nn.Module, num_classes: int | None = None, *, pretrained: bool = False,
                 config: SOPConfig | None = None, **config_kwargs) -> SOPModel:
    """Wrap a timm model name, or any differentiable `nn.Module` classifier, as an SOP model.

    >>> model = create_model("vit_tiny_patch16_224", num_classes=10, img_size=(224, 224))
    >>> model = create_model(my_cnn, num_classes=10, img_size=(32, 32), in_chans=3)
    """
    if isinstance(backbone, nn.Module):
        if config is None:
            config = SOPConfig(backbone="module", num_classes=num_classes, **config_kwargs)
        module = backbone
    else:
        if config is None:
            config = SOPConfig(backbone=backbone, num_classes=num_classes, **config_kwargs)
        module = create_backbone(config, pretrained=pretrained)
    kwargs = dict(config.adapter_kwargs)
    name = config.adapter
    if name == "auto":
        from .adapters import ViTAdapter
        name = "vit" if ViTAdapter.supports(module) else "pixel"
    if name == "pixel":
        kwargs.setdefault("img_size", config.img_size)
        kwargs.setdefault("in_chans", config.in_chans)
    return SOPModel(build_adapter(name, module, **kwargs), config)
