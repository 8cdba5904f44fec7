"""A paper figure of one SOP explanation (matplotlib, no display needed).

    from sop.figure import explanation_figure, figure_data, save_figure
    data = figure_data(model, x)                    # one SOP pass + both curve kinds
    fig = explanation_figure(data)                  # a matplotlib Figure (Agg, no pyplot)
    save_figure(fig, "fig.pdf")                     # .pdf / .svg / .png by suffix

Layout (width ``width`` inches, default 7 = a two-column paper's text width):

* top row: the input (with its true class when known), the combined overlay
  sum_g score_g * mask_g (a colour-blind-safe sequential map), and the insertion /
  deletion curves, pixel-wise and grouped, each with its AUC in the legend;
* below: one panel per *scored* group (score > 0, by decreasing score), the group's
  mask over the input in ``sop.visualize.group_colour(g)`` (the app's colour for that
  group), titled with its index and score -- colour is never the only cue.

Text stays text: PDF uses TrueType (fonttype 42) fonts, SVG keeps ``<text>`` elements.
The group panels carry the axes label ``"group:<g>"``, so ``len(group_axes(fig))`` is
the number of scored groups shown.  Nothing here imports Streamlit or pyplot.
"""
from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .errors import ConfigError, InputError
from .faithfulness import DEFAULT_BASELINE, DEFAULT_STEPS, Curve
from .image_io import tensor_to_image
from .visualize import group_colour, overlay_heatmap, overlay_mask, upscale

FORMATS = ("pdf", "svg", "png")
MIME = {"pdf": "application/pdf", "svg": "image/svg+xml", "png": "image/png"}
DEFAULT_WIDTH = 7.0       # inches
DEFAULT_DPI = 300         # PNG only
# Okabe & Ito (2008), safe for the common colour-vision deficiencies: the two curve kinds.
CURVE_COLOURS = {"insertion": "#0072B2", "deletion": "#D55E00"}
# Text kept as text: TrueType in PDF (editable, searchable), <text> elements in SVG.
RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none", "font.size": 7.0,
      "axes.titlesize": 7.0, "axes.labelsize": 7.0, "xtick.labelsize": 6.0, "ytick.labelsize": 6.0,
      "legend.fontsize": 6.0, "axes.linewidth": 0.6, "font.family": "DejaVu Sans"}
_GROUP_COLUMNS = 6
# rc_context swaps process-wide settings: one figure at a time (the app draws on several threads).
_RC_LOCK = threading.RLock()
_TILE = 256               # images are upscaled (nearest) to this many pixels so they stay crisp


@dataclass
class FigureData:
    """Everything the figure draws, as plain arrays (from `figure_data` or from the app's cache)."""
    image: np.ndarray                         # (H, W, 3) uint8, what the model sees
    pixel_masks: np.ndarray                   # (G, H, W) in [0, 1]
    scores: np.ndarray                        # (G,) scores of the explained class (>= 0)
    class_names: Sequence[str]
    prediction: int
    probability: float
    curves: Mapping[str, Mapping[str, Curve]] = field(default_factory=dict)  # mode -> {"insertion", "deletion"}
    true_label: int | None = None
    alone: Mapping[int, str] = field(default_factory=dict)   # group -> "what it predicts alone" (optional)
    title: str | None = None
    baseline: str = DEFAULT_BASELINE

    @property
    def scored(self) -> list[int]:
        """Groups with a non-zero score, by decreasing score (ties: lower index first)."""
        order = np.argsort(-np.asarray(self.scores, dtype=np.float64), kind="stable")
        return [int(g) for g in order if self.scores[g] > 0]


