"""Text SOP vs post-hoc baselines over tokens: accuracy, fidelity, groups used and localisation.

    python -m sop evaluate-text --model assets/models/reviews_sop.safetensors --samples 150

For a text SOP checkpoint and its plain fine-tuned twin, on the checkpoint's dataset (test split):

* **statistics** (whole test split, and the held-out template family alone when the dataset
  has one): accuracy of SOP and of the twin, fidelity (share of inputs where SOP predicts the
  twin's class), groups used (score > 0) and tokens per used group;
* **localisation over tokens** (a seeded sample of test sentences; every review carries its
  decisive words): pointing game, relevance mass and rank accuracy (`sop.localisation`, the
  quantus definitions) of each method's token map against the decisive-token mask, for the
  class the explained model predicts.  SOP's map is sum_g s_g m_g of the SOP model; the
  baselines explain the twin (as the image report does):

  Every baseline explains the softmax probability of the target class (as the image methods do).

  - ``lime`` / ``kernelshap``: captum `Lime` (ridge regression, alpha 1, and lime's kernel, as the
    image LIME) / `KernelShap`, 200 perturbations, one feature per content token
    ([CLS], [SEP] and padding are one extra feature whose baseline is the input itself, so
    they are never removed); a removed token is replaced by [PAD], which the model does not
    attend to: removal = dropping the token;
  - ``integrated_gradients``: captum `LayerIntegratedGradients` on the embedding layer, baseline
    = [PAD] at content positions, special tokens kept; a token's attribution is the sum over
    the embedding dimensions;
  - ``occlusion``: captum `FeatureAblation` with one feature per content token (occlusion with a
    one-token window), baseline [PAD].
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .errors import InputError
from .localisation import METRICS, localisation_scores
from .model import SOPModel
from .text import content_mask, drop_tokens

TEXT_METHODS = ("sop", "lime", "kernelshap", "integrated_gradients", "occlusion")
LABELS = {"sop": "SOP (own groups)", "lime": "LIME", "kernelshap": "KernelSHAP",
          "integrated_gradients": "Integrated Gradients", "occlusion": "Occlusion (one token)"}
# The baselines cheapest first (measured on the reviews default, 2 CPU cores: occlusion and IG under a
# second per sentence, KernelSHAP and LIME several seconds): the order the explorer runs them in.
BASELINES_BY_COST = ("occlusion", "integrated_gradients", "kernelshap", "lime")


@dataclass
class TextEvalSettings:
    samples: int = 150
    seed: int = 0
    n_samples: int = 200           # LIME / KernelSHAP perturbations
    ig_steps: int = 32
    methods: tuple[str, ...] = TEXT_METHODS


def _features(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(feature_mask (1, L): 0 = specials/padding, 1..T = content tokens; baseline ids; T)."""
    content = content_mask(ids)[0]
    fmask = torch.zeros_like(ids)
    fmask[0, content] = torch.arange(1, int(content.sum()) + 1)
    baseline = drop_tokens(ids, content.unsqueeze(0))
    return fmask, baseline, int(content.sum())


class _AsLong(nn.Module):
    """captum mixes float masks into the inputs; the model wants token ids.  `progress(share)` after
    each batch of perturbed sentences, out of `expected` batches (the app's bar and Cancel)."""

    def __init__(self, model, progress: Callable[[float], None] | None = None, expected: int = 1):
        super().__init__()
        self.model = model
        self.progress, self.expected, self.done = progress, max(1, expected), 0

    def forward(self, ids):
        out = self.model(ids.round().long() if ids.is_floating_point() else ids)
        self.done += 1
        if self.progress is not None:
            self.progress(min(1.0, self.done / self.expected))
        return (out.logits if hasattr(out, "logits") else out).softmax(-1)


LIME_BATCH, OCCLUSION_BATCH = 50, 32     # perturbed sentences per forward pass


def explain_text(model: nn.Module, ids: torch.Tensor, method: str, target: int | None = None,
                 s: TextEvalSettings | None = None, progress: Callable[[float], None] | None = None
                 ) -> tuple[np.ndarray, int]:
    """(token attribution (L,), target explained) of one (1, L) input.  `progress`, if given, is called
    with the share of the method's forward passes done (it may raise to stop the work)."""
    if method not in TEXT_METHODS:
        raise InputError(f"unknown text method {method!r}; known: {', '.join(TEXT_METHODS)}")
    s = s or TextEvalSettings()
    model.eval()
    with torch.no_grad():
        out = model(ids)
        logits = out.logits if hasattr(out, "logits") else out
    target = int(logits.argmax(-1)) if target is None else int(target)
    if method == "sop":
        scores = out.scores_for(target)                               # (1, G)
        return (scores.unsqueeze(-1) * out.group_masks).sum(1)[0].detach().numpy(), target
    from captum.attr import FeatureAblation, KernelShap, LayerIntegratedGradients, Lime
    fmask, baseline, tokens = _features(model, ids)
    # forward passes each method makes (occlusion: + the unperturbed sentence first)
    batches = {"lime": np.ceil(s.n_samples / LIME_BATCH), "kernelshap": np.ceil(s.n_samples / LIME_BATCH),
               "occlusion": 1 + np.ceil(tokens / OCCLUSION_BATCH)}.get(method, 1)
    f = _AsLong(model, progress, int(batches))
    if method in ("lime", "kernelshap"):
        torch.manual_seed(s.seed)
        if method == "lime":   # as the image LIME: ridge (alpha 1) and lime's kernel over the on-share
            from captum._utils.models.linear_model import SkLearnRidge
            from .explainers import _lime_kernel
            explainer = Lime(f, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=_lime_kernel(0.25))
        else:
            explainer = KernelShap(f)
        attr = explainer.attribute(ids.float(), baselines=baseline.float(), target=target, feature_mask=fmask,
                                   n_samples=s.n_samples, perturbations_per_eval=LIME_BATCH)
    elif method == "occlusion":
        attr = FeatureAblation(f).attribute(ids.float(), baselines=baseline.float(), target=target,
                                            feature_mask=fmask, perturbations_per_eval=OCCLUSION_BATCH)
    elif method == "integrated_gradients":
        bb = model.backbone if isinstance(model, SOPModel) else model

        lig = LayerIntegratedGradients(_AsLong(model, progress, 1), bb.bert.embeddings)
        attr = lig.attribute(ids, baselines=baseline, target=target, n_steps=s.ig_steps,
                             internal_batch_size=s.ig_steps).sum(-1)
    a = attr.detach().float().reshape(-1).numpy().copy()
    a[~content_mask(ids)[0].numpy()] = 0.0
    return a, target


