"""Plotly figures.  Groups are always drawn in sop.visualize.group_colour(g)."""
from __future__ import annotations

import base64
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from sop.faithfulness import Curve
from sop.methods import get_method, list_methods, sop_only
from sop.visualize import group_colour, to_png, upscale

CONFIG = {"displayModeBar": False, "responsive": True}
INSERTION, DELETION = "#16a34a", "#dc2626"
PREDICTED, TRUE, OTHER = "#2563eb", "#16a34a", "#cbd5e1"
# Method colours by registration order (sop.methods.list_methods()): the built-ins keep their colours and
# a newly registered method takes the next one.
METHOD_PALETTE = ("#2563eb", "#f59e0b", "#8b5cf6", "#10b981", "#ef4444", "#ec4899", "#64748b",
                  "#0891b2", "#a16207", "#be123c", "#4d7c0f", "#7c3aed")
UNKNOWN_METHOD = "#111827"
FONT = dict(family="Inter, system-ui, sans-serif", size=13, color="#1f2937")


def method_colour(method: str) -> str:
    """The colour of a registered method (its swatch, its curves)."""
    methods = list_methods()
    return METHOD_PALETTE[methods.index(method) % len(METHOD_PALETTE)] if method in methods else UNKNOWN_METHOD


def point_data(point: dict, i: int = 0):
    """customdata[i] of a selected point (Streamlit may hand it over as a list or a dict)."""
    data = point.get("customdata")
    if isinstance(data, dict):
        data = [data[k] for k in sorted(data, key=lambda k: int(k))]
    if isinstance(data, (list, tuple)):
        return data[i] if len(data) > i else None
    return data if i == 0 else None


def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    fig.update_layout(template="plotly_white", height=height, margin=dict(l=8, r=8, t=30, b=8), font=FONT,
                      hoverlabel=dict(font_size=12), **kw)
    return fig


def topk_bar(probs: np.ndarray, class_names: Sequence[str], *, k: int = 5, true_label: int | None = None,
             title: str | None = None, height: int | None = None) -> go.Figure:
    """Top-k class probabilities as horizontal bars (predicted class in blue, true class in green)."""
    k = min(k, len(probs))
    top = [int(i) for i in np.argsort(-probs, kind="stable")[:k]]
    pred = top[0]
    colours = [PREDICTED if i == pred else TRUE if i == true_label else OTHER for i in top]
    names = [f"{class_names[i]}{'  (true)' if i == true_label else ''}" for i in top]
    fig = go.Figure(go.Bar(x=[float(probs[i]) for i in top][::-1], y=names[::-1], orientation="h",
                           marker_color=colours[::-1], text=[f"{probs[i]:.1%}" for i in top][::-1],
                           textposition="outside", cliponaxis=False,
                           hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    fig.update_xaxes(range=[0, 1.3], tickformat=".0%", showgrid=True, tickvals=[0, 0.5, 1])
    fig.update_yaxes(type="category")
    return _layout(fig, height or 60 + 32 * k, title=dict(text=title or "", font_size=14), showlegend=False)


def image_source(img: np.ndarray, size: int) -> str:
    """A crisp (nearest-neighbour) PNG data URI of `img`, `size` pixels on its longer side."""
    return "data:image/png;base64," + base64.b64encode(to_png(upscale(img, size))).decode("ascii")


def clickable_image(img: np.ndarray, owner: np.ndarray, scores: np.ndarray, *, size: int = 320,
                    selected: int | None = None, title: str = "") -> go.Figure:
    """The image with one invisible, clickable marker per pixel block naming the group it belongs to.

    `owner` (h, w): the group shown at each block (-1: none), usually on the patch grid.
    Clicking a block selects its point; the point's customdata is [group].
    """
    h, w = img.shape[:2]
    gh, gw = owner.shape
    fig = go.Figure()
    fig.add_layout_image(dict(source=image_source(img, size), xref="x", yref="y", x=0, y=0, sizex=w, sizey=h,
                              sizing="stretch", layer="below"))
    ys, xs = np.mgrid[0:gh, 0:gw]
    cy, cx = (ys + 0.5) * h / gh, (xs + 0.5) * w / gw
    groups = owner.flatten()
    text = [f"group {g} · score {scores[g]:.3f}" if g >= 0 else "no shown group" for g in groups]
    fig.add_trace(go.Scatter(
        x=cx.flatten(), y=cy.flatten(), mode="markers", customdata=[[int(g)] for g in groups], text=text,
        hovertemplate="%{text}<extra></extra>",
        marker=dict(symbol="square", size=max(6, int(size / max(gh, gw) * 0.95)), color="rgba(0,0,0,0)",
                    line=dict(width=0)),
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)), showlegend=False))
    if selected is not None and selected >= 0:
        sel = owner == selected
        if sel.any():
            fig.add_trace(go.Scatter(x=cx[sel], y=cy[sel], mode="markers", hoverinfo="skip", showlegend=False,
                                     marker=dict(symbol="square-open", size=max(6, int(size / max(gh, gw) * 0.9)),
                                                 color=group_colour(selected), line=dict(width=2))))
    fig.update_xaxes(range=[0, w], visible=False, fixedrange=True, constrain="domain")
    fig.update_yaxes(range=[h, 0], visible=False, fixedrange=True, scaleanchor="x")
    _layout(fig, size + 40, title=dict(text=title, font_size=14), clickmode="event+select")
    fig.update_layout(margin=dict(l=0, r=0, t=30 if title else 0, b=0))
    return fig


