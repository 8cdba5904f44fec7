"""Backbone adapters: how a model is shown one group alone.

An adapter owns the wrapped backbone and answers three questions for SOP:
  * `patch_tokens(x)`   - features (B, N, D) over the patch grid, for GroupGen;
  * `forward_groups(x, masks)` - embeddings (B, G, E) and logits (B, G, K) of each group
    seen alone, where `masks` (B, G, N) in [0, 1] weight the N patches;
  * `forward_full(x)`   - the plain backbone's logits, for comparisons.

Two adapters exist (see README, "Adapters"):
  * `ViTAdapter` for timm VisionTransformer models: tokens outside a group are dropped
    (gathered away, padding masked out of attention), position embeddings are kept.
  * `PixelMaskAdapter` for anything else (timm CNNs, any nn.Module classifier): pixels
    outside a group are replaced by `fill` (0 = the mean colour after normalisation).
To add one, subclass `BackboneAdapter` and register it, timm-style, in one place:

    @register_adapter("mine", label="My adapter", modality="image", capabilities=("pixel_fill",),
                      config_kwargs=("img_size",), auto_priority=5)
    class MyAdapter(BackboneAdapter): ...

    list_adapters()                  # ["pixel", "vit"] (+ "mine")
    get_adapter("vit")               # its AdapterEntry: label, modality, capabilities, defaults
    resolve_adapter("auto", module)  # the entry `create_model` uses for that backbone

"auto" tries the adapters with an `auto_priority`, highest first, and takes the first
whose class `supports(backbone)`: a timm ViT gets "vit", anything else "pixel".
"""
from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError, InputError


@dataclass(frozen=True)
class AdapterEntry:
    """What the registry knows about one adapter."""
    name: str
    cls: type
    label: str                           # human-readable, for the app and --help
    modality: str = "image"              # what its inputs are: "image" (patch grid), "tokens" (text)...
    capabilities: frozenset[str] = frozenset()   # e.g. "token_dropping", "pixel_fill", "any_module"
    config_kwargs: tuple[str, ...] = ()  # SOPConfig fields passed as default constructor kwargs
    defaults: dict[str, Any] = field(default_factory=dict)  # constructor defaults, for display
    auto_priority: int | None = None     # "auto" tries these, highest first; None: never automatic
    description: str = ""

    def settings(self, config=None, **kwargs) -> dict:
        """The constructor settings: config fields in `config_kwargs`, then the config's
        `adapter_kwargs`, then `kwargs` (later ones win)."""
        merged = {k: getattr(config, k) for k in self.config_kwargs} if config is not None else {}
        merged.update(getattr(config, "adapter_kwargs", None) or {})
        merged.update(kwargs)
        return merged

    def build(self, backbone: nn.Module, config=None, **kwargs) -> "BackboneAdapter":
        """The adapter around `backbone`, built with `settings(config, **kwargs)`."""
        merged = self.settings(config, **kwargs)
        self.check_settings(merged)
        return self.cls(backbone, **merged)

    def check_settings(self, settings: dict) -> None:
        """A ConfigError naming the setting an adapter does not take (e.g. `pool`, a pixel-adapter
        setting, given to the ViT adapter by `train --pool` on a ViT preset), not a TypeError mid-build."""
        import inspect
        params = inspect.signature(self.cls.__init__).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return
        known = {p.name for p in params} - {"self", "backbone"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(f"the {self.name!r} adapter takes no setting {', '.join(map(repr, unknown))}; its "
                              f"settings: {', '.join(sorted(known)) or 'none'}", field="adapter_kwargs")


_ADAPTERS: dict[str, AdapterEntry] = {}


def register_adapter(name: str, *, label: str | None = None, modality: str = "image",
                     capabilities: Sequence[str] = (), config_kwargs: Sequence[str] = (),
                     auto_priority: int | None = None) -> Callable[[type], type]:
    """Class decorator: register a `BackboneAdapter` subclass under `name`."""
    def deco(cls: type) -> type:
        import inspect
        params = inspect.signature(cls.__init__).parameters.values()
        defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        doc = (cls.__doc__ or "").strip().splitlines()
        _ADAPTERS[name] = AdapterEntry(name=name, cls=cls, label=label or name, modality=modality,
                                       capabilities=frozenset(capabilities), config_kwargs=tuple(config_kwargs),
                                       defaults=defaults, auto_priority=auto_priority,
                                       description=doc[0] if doc else "")
        cls.adapter_name = name
        return cls
    return deco


def list_adapters(modality: str | None = None) -> list[str]:
    """Registered adapter names (sorted), optionally only those of one modality."""
    return sorted(n for n, e in _ADAPTERS.items() if modality is None or e.modality == modality)


def adapter_names() -> list[str]:
    """Same as `list_adapters()` (the older name)."""
    return list_adapters()


def get_adapter(name: str) -> AdapterEntry:
    """The registry entry of `name`; a ConfigError naming the `adapter` field otherwise."""
    try:
        return _ADAPTERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown adapter {name!r}; known: auto, "
                          f"{', '.join(list_adapters())}", field="adapter") from None


