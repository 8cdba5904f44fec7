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
    rows = report["rows"]
    # regression reports have no accuracy (R2 and RMSE are in the summary): no column of dashes
    cols = [(k, h) for k, h in TABLE_COLUMNS if k in rows[0] and any(r[k] is not None for r in rows)]
    lines = ["| " + " | ".join(h for _, h in cols) + " |",
             "|" + "|".join("---" if k in ("method", "model") else "---:" for k, _ in cols) + "|"]
    for row in report["rows"]:
        cells = []
        for k, _ in cols:
            v = row[k]
            if isinstance(v, str):
                cells.append(v)
            elif v is None:
                cells.append("–")
            elif k == "seconds":
                cells.append(f"{v:.4f}" if v < 0.1 else f"{v:.2f}")
            elif k == "accuracy":
                cells.append(f"{v:.3f}")
            else:
                sem = row.get(f"{k}_sem", float("nan"))
                cells.append(f"{v:.3f}" + (f" ± {sem:.3f}" if math.isfinite(sem) else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


PARAMETER_COLUMNS = [("insertion", "insertion AUC ↑"), ("deletion", "deletion AUC ↓"),
                     ("grouped_insertion", "grouped ins. ↑"), ("grouped_deletion", "grouped del. ↓")]


def format_parameter_table(report: dict) -> str:
    """A regression report's AUCs per parameter (one row per method and parameter; the main table
    holds their means); "" for a classification report."""
    names = report.get("parameters") or []
    if not names:
        return ""
    lines = ["| method | model | parameter | " + " | ".join(h for _, h in PARAMETER_COLUMNS) + " |",
             "|---|---|---|" + "|".join("---:" for _ in PARAMETER_COLUMNS) + "|"]
    for row in report["rows"]:
        for n in names:
            cells = []
            for k, _ in PARAMETER_COLUMNS:
                v, sem = row[f"{k}_{n}"], row.get(f"{k}_{n}_sem", float("nan"))
                cells.append(f"{v:.3f}" + (f" ± {sem:.3f}" if math.isfinite(sem) else ""))
            lines.append(f"| {row['method']} | {row['model']} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_summary(report: dict) -> str:
    """One paragraph of model statistics above the table."""
    m = report["model"]
    if "accuracy" not in m:
        parts = regression_summary(report["dataset"], m)
    else:
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
                 + f", {s['steps']} steps, removal baseline {s['baseline']!r}, "
                 + ("SOP only" if all(r["method"] == "sop" for r in report["rows"]) else
                    "baselines explain the " + ("backbone twin" if s["baselines_on"] == "backbone" else "SOP model")
                 + ("'s estimate of each parameter in turn (target = p), scored on that parameter; their "
                    "seconds are for all the parameters' explanations" if "accuracy" not in m else "")))
    return "; ".join(parts) + "."


def regression_summary(dataset: str, m: dict) -> list[str]:
    """R2 and RMSE per parameter (physical units) of SOP and its twin, and the fidelity R2."""
    def per(key: str, fmt: str) -> str:
        return ", ".join(f"{n} {format(v, fmt)}" for n, v in m[key].items())
    parts = [f"dataset {dataset}: SOP R2 {per('r2', '.3f')}; RMSE {per('rmse', '.4f')}"]
    if "backbone_r2" in m:
        parts.append(f"twin R2 {per('backbone_r2', '.3f')}; RMSE {per('backbone_rmse', '.4f')}; "
                     f"fidelity (R2 of SOP vs twin) {per('fidelity_r2', '.3f')}")
    parts.append("curves: score = closeness to the full-input prediction, 1 - |Δ| / training std, "
                 "mean over the parameters (each parameter's in the second table)")
    return parts


# --------------------------------------------------------------------------- budget sweep

SWEEP_COLUMNS = [("label", "method"), ("budget", "budget"), ("forward", "fwd passes"), ("backward", "bwd passes"),
                 ("seconds", "s / explanation"), ("insertion", "insertion ↑"), ("deletion", "deletion ↓"),
                 ("grouped_insertion", "grouped ins. ↑"), ("grouped_deletion", "grouped del. ↓")]


def format_sweep_table(report: dict) -> str:
    """The sweep's rows as a Markdown table; an AUC on its curve's Pareto frontier (by passes) in bold."""
    lines = ["| " + " | ".join(h for _, h in SWEEP_COLUMNS) + " |",
             "|---|" + "|".join("---:" for _ in SWEEP_COLUMNS[1:]) + "|"]
    for row in report["rows"]:
        cells = []
        for k, _ in SWEEP_COLUMNS:
            v = row.get(k)
            if v is None:
                cells.append("–")
            elif isinstance(v, str) or isinstance(v, int):
                cells.append(str(v))
            elif k == "seconds":
                cells.append(f"{v:.4f}" if v < 0.1 else f"{v:.2f}")
            else:
                text = f"{v:.3f}" if math.isfinite(v) else "–"
                cells.append(f"**{text}**" if row.get(f"front_{k}") else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_sweep_summary(report: dict, frontier_by_passes: list[str], frontier_by_seconds: list[str]) -> str:
    """The line under the table: where SOP is on the frontier."""
    sop = [r for r in report["rows"] if r["method"] == "sop"]
    head = (f"dataset {report['dataset']}: N = {report['samples']} test inputs, budgets "
            f"{', '.join(map(str, report['budgets']))} (IG steps capped at {report['ig_max_steps']}), "
            f"baselines explain the {'backbone twin' if report['baselines_on'] == 'backbone' else 'SOP model'}; "
            "bold = on that curve's Pareto frontier by passes.")
    if not sop:
        return head
    names = {"insertion": "insertion", "deletion": "deletion", "grouped_insertion": "grouped insertion",
             "grouped_deletion": "grouped deletion"}
    by_passes = ", ".join(names[k] for k in frontier_by_passes) or "none"
    by_seconds = ", ".join(names[k] for k in frontier_by_seconds) or "none"
    return (f"{head}\nSOP ({sop[0]['forward']} passes) on the frontier for: {by_passes} (by passes); "
            f"{by_seconds} (by seconds).")
