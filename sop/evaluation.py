"""The side-by-side report: SOP and the post-hoc baselines on the same inputs.

For one SOP checkpoint and its plain backbone twin, on the checkpoint's dataset (test
split):

* **Model statistics** (whole test split): accuracy of SOP and of the backbone;
  *fidelity* = fraction of inputs where SOP predicts the backbone's class; *sparsity* =
  groups used (score > 0) per input, pixels per used group (mask > 0), and the share of
  the image the used groups cover.
* **Explanations** (N test inputs, a seeded random sample): for each method, the mean
  over the N inputs of the pixel-wise and grouped insertion / deletion AUCs (with
  their standard errors, `*_sem`; see `sop.faithfulness`) and the median seconds per
  explanation (wall time of `explain`; curves not included).  SOP's curves run on the SOP model
  (its explanation *is* its computation); the baselines explain, and are scored on,
  the backbone twin by default (``baselines_on="backbone"``, as the paper compares
  SOP with post-hoc methods on the original model) or the SOP model (``"sop"``).
  The baselines' grouped curves use group sizes equal to SOP's on the same input, so
  every method is scored at the same x positions.
* **Ground-truth IoU** (parts scenes only; positive scenes among the N, whatever the
  prediction): IoU between a region and the *decisive* part mask.
  - ``iou``: SOP's region = the union of its used groups (score > 0, mask > 0); a
    baseline's region = its top-ranked patches (the curves' ranking) covering the same
    number of pixels as SOP's region on that input -- same area, so only *where* counts.
  - ``iou_gt_area``: every method (SOP ranked by its map sum_g s_g m_g) takes its
    top-ranked pixels of the decisive mask's area -- an oracle size, for reference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .data import Split
from .explainers import METHODS, default_settings, explain, logits_of, model_grid
from .faithfulness import DEFAULT_BASELINE, DEFAULT_STEPS, group_sizes_of, insertion_deletion, pixel_order, \
    sets_from_order
from .model import SOPModel

METRICS = ("insertion", "deletion", "grouped_insertion", "grouped_deletion", "iou", "iou_gt_area", "seconds")


@dataclass
class EvalSettings:
    methods: Sequence[str] = METHODS
    samples: int = 50
    steps: int = DEFAULT_STEPS
    baseline: str = DEFAULT_BASELINE
    baselines_on: str = "backbone"       # "backbone" (the twin) or "sop"
    seed: int = 0                        # which inputs are sampled
    batch_size: int = 64                 # curve inputs per forward pass
    method_settings: dict[str, dict] = field(default_factory=dict)  # explain() overrides per method


@torch.no_grad()
def model_statistics(model: SOPModel, backbone: nn.Module | None, split: Split, batch_size: int = 128) -> dict:
    """Accuracy, backbone accuracy, fidelity and sparsity over the whole split."""
    model.eval()
    n = correct = bb_correct = agree = 0
    used = pixels = covered = 0.0
    for x, y in DataLoader(split.dataset, batch_size=batch_size):
        out = model(x)
        pred = out.logits.argmax(-1)
        correct += int((pred == y).sum())
        if backbone is not None:
            bb_pred = logits_of(backbone, x).argmax(-1)
            bb_correct += int((bb_pred == y).sum())
            agree += int((bb_pred == pred).sum())
        selected = out.group_scores > 0                                   # (B, G)
        inside = out.pixel_masks > 0                                      # (B, G, H, W)
        used += float(selected.sum())
        pixels += float((inside.flatten(2).sum(-1) * selected).sum())
        covered += float((inside & selected[..., None, None]).any(1).flatten(1).float().mean(1).sum())
        n += len(y)
    stats = dict(samples=n, accuracy=correct / n, groups_used=used / n, num_groups=model.num_groups,
                 pixels_per_group=pixels / max(used, 1), image_pixels=int(math.prod(model.config.img_size)),
                 selected_fraction=covered / n, grid=list(model.adapter.grid))
    if backbone is not None:
        stats.update(backbone_accuracy=bb_correct / n, fidelity=agree / n)
    return stats


def sample_indices(total: int, n: int, seed: int = 0) -> list[int]:
    """n distinct indices of a split, a seeded random sample (sorted)."""
    gen = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(total, generator=gen)[: min(n, total)].tolist())


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 0.0


def top_region(attribution: torch.Tensor, grid, area: int) -> torch.Tensor:
    """(H, W) bool: the `area` top-ranked pixels (the curves' patch ranking)."""
    return sets_from_order(pixel_order(attribution, grid), [area], tuple(attribution.shape))[0]


def evaluate(model: SOPModel, backbone: nn.Module | None, split: Split, settings: EvalSettings | None = None, *,
             decisive: np.ndarray | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """The report for one model: {"model": statistics, "rows": [per-method means], ...}.

    `decisive` (N_split, H, W) bool enables the ground-truth IoU (parts scenes).
    `progress(method)` is called after each explanation (drives the CLI's bar).
    """
    s = settings or EvalSettings()
    methods = list(s.methods)
    explained = backbone if (s.baselines_on == "backbone" and backbone is not None) else model
    grid = model_grid(model)
    per = {m: {k: [] for k in METRICS} for m in methods}
    indices = sample_indices(len(split.dataset), s.samples, s.seed)
    curve_kw = dict(steps=s.steps, baseline=s.baseline, batch_size=s.batch_size)
    positives = 0
    for i in indices:
        x, label = split.dataset[i]
        x = x.unsqueeze(0)
        e_sop = explain(model, x, "sop")
        sizes = group_sizes_of(e_sop)
        sop_region = torch.zeros_like(e_sop.attribution, dtype=torch.bool)
        for g in range(len(e_sop.scores)):
            if e_sop.scores[g] > 0:
                sop_region |= e_sop.groups[g] > 0
        gt = None
        if decisive is not None and int(label) == 1 and decisive[i].any():
            gt = torch.from_numpy(decisive[i])
            positives += 1
        for method in methods:
            on = model if method == "sop" else explained
            e = e_sop if method == "sop" else explain(on, x, method, **s.method_settings.get(method, {}))
            pixel = insertion_deletion(on, x, e, mode="pixel", **curve_kw)
            grouped = insertion_deletion(on, x, e, mode="grouped", group_sizes=None if method == "sop" else sizes,
                                         **curve_kw)
            row = per[method]
            row["insertion"].append(pixel["insertion"].auc)
            row["deletion"].append(pixel["deletion"].auc)
            row["grouped_insertion"].append(grouped["insertion"].auc)
            row["grouped_deletion"].append(grouped["deletion"].auc)
            row["seconds"].append(e.seconds)
            if gt is not None:
                region = sop_region if method == "sop" else top_region(e.attribution, grid, int(sop_region.sum()))
                row["iou"].append(iou(region, gt))
                row["iou_gt_area"].append(iou(top_region(e.attribution, grid, int(gt.sum())), gt))
            if progress is not None:
                progress(method)
    stats = model_statistics(model, backbone, split)
    accuracy = {"sop": stats["accuracy"],
                "other": stats.get("backbone_accuracy") if explained is backbone else stats["accuracy"]}
    rows = []
    for method in methods:
        row = dict(method=method, model="sop" if (method == "sop" or explained is model) else "backbone",
                   accuracy=accuracy["sop" if method == "sop" else "other"])
        for k in METRICS:
            vals = per[method][k]
            if k.startswith("iou") and decisive is None:
                continue
            if k == "seconds":  # median: robust to other jobs slowing a few explanations down
                row[k] = float(np.median(vals)) if vals else float("nan")
                continue
            row[k] = float(np.mean(vals)) if vals else float("nan")
            row[f"{k}_sem"] = float(np.std(vals, ddof=1) / math.sqrt(len(vals))) if len(vals) > 1 else float("nan")
        rows.append(row)
    return dict(dataset=split.info.name, model=stats, rows=rows, samples=len(indices), iou_samples=positives,
                settings=dict(methods=methods, samples=s.samples, steps=s.steps, baseline=s.baseline,
                              baselines_on=s.baselines_on, seed=s.seed,
                              method_settings={m: {**default_settings(m), **s.method_settings.get(m, {})}
                                               for m in methods}))


# --------------------------------------------------------------------------- formatting

TABLE_COLUMNS = [("method", "method"), ("model", "model"), ("accuracy", "accuracy"),
                 ("insertion", "insertion AUC ↑"), ("deletion", "deletion AUC ↓"),
                 ("grouped_insertion", "grouped ins. ↑"), ("grouped_deletion", "grouped del. ↓"),
                 ("iou", "GT IoU ↑"), ("iou_gt_area", "GT IoU @GT area ↑"), ("seconds", "s / explanation")]


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
                 + (f" ({report['iou_samples']} positive, for IoU)" if "iou" in report["rows"][0] else "")
                 + f", {s['steps']} steps, removal baseline {s['baseline']!r}, baselines explain the "
                 + ("backbone twin" if s["baselines_on"] == "backbone" else "SOP model"))
    return "; ".join(parts) + "."


# --------------------------------------------------------------------------- checkpoints

def twin_path(sop_path) -> Path:
    """<name>_sop.safetensors -> <name>_backbone.safetensors (the plain twin beside it)."""
    p = Path(sop_path)
    stem = p.name[: -len("_sop.safetensors")] if p.name.endswith("_sop.safetensors") else p.stem
    return p.with_name(f"{stem}_backbone.safetensors")


def evaluate_checkpoint(sop_path, backbone_path=None, settings: EvalSettings | None = None, *,
                        split_name: str = "test", progress: Callable[[str], None] | None = None) -> dict:
    """Load an SOP checkpoint (and its twin), its dataset's split, and run `evaluate`.

    `backbone_path` None = the ``_backbone`` sibling when it exists; the baselines then
    explain the SOP model itself if there is none (stated in the report).
    """
    from .checkpoint import load
    from .data import PartsScenes, load_split
    from .errors import InputError
    model = load(sop_path)
    if not isinstance(model, SOPModel):
        raise InputError(f"{Path(sop_path).name} is a plain backbone checkpoint; pass the *_sop checkpoint as --model")
    if backbone_path is not None and not Path(backbone_path).is_file():
        raise InputError(f"backbone checkpoint {backbone_path} does not exist")
    backbone_path = Path(backbone_path) if backbone_path is not None else twin_path(sop_path)
    backbone = load(backbone_path) if backbone_path.is_file() else None
    cfg = model.config
    if not cfg.dataset:
        raise InputError(f"{Path(sop_path).name} does not record its dataset; cannot pick test inputs")
    seed = int(cfg.training.get("seed", 0))
    split = load_split(cfg.dataset, split_name, seed=seed)
    decisive = None
    if cfg.dataset == "parts":
        scenes = PartsScenes.generate(split_name, seed=seed)
        if len(scenes.labels) != len(split.dataset):  # the masks must describe the very scenes we explain
            raise InputError("parts scenes and the loaded split disagree; cannot compute ground-truth IoU")
        decisive = scenes.decisive_masks()
    settings = settings or EvalSettings()
    if backbone is None and settings.baselines_on == "backbone":
        settings = EvalSettings(**{**settings.__dict__, "baselines_on": "sop"})
    report = evaluate(model, backbone, split, settings, decisive=decisive, progress=progress)
    report.update(checkpoint=str(sop_path), backbone=str(backbone_path) if backbone is not None else None)
    return report