def resolve_adapter(name: str, backbone: nn.Module) -> AdapterEntry:
    """The entry that wraps `backbone`: `name`'s, or for "auto" the first automatic
    adapter (highest `auto_priority`) whose class supports this backbone."""
    if name != "auto":
        return get_adapter(name)
    candidates = sorted((e for e in _ADAPTERS.values() if e.auto_priority is not None),
                        key=lambda e: -e.auto_priority)
    for entry in candidates:
        if entry.cls.supports(backbone):
            return entry
    raise ConfigError(f"no adapter supports a {type(backbone).__name__} automatically; set the config's "
                      f"'adapter' to one of {', '.join(list_adapters())}", field="adapter")


def build_adapter(name: str, backbone: nn.Module, config=None, **kwargs) -> "BackboneAdapter":
    """Resolve `name` ("auto" included) for `backbone` and build it (see `AdapterEntry.build`)."""
    return resolve_adapter(name, backbone).build(backbone, config, **kwargs)


class BackboneAdapter(nn.Module, metaclass=ABCMeta):
    """The interface every adapter implements; an adapter missing one of the abstract
    methods cannot be instantiated (a clear TypeError naming it, not a failure mid-forward)."""
    adapter_name = "base"
    grid: tuple[int, int]
    token_dim: int
    embed_dim: int

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @abstractmethod
    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, N, D) over the patch grid, for GroupGen."""

    @abstractmethod
    def forward_groups(self, x: torch.Tensor, masks: torch.Tensor):
        """Embeddings (B, G, E) and logits (B, G, K) of each group seen alone."""

    def forward_full(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def valid_positions(self, x: torch.Tensor) -> torch.Tensor | None:
        """(B, N) bool: the patches a group may hold, or None for all (images)."""
        return None

    @staticmethod
    def supports(backbone: nn.Module) -> bool:
        """Whether "auto" may pick this adapter for `backbone`."""
        return False

    def pixel_masks(self, masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Patch masks (B, G, N) -> pixel masks (B, G, H, W), each patch a constant block."""
        b, g, _ = masks.shape
        grid = masks.reshape(b * g, 1, *self.grid)
        return F.interpolate(grid, size=size, mode="nearest").reshape(b, g, *size)


@register_adapter("vit", label="ViT token dropping", modality="image",
                  capabilities=("token_dropping", "position_embeddings", "timm_vit"), auto_priority=10)
