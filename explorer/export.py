"""Downloads: the explanation as a PNG panel, as JSON (groups, scores, curves, AUCs) and as a paper
figure (PDF/SVG/PNG, drawn by sop.figure with matplotlib)."""
from __future__ import annotations

import json
from typing import Mapping

import numpy as np

from sop.explainers import model_grid
from sop.faithfulness import Curve
from sop.figure import FORMATS, MIME, FigureData, explanation_figure, figure_bytes
from sop.visualize import group_colour, overlay_groups, overlay_heatmap, overlay_mask, panel, to_png

from .compute import MODES, Forward, get_curves, get_explanation, label
from .inputs import ModelInput
from .models import LoadedModel

FORMAT = "sop-explorer/explanation@1"


def _r(v, nd: int = 6):
    return float(round(float(v), nd))


def curve_record(c: Curve) -> dict:
    return {"fractions": [_r(v) for v in c.fractions], "scores": [_r(v) for v in c.scores], "auc": _r(c.auc),
            "target": int(c.target)}


def curves_record(curves: Mapping[str, Mapping[str, Curve]]) -> dict:
    """{mode: {"insertion": ..., "deletion": ...}}"""
    return {mode: {kind: curve_record(c) for kind, c in pair.items()} for mode, pair in curves.items()}


def explanation_record(lm: LoadedModel, mi: ModelInput, fwd: Forward, curves: Mapping[str, Mapping[str, Curve]],
                       *, baseline: str, steps: int, top_k: int = 5) -> dict:
    """Everything the Explain page shows, as plain JSON-able data."""
    cfg = lm.config
    names = lm.class_names
    pred = fwd.prediction
    grid = model_grid(lm.model)
    top = [int(i) for i in np.argsort(-fwd.probs, kind="stable")[:top_k]]
    groups = []
    for rank, g in enumerate(fwd.order):
        alone = fwd.alone_probs(g)
        groups.append({
            "group": int(g), "rank": rank, "score": _r(fwd.scores[g]), "colour": group_colour(g),
            "alone_predicts": names[int(alone.argmax())], "alone_probability": _r(alone.max()),
            "logits": [_r(v, 5) for v in fwd.group_logits[g]],
            "patches": int((fwd.group_masks[g] > 0).sum()),
            "patch_mask": [[_r(v, 4) for v in row] for row in fwd.group_masks[g].reshape(grid)],
        })
    return {
        "format": FORMAT,
        "paper": "Sum-of-Parts (SOP), arXiv:2310.16316",
        "model": {"name": lm.spec.name, "source": lm.spec.source, "checkpoint": lm.spec.sop_path,
                  "backbone": cfg.backbone, "dataset": cfg.dataset, "num_groups": cfg.num_groups,
                  "patch_grid": list(grid), "class_names": names},
        "input": {"kind": mi.kind, "name": mi.name, "split": mi.split, "index": mi.index,
                  "true_label": mi.label, "true_class": names[mi.label] if mi.label is not None else None,
                  "shape": list(mi.x.shape[1:]), "hash": mi.key},
        "prediction": {"class_index": pred, "class": names[pred], "probability": _r(fwd.probs[pred]),
                       "top_k": [{"class": names[i], "class_index": i, "probability": _r(fwd.probs[i])} for i in top]},
        "groups": groups,
        "curves": {"baseline": baseline, "steps": int(steps), "model": "sop", **curves_record(curves)},
        "definitions": {
            "score": "group weight in the prediction (sparsemax: >= 0, sums to 1)",
            "logits": "what the backbone predicts seeing the group alone; prediction = sum_g score_g * logits_g",
            "patch_mask": "the group's weight on each patch of the model's patch grid (0 = not in the group)",
            "auc": "trapezoid rule over the fraction of pixels, in [0, 1]; insertion: higher is better; "
                   "deletion: lower is better",
        },
    }


def to_json(record: dict) -> str:
    return json.dumps(record, indent=2, ensure_ascii=False)


def explanation_png(lm: LoadedModel, mi: ModelInput, fwd: Forward, curves: Mapping[str, Curve] | None = None,
                    *, max_groups: int = 6) -> bytes:
    """Input, all groups combined, and the top groups with their scores, as one PNG."""
    img = mi.image(lm)
    names = lm.class_names
    pred = fwd.prediction
    scored = [g for g in fwd.order if fwd.scores[g] > 0] or fwd.order[:1]
    tiles = [("input" + (f" (true: {names[mi.label]})" if mi.label is not None else ""), img),
             ("scored groups", overlay_groups(img, fwd.pixel_masks, scored, weights=fwd.scores))]
    colours: list[str | None] = [None, None]
    for g in fwd.order[:max_groups]:
        tiles.append((f"group {g} · {fwd.scores[g]:.3f}", overlay_mask(img, fwd.pixel_masks[g], group_colour(g),
                                                                        outline=True)))
        colours.append(group_colour(g))
    footer = [f"prediction: {names[pred]} ({fwd.probs[pred]:.1%})  ·  model: {lm.spec.name}  ·  input: {mi.name}"]
    if curves:
        footer.append(f"insertion AUC {curves['insertion'].auc:.3f}  ·  deletion AUC {curves['deletion'].auc:.3f}"
                      f"  ({curves['insertion'].mode})")
    arr = panel(tiles, tile=160, columns=4, title="SOP explanation", footer=footer, caption_colours=colours)
    return to_png(arr)


