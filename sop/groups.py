"""The two SOP attention modules: GroupGen proposes groups, GroupSelect scores them.

Both use sparsemax (from the `entmax` package) so that groups cover few patches and
few groups get a non-zero score: the explanation is short because the computation is.
"""
from __future__ import annotations

import math

import torch
from entmax import sparsemax
from torch import nn


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

    def __init__(self, token_dim: int, num_groups: int, heads: int = 1, dim: int = 64,
                 max_patches: int | None = None, scale: float = 1.0):
        super().__init__()
        if num_groups % heads:
            raise ValueError(f"num_groups ({num_groups}) must be a multiple of heads ({heads})")
        self.num_groups, self.heads, self.dim = num_groups, heads, dim
        self.max_patches = max_patches
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
        return att.reshape(b, self.num_groups, n) * self.log_scale.exp()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Group masks (B, G, N) in [0, 1], each with max exactly 1."""
        att = self.logits(tokens)
        k = self.max_patches
        if k is not None and k < att.shape[-1]:
            kth = att.topk(k, dim=-1).values[..., -1:]
            att = att.masked_fill(att < kth, float("-inf"))
        weights = sparsemax(att, dim=-1)
        return weights / weights.amax(dim=-1, keepdim=True)


class GroupSelect(nn.Module):
    """Sparsemax attention from a learned query to the group embeddings: one score per group.

    The query is a learned vector rather than the whole-input embedding so that a
    score depends only on what its group contains; with an input-dependent query,
    pixels outside every selected group would still move the scores and the
    explanation would no longer be the whole computation.
    """

    def __init__(self, embed_dim: int, dim: int = 64, scale: float = 1.0):
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(embed_dim)
        self.key = nn.Linear(embed_dim, dim)
        self.query = nn.Parameter(torch.randn(dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))

    def forward(self, group_embeddings: torch.Tensor) -> torch.Tensor:
        """Scores (B, G): non-negative, summing to 1, usually with exact zeros."""
        keys = self.key(self.norm(group_embeddings))
        att = keys @ self.query / math.sqrt(self.dim) * self.log_scale.exp()
        return sparsemax(att, dim=-1)
