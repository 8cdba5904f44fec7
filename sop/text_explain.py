"""One sentence's SOP explanation as plain data: what the explorer's text pages draw.

    sx = explain_sentence(model, ids)       # ids: (1, L) token ids
    sx.prediction, sx.probs                 # the SOP prediction
    sx.groups                               # each group: its token positions, words, score, alone
    sx.isolate(g)                           # what the model predicts from group g's tokens alone

Everything comes from one forward pass of the SOP model (`SOPModel.forward`): a group's
"alone" prediction is the softmax of its `group_logits`, which the text adapter computes by
reading only that group's tokens (with [CLS] and [SEP]); nothing here re-implements it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .model import SOPModel
from .text import content_mask, decode_tokens


@dataclass(frozen=True)
class TextGroup:
    group: int                 # index among the model's G groups (its colour: sop.visualize.group_colour)
    positions: list[int]       # token positions in the group (mask > 0), in sentence order
    words: list[str]           # their token strings
    score: float               # weight in the prediction (0 = ignored)
    alone_probs: np.ndarray    # (K,) what the model predicts from these tokens alone

    @property
    def alone_class(self) -> int:
        return int(self.alone_probs.argmax())


@dataclass(frozen=True)
class SentenceExplanation:
    ids: torch.Tensor          # (1, L) token ids
    tokens: list[str]          # (L,) token strings, padding as "[PAD]"
    content: np.ndarray        # (L,) bool: content tokens (not [CLS], [SEP], padding)
    probs: np.ndarray          # (K,) SOP's class probabilities
    scores: np.ndarray         # (G,) group scores of the predicted class
    masks: np.ndarray          # (G, L) token masks in [0, 1]
    group_logits: np.ndarray   # (G, K)
    groups: list[TextGroup]    # every group, by decreasing score (ties: group index)

    @property
    def prediction(self) -> int:
        return int(self.probs.argmax())

    @property
    def order(self) -> list[int]:
        return [g.group for g in self.groups]

    @property
    def used(self) -> list[TextGroup]:
        """Groups with a non-zero score (the ones the prediction rests on)."""
        return [g for g in self.groups if g.score > 0]

    def group(self, g: int) -> TextGroup:
        for tg in self.groups:
            if tg.group == g:
                return tg
        raise IndexError(f"no group {g}; the model has {len(self.groups)}")

    def isolate(self, g: int) -> np.ndarray:
        """(K,) probabilities the model gives reading group g's tokens alone."""
        return self.group(g).alone_probs

    def attribution(self) -> np.ndarray:
        """(L,) token map sum_g score_g * mask_g (the map sop.text_eval scores as "sop")."""
        return (self.scores[:, None] * self.masks).sum(0)

    def owner(self, groups: Sequence[int] | None = None) -> np.ndarray:
        """(L,) for each token the group among `groups` (default: the used ones) with the largest
        score x mask (-1: in none of them): the colour a token gets on the page and in the figure.
        A score-0 group among `groups` still shows where it lies."""
        groups = [g.group for g in self.used] if groups is None else [int(g) for g in groups]
        out = -np.ones(len(self.tokens), dtype=int)
        best = np.zeros(len(self.tokens))
        for g in groups:
            w = self.masks[g] * max(float(self.scores[g]), 1e-9)
            take = (self.masks[g] > 0) & (w > best)
            out[take], best[take] = g, w[take]
        return out

    def pieces(self, positions: Sequence[int] | None = None) -> list[tuple[int, str, bool]]:
        """(position, text, glued to the previous token) of the content tokens (or `positions`) as a
        sentence shows them: a word piece "##x" is drawn as "x", glued to the token before it."""
        return word_pieces(self.tokens, np.flatnonzero(self.content) if positions is None else positions)


def word_pieces(tokens: Sequence[str], positions) -> list[tuple[int, str, bool]]:
    """(position, text, glued) of `tokens` at `positions`: "##x" pieces glue to the previous token."""
    out = []
    for p in positions:
        t = tokens[int(p)]
        glued = t.startswith("##") and bool(out)
        out.append((int(p), t[2:] if glued else t, glued))
    return out


@torch.no_grad()
def explain_sentence(model: SOPModel, ids: torch.Tensor) -> SentenceExplanation:
    """The SOP forward pass of one (1, L) sentence, as data."""
    model.eval()
    out = model(ids)
    target = int(out.logits.argmax(-1))
    scores = out.scores_for(target)[0].double().numpy()
    masks = out.group_masks[0].double().numpy()
    group_logits = out.group_logits[0].float()
    alone = group_logits.softmax(-1).double().numpy()
    tokens = decode_tokens(ids[0])
    order = sorted(range(len(scores)), key=lambda g: (-scores[g], g))
    groups = []
    for g in order:
        pos = [int(p) for p in np.flatnonzero(masks[g] > 0)]
        groups.append(TextGroup(group=g, positions=pos, words=[tokens[p] for p in pos], score=float(scores[g]),
                                alone_probs=alone[g]))
    return SentenceExplanation(ids=ids.clone(), tokens=tokens, content=content_mask(ids)[0].numpy(),
                               probs=out.probs[0].double().numpy(), scores=scores, masks=masks,
                               group_logits=group_logits.double().numpy(), groups=groups)
