"""A sentence drawn as HTML: tokens highlighted in their group's colour, as a heat map, or as the
partial sentence of a curve step.  Every token string is HTML-escaped here (a typed "<script>"
shows as text); colours come from our own palette (sop.visualize.group_colour) or are computed."""
from __future__ import annotations

import html
from typing import Sequence

import numpy as np

from sop.text_explain import word_pieces
from sop.visualize import group_colour

_BOX = ('<div class="sop-sentence" style="line-height:2.1;font-size:1.05rem;padding:6px 2px">{}</div>')
_TOKEN = ('<span class="{cls}" title="{title}" style="padding:2px 3px;border-radius:4px;'
          'margin-left:{gap}px;{style}">{text}</span>')


def _shown(tokens: Sequence[str], content: np.ndarray) -> list[int]:
    """The positions drawn: the sentence's content tokens ([CLS], [SEP] and padding are not words)."""
    return [p for p in range(len(tokens)) if content[p]]


def _render(tokens, content, style_of, title_of, cls_of) -> str:
    words: list[list[str]] = []      # the pieces of one word stay on one line
    for p, text, glued in word_pieces(tokens, _shown(tokens, content)):
        span = _TOKEN.format(cls=cls_of(p), title=html.escape(title_of(p), quote=True), gap=0 if glued else 4,
                             style=style_of(p), text=html.escape(text))
        if glued:
            words[-1].append(span)
        else:
            words.append([span])
    return _BOX.format("".join(f'<span class="word" style="white-space:nowrap">{"".join(w)}</span>' for w in words))


def groups_html(tokens: Sequence[str], content: np.ndarray, owner: np.ndarray, scores: np.ndarray,
                shown: Sequence[int] | None = None) -> str:
    """Each token on a tint of the colour of the group it belongs to (`owner`, -1: none), among `shown`
    groups (default: all); the group and its score in the tooltip."""
    shown_set = set(range(len(scores))) if shown is None else {int(g) for g in shown}

    def group_at(p):
        g = int(owner[p])
        return g if g >= 0 and g in shown_set else -1

    def style(p):
        g = group_at(p)
        if g < 0:
            return "color:#6b7280"
        c = group_colour(g)
        return f"background:{c}40;border-bottom:3px solid {c}"

    def title(p):
        g = group_at(p)
        return f"group {g} · score {scores[g]:.3f}" if g >= 0 else "in no shown group"

    return _render(tokens, content, style, title, lambda p: f"tok g{group_at(p)}" if group_at(p) >= 0 else "tok")


def heat_html(tokens: Sequence[str], content: np.ndarray, attribution: np.ndarray) -> str:
    """A token map: blue for positive attribution, red for negative, opacity by |a| / max |a|."""
    a = np.asarray(attribution, dtype=float)
    top = float(np.abs(a[content]).max()) if content.any() else 0.0
    top = top if top > 0 else 1.0

    def style(p):
        v = a[p] / top
        rgb = "37,99,235" if v >= 0 else "220,38,38"
        return f"background:rgba({rgb},{min(1.0, abs(v)) * 0.75:.3f})"

    return _render(tokens, content, style, lambda p: f"attribution {a[p]:+.4f}", lambda p: "tok")


def step_html(tokens: Sequence[str], content: np.ndarray, present: np.ndarray) -> str:
    """The partial sentence of a curve step: tokens present as they are, dropped ones struck through."""
    def style(p):
        return "" if present[p] else "color:#9ca3af;text-decoration:line-through"

    return _render(tokens, content, style, lambda p: "present" if present[p] else "dropped ([PAD])",
                   lambda p: "tok" if present[p] else "tok dropped")
