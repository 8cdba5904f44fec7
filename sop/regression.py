"""Regression with SOP: continuous targets (e.g. weak-lensing Omega_m and sigma_8).

Each group alone predicts the whole target vector; the prediction is the score-weighted
sum of the group predictions, exactly as for class logits.  Models are trained with MSE on
**standardised** targets, z = (y - mean) / std, with mean and std of the training split;
both, and the target names, are stored in the checkpoint's config (`SOPConfig.target_names`,
`target_mean`, `target_std`).

**Where the un-standardisation happens**: nowhere inside the model.  `model(x).logits` (and
a twin's output) stay in standardised units, so the curves, the losses and the group
predictions are all comparable across parameters; `to_physical(outputs, config)` converts
(B, P) standardised outputs to physical units, and every report (R2, RMSE, the app's values)
goes through it.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .data import Split
from .errors import ConfigError


def target_fields(train: Split) -> dict:
    """SOPConfig fields of a regression model from its training split: names, means, stds."""
    y = train.dataset.tensors[1].double()
    names = list(train.info.extra.get("target_names") or train.info.class_names)
    std = y.std(0, unbiased=False).clamp_min(1e-12)
    return dict(target_names=names, target_mean=[float(v) for v in y.mean(0)], target_std=[float(v) for v in std])


def _stats(config) -> tuple[torch.Tensor, torch.Tensor]:
    if len(config.target_mean) != config.num_classes or len(config.target_std) != config.num_classes:
        raise ConfigError(f"a regression model needs target_mean and target_std of length {config.num_classes} "
                          f"(one per output); got {len(config.target_mean)} and {len(config.target_std)}",
                          field="target_mean")
    return torch.tensor(config.target_mean, dtype=torch.float64), torch.tensor(config.target_std, dtype=torch.float64)


def standardise(targets: torch.Tensor, config) -> torch.Tensor:
    """Physical (B, P) targets -> standardised (what the model is trained to output)."""
    mean, std = _stats(config)
    return ((targets.double() - mean) / std).to(torch.float32)


def to_physical(outputs: torch.Tensor, config) -> torch.Tensor:
    """Standardised (..., P) model outputs -> physical units (float64)."""
    mean, std = _stats(config)
    return outputs.detach().double().cpu() * std + mean


def standardised_split(split: Split, config) -> Split:
    """The split with its targets standardised (training sees these)."""
    x, y = split.dataset.tensors
    return Split(TensorDataset(x, standardise(y, config)), split.info)


def closeness(outputs: torch.Tensor, target) -> torch.Tensor:
    """The one definition of a regression curve's value, **per parameter**: (..., P) from outputs
    (..., P) and a target (P,), both in standardised units,

        c_p = 1 - |output_p - target_p|        (= 1 - |pred_p - target_p| / std_p in physical units)

    with std_p the parameter's training-set standard deviation.  c_p = 1 at the target (the curves'
    target is the prediction on the whole input) and drops by 1 for every standard deviation the
    estimate moves (it can go below 0).  The summary over parameters is its mean
    (`RegressionTask.score`), so a summary AUC is the mean of the per-parameter AUCs."""
    t = torch.as_tensor(target, dtype=outputs.dtype, device=outputs.device)
    return 1.0 - (outputs - t).abs()


def r2_rmse(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column R^2 = 1 - SS_res / SS_tot and RMSE of (N, P) predictions."""
    res = ((pred - true) ** 2).sum(0)
    tot = ((true - true.mean(0)) ** 2).sum(0)
    return 1 - res / np.maximum(tot, 1e-300), np.sqrt(res / len(true))


def _named(names: Sequence[str], values: np.ndarray) -> dict[str, float]:
    return {str(n): float(v) for n, v in zip(names, values)}


@torch.no_grad()
@torch.no_grad()
def predictions(model: nn.Module, split: Split, config, batch_size: int = 128, device="cpu") -> np.ndarray:
    """(N, P) physical-unit predictions of a model (SOP or plain twin, on `device`) over a split."""
    from .explainers import logits_of
    model.eval()
    out = [logits_of(model, x.to(device)).cpu() for x, _ in DataLoader(split.dataset, batch_size=batch_size)]
    return to_physical(torch.cat(out), config).numpy()


def regression_report(model: nn.Module, split: Split, config, prefix: str = "", device="cpu") -> dict:
    """{prefix r2: {name: R2}, prefix rmse: {...}, prefix r2_mean} in physical units."""
    true = split.dataset.tensors[1].double().numpy()
    r2, rmse = r2_rmse(predictions(model, split, config, device=device), true)
    names = config.target_names or config.class_names
    return {f"{prefix}r2": _named(names, r2), f"{prefix}rmse": _named(names, rmse), f"{prefix}r2_mean": float(r2.mean())}


@torch.no_grad()
def regression_statistics(model, split: Split, backbone: nn.Module | None = None, batch_size: int = 128) -> dict:
    """R2 and RMSE per parameter (physical units), the twin's, the fidelity and the sparsity.

    fidelity_r2: R2 of SOP's predictions against the twin's (per parameter, and the mean):
    1 when SOP predicts what the twin predicts.  Sparsity as for classification
    (`sop.evaluation.sparsity_sums`): groups used, patches per used group, coverage.
    """
    from .evaluation import sparsity_sums
    model.eval()
    cfg, names = model.config, model.config.target_names or model.config.class_names
    preds, used, patches, pixels, covered = [], 0.0, 0.0, 0.0, 0.0
    for x, _ in DataLoader(split.dataset, batch_size=batch_size):
        out = model(x)
        preds.append(out.logits)
        u, p, px, c = sparsity_sums(out)
        used, patches, pixels, covered = used + u, patches + p, pixels + px, covered + c
    n = len(split.dataset)
    pred = to_physical(torch.cat(preds), cfg).numpy()
    true = split.dataset.tensors[1].double().numpy()
    r2, rmse = r2_rmse(pred, true)
    stats = dict(samples=n, r2=_named(names, r2), rmse=_named(names, rmse), r2_mean=float(r2.mean()),
                 groups_used=used / n, num_groups=model.num_groups, patches_per_group=patches / max(used, 1),
                 num_patches=model.adapter.num_patches, pixels_per_group=pixels / max(used, 1),
                 image_pixels=int(math.prod(cfg.img_size)), selected_fraction=covered / n,
                 grid=list(model.adapter.grid))
    if backbone is not None:
        twin = predictions(backbone, split, cfg, batch_size)
        b_r2, b_rmse = r2_rmse(twin, true)
        f_r2, _ = r2_rmse(pred, twin)
        stats.update(backbone_r2=_named(names, b_r2), backbone_rmse=_named(names, b_rmse),
                     backbone_r2_mean=float(b_r2.mean()), fidelity_r2=_named(names, f_r2),
                     fidelity=float(f_r2.mean()))
    return stats


@torch.no_grad()
def validation_r2(model: nn.Module, split: Split, device="cpu", batch_size: int = 256) -> float:
    """Mean R^2 over the parameters on a split of *standardised* targets (training's model selection)."""
    from .explainers import logits_of
    model.eval()
    preds, ys = [], []
    for x, y in DataLoader(split.dataset, batch_size=batch_size):
        preds.append(logits_of(model, x.to(device)).double().cpu())
        ys.append(y.double())
    r2, _ = r2_rmse(torch.cat(preds).numpy(), torch.cat(ys).numpy())
    return float(r2.mean())
