"""Plotly figures of the regression pages: κ maps, group outlines, curves, residuals, the study.

Maps use a diverging colour map centred at 0 (κ = 0 is the mean density: blue = under-dense
voids, red = over-dense clusters) with a colour bar; groups are outlined in their own colour
(`sop.visualize.group_colour`, as on the image pages) inside a dark and a white ring
(`OUTLINE_RINGS`): a red or blue group colour alone vanishes on the red-blue map, while the
white ring shows on its dark ends and the dark ring on its white middle.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from sop.visualize import group_colour, upscale

from .charts import CONFIG, DELETION, INSERTION, _layout  # noqa: F401  (CONFIG: the pages pass it on)

DIVERGING = "RdBu_r"
POINT, WORST = "#2563eb", "#dc2626"
# (colour, width) drawn under each group's own line, outermost first
OUTLINE_RINGS = (("#111111", 7.0), ("#ffffff", 4.5))
GROUP_LINE_WIDTH = 2.5


def _limit(kappa: np.ndarray) -> float:
    """A symmetric colour range: |κ| up to its 99.5th percentile, so one peak does not wash out the map."""
    return float(np.percentile(np.abs(kappa), 99.5)) or 1.0


def map_figure(kappa: np.ndarray, *, masks: np.ndarray | None = None, groups: Sequence[int] = (),
               selected: int | None = None, title: str = "", height: int = 420,
               limit: float | None = None, owner: np.ndarray | None = None,
               scores: np.ndarray | None = None) -> go.Figure:
    """κ as a heatmap (diverging, centred at 0, colour bar), `groups` of `masks` outlined in their
    colours (only `selected` when one is isolated); with `owner` (`patch_owner`) a click on a patch
    selects the marker of its group."""
    lim = limit or _limit(kappa)
    h, w = kappa.shape
    fig = go.Figure(go.Heatmap(z=kappa, zmid=0, zmin=-lim, zmax=lim, colorscale=DIVERGING,
                               colorbar=dict(title=dict(text="κ", side="right"), thickness=12, len=0.9),
                               hovertemplate="x %{x}, y %{y}<br>κ = %{z:.4f}<extra></extra>"))
    if masks is not None:
        for g in groups:
            if selected is not None and g != selected:
                continue
            for colour, width in (*OUTLINE_RINGS, (group_colour(g), GROUP_LINE_WIDTH)):
                fig.add_trace(go.Contour(z=(masks[g] > 0).astype(float), showscale=False, hoverinfo="skip",
                                         contours=dict(start=0.5, end=0.5, size=1, coloring="none"),
                                         line=dict(color=colour, width=width), name=f"group {g}",
                                         showlegend=False))
    if owner is not None:
        _click_targets(fig, owner, (h, w), scores)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, range=[h - 0.5, -0.5])
    fig.update_xaxes(showticklabels=False, range=[-0.5, w - 0.5], constrain="domain")
    _layout(fig, height, title=dict(text=title, font_size=13) if title else None,
            clickmode="event+select" if owner is not None else None)
    fig.update_layout(margin=dict(l=4, r=4, t=30 if title else 4, b=4))
    return fig


def patch_owner(masks: np.ndarray, scores: np.ndarray, groups: Sequence[int], grid: tuple[int, int]) -> np.ndarray:
    """(gh, gw) int: per patch of the grid, the group among `groups` with the largest score x mask at
    the patch's centre pixel (-1: none) -- what a click there isolates."""
    g_all, h, w = masks.shape
    rows = ((np.arange(grid[0]) + 0.5) * h / grid[0]).astype(int)
    cols = ((np.arange(grid[1]) + 0.5) * w / grid[1]).astype(int)
    owner = np.full(grid, -1)
    best = np.zeros(grid)
    for g in groups:
        weight = scores[g] * masks[g][np.ix_(rows, cols)]
        take = weight > best
        owner[take], best[take] = g, weight[take]
    return owner


