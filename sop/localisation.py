"""Localisation against ground-truth masks: pointing game, relevance mass and rank accuracy.

The three metrics of Arras et al. 2022 (CLEVR-XAI), computed exactly as the `quantus`
package (0.6) computes them with its default settings for one single-channel (H, W)
attribution map and a boolean (H, W) ground-truth mask -- quantus's
``PointingGame()``, ``RelevanceMassAccuracy()`` and ``RelevanceRankAccuracy()`` called
on a batch of one.  tests/test_localisation.py checks the agreement on real inputs.

Preprocessing (quantus's defaults: ``normalise=True``, ``abs=False``): the map is divided
by its largest absolute value (left as it is when it is all zeros); no absolute value
is taken, so **negative attribution counts as negative**.  Dividing by a positive number
changes no ranking and no ratio; it is kept so ties and float rounding are quantus's.

With a = the preprocessed map flattened, GT = the mask's pixels, K = |GT|:

* ``pointing_game`` = 1.0 if some pixel with the maximal value a_max lies in GT, else
  0.0.  **Ties**: every pixel equal to the maximum counts, so a plateau of maximal
  pixels (an SOP group's mask) is a hit when any one of them touches GT.
* ``relevance_mass_accuracy`` = sum(a[GT]) / sum(a): the *signed* attribution inside
  GT over the signed total.  Not clipped at zero, so with negative attribution outside
  GT it can exceed 1 (or be negative); a total of 0 gives NaN or +-inf, as in quantus.
  Ties play no part.
* ``relevance_rank_accuracy`` = |top-K ∩ GT| / K, top-K = the first K pixels of
  ``np.argsort(-a)`` (NumPy's default, *unstable* quicksort).  **Ties**: when a plateau
  of equal values straddles the K-th place, which of its pixels fall in the top K is the
  order that argsort returns -- not raster order, not random; deterministic for a given
  map and NumPy version.  This is what quantus does, so it is done the same here.

An empty mask has no defined score: every metric returns NaN (quantus means to, but its
pointing game returns True there).  The definitions are identical for every method.
"""
from __future__ import annotations

import numpy as np
import torch

METRICS = ("pointing_game", "mass_accuracy", "rank_accuracy")


def _prepare(attribution, mask) -> tuple[np.ndarray, np.ndarray]:
    """(flat map divided by its max |value| as quantus's normalise_by_max, flat bool mask)."""
    a = attribution.detach().cpu().numpy() if isinstance(attribution, torch.Tensor) else np.asarray(attribution)
    s = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if a.shape != s.shape:
        raise ValueError(f"attribution {a.shape} and mask {s.shape} must have the same shape")
    a, s = a.reshape(-1), s.astype(bool).reshape(-1)
    if not np.all(a == 0.0):  # same dtype as the input, like quantus (float32 maps stay float32)
        a = np.divide(a, np.max(np.abs(a)))
    return a, s


def pointing_game(attribution, mask) -> float:
    """1.0 if a maximal pixel of the map (any of them, on ties) lies in the mask, else 0.0."""
    a, s = _prepare(attribution, mask)
    if not s.any():
        return float("nan")
    return float(np.any(s & (a == a.max())))


def relevance_mass_accuracy(attribution, mask) -> float:
    """Signed attribution inside the mask / signed attribution in total."""
    a, s = _prepare(attribution, mask)
    if not s.any():
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide((a * s).sum(), a.sum()))  # NumPy division: 0 total -> nan/inf, not an error


def relevance_rank_accuracy(attribution, mask) -> float:
    """Share of the mask's K pixels among the map's top-K pixels (ties: NumPy's argsort order)."""
    a, s = _prepare(attribution, mask)
    k = int(s.sum())
    if k == 0:
        return float("nan")
    top = np.argsort(-a)[:k]  # default kind on purpose: quantus's tie order
    return float(s[top].sum() / k)


def localisation_scores(attribution, mask) -> dict[str, float]:
    """{"pointing_game", "mass_accuracy", "rank_accuracy"} of one (H, W) map and (H, W) mask."""
    return dict(pointing_game=pointing_game(attribution, mask),
                mass_accuracy=relevance_mass_accuracy(attribution, mask),
                rank_accuracy=relevance_rank_accuracy(attribution, mask))


def ground_truth_masks(dataset: str, split: str, seed: int = 0) -> np.ndarray | None:
    """(N, H, W) bool ground-truth masks of a split, or None if the dataset carries none.

    Aligned with ``sop.data.load_split(dataset, split, seed=seed)``: mask i belongs to
    input i; an empty mask means that input has no ground truth (is not scored).
    The dataset registry says which datasets carry masks (`DatasetSpec.masks`); today only
    *parts* does: the decisive parts of positive scenes (negative scenes are positive by no
    part, so their masks are empty).
    """
    from .data.registry import find_dataset
    spec = find_dataset(dataset)
    return spec.masks(split, seed) if spec is not None and spec.masks is not None else None
