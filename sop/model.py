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

from .adapters import BackboneAdapter, resolve_adapter
from .config import SOPConfig
from .errors import InputError
from .groups import GROUP_GENS, GROUP_SELECTS, GroupGen, GroupSelect, PatchQueryGroupGen


@dataclass
class SOPOutput:
    logits: torch.Tensor          # (B, K)  = sum_g scores[:, g] * group_logits[:, g]
    probs: torch.Tensor           # (B, K)  softmax of logits
    group_masks: torch.Tensor     # (B, G, N) patch-space masks in [0, 1]
    pixel_masks: torch.Tensor     # (B, G, H, W) the same masks at input resolution
    group_scores: torch.Tensor    # (B, G)  sparsemax scores, non-negative, sum to 1 (per-class
                                  #         selection: the scores of the predicted class)
    group_logits: torch.Tensor    # (B, G, K) what each group alone predicts
    group_embeddings: torch.Tensor  # (B, G, E)
    class_scores: torch.Tensor | None = None  # (B, G, K) per-class selection only: logits[:, k] =
                                               # sum_g class_scores[:, g, k] * group_logits[:, g, k]
    group_gates: torch.Tensor | None = None   # (B, G) the authors' GroupGen only: logits =
                                              # sum_g score_g * gate_g * group_logits_g

    @property
    def selected(self) -> torch.Tensor:
        """(B, G) bool: groups that enter some class's logit (per class: any class's score > 0)."""
        if self.class_scores is not None:
            return (self.class_scores > 0).any(-1)
        return self.group_scores > 0

    @property
    def prediction(self) -> torch.Tensor:
        return self.logits.argmax(-1)

    def detach(self) -> "SOPOutput":
        return SOPOutput(**{k: (v.detach() if v is not None else None) for k, v in self.__dict__.items()})

    def scores_for(self, target: int | torch.Tensor) -> torch.Tensor:
        """(B, G) group scores that make up the logit of `target` (an int or (B,) classes)."""
        if self.class_scores is None:
            return self.group_scores
        return class_column(self.class_scores, target)


def class_column(class_scores: torch.Tensor, target: int | torch.Tensor) -> torch.Tensor:
    """(B, G) column of (B, G, K) per-class scores for `target` (an int or (B,) classes)."""
    b, g, _ = class_scores.shape
    t = torch.as_tensor(target, device=class_scores.device).long().expand(b)
    return class_scores.gather(2, t.view(-1, 1, 1).expand(-1, g, 1)).squeeze(2)