def _click_targets(fig: go.Figure, owner: np.ndarray, size: tuple[int, int], scores) -> None:
    """One invisible marker per patch naming its group (customdata [g]): heatmaps cannot be selected
    by a click, markers can (as on the image pages' `charts.clickable_image`)."""
    (gh, gw), (h, w) = owner.shape, size
    ys, xs = np.mgrid[0:gh, 0:gw]
    cy, cx = (ys + 0.5) * h / gh - 0.5, (xs + 0.5) * w / gw - 0.5
    text = [f"group {g} · score {scores[g]:.3f} (click to isolate)" if g >= 0 else "no selected group"
            for g in owner.flatten()]
    fig.add_trace(go.Scatter(x=cx.flatten(), y=cy.flatten(), mode="markers", text=text,
                             customdata=[[int(g)] for g in owner.flatten()], hovertemplate="%{text}<extra></extra>",
                             marker=dict(symbol="square", size=14, color="rgba(0,0,0,0)", line=dict(width=0)),
                             selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
                             showlegend=False))


def map_rgb(kappa: np.ndarray, size: int = 160, limit: float | None = None) -> np.ndarray:
    """(size, size, 3) uint8: κ in the same diverging colours (the sidebar thumbnail)."""
    from matplotlib import colormaps
    lim = limit or _limit(kappa)
    rgb = colormaps["RdBu_r"](np.clip(kappa / (2 * lim) + 0.5, 0, 1))[..., :3]
    return upscale((rgb * 255).astype(np.uint8), size)


def curves_figure(curves: dict, *, step: int | None = None, name: str = "", height: int = 300) -> go.Figure:
    """One parameter's insertion (green) and deletion (red) closeness curves (see sop.regression_explain)."""
    fig = go.Figure()
    for kind, colour in (("insertion", INSERTION), ("deletion", DELETION)):
        c = curves[kind]
        fig.add_trace(go.Scatter(
            x=c.fractions, y=c.closeness, mode="lines+markers", name=f"{kind} (AUC {c.auc:.3f})",
            line=dict(color=colour, width=2.5), marker=dict(size=7),
            customdata=np.stack([np.arange(len(c.fractions)), c.predictions], 1),
            hovertemplate=(f"{kind}<br>step %{{customdata[0]}}: %{{x:.0%}} of pixels<br>closeness %{{y:.3f}}"
                           f"<br>{name} = %{{customdata[1]:.4f}}<extra></extra>")))
    if step is not None:
        fr = curves["insertion"].fractions
        fig.add_vline(x=float(fr[min(step, len(fr) - 1)]), line=dict(color="#6b7280", dash="dot", width=1.5))
    fig.add_hline(y=1, line=dict(color="#9ca3af", width=1))
    fig.update_xaxes(title_text="fraction of pixels inserted / deleted", range=[-0.02, 1.02], tickformat=".0%")
    fig.update_yaxes(title_text=f"closeness to the full-map {name}")
    return _layout(fig, height, legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))


def compare_curves_figure(per_method: dict[str, dict], kind: str, labels: dict[str, str], colours: dict[str, str],
                          height: int = 300) -> go.Figure:
    fig = go.Figure()
    for method, curves in per_method.items():
        c = curves[kind]
        fig.add_trace(go.Scatter(x=c.fractions, y=c.closeness, mode="lines+markers", marker=dict(size=5),
                                 name=f"{labels.get(method, method)} ({c.auc:.3f})",
                                 line=dict(color=colours.get(method), width=3 if method == "sop" else 2)))
    better = "higher is better" if kind == "insertion" else "lower is better"
    fig.update_xaxes(title_text=f"fraction of pixels {'inserted' if kind == 'insertion' else 'deleted'}",
                     range=[-0.02, 1.02], tickformat=".0%")
    fig.update_yaxes(title_text="closeness to the full-map prediction")
    return _layout(fig, height, title=dict(text=f"{kind.capitalize()} ({better}; AUC in the legend)", font_size=14),
                   legend=dict(font_size=11))