def comparison_png(lm: LoadedModel, mi: ModelInput, results: Mapping[str, tuple]) -> bytes:
    """One heatmap per method with its time and AUCs.  results: method -> (Explanation, curves)."""
    img = mi.image(lm)
    tiles = [("input", img)]
    for method, (exp, curves) in results.items():
        cap = f"{label(method)} {exp.seconds:.1f}s"
        if curves:
            cap += f" ins {curves['insertion'].auc:.2f} del {curves['deletion'].auc:.2f}"
        tiles.append((cap, overlay_heatmap(img, exp.attribution)))
    return to_png(panel(tiles, tile=160, columns=4, title=f"Attribution methods on {mi.name}"))


# --------------------------------------------------------------------------- paper figure

def figure_data(lm: LoadedModel, mi: ModelInput, fwd: Forward, curves: Mapping[str, Mapping[str, Curve]], *,
                baseline: str) -> FigureData:
    """The app's cached forward pass and curves ({mode: pair}) as sop.figure's input (nothing recomputed)."""
    names = lm.class_names
    alone = {g: f"{names[int(fwd.alone_probs(g).argmax())]} {float(fwd.alone_probs(g).max()):.0%}"
             for g in range(len(fwd.scores))}
    return FigureData(image=mi.image(lm), pixel_masks=fwd.pixel_masks, scores=fwd.scores, class_names=names,
                      prediction=fwd.prediction, probability=float(fwd.probs[fwd.prediction]), curves=dict(curves),
                      true_label=mi.label, alone=alone, title=f"{lm.spec.name} · {mi.name}", baseline=baseline)


def sop_curve_pairs(lm: LoadedModel, mi: ModelInput, curves: Mapping[str, Mapping[str, Curve]] | None, *,
                    baseline: str, steps: int) -> dict[str, Mapping[str, Curve]]:
    """Both curve kinds of SOP's explanation, {mode: pair}: those in `curves`, the others from
    `compute.get_curves` (its cache: a download never recomputes what a page drew, and what it computes
    is there for the page).  Downloads run this on their own thread, which shares the server's caches."""
    both = dict(curves or {})
    missing = [m for m in MODES if m not in both]
    if missing:
        exp = get_explanation(lm, mi.x, "sop", x_key=mi.key)
        for m in missing:
            both[m] = get_curves(lm, mi.x, exp, mode=m, steps=steps, baseline=baseline, x_key=mi.key)
    return {m: both[m] for m in MODES}


def explanation_figure_bytes(lm: LoadedModel, mi: ModelInput, fwd: Forward,
                             curves: Mapping[str, Mapping[str, Curve]], fmt: str, *, baseline: str,
                             steps: int, dpi: int = 200) -> bytes:
    """The paper figure (sop.figure) as `fmt` bytes; curve kinds missing from `curves` come from the
    app's curve cache (`sop_curve_pairs`)."""
    both = sop_curve_pairs(lm, mi, curves, baseline=baseline, steps=steps)
    fig = explanation_figure(figure_data(lm, mi, fwd, both, baseline=baseline))
    return figure_bytes(fig, fmt, dpi=dpi)


def figure_download(lm: LoadedModel, mi: ModelInput, fwd: Forward, *, baseline: str, steps: int,
                    curves: Mapping[str, Mapping[str, Curve]] | None = None, key: str = "fig") -> None:
    """The "Download figure (PDF/SVG/PNG)" control: a format choice and a download button (the figure is
    drawn only when the button is clicked)."""
    import streamlit as st
    labels = [f.upper() for f in FORMATS]
    c_fmt, c_button = st.columns([1, 1.4], vertical_alignment="center")
    with c_fmt:
        choice = st.segmented_control("Figure format", labels, default=labels[0], key=f"{key}_format",
                                      label_visibility="collapsed",
                                      help="A paper figure: input, each scored group with its score, the combined "
                                           "overlay and both curve kinds with their AUCs. PDF and SVG keep the "
                                           "text as text.")
    fmt = (choice or labels[0]).lower()
    stem = f"sop_figure_{lm.spec.name}_{mi.url}".replace(":", "_").replace("/", "_").replace(" ", "_")
    c_button.download_button(f"Download figure ({fmt.upper()})",
                             lambda: explanation_figure_bytes(lm, mi, fwd, curves or {}, fmt, baseline=baseline,
                                                              steps=steps),
                             file_name=f"{stem}.{fmt}", mime=MIME[fmt], icon=":material/picture_as_pdf:",
                             key=f"{key}_download", on_click="ignore")
