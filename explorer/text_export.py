"""Downloads of a text explanation: JSON in the shape of the image export (explorer/export.py:
model, input, prediction, groups, curves, definitions; tokens instead of patch masks) and the
sentence figure (sop.text_figure) as PNG."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from sop.faithfulness import Curve
from sop.figure import figure_bytes
from sop.text_explain import SentenceExplanation
from sop.text_figure import sentence_figure
from sop.visualize import group_colour

from .export import FORMAT, _r, curves_record, to_json
from .models import LoadedModel
from .text_inputs import TextInput

__all__ = ["text_record", "to_json", "text_figure_png"]


def text_record(lm: LoadedModel, ti: TextInput, sx: SentenceExplanation,
                curves: Mapping[str, Mapping[str, Curve]], *, top_k: int = 5) -> dict:
    cfg = lm.config
    names = lm.class_names
    pred = sx.prediction
    top = [int(i) for i in np.argsort(-sx.probs, kind="stable")[:top_k]]
    groups = []
    for rank, g in enumerate(sx.groups):
        groups.append({
            "group": g.group, "rank": rank, "score": _r(g.score), "colour": group_colour(g.group),
            "alone_predicts": names[g.alone_class], "alone_probability": _r(g.alone_probs.max()),
            "logits": [_r(v, 5) for v in sx.group_logits[g.group]],
            "tokens": len(g.positions), "positions": g.positions, "words": g.words,
            "token_mask": [_r(v, 4) for v in sx.masks[g.group]],
        })
    return {
        "format": FORMAT,
        "paper": "Sum-of-Parts (SOP), arXiv:2310.16316",
        "model": {"name": lm.spec.name, "source": lm.spec.source, "checkpoint": lm.spec.sop_path,
                  "backbone": cfg.backbone, "dataset": cfg.dataset, "num_groups": cfg.num_groups,
                  "modality": "text", "max_tokens": int(cfg.img_size[-1]), "class_names": names},
        "input": {"kind": ti.kind, "name": ti.name, "text": ti.text, "split": ti.split, "index": ti.index,
                  "true_label": ti.label, "true_class": names[ti.label] if ti.label is not None else None,
                  "truncated": ti.truncated, "token_ids": [int(v) for v in ti.ids[0]], "tokens": sx.tokens,
                  "hash": ti.key},
        "prediction": {"class_index": pred, "class": names[pred], "probability": _r(sx.probs[pred]),
                       "top_k": [{"class": names[i], "class_index": i, "probability": _r(sx.probs[i])} for i in top]},
        "groups": groups,
        "curves": {"removal": "[PAD] (token dropped)", "model": "sop", **curves_record(curves)},
        "definitions": {
            "score": "group weight in the prediction (sparsemax: >= 0, sums to 1)",
            "logits": "what the model predicts reading the group's tokens alone; prediction = sum_g score_g * logits_g",
            "token_mask": "the group's weight on each token position (0 = not in the group)",
            "auc": "trapezoid rule over the fraction of content tokens inserted / deleted, in [0, 1]; "
                   "insertion: higher is better; deletion: lower is better",
        },
    }


def text_figure_png(lm: LoadedModel, ti: TextInput, sx: SentenceExplanation, dpi: int = 200) -> bytes:
    fig = sentence_figure(sx, lm.class_names, title=f"{lm.spec.name} · {ti.name}", true_label=ti.label)
    return figure_bytes(fig, "png", dpi=dpi)