def curves_figure(curves: dict[str, Curve], *, step: int | None = None, title: str = "",
                  height: int = 300, compact: bool = False, unit: str = "pixels") -> go.Figure:
    """Insertion (green) and deletion (red) curves; each point is clickable (customdata = step).
    `unit`: what the x axis counts ("pixels"; "tokens" for text)."""
    fig = go.Figure()
    for kind, colour in (("insertion", INSERTION), ("deletion", DELETION)):
        c = curves[kind]
        fig.add_trace(go.Scatter(
            x=c.fractions, y=c.scores, mode="lines+markers", name=f"{kind} (AUC {c.auc:.3f})",
            line=dict(color=colour, width=2.5), marker=dict(size=7), customdata=[[k] for k in range(len(c.scores))],
            hovertemplate=f"{kind}<br>step %{{customdata[0]}}: %{{x:.0%}} of {unit}<br>p = %{{y:.3f}}<extra></extra>"))
    if step is not None:
        x = float(curves["insertion"].fractions[min(step, len(curves["insertion"].fractions) - 1)])
        fig.add_vline(x=x, line=dict(color="#6b7280", dash="dot", width=1.5))
    fig.update_xaxes(range=[-0.02, 1.02], tickformat=".0%")
    fig.update_yaxes(range=[-0.02, 1.05])
    if compact:
        fig.update_xaxes(nticks=3)
        fig.update_yaxes(nticks=3)
        _layout(fig, height, showlegend=False)
        fig.update_layout(margin=dict(l=4, r=4, t=8, b=4))
        return fig
    fig.update_xaxes(title_text=f"fraction of {unit} inserted / deleted")
    fig.update_yaxes(title_text=title or "probability of the explained class")
    return _layout(fig, height, clickmode="event+select", legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))


def compare_curves_figure(per_method: dict[str, dict[str, Curve]], kind: str, height: int = 320) -> go.Figure:
    """One curve kind for every registered method in `per_method` (labels and colours from the registry;
    a method for SOP models only -- SOP's own explanation -- drawn thicker)."""
    fig = go.Figure()
    for method, curves in per_method.items():
        c = curves[kind]
        info = get_method(method)
        fig.add_trace(go.Scatter(x=c.fractions, y=c.scores, mode="lines+markers", marker=dict(size=5),
                                 name=f"{info.label} ({c.auc:.3f})",
                                 line=dict(color=method_colour(method), width=3 if info.supports is sop_only else 2),
                                 hovertemplate=f"{info.label}: %{{x:.0%}} → %{{y:.3f}}<extra></extra>"))
    fig.update_xaxes(title_text=f"fraction of pixels {'inserted' if kind == 'insertion' else 'deleted'}",
                     range=[-0.02, 1.02], tickformat=".0%")
    fig.update_yaxes(title_text="probability", range=[-0.02, 1.05])
    better = "higher is better" if kind == "insertion" else "lower is better"
    return _layout(fig, height, title=dict(text=f"{kind.capitalize()} ({better}; AUC in the legend)", font_size=14),
                   legend=dict(font_size=11))


