"""What voids and clusters say about Omega_m and sigma_8: SOP's groups on lensing maps.

Over the test maps of a regression SOP model (e.g. the embedded `lensing` default):

* **Pixel classes**, per map, in units of that map's standard deviation sigma (of kappa):
  *void* = kappa < VOID_SIGMA * sigma (-1 sigma), *cluster* = kappa > CLUSTER_SIGMA * sigma (+2 sigma),
  *neither* otherwise.  (The maps have mean ~0; these are the issue's "thresholds in units of
  the map's standard deviation".)
* **Shares**: for each map, the score-weighted share of each class inside the selected groups,
  sum_g s_g |m_g and class| / sum_g s_g |m_g| (m_g: the group's pixel mask > 0), against its
  share of the sky (all pixels).  The selection's enrichment = share in groups / share of sky.
  The scores are shared by the parameters (one GroupSelect), so this is one number per map.
* **Per parameter**: every selected group is *void-dominated* when its void pixels, relative to
  the map's share of void pixels, exceed its cluster pixels relative to the map's share of
  cluster pixels (voids are more common than clusters, so raw counts would call almost every
  group void-dominated), *cluster-dominated* otherwise.  Its *pull* on parameter p is what the group
  alone predicts minus the model's prediction, in standardised units (the group's
  contribution relative to the consensus).  Reported: the mean pull of void- and
  cluster-dominated groups per parameter, and the score-weighted share of the prediction each
  kind carries.
* Uncertainties: standard errors over maps (a map's groups are averaged first).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

VOID_SIGMA, CLUSTER_SIGMA = -1.0, 2.0
CLASSES = ("void", "cluster", "neither")


@dataclass
class MapRecord:
    sky: np.ndarray            # (3,) share of the sky of each class
    inside: np.ndarray         # (3,) score-weighted share inside the selected groups
    pulls: dict[str, np.ndarray]   # "void" / "cluster" -> (P,) mean pull of such groups (NaN if none)
    weight: dict[str, float]   # "void" / "cluster" -> sum of their scores


def pixel_classes(kappa: np.ndarray) -> np.ndarray:
    """(H, W) int: 0 void, 1 cluster, 2 neither (thresholds in units of the map's std)."""
    sd = float(kappa.std()) or 1.0
    out = np.full(kappa.shape, 2)
    out[kappa < VOID_SIGMA * sd] = 0
    out[kappa > CLUSTER_SIGMA * sd] = 1
    return out


def map_record(kappa: np.ndarray, masks: np.ndarray, scores: np.ndarray, group_out: np.ndarray,
               pred: np.ndarray) -> MapRecord:
    """One map: kappa (H, W); masks (G, H, W) bool; scores (G,); group outputs (G, P); prediction (P,)."""
    cls = pixel_classes(kappa)
    onehot = np.stack([cls == c for c in range(3)])                        # (3, H, W)
    sky = onehot.reshape(3, -1).mean(1)
    per_group = np.einsum("ghw,chw->gc", masks.astype(float), onehot.astype(float))   # (G, 3) pixel counts
    size = per_group.sum(1)
    used = (scores > 0) & (size > 0)
    inside = (scores[used, None] * per_group[used]).sum(0) / max(float((scores[used] * size[used]).sum()), 1e-12)
    pulls, weight = {}, {}
    void_dom = per_group[:, 0] / max(sky[0], 1e-12) > per_group[:, 1] / max(sky[1], 1e-12)
    for name, sel in (("void", used & void_dom), ("cluster", used & ~void_dom)):
        pulls[name] = (group_out[sel] - pred).mean(0) if sel.any() else np.full(pred.shape, np.nan)
        weight[name] = float(scores[sel].sum())
    return MapRecord(sky, inside, pulls, weight)


def _mean_sem(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = values[~np.isnan(values).any(axis=tuple(range(1, values.ndim)))] if values.ndim > 1 else \
        values[~np.isnan(values)]
    n = len(values)
    # NaN of the per-map shape when too few maps have a value (e.g. no map has a cluster-dominated
    # group), so callers can index every parameter either way.
    mean = values.mean(0) if n else np.full(values.shape[1:], np.nan)
    sem = values.std(0, ddof=1) / math.sqrt(n) if n > 1 else np.full(values.shape[1:], np.nan)
    return mean, sem


@torch.no_grad()
def study(model, split, samples: int | None = None, batch_size: int = 64, progress=None) -> dict:
    """The study over the first `samples` maps of `split` (all by default): see the module docstring.
    `progress(fraction)`, if given, is called after each batch (the app's progress bar)."""
    names = model.config.target_names or model.config.class_names
    n = len(split.dataset) if samples is None else min(samples, len(split.dataset))
    records = []
    model.eval()
    for start in range(0, n, batch_size):
        x = split.dataset.tensors[0][start:min(n, start + batch_size)]
        out = model(x)
        masks = (out.pixel_masks > 0).numpy()
        for b in range(len(x)):
            records.append(map_record(x[b, 0].numpy(), masks[b], out.group_scores[b].numpy(),
                                      out.group_logits[b].numpy(), out.logits[b].numpy()))
        if progress is not None:
            progress(min(1.0, (start + len(x)) / n))
    return summarise(records, names)


def summarise(records: list[MapRecord], names) -> dict:
    sky, sky_sem = _mean_sem(np.stack([r.sky for r in records]))
    inside, inside_sem = _mean_sem(np.stack([r.inside for r in records]))
    ratio, ratio_sem = _mean_sem(np.stack([r.inside / np.maximum(r.sky, 1e-12) for r in records]))
    shares = {c: dict(sky=float(sky[i]), sky_sem=float(sky_sem[i]), groups=float(inside[i]),
                      groups_sem=float(inside_sem[i]), enrichment=float(ratio[i]), enrichment_sem=float(ratio_sem[i]))
              for i, c in enumerate(CLASSES)}
    pulls = {}
    for kind in ("void", "cluster"):
        mean, sem = _mean_sem(np.stack([r.pulls[kind] for r in records]))
        have = int(sum(not np.isnan(r.pulls[kind]).any() for r in records))
        pulls[kind] = dict(maps=have, weight=float(np.mean([r.weight[kind] for r in records])),
                           **{str(p): dict(pull=float(np.atleast_1d(mean)[j]), sem=float(np.atleast_1d(sem)[j]))
                              for j, p in enumerate(names)})
    return dict(maps=len(records), thresholds=dict(void=VOID_SIGMA, cluster=CLUSTER_SIGMA), shares=shares,
                pulls=pulls, parameters=[str(p) for p in names])


def format_study(report: dict) -> str:
    """Markdown: the shares table and the pulls table."""
    lines = [f"N = {report['maps']} test maps; void: kappa < {VOID_SIGMA:+g} sigma, cluster: kappa > "
             f"{CLUSTER_SIGMA:+g} sigma (sigma = the map's std); mean ± standard error over maps.", "",
             "| class | share of sky | score-weighted share in the selected groups | enrichment |", "|---|---:|---:|---:|"]
    for c, s in report["shares"].items():
        lines.append(f"| {c} | {s['sky']:.3f} ± {s['sky_sem']:.3f} | {s['groups']:.3f} ± {s['groups_sem']:.3f} | "
                     f"{s['enrichment']:.2f} ± {s['enrichment_sem']:.2f} |")
    params = report["parameters"]
    lines += ["", "| groups | maps with one | mean score carried | "
              + " | ".join(f"pull on {p} (std. units)" for p in params) + " |",
              "|---|---:|---:|" + "---:|" * len(params)]
    for kind, row in report["pulls"].items():
        # No map with a group of this kind: nothing to average (a dash, not "nan ± nan").
        cells = [f"{row[p]['pull']:+.3f} ± {row[p]['sem']:.3f}" if row["maps"] else "–" for p in params]
        lines.append(f"| {kind}-dominated | {row['maps']} | {row['weight']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_plots(report: dict, path) -> None:
    """Two panels (matplotlib): shares of each class on the sky vs in the groups; pulls per parameter."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    xs = np.arange(len(CLASSES))
    sh = report["shares"]
    for off, key, label in ((-0.2, "sky", "share of sky"), (0.2, "groups", "score-weighted share in groups")):
        a.bar(xs + off, [sh[c][key] for c in CLASSES], 0.4, yerr=[sh[c][f"{key}_sem"] for c in CLASSES], label=label)
    a.set_xticks(xs, CLASSES)
    a.set_ylabel("share of pixels")
    a.legend(fontsize=8)
    params = report["parameters"]
    xp = np.arange(len(params))
    for off, kind, colour in ((-0.2, "void", "#2166ac"), (0.2, "cluster", "#b2182b")):
        row = report["pulls"][kind]
        b.bar(xp + off, [row[p]["pull"] for p in params], 0.4, yerr=[row[p]["sem"] for p in params],
              color=colour, label=f"{kind}-dominated groups")
    b.axhline(0, color="k", lw=0.8)
    b.set_xticks(xp, params)
    b.set_ylabel("group prediction − model prediction (std. units)")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
