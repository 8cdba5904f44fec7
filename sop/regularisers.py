"""Optional training penalties that shape SOP's groups (the design study's knobs).

Both are weighted by the group scores of the true class, so they act on the groups that
make up the explanation and leave unselected proposals alone:

* **area**: sum_g s_g * mean_n m_g -- the score-weighted share of the patch grid the
  explanation covers; pushes towards few, small groups.
* **total variation**: sum_g s_g * (sum of |m_i - m_j| over 4-neighbour patch pairs) / N --
  boundary length per patch; for a given area it is smallest for one compact blob,
  so it pushes against scattered patches.
"""
from __future__ import annotations

import torch


def area_penalty(masks: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """masks (B, G, N) in [0, 1], scores (B, G) -> mean over the batch."""
    return (scores * masks.mean(-1)).sum(-1).mean()


def tv_penalty(masks: torch.Tensor, scores: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    b, g, n = masks.shape
    m = masks.reshape(b, g, *grid)
    tv = (m[..., 1:, :] - m[..., :-1, :]).abs().flatten(2).sum(-1) + \
         (m[..., :, 1:] - m[..., :, :-1]).abs().flatten(2).sum(-1)
    return (scores * tv / n).sum(-1).mean()


def ramp_factor(step: int, ramp_steps: int) -> float:
    """Share of the penalty weights in force at a training step: 0 -> 1 linearly over ramp_steps
    (1 throughout when ramp_steps <= 0), so the model can learn to classify first."""
    return 1.0 if ramp_steps <= 0 else min(1.0, step / ramp_steps)


def group_penalty(out, target: torch.Tensor, grid: tuple[int, int], area: float = 0.0,
                  tv: float = 0.0) -> torch.Tensor | float:
    """The weighted sum of the penalties for one SOPOutput (0.0 when both weights are 0)."""
    if not (area or tv):
        return 0.0
    scores = out.scores_for(target)
    total = 0.0
    if area:
        total = total + area * area_penalty(out.group_masks, scores)
    if tv:
        total = total + tv * tv_penalty(out.group_masks, scores, grid)
    return total