def confusion_figure(cm: np.ndarray, class_names: Sequence[str], *, selected: tuple[int, int] | None = None,
                     height: int | None = None) -> go.Figure:
    """Confusion matrix (rows = true, columns = predicted); each cell is clickable (customdata = [true, pred])."""
    k = len(class_names)
    names = [str(c) for c in class_names]
    errors = cm.astype(float).copy()
    np.fill_diagonal(errors, np.nan)
    fig = go.Figure()
    fig.add_trace(go.Heatmap(z=np.log1p(cm), x=names, y=names, colorscale="Blues", showscale=False, hoverinfo="skip",
                             xgap=1, ygap=1))
    tt, pp = np.meshgrid(range(k), range(k), indexing="ij")
    text = [str(int(v)) for v in cm.flatten()]
    fig.add_trace(go.Scatter(
        x=[names[p] for p in pp.flatten()], y=[names[t] for t in tt.flatten()], mode="markers+text", text=text,
        textfont=dict(color=["#ffffff" if v > cm.max() * 0.5 else "#111827" for v in cm.flatten()], size=12),
        customdata=[[int(t), int(p)] for t, p in zip(tt.flatten(), pp.flatten())],
        marker=dict(symbol="square", size=min(120, max(14, int(360 / max(k, 1)))), color="rgba(0,0,0,0)",
                    line=dict(width=[3 if selected == (t, p) else 0 for t, p in zip(tt.flatten(), pp.flatten())],
                              color="#f59e0b")),
        hovertemplate="true %{y} → predicted %{x}: %{text}<extra></extra>", showlegend=False))
    fig.update_xaxes(title_text="predicted class", side="top", type="category")
    fig.update_yaxes(title_text="true class", autorange="reversed", type="category")
    _layout(fig, height or max(260, 40 * k + 90), clickmode="event+select")
    fig.update_layout(margin=dict(l=8, r=8, t=60, b=8))
    return fig


def group_logits_figure(group_logits: np.ndarray, scores: np.ndarray, true: int, pred: int,
                        class_names: Sequence[str], order: Sequence[int], height: int = 320) -> go.Figure:
    """Per-group logits of the true and the predicted class, groups in `order` (by score)."""
    labels = [f"g{g} ({scores[g]:.2f})" for g in order]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=[float(group_logits[g, true]) for g in order],
                         name=f"true class {class_names[true]}", marker_color=TRUE,
                         marker_line=dict(color=[group_colour(g) for g in order], width=3)))
    fig.add_trace(go.Bar(x=labels, y=[float(group_logits[g, pred]) for g in order],
                         name=f"predicted {class_names[pred]}", marker_color=PREDICTED_WRONG,
                         marker_line=dict(color=[group_colour(g) for g in order], width=3)))
    fig.update_xaxes(type="category")  # tick labels read "g<group> (<score>)"
    fig.update_yaxes(title_text="logit when the group is seen alone")
    return _layout(fig, height, barmode="group", legend=dict(orientation="h", y=-0.28, yanchor="top", x=0),
                   title=dict(text="What each group alone says about the two classes", font_size=14))


PREDICTED_WRONG = "#dc2626"


def contribution_figure(contrib: np.ndarray, order: Sequence[int], *, height: int = 280,
                        title: str = "") -> go.Figure:
    """Bars of score × (logit_pred − logit_true) per group, in each group's colour."""
    labels = [f"g{g}" for g in order]
    vals = [float(contrib[g]) for g in order]
    fig = go.Figure(go.Bar(x=labels, y=vals, marker_color=[group_colour(g) for g in order],
                           text=[f"{v:+.2f}" for v in vals], textposition="outside", cliponaxis=False,
                           hovertemplate="%{x}: %{y:+.3f}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#9ca3af", width=1))
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text="push towards the wrong class")
    return _layout(fig, height, showlegend=False, title=dict(text=title, font_size=14))