def create_backbone(cfg: SOPConfig, pretrained: bool = False) -> nn.Module:
    """The plain classifier named by the config (any timm model, or a text backbone of `sop.text`)."""
    from .text import create_text_backbone, is_text_backbone
    if is_text_backbone(cfg.backbone):
        module = create_text_backbone(cfg.backbone, cfg.num_classes, max_length=cfg.img_size[-1], **cfg.backbone_kwargs)
        if not cfg.base_weights:   # what a checkpoint must find installed to rebuild this model
            cfg.base_weights = dict(module.base_info)
        return module
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
        config.validate()
        self.config = config
        self.adapter = adapter
        n = adapter.num_patches
        if config.group_gen not in GROUP_GENS:
            raise InputError(f"unknown group_gen {config.group_gen!r}; known: {', '.join(GROUP_GENS)}")
        if config.group_select not in GROUP_SELECTS:
            raise InputError(f"unknown group_select {config.group_select!r}; known: {', '.join(GROUP_SELECTS)}")
        if not 0 <= config.group_dropout < 1:
            raise InputError(f"group_dropout must lie in [0, 1), got {config.group_dropout}")
        max_patches = None if config.max_group_frac is None else max(1, math.ceil(config.max_group_frac * n))
        gen, extra = (GroupGen, {}) if config.group_gen == "learned" else \
            (PatchQueryGroupGen, dict(spread=config.group_spread))
        self.group_gen = gen(adapter.token_dim, config.num_groups, heads=config.group_heads, dim=config.group_dim,
                             max_patches=max_patches, scale=config.group_scale, grid=adapter.grid,
                             blur=config.group_blur, **extra)
        queries = config.num_classes if config.group_select == "per_class" else 1
        self.group_select = GroupSelect(adapter.embed_dim, dim=config.group_dim, scale=config.select_scale,
                                        num_queries=queries)

    @property
    def backbone(self) -> nn.Module:
        return self.adapter.backbone

    @property
    def modality(self) -> str:
        """What an input is: "image" (B, C, H, W) or "text" (B, L) token ids (`sop.text`)."""
        return getattr(self.adapter, "modality", "image")

    @property
    def num_groups(self) -> int:
        return self.config.num_groups

    def check_input(self, x: torch.Tensor) -> None:
        """Clear errors for the tensors users actually pass by mistake."""
        if self.modality != "image":   # text: (B, L) token ids, checked by its adapter
            return self.adapter.check_input(x)
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
        return self.group_gen.propose(self.adapter.patch_tokens(x), self.adapter.valid_positions(x))[0]

    def forward(self, x: torch.Tensor, group_masks: torch.Tensor | None = None,
                group_gates: torch.Tensor | None = None) -> SOPOutput:
        """Full SOP pass.  Pass `group_masks` (B, G, N) (and, for the gated authors' GroupGen,
        `group_gates` (B, G); default 1) to evaluate fixed groups."""
        self.check_input(x)
        gates = group_gates
        if group_masks is None:
            masks, gates = self.group_gen.propose(self.adapter.patch_tokens(x), self.adapter.valid_positions(x))
        else:
            masks = group_masks
        emb, group_logits = self.adapter.forward_groups(x, masks)
        # The authors' gate scales what a group contributes, not what it predicts alone.
        weighted = group_logits if gates is None else group_logits * gates.unsqueeze(-1)
        scores = self.group_select(emb, keep=self._dropout_keep(masks))
        class_scores = None
        if scores.ndim == 3:   # per class: each class sums its own weighting of the groups
            class_scores = scores
            logits = (class_scores * weighted).sum(1)
            scores = class_column(class_scores, logits.argmax(-1))
        else:
            logits = torch.einsum("bg,bgk->bk", scores, weighted)
        return SOPOutput(logits=logits, probs=logits.softmax(-1), group_masks=masks,
                         pixel_masks=self.adapter.pixel_masks(masks, x.shape[-2:]),
                         group_scores=scores, group_logits=group_logits, group_embeddings=emb,
                         class_scores=class_scores, group_gates=gates)

    def _dropout_keep(self, masks: torch.Tensor) -> torch.Tensor | None:
        """Training only: hide a random share of groups from GroupSelect (at least one stays),
        so the prediction cannot rest on redundant copies of the same evidence."""
        p = self.config.group_dropout
        if not self.training or p <= 0:
            return None
        b, g, _ = masks.shape
        keep = torch.rand(b, g, device=masks.device) >= p
        keep[torch.arange(b), torch.randint(g, (b,), device=masks.device)] = True
        return keep

    def backbone_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped backbone on the whole input (no groups)."""
        return self.adapter.forward_full(x)


def create_model(backbone: str | nn.Module, num_classes: int | None = None, *, pretrained: bool = False,
                 config: SOPConfig | None = None, **config_kwargs) -> SOPModel:
    """Wrap a timm model name, or any differentiable `nn.Module` classifier, as an SOP model.

    >>> model = create_model("vit_tiny_patch16_224", num_classes=10, img_size=(224, 224))
    >>> model = create_model(my_cnn, num_classes=10, img_size=(32, 32), in_chans=3)
    >>> model = create_model("minilm", num_classes=2, img_size=(1, 32))   # text: (B, 32) token ids
    """
    is_module = isinstance(backbone, nn.Module)
    if config is None:
        config = SOPConfig(backbone="module" if is_module else backbone, num_classes=num_classes, **config_kwargs)
    config.validate()   # a bad value fails here, before any backbone is built
    module = backbone if is_module else create_backbone(config, pretrained=pretrained)
    return SOPModel(resolve_adapter(config.adapter, module).build(module, config), config)
