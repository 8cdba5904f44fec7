"""The two SOP attention modules: GroupGen proposes groups, GroupSelect scores them.

Two GroupGen designs (``SOPConfig.group_gen``; the design study in docs/design-study.md
compares them):

* ``"learned"`` (ours): G learned queries attend over the patches with **sparsemax**;
  each row, rescaled so its strongest patch is 1, is a soft group whose zeros are exact.
* ``"patch"`` (the authors'): the queries are the patch tokens at G evenly spaced grid
  positions; softmax attention over the patches, each row binarised to its top-k patches,
  and a scalar gate c = (weight inside the top-k) - (weight outside) multiplies the
  group's contribution, so GroupGen still gets gradients through the hard masks.  The
  gate is a softmax share over *all* patches: it reads the whole input, so this design is
  faithful only given its groups *and* gates (pixels outside every group move the gates).

Both may blur their attention logits over the patch grid (``group_blur``, a Gaussian
sigma in patches) so neighbouring patches rise and fall together: coherent groups.
The ``"patch"`` design may also *spread* its groups (``group_spread``): groups are chosen
one after another, each with its logits lowered on the patches the earlier groups hold,
so large groups do not all settle on one and the same view of the input.

GroupSelect uses sparsemax over groups so few groups get a non-zero score: either one
class-agnostic query (``"shared"``) or one query per class (``"per_class"``, as the
authors do), where each class weighs the groups for itself.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from entmax import sparsemax
from torch import nn

from .errors import ConfigError

GROUP_GENS = ("learned", "patch")
GROUP_SELECTS = ("shared", "per_class")


def gaussian_blur_grid(att: torch.Tensor, grid: tuple[int, int], sigma: float) -> torch.Tensor:
    """Blur (B, G, N) attention logits over the (gh, gw) patch grid (edge values repeated)."""
    if sigma <= 0:
        return att
    radius = max(1, math.ceil(2 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=att.dtype, device=att.device)
    k1 = torch.exp(-0.5 * (t / sigma) ** 2)
    k1 = k1 / k1.sum()
    b, g, _ = att.shape
    img = att.reshape(b * g, 1, *grid)
    img = F.conv2d(F.pad(img, (radius, radius, 0, 0), mode="replicate"), k1.view(1, 1, 1, -1))
    img = F.conv2d(F.pad(img, (0, 0, radius, radius), mode="replicate"), k1.view(1, 1, -1, 1))
    return img.reshape(b, g, -1)


def _check_heads(num_groups: int, heads: int) -> None:
    if heads < 1 or num_groups % heads:
        raise ConfigError(f"num_groups ({num_groups}) must be a multiple of the head count group_heads ({heads})",
                          field="group_heads")


def _restrict(att: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Attention logits (B, G, N) with invalid positions 1e4 below (not -inf, so a row with no valid
    position stays finite and sparsemax's sums cannot overflow; their weights are zeroed afterwards)."""
    return att.masked_fill(~valid.unsqueeze(1), -1e4)


