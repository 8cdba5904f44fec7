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
* **Ground truth** (datasets whose inputs carry ground-truth masks, see
  `sop.localisation.ground_truth_masks`; on parts, the positive scenes among the N,
  whatever the prediction, against their *decisive* part mask):
  - ``pointing_game``, ``mass_accuracy``, ``rank_accuracy``: the localisation metrics
    of Arras et al. 2022 as quantus defines them (`sop.localisation`), on each method's
    own map (SOP: sum_g s_g m_g of the SOP model; a baseline: its map of the model it
    explains), for the class each explanation explains (the explained model's prediction).
  - ``iou``: SOP's region = the union of its used groups (score > 0, mask > 0); a
    baseline's region = its top-ranked patches (the curves' ranking) covering the same
    number of pixels as SOP's region on that input -- same area, so only *where* counts.
  - ``iou_gt_area``: every method (SOP ranked by its map sum_g s_g m_g) takes its
    top-ranked pixels of the decisive mask's area -- an oracle size, for reference.

**Regression models** (e.g. lensing): the curves score `sop.regression.closeness` to the
prediction on the whole input, per parameter (the explorer's curves, `sop.regression_explain.
regression_curves`, the same code path).  SOP's one explanation (its groups serve every
parameter) is scored on each parameter; a baseline explains the twin's estimate of each
parameter p in turn (``target=p``) and that explanation is scored on parameter p.  A record
holds the per-parameter AUCs (``insertion_<name>``, ...) and, as the summary figure, their
mean over the parameters (``insertion``, ...); a baseline's ``seconds`` is the time of its P
explanations together (what explaining the whole prediction costs; SOP's is one pass).
Regression inputs carry no ground-truth masks.

``report["per_input"]`` keeps every value behind the means (one record per input and
method: ``index``, ``label``, ``method`` and each metric the input has), so other
aggregates (medians, paired differences) can be computed from the JSON.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .checkpoint import load_pair, twin_path  # noqa: F401 - twin_path: older import path
from .data import Split
from .explainers import Explanation, default_settings, explain, logits_of, model_grid
from .faithfulness import DEFAULT_BASELINE, DEFAULT_STEPS, group_sizes_of, insertion_deletion, pixel_order, \
    sets_from_order
from .localisation import METRICS as LOCALISATION_METRICS
from .localisation import ground_truth_masks, localisation_scores
from .methods import list_methods
from .model import SOPModel
from .tasks import get_task, target_value

log = logging.getLogger(__name__)

# Ground-truth metrics exist only for inputs with a mask; the localisation ones are sop.localisation's.
GROUND_TRUTH = (*LOCALISATION_METRICS, "iou", "iou_gt_area")
METRICS = ("insertion", "deletion", "grouped_insertion", "grouped_deletion", *GROUND_TRUTH, "seconds")


@dataclass
class EvalSettings:
    methods: Sequence[str] = field(default_factory=list_methods)  # every registered method
    samples: int = 50
    steps: int = DEFAULT_STEPS
    baseline: str = DEFAULT_BASELINE
    baselines_on: str = "backbone"       # "backbone" (the twin) or "sop"
    seed: int = 0                        # which inputs are sampled
    batch_size: int = 64                 # curve inputs per forward pass
    method_settings: dict[str, dict] = field(default_factory=dict)  # explain() overrides per method


def sop_statistics(model: SOPModel, split: Split, backbone: nn.Module | None = None, batch_size: int = 128) -> dict:
    """Every model statistic over the whole split, in one pass: the model's task's
    (`Task.statistics`): `classification_statistics`, or `sop.regression.regression_statistics`."""
    return get_task(model.config.task).statistics(model, split, backbone, batch_size)


def sparsity_sums(out) -> tuple[float, float, float, float]:
    """One batch's (groups used, patches in used groups, pixels in used groups, covered share) sums."""
    selected = out.selected                                           # (B, G); per class: any class
    inside = out.pixel_masks > 0                                      # images (B, G, H, W); text (B, G, L)
    used = float(selected.sum())
    patches = float(((out.group_masks > 0).sum(-1).float() * selected).sum())
    pixels = float((inside.flatten(2).sum(-1) * selected).sum())
    sel = selected.reshape(*selected.shape, *([1] * (inside.ndim - 2)))
    covered = float((inside & sel).any(1).flatten(1).float().mean(1).sum())
    return used, patches, pixels, covered


@torch.no_grad()
def classification_statistics(model: SOPModel, split: Split, backbone: nn.Module | None = None,
                              batch_size: int = 128) -> dict:
    """Every classification statistic over the whole split, in one pass.

    accuracy; groups used per input (score > 0; per-class selection: groups any class
    uses); patches per used group (patch mask > 0) and pixels per used group; the share of
    the image the used groups cover; with a `backbone`, its accuracy and the fidelity
    (share of inputs where SOP predicts the backbone's class).  Training records a
    subset (`Task.recorded`), the report another (`Task.report_keys`).
    """
    model.eval()
    n = correct = bb_correct = agree = 0
    used = patches = pixels = covered = 0.0
    for x, y in DataLoader(split.dataset, batch_size=batch_size):
        out = model(x)
        pred = out.logits.argmax(-1)
        correct += int((pred == y).sum())
        if backbone is not None:
            bb_pred = logits_of(backbone, x).argmax(-1)
            bb_correct += int((bb_pred == y).sum())
            agree += int((bb_pred == pred).sum())
        u, p, px, c = sparsity_sums(out)
        used, patches, pixels, covered = used + u, patches + p, pixels + px, covered + c
        n += len(y)
    stats = dict(samples=n, accuracy=correct / n, groups_used=used / n, num_groups=model.num_groups,
                 patches_per_group=patches / max(used, 1), num_patches=model.adapter.num_patches,
                 pixels_per_group=pixels / max(used, 1), image_pixels=int(math.prod(model.config.img_size)),
                 selected_fraction=covered / n, grid=list(model.adapter.grid))
    if backbone is not None:
        stats.update(backbone_accuracy=bb_correct / n, fidelity=agree / n)
    return stats


def model_statistics(model: SOPModel, backbone: nn.Module | None, split: Split, batch_size: int = 128) -> dict:
    """The report's statistics over the whole split (`Task.report_keys`: accuracy or R2 and RMSE,
    the twin's, fidelity and sparsity)."""
    stats = sop_statistics(model, split, backbone, batch_size)
    return {k: stats[k] for k in get_task(model.config.task).report_keys if k in stats}


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


def mean_sem(vals: Sequence[float]) -> tuple[float, float]:
    """(mean, standard error of the mean); NaN where undefined (no value, or one)."""
    mean = float(np.mean(vals)) if len(vals) else float("nan")
    sem = float(np.std(vals, ddof=1) / math.sqrt(len(vals))) if len(vals) > 1 else float("nan")
    return mean, sem


def localisation_study(explained: nn.Module, split: Split, masks: np.ndarray, method: str, *, samples: int = 20,
                       seed: int = 0, settings: dict | None = None,
                       progress: Callable[[float], None] | None = None) -> dict:
    """One method's localisation metrics over `samples` inputs that have a ground-truth mask.

    The inputs are a seeded random sample (`sample_indices`) of the split's inputs with a
    non-empty mask; `explained` is the model the method explains (an `SOPModel` for
    "sop").  Returns {"method", "samples", <metric>, <metric>_sem, ..., "per_input": [...]}
    with the same definitions as `evaluate`.  `progress(fraction)` after each input.
    """
    with_gt = np.flatnonzero(masks.reshape(len(masks), -1).any(1))
    chosen = [int(with_gt[j]) for j in sample_indices(len(with_gt), samples, seed)]
    records = []
    for n, i in enumerate(chosen):
        e = explain(explained, split.dataset[i][0].unsqueeze(0), method, **(settings or {}))
        records.append(dict(index=i, **localisation_scores(e.attribution, masks[i])))
        if progress is not None:
            progress((n + 1) / len(chosen))
    out = dict(method=method, samples=len(records))
    for k in LOCALISATION_METRICS:
        out[k], out[f"{k}_sem"] = mean_sem([r[k] for r in records])
    return dict(out, per_input=records)


def sop_region(e_sop) -> torch.Tensor:
    """(H, W) bool: the union of SOP's used groups (score > 0, mask > 0)."""
    region = torch.zeros_like(e_sop.attribution, dtype=torch.bool)
    for g in range(len(e_sop.scores)):
        if e_sop.scores[g] > 0:
            region |= e_sop.groups[g] > 0
    return region


CURVE_KINDS = {("pixel", "insertion"): "insertion", ("pixel", "deletion"): "deletion",
               ("grouped", "insertion"): "grouped_insertion", ("grouped", "deletion"): "grouped_deletion"}


def regression_aucs(method: str, on: nn.Module, x: torch.Tensor, e_sop: Explanation, s: EvalSettings,
                    group_sizes: Sequence[int]) -> tuple[dict, float]:
    """({"insertion_<name>": AUC, ..., "insertion": mean over parameters, ...}, seconds) of one method
    on a regression model (see the module docstring): SOP's explanation scored on every parameter,
    a baseline's explanation of parameter p (``target=p``) on parameter p."""
    from .regression_explain import parameter_names, regression_curves
    names = parameter_names(on.config)
    curve_kw = dict(steps=s.steps, baseline=s.baseline, batch_size=s.batch_size, memo={})  # memo: one (on, x)
    per: dict[str, list[float]] = {k: [] for k in CURVE_KINDS.values()}
    seconds = e_sop.seconds if method == "sop" else 0.0
    for p in range(len(names)):
        e = e_sop if method == "sop" else explain(on, x, method, target=p, **s.method_settings.get(method, {}))
        seconds += 0.0 if method == "sop" else e.seconds
        for mode in ("pixel", "grouped"):
            sizes = None if method == "sop" or mode == "pixel" else group_sizes
            curves = regression_curves(on, x, e, mode=mode, parameters=[p], group_sizes=sizes, **curve_kw)[p]
            for kind, c in curves.items():
                per[CURVE_KINDS[mode, kind]].append(c.auc)
    rec: dict[str, float] = {}
    for key, vals in per.items():
        rec[key] = float(np.mean(vals))
        rec.update({f"{key}_{n}": float(v) for n, v in zip(names, vals)})
    return rec, seconds


def score_input(model: SOPModel, explained: nn.Module, x: torch.Tensor, methods: Sequence[str], s: EvalSettings, *,
                gt: torch.Tensor | None = None, progress: Callable[[str], None] | None = None,
                e_sop: Explanation | None = None) -> list[dict]:
    """One input (1, C, H, W): each method's curve AUCs (and, with a ground-truth mask `gt`,
    localisation and IoUs) as one record per method, without index and label.  `e_sop`: SOP's
    explanation of x when the caller already has it (the budget sweep scores one input many times)."""
    curve_kw = dict(steps=s.steps, baseline=s.baseline, batch_size=s.batch_size)
    e_sop = e_sop if e_sop is not None else explain(model, x, "sop")
    sizes = group_sizes_of(e_sop)
    region_sop = sop_region(e_sop)
    grid = model_grid(model)
    records = []
    if model.config.task == "regression":
        for method in methods:
            rec, seconds = regression_aucs(method, model if method == "sop" else explained, x, e_sop, s, sizes)
            records.append(dict(method=method, **rec, seconds=seconds))
            if progress is not None:
                progress(method)
        return records
    for method in methods:
        on = model if method == "sop" else explained
        e = e_sop if method == "sop" else explain(on, x, method, **s.method_settings.get(method, {}))
        pixel = insertion_deletion(on, x, e, mode="pixel", **curve_kw)
        grouped = insertion_deletion(on, x, e, mode="grouped", group_sizes=None if method == "sop" else sizes,
                                     **curve_kw)
        rec = dict(method=method, insertion=pixel["insertion"].auc, deletion=pixel["deletion"].auc,
                   grouped_insertion=grouped["insertion"].auc, grouped_deletion=grouped["deletion"].auc)
        if gt is not None:
            rec.update(localisation_scores(e.attribution, gt))
            region = region_sop if method == "sop" else top_region(e.attribution, grid, int(region_sop.sum()))
            rec["iou"] = iou(region, gt)
            rec["iou_gt_area"] = iou(top_region(e.attribution, grid, int(gt.sum())), gt)
        rec["seconds"] = e.seconds
        records.append(rec)
        if progress is not None:
            progress(method)
    return records


def summary_rows(records: list[dict], methods: Sequence[str], accuracy: dict[str, float | None], *,
                 baselines_model: str, ground_truth: bool) -> list[dict]:
    """Per-method means (and SEMs) of the records; the median of the seconds.

    `accuracy` {"sop": ..., "other": ...}: the accuracy of the model each kind of method
    is scored on; `baselines_model` "backbone" or "sop": the model the baselines explain.
    """
    # besides METRICS, any per-record figure (a regression model's per-parameter AUCs)
    extra = [k for k in dict.fromkeys(k for r in records for k in r) if k not in (*METRICS, "index", "label", "method")]
    rows = []
    for method in methods:
        row = dict(method=method, model="sop" if method == "sop" else baselines_model,
                   accuracy=accuracy["sop" if method == "sop" else "other"])
        for k in (*METRICS, *extra):
            if k in GROUND_TRUTH and not ground_truth:
                continue
            vals = [r[k] for r in records if r["method"] == method and k in r]
            if k == "seconds":  # median: robust to other jobs slowing a few explanations down
                row[k] = float(np.median(vals)) if vals else float("nan")
                continue
            row[k], row[f"{k}_sem"] = mean_sem(vals)
        rows.append(row)
    return rows


def evaluate(model: SOPModel, backbone: nn.Module | None, split: Split, settings: EvalSettings | None = None, *,
             decisive: np.ndarray | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """The report for one model: {"model": statistics, "rows": [per-method means], "per_input": [...], ...}.

    `decisive` (N_split, H, W) bool: ground-truth masks aligned with the split (e.g.
    `sop.localisation.ground_truth_masks`); inputs with a non-empty mask get the
    localisation metrics and the IoUs.  `progress(method)` is called after each
    explanation (drives the CLI's bar).
    """
    s = settings or EvalSettings()
    methods = list(s.methods)
    explained = backbone if (s.baselines_on == "backbone" and backbone is not None) else model
    records: list[dict] = []
    indices = sample_indices(len(split.dataset), s.samples, s.seed)
    positives = 0
    log.debug("explaining %d inputs of %s with %s", len(indices), split.info.name, ", ".join(methods))
    for i in indices:
        x, label = split.dataset[i]
        gt = None
        if decisive is not None and decisive[i].any():
            gt = torch.from_numpy(decisive[i])
            positives += 1
        for rec in score_input(model, explained, x.unsqueeze(0), methods, s, gt=gt, progress=progress):
            records.append(dict(index=int(i), label=target_value(label), **rec))
    log.debug("model statistics over the %d inputs of the split", len(split.dataset))
    stats = model_statistics(model, backbone, split)
    accuracy = {"sop": stats.get("accuracy"),   # None for regression: its report has R2 and RMSE instead
                "other": stats.get("backbone_accuracy") if explained is backbone else stats.get("accuracy")}
    rows = summary_rows(records, methods, accuracy, baselines_model="sop" if explained is model else "backbone",
                        ground_truth=decisive is not None)
    parameters = {}
    if model.config.task == "regression":
        from .regression_explain import parameter_names
        parameters = dict(parameters=parameter_names(model.config))
    return dict(dataset=split.info.name, model=stats, rows=rows, per_input=records, samples=len(indices),
                iou_samples=positives, **parameters,
                settings=dict(methods=methods, samples=s.samples, steps=s.steps, baseline=s.baseline,
                              baselines_on=s.baselines_on, seed=s.seed,
                              method_settings={m: {**default_settings(m), **s.method_settings.get(m, {})}
                                               for m in methods}))


# --------------------------------------------------------------------------- checkpoints

def evaluate_checkpoint(sop_path, backbone_path=None, settings: EvalSettings | None = None, *,
                        split_name: str = "test", progress: Callable[[str], None] | None = None) -> dict:
    """Load an SOP checkpoint and its twin (`sop.checkpoint.load_pair`), its dataset's split,
    and run `evaluate`.

    `backbone_path` None = the ``_backbone`` sibling when it exists; the baselines then
    explain the SOP model itself if there is none (stated in the report).
    """
    model, backbone, backbone_path, split, decisive, settings = load_for_evaluation(
        sop_path, backbone_path, settings, split_name=split_name)
    report = evaluate(model, backbone, split, settings, decisive=decisive, progress=progress)
    report.update(checkpoint=str(sop_path), backbone=str(backbone_path) if backbone is not None else None)
    return report


def load_for_evaluation(sop_path, backbone_path=None, settings: EvalSettings | None = None, *,
                        split_name: str = "test"):
    """(model, backbone or None, backbone_path, split, decisive masks or None, settings) for one checkpoint;
    `settings.baselines_on` falls back to "sop" when there is no twin.  Shared with `sop.budget`."""
    from .data import load_split
    from .errors import InputError
    model, backbone, backbone_path = load_pair(sop_path, backbone_path)
    cfg = model.config
    seed = int(cfg.training.get("seed", 0))
    split = load_split(cfg.dataset, split_name, seed=seed)
    decisive = ground_truth_masks(cfg.dataset, split_name, seed=seed)
    if decisive is not None and len(decisive) != len(split.dataset):  # masks must describe the very inputs
        raise InputError("ground-truth masks and the loaded split disagree; cannot score localisation")
    settings = settings or EvalSettings()
    if backbone is None and settings.baselines_on == "backbone":
        log.info("%s has no backbone twin beside it: the baselines explain the SOP model", Path(sop_path).name)
        settings = EvalSettings(**{**settings.__dict__, "baselines_on": "sop"})
    return model, backbone, backbone_path, split, decisive, settings