@torch.no_grad()
def text_statistics(model: SOPModel, backbone: nn.Module | None, ids: torch.Tensor, labels: torch.Tensor,
                    batch_size: int = 64) -> dict:
    model.eval()
    n = correct = bb_correct = agree = 0
    used = tokens = 0.0
    for i in range(0, len(ids), batch_size):
        x, y = ids[i:i + batch_size], labels[i:i + batch_size]
        out = model(x)
        pred = out.logits.argmax(-1)
        correct += int((pred == y).sum())
        sel = out.selected
        used += float(sel.sum())
        tokens += float(((out.group_masks > 0).sum(-1).float() * sel).sum())
        if backbone is not None:
            bp = backbone(x).argmax(-1)
            bb_correct += int((bp == y).sum())
            agree += int((bp == pred).sum())
        n += len(y)
    stats = dict(samples=n, accuracy=correct / n, groups_used=used / n, tokens_per_group=tokens / max(used, 1),
                 sentence_tokens=float((content_mask(ids)).sum(-1).float().mean()))
    if backbone is not None:
        stats.update(backbone_accuracy=bb_correct / n, fidelity=agree / n)
    return stats


def evaluate_text(model: SOPModel, backbone: nn.Module, split, masks: np.ndarray,
                  s: TextEvalSettings | None = None, progress=None) -> dict:
    """{"statistics": {...}, "held_out": {...}, "rows": [per-method means], "per_input": [...]}."""
    s = s or TextEvalSettings()
    ids, labels = split.dataset.tensors
    report = dict(dataset=split.info.name, statistics=text_statistics(model, backbone, ids, labels))
    families = split.info.extra.get("families")
    if families:
        from .data.reviews import HELD_OUT_FAMILY
        held = torch.tensor([f == HELD_OUT_FAMILY for f in families])
        if held.any():
            report["held_out"] = text_statistics(model, backbone, ids[held], labels[held])
            report["seen_families"] = text_statistics(model, backbone, ids[~held], labels[~held])
    with_gt = np.flatnonzero(masks.any(1))
    gen = torch.Generator().manual_seed(s.seed)
    chosen = sorted(with_gt[torch.randperm(len(with_gt), generator=gen)[: s.samples].numpy()].tolist())
    records = []
    for n, i in enumerate(chosen):
        x = ids[i: i + 1]
        for method in s.methods:
            explained = model if method == "sop" else backbone
            t0 = time.perf_counter()
            a, target = explain_text(explained, x, method, s=s)
            rec = dict(index=int(i), label=int(labels[i]), method=method, target=target,
                       seconds=time.perf_counter() - t0, **localisation_scores(a, masks[i]))
            if families:
                rec["family"] = families[i]
            records.append(rec)
        if progress is not None:
            progress((n + 1) / len(chosen))
    rows = []
    for method in s.methods:
        rs = [r for r in records if r["method"] == method]
        row = dict(method=method, label=LABELS[method], samples=len(rs),
                   seconds=float(np.median([r["seconds"] for r in rs])) if rs else float("nan"))
        for k in METRICS:
            vals = np.array([r[k] for r in rs], dtype=float)
            vals = vals[np.isfinite(vals)]
            row[k] = float(vals.mean()) if len(vals) else float("nan")
            row[f"{k}_sem"] = float(vals.std(ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else float("nan")
        rows.append(row)
    report.update(rows=rows, per_input=records,
                  settings=dict(samples=s.samples, seed=s.seed, n_samples=s.n_samples, ig_steps=s.ig_steps,
                                methods=list(s.methods), baselines_on="backbone", removal="[PAD] (dropped)"))
    return report


def format_report(report: dict) -> str:
    st = report["statistics"]
    lines = [f"dataset {report['dataset']}: SOP accuracy {st['accuracy']:.4f}, twin {st.get('backbone_accuracy', float('nan')):.4f}, "
             f"fidelity {st.get('fidelity', float('nan')):.4f}, groups used {st['groups_used']:.2f}, "
             f"tokens per group {st['tokens_per_group']:.2f} (of {st['sentence_tokens']:.1f} content tokens)"]
    for key in ("seen_families", "held_out"):
        if key in report:
            h = report[key]
            lines.append(f"{key}: n={h['samples']} SOP {h['accuracy']:.4f}, twin {h['backbone_accuracy']:.4f}, "
                         f"fidelity {h['fidelity']:.4f}")
    lines.append(f"{'method':<24} {'pointing':>9} {'mass':>7} {'rank':>7} {'s/expl':>8}")
    for r in report["rows"]:
        lines.append(f"{r['label']:<24} {r['pointing_game']:>9.3f} {r['mass_accuracy']:>7.3f} "
                     f"{r['rank_accuracy']:>7.3f} {r['seconds']:>8.3f}")
    return "\n".join(lines)