class GroupGen(nn.Module):
    """Multi-head sparsemax attention from learned group queries to patch tokens.

    Each of the G queries (split over `heads`, each head with its own key projection)
    attends over the N patches of one input; its sparsemax row is one group.  The row is
    rescaled so its strongest patch has weight 1, giving a mask in [0, 1] whose zeros are
    exact: the backbone never sees a patch with weight 0 for that group.

    `max_patches` restricts each row to its k best patches before the sparsemax (the
    authors binarise the top 20 % instead); it keeps groups small even when the
    attention logits are flat, as they are at initialisation.
    """
    gated = False

    def __init__(self, token_dim: int, num_groups: int, heads: int = 1, dim: int = 64,
                 max_patches: int | None = None, scale: float = 1.0, grid: tuple[int, int] | None = None,
                 blur: float = 0.0):
        super().__init__()
        _check_heads(num_groups, heads)
        self.num_groups, self.heads, self.dim = num_groups, heads, dim
        self.max_patches = max_patches
        self.grid, self.blur = grid, blur
        self.norm = nn.LayerNorm(token_dim)
        self.key = nn.Linear(token_dim, heads * dim)
        self.query = nn.Parameter(torch.randn(heads, num_groups // heads, dim))
        # Inverse temperature: larger makes sparsemax sparser; learnable in log space.
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Attention logits (B, G, N) of each group query over the patches."""
        b, n, _ = tokens.shape
        keys = self.key(self.norm(tokens)).view(b, n, self.heads, self.dim)
        att = torch.einsum("hqd,bnhd->bhqn", self.query, keys) / math.sqrt(self.dim)
        att = att.reshape(b, self.num_groups, n) * self.log_scale.exp()
        return gaussian_blur_grid(att, self.grid, self.blur) if self.grid is not None else att

    def propose(self, tokens: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(masks (B, G, N), gates or None): this design has no gates."""
        return self(tokens, valid), None

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Group masks (B, G, N) in [0, 1], each with max exactly 1.

        `valid` (B, N) bool: positions a group may hold (text: no [CLS], [SEP] or padding);
        None: every patch.  A row with no valid position gets empty groups."""
        att = self.logits(tokens)
        if valid is not None:
            att = _restrict(att, valid)
        k = self.max_patches
        if k is not None and k < att.shape[-1]:
            kth = att.topk(k, dim=-1).values[..., -1:]
            att = att.masked_fill(att < kth, float("-inf"))
        weights = sparsemax(att, dim=-1)
        if valid is not None:
            weights = weights * valid.unsqueeze(1).to(weights.dtype)
            return weights / weights.amax(dim=-1, keepdim=True).clamp(min=1e-12)
        return weights / weights.amax(dim=-1, keepdim=True)


class PatchQueryGroupGen(nn.Module):
    """The authors' GroupGen: patch tokens as queries, softmax, top-k binarisation, gates.

    Query g is the token at the g-th of G evenly spaced grid positions (the authors keep
    G evenly spaced candidates out of N), so groups are anchored in the image; each head
    has its own query and key projections and takes every H-th anchor (so each head
    spans the whole image).  A group's mask is exactly 1 on the top-k patches of its
    softmax row and 0 elsewhere (k from `max_group_frac`; the authors use 20 %); its
    gate c_g = (weight inside) - (weight outside) scales its contribution:
    logits = sum_g score_g * c_g * group_logits_g (`SOPOutput.group_gates`).

    `spread` > 0 (ours, not the authors'): group g's logits are lowered, patch by patch,
    by `spread` standard deviations of its row times the share of groups 0..g-1 holding
    that patch, before its top-k and its gate.  Top-k over the same strong patches makes
    large groups near copies (lensing: pairwise overlap 0.87-0.90 with groups of 3/4 of
    the map); spread ones differ by construction, while a patch strong enough still
    enters every group.
    """
    gated = True

    def __init__(self, token_dim: int, num_groups: int, heads: int = 1, dim: int = 64,
                 max_patches: int | None = None, scale: float = 1.0, grid: tuple[int, int] | None = None,
                 blur: float = 0.0, num_patches: int | None = None, spread: float = 0.0):
        super().__init__()
        _check_heads(num_groups, heads)
        n = num_patches or (grid[0] * grid[1])
        self.num_groups, self.heads, self.dim = num_groups, heads, dim
        self.spread = spread
        self.max_patches = max_patches or max(1, round(0.2 * n))   # None: the authors' k = 20 %
        self.grid, self.blur = grid, blur
        self.norm = nn.LayerNorm(token_dim)
        self.query = nn.Linear(token_dim, heads * dim)
        self.key = nn.Linear(token_dim, heads * dim)
        self.register_buffer("anchors", torch.linspace(0, n - 1, num_groups).round().long(), persistent=False)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, _ = tokens.shape
        t = self.norm(tokens)
        per_head = self.num_groups // self.heads
        anchors = self.anchors.view(per_head, self.heads).t()        # head h: anchors h, h+H, h+2H...
        q = self.query(t).view(b, n, self.heads, self.dim)
        k = self.key(t).view(b, n, self.heads, self.dim)
        q = torch.stack([q[:, anchors[h], h] for h in range(self.heads)], 1)   # (B, H, G/H, D)
        att = torch.einsum("bhqd,bnhd->bhqn", q, k) / math.sqrt(self.dim)
        att = att.reshape(b, self.num_groups, n) * self.log_scale.exp()
        return gaussian_blur_grid(att, self.grid, self.blur) if self.grid is not None else att

    def spread_logits(self, att: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, G, N) with each group pushed off the patches the groups before it hold.  Invalid
        positions (`valid` False) keep `_restrict`'s value: `held` stays 0 there."""
        k = min(self.max_patches, att.shape[-1])
        ok = torch.ones_like(att[:, 0], dtype=torch.bool) if valid is None else valid
        okf = ok.to(att.dtype)
        # The row's spread over its valid patches, without gradient: the push is a fixed unit.
        count = okf.sum(-1, keepdim=True).clamp(min=1)
        mean = (att.detach() * okf.unsqueeze(1)).sum(-1, keepdim=True) / count.unsqueeze(1)
        std = ((((att.detach() - mean) ** 2) * okf.unsqueeze(1)).sum(-1, keepdim=True) / count.unsqueeze(1)).sqrt()
        held = torch.zeros_like(att[:, 0])
        rows = []
        for g in range(att.shape[1]):
            row = att[:, g] - self.spread * std[:, g] * held / max(g, 1)
            rows.append(row)
            held = held + torch.zeros_like(held).scatter_(-1, row.topk(k, dim=-1).indices, 1.0) * okf
        return torch.stack(rows, 1)

    def propose(self, tokens: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        att = self.logits(tokens)
        if valid is not None:
            att = _restrict(att, valid)
        if self.spread > 0:
            att = self.spread_logits(att, valid)
        weights = att.softmax(-1)
        top = weights.topk(min(self.max_patches, weights.shape[-1]), dim=-1).indices
        masks = torch.zeros_like(weights).scatter_(-1, top, 1.0)
        if valid is not None:
            masks = masks * valid.unsqueeze(1).to(masks.dtype)
        inside = (weights * masks).sum(-1)
        return masks, inside - (1 - inside)

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return self.propose(tokens, valid)[0]


class GroupSelect(nn.Module):
    """Sparsemax attention from learned queries to the group embeddings: scores per group.

    One query (class-agnostic scores, (B, G)) or one per class (`num_queries` = K:
    scores (B, G, K), a sparsemax over groups for each class).  The queries are learned
    vectors rather than the whole-input embedding so that a score depends only on what
    its group contains; with an input-dependent query, pixels outside every selected
    group would still move the scores and the explanation would no longer be the whole
    computation.
    """

    def __init__(self, embed_dim: int, dim: int = 64, scale: float = 1.0, num_queries: int = 1):
        super().__init__()
        self.dim, self.num_queries = dim, num_queries
        self.norm = nn.LayerNorm(embed_dim)
        self.key = nn.Linear(embed_dim, dim)
        shape = (dim,) if num_queries == 1 else (num_queries, dim)   # (dim,): the old checkpoints' layout
        self.query = nn.Parameter(torch.randn(shape))
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))

    def logits(self, group_embeddings: torch.Tensor) -> torch.Tensor:
        """Attention logits (B, G) for one query, (B, G, K) per class."""
        keys = self.key(self.norm(group_embeddings))
        query = self.query if self.query.ndim == 1 else self.query.t()
        return keys @ query / math.sqrt(self.dim) * self.log_scale.exp()

    def forward(self, group_embeddings: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Scores: non-negative, summing to 1 over groups, usually with exact zeros.

        `keep` (B, G) bool hides the other groups from the sparsemax (group dropout in training).
        """
        att = self.logits(group_embeddings)
        if keep is not None:
            att = att.masked_fill(~(keep if att.ndim == 2 else keep.unsqueeze(-1)), float("-inf"))
        return sparsemax(att, dim=1)
