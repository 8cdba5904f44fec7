"""A text explanation as a figure (matplotlib): the sentence with each scored group's tokens in the
group's colour (the colours of `sop.visualize.group_colour`, as for images), one row per group
with its score and what it alone predicts, and the prediction in the title.

    fig = sentence_figure(sx, class_names)          # sx = sop.text_explain.explain_sentence(...)
    png = figure_bytes(fig, "png")                   # sop.figure.figure_bytes
"""
from __future__ import annotations

from typing import Sequence


from .text_explain import SentenceExplanation
from .visualize import group_colour


def _draw_row(ax, y: float, sx: SentenceExplanation, colour_of, fontsize: float, x0: float = 0.01) -> float:
    """One line of the sentence at height y from x0; colour_of(position) -> hex or None.  Returns
    the x (axes fraction) where the line ends."""
    renderer = ax.figure.canvas.get_renderer()
    x = x0
    for p, text, glued in sx.pieces():
        x -= 0.006 if glued else 0.0
        c = colour_of(p)
        box = dict(boxstyle="round,pad=0.2", facecolor=c + "55", edgecolor=c) if c else None
        t = ax.text(x, y, text, fontsize=fontsize, va="center", ha="left", bbox=box,
                    color="#111827" if c else "#6b7280", transform=ax.transAxes)
        w = t.get_window_extent(renderer=renderer).transformed(ax.transAxes.inverted()).width
        x += w + 0.012
    return x


def _draw_rows(ax, sx: SentenceExplanation, used, class_names: Sequence[str]) -> float:
    """The sentence, then one row per group in `used`; returns the right-most x any row reaches."""
    scored = [g.group for g in used]
    owner = sx.owner(scored)
    step = 1.0 / (1 + len(used))
    y = 1 - step / 2
    right = _draw_row(ax, y, sx, lambda p: group_colour(owner[p]) if owner[p] >= 0 else None, 12)
    for g in used:
        y -= step
        members = set(g.positions)
        alone = g.alone_probs
        ax.text(0.01, y, f"group {g.group} · score {g.score:.3f}\nalone: {class_names[int(alone.argmax())]} "
                         f"{alone.max():.0%}", fontsize=8.5, va="center", ha="left", color=group_colour(g.group),
                transform=ax.transAxes)
        right = max(right, _draw_row(ax, y, sx, lambda p, g=g: group_colour(g.group) if p in members else None,
                                     9, x0=0.22))
    return right


WIDTH = 11.0          # inches, widened for a sentence that does not fit
TITLE_SPACE = 0.6     # inches above the rows for the two title lines


def sentence_figure(sx: SentenceExplanation, class_names: Sequence[str], *, title: str = "",
                    true_label: int | None = None, max_groups: int = 8):
    """The figure: the sentence coloured by group (as on the Explain page: the used group with the largest
    score x mask), then each scored group alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    used = sx.used[:max_groups] or sx.groups[:1]
    height = 0.9 + 0.55 * (1 + len(used))
    fig = Figure(figsize=(WIDTH, height))
    FigureCanvasAgg(fig)   # a canvas of its own: text widths are measured while laying out the words
    # A fixed axes box: the words are placed in its coordinates from measured widths, so nothing may
    # resize it afterwards (tight_layout shrank it under a long sentence and the words overlapped).
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 - TITLE_SPACE / height))
    ax.set_axis_off()
    pred = sx.prediction
    head = f"SOP predicts {class_names[pred]} ({sx.probs[pred]:.1%})"
    if true_label is not None:
        head += f" · true: {class_names[true_label]}"
    fig.text(0.01, 1 - 0.08 / height, (title + "\n" if title else "") + head, fontsize=11, va="top", ha="left")
    right = _draw_rows(ax, sx, used, class_names)
    for _ in range(6):   # a long sentence: widen the figure until every row fits, laying the words out again
        if right <= 0.99:
            break
        fig.set_size_inches(fig.get_size_inches()[0] * right / 0.97, height)
        for t in list(ax.texts):
            t.remove()
        right = _draw_rows(ax, sx, used, class_names)
    return fig
