"""Collect the design study's `sop evaluate` reports into one Markdown table per dataset.

    python -m sop evaluate --model runs/study/<variant>_sop.safetensors --methods sop \
        --samples 100 --threads 1 --out runs/study/eval          # once per variant
    python bench/design_study.py runs/study/eval/*.json           # the tables in docs/design-study.md
    python bench/design_study.py --spread runs/defaults/eval/*.json   # mean ± SD over seeds per design

Every figure is read from the reports and the checkpoints they name; nothing is typed in.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from sop.checkpoint import checkpoint_name

COLUMNS = [("accuracy", "SOP acc."), ("backbone_accuracy", "twin acc."), ("fidelity", "fidelity"),
           ("insertion", "ins. ↑"), ("deletion", "del. ↓"), ("grouped_insertion", "g-ins. ↑"),
           ("grouped_deletion", "g-del. ↓"), ("pointing_game", "pointing ↑"), ("mass_accuracy", "mass ↑"),
           ("rank_accuracy", "rank ↑"), ("groups_used", "groups used"), ("selected_fraction", "covered"),
           ("train_minutes", "train min")]
DESIGN = ("group_gen", "group_blur", "group_select", "group_dropout", "select_scale")


def knobs(cfg) -> str:
    """The settings that differ from the landed design, as CLI-like text."""
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    out = [f"{k}={getattr(cfg, k)}" for k in DESIGN if getattr(cfg, k) != defaults[k]]
    out.append(f"frac={cfg.max_group_frac}")
    stage = cfg.training.get("sop_stage", {})
    out += [f"{k}={stage[k]}" for k in ("area_weight", "tv_weight") if stage.get(k)]
    if stage.get("penalty_ramp_epochs"):
        out.append(f"ramp={stage['penalty_ramp_epochs']:g}ep")
    patch = cfg.backbone_kwargs.get("patch_size")
    grid = cfg.adapter_kwargs.get("grid")
    out.append(f"patch={patch}px" if patch else f"grid={tuple(grid)}" if grid else "")
    return " ".join(o for o in out if o)


def row_of(report: dict) -> dict:
    from sop import read_config
    cfg = read_config(report["checkpoint"])
    sop_row = next(r for r in report["rows"] if r["method"] == "sop")
    m = report["model"]
    return dict(variant=checkpoint_name(report["checkpoint"]), knobs=knobs(cfg),
                dataset=report["dataset"], accuracy=m["accuracy"], backbone_accuracy=m.get("backbone_accuracy"),
                fidelity=m.get("fidelity"),
                groups_used=m["groups_used"], selected_fraction=m["selected_fraction"],
                train_minutes=cfg.training.get("metrics", {}).get("train_minutes"),
                seed=cfg.training.get("seed"),
                **{k: sop_row.get(k) for k, _ in COLUMNS if k in sop_row and k != "accuracy"})


def fmt(k: str, v) -> str:
    if v is None:
        return "–"
    if k == "selected_fraction":
        return f"{100 * v:.0f} %"
    if k in ("groups_used", "train_minutes"):
        return f"{v:.1f}"
    return f"{v:.3f}"


def table(rows: list[dict]) -> str:
    cols = [(k, h) for k, h in COLUMNS if any(r.get(k) is not None for r in rows)]
    lines = ["| variant | seed | design | " + " | ".join(h for _, h in cols) + " |",
             "|---|---:|---|" + "---:|" * len(cols)]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['seed']} | {r['knobs']} | " +
                     " | ".join(fmt(k, r.get(k)) for k, _ in cols) + " |")
    return "\n".join(lines)


def spread_table(rows: list[dict]) -> str:
    """One line per design: mean ± sample standard deviation over its seeds (n in the seed column)."""
    import numpy as np
    designs: dict[str, list[dict]] = {}
    for r in rows:
        designs.setdefault(r["knobs"], []).append(r)
    cols = [(k, h) for k, h in COLUMNS if any(r.get(k) is not None for r in rows)]
    lines = ["| design | seeds | " + " | ".join(h for _, h in cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for knob, group in designs.items():
        cells = []
        for k, _ in cols:
            vals = np.array([r[k] for r in group if r.get(k) is not None], dtype=float)
            if not len(vals):
                cells.append("–")
                continue
            scale, unit = (100, " %") if k == "selected_fraction" else (1, "")
            sd = vals.std(ddof=1) if len(vals) > 1 else float("nan")
            digits = 1 if k in ("groups_used", "train_minutes") or unit else 3
            cells.append(f"{scale * vals.mean():.{digits}f} ± {scale * sd:.{digits}f}{unit}")
        seeds = ",".join(str(r["seed"]) for r in sorted(group, key=lambda r: r["seed"] or 0))
        lines.append(f"| {knob} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reports", nargs="+", type=Path)
    p.add_argument("--spread", action="store_true", help="mean ± SD over seeds, one line per design")
    args = p.parse_args()
    rows = [row_of(json.loads(path.read_text())) for path in args.reports]
    for dataset in sorted({r["dataset"] for r in rows}):
        subset = [r for r in rows if r["dataset"] == dataset]
        print(f"\n### {dataset}\n\n" + (spread_table(subset) if args.spread else table(subset)))


if __name__ == "__main__":
    main()