def attribution_figure(attribution: np.ndarray, title: str, height: int = 260) -> go.Figure:
    """A method's (H, W) map for one parameter, diverging around 0 (sign = which way it pushes)."""
    lim = float(np.abs(attribution).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=attribution, zmid=0, zmin=-lim, zmax=lim, colorscale="PuOr_r", showscale=False,
                               hovertemplate="x %{x}, y %{y}<br>%{z:.3g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False, constrain="domain")
    _layout(fig, height, title=dict(text=title, font_size=13))
    fig.update_layout(margin=dict(l=2, r=2, t=28, b=2))
    return fig


def residual_figure(pred: np.ndarray, true: np.ndarray, name: str, r2: float, rmse: float,
                    worst: Sequence[int] = (), selected: int | None = None, height: int = 380) -> go.Figure:
    """Predicted vs true for one parameter, the y = x line, R² and RMSE in the title; each point's
    customdata is its test-map index (click it to open that map)."""
    lo = float(min(pred.min(), true.min()))
    hi = float(max(pred.max(), true.max()))
    pad = 0.03 * (hi - lo)
    colours = [WORST if i in set(worst) else POINT for i in range(len(pred))]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[lo - pad, hi + pad], y=[lo - pad, hi + pad], mode="lines", name="y = x",
                             line=dict(color="#6b7280", dash="dash", width=1.5), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=true, y=pred, mode="markers", name="test maps",
                             marker=dict(size=6, color=colours, opacity=0.7),
                             customdata=np.arange(len(pred))[:, None],
                             hovertemplate=(f"map #%{{customdata[0]}}<br>true {name} %{{x:.4f}}<br>"
                                            f"predicted %{{y:.4f}}<extra></extra>")))
    if selected is not None and 0 <= selected < len(pred):
        fig.add_trace(go.Scatter(x=[true[selected]], y=[pred[selected]], mode="markers", name=f"map #{selected}",
                                 marker=dict(size=14, color="rgba(0,0,0,0)", line=dict(color="#111827", width=2)),
                                 hoverinfo="skip"))
    fig.update_xaxes(title_text=f"true {name}", range=[lo - pad, hi + pad])
    fig.update_yaxes(title_text=f"predicted {name}", range=[lo - pad, hi + pad], scaleanchor="x")
    return _layout(fig, height, title=dict(text=f"{name}: R² = {r2:.3f}, RMSE = {rmse:.4f}", font_size=14),
                   clickmode="event+select", showlegend=False)


def study_figures(report: dict) -> tuple[go.Figure, go.Figure]:
    """The lensing study's two panels (plotly): shares of void / cluster / neither on the sky and in
    the groups; the mean pull of void- and cluster-dominated groups on each parameter."""
    classes = list(report["shares"])
    sh = report["shares"]
    a = go.Figure()
    for key, label, colour in (("sky", "share of sky", "#94a3b8"), ("groups", "score-weighted share in groups",
                                                                     "#2563eb")):
        a.add_trace(go.Bar(x=classes, y=[sh[c][key] for c in classes], name=label, marker_color=colour,
                           error_y=dict(type="data", array=[sh[c][f"{key}_sem"] for c in classes])))
    a.update_yaxes(title_text="share of pixels")
    _layout(a, 340, barmode="group", title=dict(text="Where the selected groups look", font_size=14),
            legend=dict(orientation="h", yanchor="top", y=-0.12, x=0))
    a.update_layout(margin=dict(l=8, r=8, t=40, b=8))
    params = report["parameters"]
    b = go.Figure()
    for kind, colour in (("void", "#2166ac"), ("cluster", "#b2182b")):
        row = report["pulls"][kind]
        b.add_trace(go.Bar(x=params, y=[row[p]["pull"] for p in params], name=f"{kind}-dominated groups",
                           marker_color=colour, error_y=dict(type="data", array=[row[p]["sem"] for p in params])))
    b.add_hline(y=0, line=dict(color="#111827", width=1))
    b.update_yaxes(title_text="pull (std. units)")
    _layout(b, 340, barmode="group", title=dict(text="How void and cluster groups pull each parameter", font_size=14),
            legend=dict(orientation="h", yanchor="top", y=-0.12, x=0))
    b.update_layout(margin=dict(l=8, r=8, t=40, b=8))
    return a, b


__all__ = ["CONFIG", "map_figure", "patch_owner", "map_rgb", "curves_figure", "compare_curves_figure", "attribution_figure",
           "residual_figure", "study_figures"]
