"""The Markdown the `evaluate` command prints: a summary paragraph and one table per report.

`sop.evaluation` computes the report (a dict); this module only formats it.  (Modules of
sop/commands whose name starts with "_" are helpers, not commands.)
"""
from __future__ import annotations

import math

TABLE_COLUMNS = [("method", "method"), ("model", "model"), ("accuracy", "accuracy"),
                 ("insertion", "insertion AUC ↑"), ("deletion", "deletion AUC ↓"),
                 ("grouped_insertion", "grouped ins. ↑"), ("grouped_deletion", "grouped del. ↓"),
                 ("pointing_game", "pointing ↑"), ("mass_accuracy", "mass acc. ↑"),
                 ("rank_accuracy", "rank acc. ↑"), ("iou", "GT IoU ↑"), ("iou_gt_area", "GT IoU @GT area ↑"),
                 ("seconds", "s / explanation")]


def format_table(report: dict) -> str:
    """The report's rows as a Markdown table (what the CLI prints and the docs hold)."""
    cols = [(k, h) for k, h in TABLE_COLUMNS if k in report["rows"][0]]
    lines = ["| " + " | ".join(h for _, h in cols) + " |",
             "|" + "|".join("---" if k in ("method", "model") else "---:" for k, _ in cols) + "|"]
    for row in report["rows"]:
        cells = []
        for k, _ in cols:
            v = row[k]
            if isinstance(v, str):
                cells.append(v)
            elif k == "seconds":
                cells.append(f"{v:.4f}" if v < 0.1 else f"{v:.2f}")
            elif k == "accuracy":
                cells.append(f"{v:.3f}")
            else:
                sem = row.get(f"{k}_sem", float("nan"))
                cells.append(f"{v:.3f}" + (f" ± {sem:.3f}" if math.isfinite(sem) else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_summary(report: dict) -> str:
    """One paragraph of model statistics above the table."""
    m = report["model"]
    parts = [f"dataset {report['dataset']}: SOP accuracy {m['accuracy']:.3f}"]
    if "backbone_accuracy" in m:
        parts.append(f"backbone accuracy {m['backbone_accuracy']:.3f}, fidelity {m['fidelity']:.3f}")
    parts.append(f"groups used {m['groups_used']:.2f} of {m['num_groups']}, "
                 f"{m['pixels_per_group']:.0f} pixels per used group (of {m['image_pixels']}), "
                 f"used groups cover {100 * m['selected_fraction']:.0f}% of the image")
    s = report["settings"]
    parts.append(f"N = {report['samples']} test inputs"
                 + (f" ({report['iou_samples']} with a ground-truth mask, for localisation and IoU)"
                    if "iou" in report["rows"][0] else "")
                 + f", {s['steps']} steps, removal baseline {s['baseline']!r}, baselines explain the "
                 + ("backbone twin" if s["baselines_on"] == "backbone" else "SOP model"))
    return "; ".join(parts) + "."