def _require_matplotlib() -> None:
    """matplotlib comes with captum (a dependency); say so plainly if it is missing anyway."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ConfigError("drawing a figure needs matplotlib (installed with captum): pip install matplotlib",
                          field="matplotlib") from err


def figure_data(model, x: torch.Tensor, *, steps: int = DEFAULT_STEPS, baseline: str = DEFAULT_BASELINE,
                true_label: int | None = None, title: str | None = None,
                modes: Sequence[str] = ("pixel", "grouped")) -> FigureData:
    """One SOP explanation of x (1, C, H, W) on `model` (an SOPModel) and its curves, for `explanation_figure`."""
    from .explainers import explain
    from .faithfulness import insertion_deletion
    from .model import SOPModel
    if not isinstance(model, SOPModel):
        raise InputError("a figure explains an SOP model: load a *_sop.safetensors checkpoint")
    exp = explain(model, x, "sop")
    with torch.inference_mode():
        out = model(x)
    probs = out.probs[0].float()
    k = exp.target
    g_logits = out.group_logits[0].float()
    names = list(model.config.class_names) or [str(i) for i in range(probs.numel())]
    alone = {}
    for g in range(g_logits.shape[0]):
        p = g_logits[g].softmax(-1)
        alone[g] = f"{names[int(p.argmax())]} {float(p.max()):.0%}"
    curves = {m: insertion_deletion(model, x, exp, mode=m, steps=steps, baseline=baseline) for m in modes}
    cfg = model.config
    return FigureData(image=tensor_to_image(x, cfg.mean, cfg.std), pixel_masks=exp.groups.numpy(),
                      scores=exp.scores.numpy(), class_names=names, prediction=int(k),
                      probability=float(probs[k]), curves=curves, true_label=true_label, alone=alone,
                      title=title, baseline=baseline)


def _image(ax, arr: np.ndarray, title: str, colour: str | None = None) -> None:
    ax.imshow(upscale(arr, max(_TILE, max(arr.shape[:2]))), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, pad=3)
    for spine in ax.spines.values():
        spine.set_linewidth(1.6 if colour else 0.6)
        spine.set_edgecolor(colour or "#444444")


def _curves(ax, pair: Mapping[str, Curve], mode: str, target: str) -> None:
    for kind in ("insertion", "deletion"):
        c = pair[kind]
        ax.plot(c.fractions, c.scores, color=CURVE_COLOURS[kind], lw=1.2,
                ls="-" if kind == "insertion" else "--", marker="o" if mode == "grouped" else None, ms=2.5,
                label=f"{kind} AUC {c.auc:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("fraction of pixels")
    ax.set_ylabel(f"p({target})")
    ax.set_title(f"{'pixel-wise' if mode == 'pixel' else 'grouped'} curves", pad=3)
    ax.grid(True, lw=0.3, color="#dddddd")
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", ".25", ".5", ".75", "1"])
    ax.legend(loc="best", frameon=True, framealpha=0.85, edgecolor="none", handlelength=1.8, borderpad=0.3)
    ax.set_box_aspect(1)


def explanation_figure(data: FigureData, *, width: float = DEFAULT_WIDTH, max_groups: int | None = None):
    """The paper figure of `data` (a `matplotlib.figure.Figure`, Agg-backed, never shown)."""
    _require_matplotlib()
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    if not width > 0:
        raise InputError(f"width must be positive, got {width}")
    groups = data.scored[:max_groups] if max_groups else data.scored
    modes = [m for m in ("pixel", "grouped") if m in data.curves]
    top_n = 2 + len(modes)
    cols = max(top_n, _GROUP_COLUMNS)
    group_rows = -(-len(groups) // cols)
    top_h, group_h = width / top_n * 1.2, width / cols * 1.3
    height = math.ceil((top_h + group_rows * group_h + 0.3) * 10) / 10  # whole tenths of an inch
    names = data.class_names
    target = names[data.prediction]
    with _RC_LOCK, rc_context(RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        outer = fig.add_gridspec(1 + group_rows, 1, height_ratios=[top_h] + [group_h] * group_rows)
        top = outer[0].subgridspec(1, top_n)
        ax = fig.add_subplot(top[0])
        true = f" (true: {names[data.true_label]})" if data.true_label is not None else ""
        _image(ax, data.image, "input" + true)
        ax.set_label("input")
        ax = fig.add_subplot(top[1])
        combined = np.einsum("g,ghw->hw", np.asarray(data.scores, np.float64), np.asarray(data.pixel_masks, np.float64))
        _image(ax, overlay_heatmap(data.image, combined, kind="sequential"), "Σ score × mask")
        ax.set_label("combined")
        for i, mode in enumerate(modes):
            ax = fig.add_subplot(top[2 + i])
            _curves(ax, data.curves[mode], mode, target)
            ax.set_label(f"curves:{mode}")
        if groups:
            rows = outer[1:].subgridspec(group_rows, cols)
            for i, g in enumerate(groups):
                ax = fig.add_subplot(rows[i // cols, i % cols])
                title = f"group {g} · score {float(data.scores[g]):.3f}"
                if g in data.alone:
                    title += f"\nalone: {data.alone[g]}"
                _image(ax, overlay_mask(data.image, data.pixel_masks[g], group_colour(g), outline=True), title,
                       colour=group_colour(g))
                ax.set_label(f"group:{g}")
        head = data.title + " · " if data.title else ""
        fig.suptitle(f"{head}SOP prediction: {target} ({data.probability:.1%}) · {len(data.scored)} of "
                     f"{len(data.scores)} groups scored · removal baseline: {data.baseline}", fontsize=8)
    return fig


def group_axes(fig) -> list:
    """The figure's group panels (one per scored group shown)."""
    return [ax for ax in fig.axes if str(ax.get_label()).startswith("group:")]


def figure_format(path: str | Path) -> str:
    """'pdf' | 'svg' | 'png' from a file name's suffix; InputError for anything else."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise InputError(f"cannot write a figure as {Path(path).name!r}: the name must end in "
                         f"{', '.join('.' + f for f in FORMATS)}")
    return suffix


def figure_bytes(fig, fmt: str, *, dpi: int = DEFAULT_DPI) -> bytes:
    """The figure as PDF, SVG or PNG bytes (PNG: width x dpi by height x dpi pixels, truncated)."""
    if fmt not in FORMATS:
        raise InputError(f"figure format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not (isinstance(dpi, (int, float)) and dpi > 0):
        raise InputError(f"dpi must be positive, got {dpi!r}")
    _require_matplotlib()
    from matplotlib import rc_context
    buf = io.BytesIO()
    # Fixed metadata (no creation date): the same figure gives the same bytes.
    meta = {"pdf": {"CreationDate": None, "Creator": "sop.figure"}, "svg": {"Date": None, "Creator": "sop.figure"},
            "png": {"Software": "sop.figure"}}[fmt]
    with _RC_LOCK, rc_context(RC):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta, facecolor="white")
    return buf.getvalue()


def save_figure(fig, path: str | Path, *, dpi: int = DEFAULT_DPI) -> Path:
    """Write the figure to `path`, its format from the suffix (.pdf, .svg, .png)."""
    path = Path(path)
    data = figure_bytes(fig, figure_format(path), dpi=dpi)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