class ViTAdapter(BackboneAdapter):
    """timm VisionTransformer: each group is a forward pass over its own tokens only.

    Kept tokens are multiplied by their mask weight (so GroupGen gets gradients) and
    gathered into a short sequence; the class/register tokens are always kept.  Pooling
    is done here (class token, or a mean over kept tokens) so no dropped token can leak
    into a group's embedding.
    """

    def __init__(self, backbone: nn.Module, token_layer: int = -2):
        super().__init__()
        if not all(hasattr(backbone, a) for a in ("patch_embed", "blocks", "global_pool")):
            raise ConfigError(f"the 'vit' adapter needs a timm VisionTransformer backbone, not a "
                              f"{type(backbone).__name__}; use adapter 'pixel' (or 'auto')", field="adapter")
        self.backbone = backbone
        gh, gw = backbone.patch_embed.grid_size
        self.grid = (int(gh), int(gw))
        self.token_dim = self.embed_dim = backbone.embed_dim
        self.prefix = backbone.num_prefix_tokens
        # Tokens for GroupGen come from this block's output (the authors use the
        # second-to-last layer: late enough to be semantic, early enough to be local).
        self.token_layer = token_layer % len(backbone.blocks)
        if backbone.global_pool not in ("token", "avg"):
            raise ConfigError(f"the 'vit' adapter supports global_pool 'token' or 'avg', not {backbone.global_pool!r}; "
                              "set backbone_kwargs global_pool, or use adapter 'pixel'", field="adapter")

    @staticmethod
    def supports(backbone: nn.Module) -> bool:
        try:
            from timm.models.vision_transformer import VisionTransformer
        except ImportError:
            return False
        return isinstance(backbone, VisionTransformer) and backbone.global_pool in ("token", "avg")

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        vit = self.backbone
        t = vit.patch_embed(x)
        t = vit._pos_embed(t)
        t = vit.patch_drop(t)
        return vit.norm_pre(t)

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        t = self._embed(x)
        for blk in self.backbone.blocks[: self.token_layer + 1]:
            t = blk(t)
        return t[:, self.prefix:]

    # Without gradients, sequences are run in buckets of similar length (multiples of this many
    # patches) instead of all padded to the longest group of the batch: one perturbed input of a
    # curve with a 47-patch group would otherwise make every group of its batch cost 47 tokens.
    BUCKET = 8

    def forward_groups(self, x: torch.Tensor, masks: torch.Tensor):
        b, g, n = masks.shape
        t = self._embed(x)  # (B, P+N, D), position embeddings already added
        prefix, patches = t[:, : self.prefix], t[:, self.prefix:]
        pre = prefix.unsqueeze(1).expand(-1, g, -1, -1).reshape(b * g, self.prefix, -1)
        support = (masks > 0).sum(-1).reshape(b * g).clamp(min=1)
        flat_masks, flat_src = masks.reshape(b * g, n), torch.arange(b, device=masks.device).repeat_interleave(g)
        if torch.is_grad_enabled() or b * g == 1:
            buckets = [torch.arange(b * g, device=masks.device)]
        else:
            size = (support + self.BUCKET - 1) // self.BUCKET
            buckets = [(size == s).nonzero().flatten() for s in size.unique()]
        emb = logits = None
        for rows in buckets:
            e, lg = self._run_groups(patches.reshape(b * n, -1), flat_src[rows] * n, pre[rows], flat_masks[rows],
                                     int(support[rows].max()))
            if len(buckets) == 1:
                emb, logits = e, lg
                break
            if emb is None:
                emb, logits = e.new_empty(b * g, e.shape[-1]), lg.new_empty(b * g, lg.shape[-1])
            emb[rows], logits[rows] = e, lg
        return emb.reshape(b, g, -1), logits.reshape(b, g, -1)

    def _run_groups(self, patches: torch.Tensor, offset: torch.Tensor, pre: torch.Tensor, masks: torch.Tensor,
                    keep: int):
        """Embeddings (R, E) and logits (R, K) of R groups: `masks` (R, N) over the patch tokens
        `patches` (B*N, D) of their inputs, group r's starting at row offset[r]."""
        vit = self.backbone
        # Token dropping: keep the L strongest patches of each group, L = largest support.
        weight, idx = masks.topk(keep, dim=-1)  # (R, L); padded slots have weight 0
        kept = patches[idx + offset.unsqueeze(-1)] * weight.unsqueeze(-1)  # (R, L, D)
        seq = torch.cat([pre, kept], dim=1)
        valid = torch.cat([weight.new_ones(len(masks), self.prefix, dtype=torch.bool), weight > 0], dim=1)
        # Additive mask (0 keep, -inf drop) works on both of timm's attention paths.
        attn_mask = torch.zeros(valid.shape, dtype=seq.dtype, device=seq.device)
        attn_mask = attn_mask.masked_fill(~valid, float("-inf"))[:, None, None, :]
        for blk in vit.blocks:
            seq = blk(seq, attn_mask=attn_mask)
        seq = vit.norm(seq)
        if vit.global_pool == "token":
            pooled = seq[:, 0]
        else:
            w = valid[:, self.prefix:].unsqueeze(-1).to(seq.dtype)
            pooled = (seq[:, self.prefix:] * w).sum(1) / w.sum(1).clamp(min=1)
        emb = vit.fc_norm(pooled)
        return emb, vit.head(vit.head_drop(emb))


@register_adapter("pixel", label="Pixel masking", modality="image",
                  capabilities=("pixel_fill", "any_module"), config_kwargs=("img_size", "in_chans"), auto_priority=0)
class PixelMaskAdapter(BackboneAdapter):
    """Any differentiable classifier: each group is the input with other pixels filled.

    Groups live on a `grid` of patches over the image.  GroupGen's tokens come from the
    backbone's own feature map when it is a timm model with a spatial `forward_features`,
    otherwise from a small trainable patch encoder, so any `nn.Module` works.

    `pool`: "full" (default) runs the backbone's own head, whose global average pool spans the
    whole feature map, masked area included; "kept" (timm CNNs only) averages each group's
    feature map over the positions its mask keeps (the pixel mask area-downsampled to the
    feature map, as weights), so a small group's features are not diluted by the filled area.
    The full-map path (`forward_full`, the twin) is the same under both.
    """

    POOLS = ("full", "kept")

    def __init__(self, backbone: nn.Module, img_size: tuple[int, int] = (32, 32), in_chans: int = 3,
                 grid: tuple[int, int] = (8, 8), fill: float = 0.0, token_dim: int = 64, context: int = 0,
                 pool: str = "full"):
        super().__init__()
        self.backbone = backbone
        self.grid = tuple(grid)
        self.fill = fill
        self.img_size = tuple(img_size)
        self.timm_like = all(hasattr(backbone, a) for a in ("forward_features", "forward_head"))
        if pool not in self.POOLS:
            raise InputError(f"unknown pool {pool!r} for the pixel adapter; known: {', '.join(self.POOLS)}")
        if pool == "kept" and not self.timm_like:
            raise InputError("pool='kept' needs a timm CNN (forward_features + forward_head); "
                             f"{type(backbone).__name__} has no spatial feature map to pool")
        self.pool = pool
        with torch.no_grad():
            probe = torch.zeros(1, in_chans, *self.img_size)
            was_training = backbone.training
            backbone.eval()
            feats = backbone.forward_features(probe) if self.timm_like else None
            out = backbone(probe)
            backbone.train(was_training)
        self.num_classes = out.shape[-1]
        # Backbone features serve as tokens only if they resolve the grid; a deep CNN's
        # 1x1 map at small inputs would give every patch the same token.
        if feats is not None and feats.ndim == 4 and min(feats.shape[-2:]) >= min(self.grid):
            self.encoder = None
            self.token_dim = feats.shape[1]
        else:
            ph, pw = (math.ceil(s / g) for s, g in zip(self.img_size, self.grid))
            # Patchify, then `context` 3x3 convolutions over the grid.  On images a token that
            # sees only its own patch cannot tell a stroke from a stray pixel (digits preset: 2);
            # on tabular "grids", where neighbours mean nothing, 0 keeps features apart.
            layers = [nn.Conv2d(in_chans, token_dim, kernel_size=(ph, pw), stride=(ph, pw)), nn.GELU()]
            for _ in range(context):
                layers += [nn.Conv2d(token_dim, token_dim, 3, padding=1), nn.GELU()]
            self.encoder = nn.Sequential(*layers, nn.Conv2d(token_dim, token_dim, 1))
            self.pos = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], token_dim))
            self.token_dim = token_dim
        self.embed_dim = (backbone.num_features if self.timm_like and hasattr(backbone, "num_features")
                          else self.num_classes)

    @staticmethod
    def supports(backbone: nn.Module) -> bool:
        return isinstance(backbone, nn.Module)

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            fmap = F.adaptive_avg_pool2d(self.backbone.forward_features(x), self.grid)
            return fmap.flatten(2).transpose(1, 2)
        fmap = F.adaptive_avg_pool2d(self.encoder(x), self.grid)
        return fmap.flatten(2).transpose(1, 2) + self.pos

    def forward_groups(self, x: torch.Tensor, masks: torch.Tensor):
        b, g, _ = masks.shape
        m = self.pixel_masks(masks, x.shape[-2:]).unsqueeze(2)  # (B, G, 1, H, W)
        xm = x.unsqueeze(1) * m
        if self.fill != 0:  # the default fill 0 needs no second pass over G images
            xm = xm + self.fill * (1 - m)
        xm = xm.reshape(b * g, *x.shape[1:])
        if self.timm_like:
            feats = self.backbone.forward_features(xm)
            if self.pool == "kept":
                feats = self.kept_pool(feats, m.reshape(b * g, 1, *x.shape[-2:]))
            emb = self.backbone.forward_head(feats, pre_logits=True)
            logits = self.backbone.get_classifier()(emb)
        else:
            logits = self.backbone(xm)
            emb = logits
        return emb.reshape(b, g, -1), logits.reshape(b, g, -1)

    @staticmethod
    def kept_pool(feats: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
        """(R, C, h, w) features, (R, 1, H, W) pixel masks -> (R, C, 1, 1): the mean over the
        positions the mask keeps, weighted by the share of each position's pixels kept.  As a
        1x1 map it goes through the backbone's own head, whose global pool then passes it on
        unchanged (avg, max or avgmax of one value), so the head's norm and classifier still apply."""
        if feats.ndim != 4:
            raise InputError(f"pool='kept' needs a spatial (R, C, h, w) feature map, got shape {tuple(feats.shape)}")
        w = F.adaptive_avg_pool2d(pixel_mask.to(feats.dtype), feats.shape[-2:])   # (R, 1, h, w) in [0, 1]
        return (feats * w).sum((-2, -1), keepdim=True) / w.sum((-2, -1), keepdim=True).clamp(min=1e-6)


@register_adapter("text", label="Text token dropping (BERT)", modality="text",
                  capabilities=("token_dropping", "attention_masking", "special_tokens_kept", "transformers_bert"),
                  auto_priority=20)
class TextAdapter(BackboneAdapter):
    """A BERT-style text classifier (`sop.text.TextClassifier`): tokens play the role of patches.

    The input is a (B, L) LongTensor of token ids (pad 0).  A group is a set of token
    positions; the backbone reads each group alone: its tokens (word + their own position
    embeddings) are gathered into a short sequence with [CLS] and [SEP], padding is masked
    out of attention, and the embedding is the mean over the kept tokens -- no other token
    of the sentence reaches the group's pass, so cost scales with group length.  Every token
    with a non-zero mask weight is read at full strength; GroupGen gets its gradient through
    a straight-through factor (1 + w - stop_gradient(w)) where the fine-tuned layers begin, so
    nothing is back-propagated through the frozen layers.  GroupGen reads the
    token states after encoder layer `token_layer` (default -2: the second-to-last layer).
    [CLS], [SEP] and padding are never part of a group (`valid_positions`).
    """

    modality = "text"

    def __init__(self, backbone: nn.Module, token_layer: int = -2):
        super().__init__()
        from .text import TextClassifier
        if not isinstance(backbone, TextClassifier):
            raise ConfigError(f"the 'text' adapter needs a sop.text.TextClassifier backbone, not a "
                              f"{type(backbone).__name__}", field="adapter")
        self.backbone = backbone
        self.grid = (1, backbone.max_length)
        self.token_dim = self.embed_dim = backbone.hidden
        self.token_layer = token_layer % backbone.num_layers

    @staticmethod
    def supports(backbone: nn.Module) -> bool:
        from .text import TextClassifier
        return isinstance(backbone, TextClassifier)

    def check_input(self, x: torch.Tensor) -> None:
        from .text import check_token_ids
        check_token_ids(x, self.backbone.max_length, self.backbone.vocab_size)

    def valid_positions(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L) bool: the positions a group may hold (content tokens: not [CLS], [SEP] or padding)."""
        from .text import content_mask
        return content_mask(x)

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.hidden_states(x, self.token_layer + 1)

    # Without gradients, group sequences are run in buckets of similar length (multiples of this
    # many tokens) instead of all padded to the batch's largest group: with groups of up to 24 of 32
    # tokens (mean 7), padding every group to the largest made an explanation cost 1.5 x G twin passes.
    BUCKET = 4

    def forward_groups(self, x: torch.Tensor, masks: torch.Tensor):
        b, g, n = masks.shape
        w = (masks * self.valid_positions(x).unsqueeze(1).to(masks.dtype)).reshape(b * g, n)
        support = (w > 0).sum(-1).clamp(min=1)
        src = torch.arange(b, device=x.device).repeat_interleave(g)     # the input each group row reads
        if torch.is_grad_enabled() or b * g == 1:
            buckets = [None]
        else:
            size = (support + self.BUCKET - 1) // self.BUCKET
            buckets = [(size == s).nonzero().flatten() for s in size.unique()]
        ends = self._sentence_ends(x)
        if buckets == [None]:
            emb, logits = self._run_groups(x, src, w, int(support.max()), ends)
        else:
            emb = logits = None
            for rows in buckets:
                e, lg = self._run_groups(x, src[rows], w[rows], int(support[rows].max()), ends)
                if emb is None:
                    emb, logits = e.new_empty(b * g, e.shape[-1]), lg.new_empty(b * g, lg.shape[-1])
                emb[rows], logits[rows] = e, lg
        return emb.reshape(b, g, -1), logits.reshape(b, g, -1)

    @staticmethod
    def _sentence_ends(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per input: ([CLS] id, [SEP] id, [SEP] position, whether it has a [SEP] after [CLS])."""
        from .text import PAD_ID
        present = x != PAD_ID
        # [SEP] = the last non-pad token (robust to pad holes left by token deletion curves)
        sep_pos = (x.shape[1] - 1 - present.flip(1).long().argmax(1)).clamp(min=0)
        sep_ids = x.gather(1, sep_pos.unsqueeze(1)).squeeze(1)
        return x[:, 0], sep_ids, sep_pos, present.sum(-1) > 1

    def _run_groups(self, x: torch.Tensor, src: torch.Tensor, w: torch.Tensor, keep: int, ends):
        """Embeddings (R, E) and logits (R, K) of R groups: `w` (R, L) weights over the tokens of
        input src[r], each group read as [CLS] + its `keep` strongest tokens + [SEP]."""
        bb = self.backbone
        cls_ids, sep_ids, sep_pos, has_sep = (t[src] for t in ends)
        r = len(src)
        weight, idx = w.topk(keep, dim=-1)                                   # (R, K); padded slots weigh 0
        ids = x[src].gather(1, idx)
        seq_ids = torch.cat([cls_ids.unsqueeze(1), ids, sep_ids.unsqueeze(1)], dim=1)
        seq_pos = torch.cat([torch.zeros_like(sep_pos).unsqueeze(1), idx, sep_pos.unsqueeze(1)], dim=1)
        kept = weight > 0
        valid = torch.cat([kept.new_ones(r, 1), kept, has_sep.unsqueeze(1)], 1)
        h = bb.frozen_states(seq_ids, valid, position_ids=seq_pos)
        # Straight-through: a kept token enters the fine-tuned layers at full strength (1 + w - w = 1: the
        # backbone reads the group exactly as it reads a sentence of those tokens), while GroupGen gets the
        # gradient it would get from scaling by its weight w.  Scaling by w itself (as the ViT adapter
        # does at the input) left most tokens near 0 and SOP at 63 % validation accuracy after 3 epochs.
        hard = kept.to(weight.dtype) + weight - weight.detach()
        scale = torch.cat([weight.new_ones(r, 1), hard, weight.new_ones(r, 1)], 1)
        h = h * scale.unsqueeze(-1)
        h = bb.run_layers(h, valid, bb.first_trained, bb.num_layers)
        return bb.pool_head(h, valid)

    def pixel_masks(self, masks: torch.Tensor, size=None) -> torch.Tensor:
        """For text the "pixel" masks are the token masks themselves: (B, G, L)."""
        return masks
