"""Localisation metrics: hand-made cases, and agreement with quantus on real parts scenes."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sop.localisation import ground_truth_masks, localisation_scores, pointing_game, relevance_mass_accuracy, \
    relevance_rank_accuracy

ROOT = Path(__file__).resolve().parent.parent


def m(rows) -> np.ndarray:
    return np.array(rows, dtype=bool)


# --------------------------------------------------------------------------- known answers

def test_pointing_game_hits_when_any_maximal_pixel_is_inside():
    a = np.array([[0.1, 0.9], [0.3, 0.2]], np.float32)
    assert pointing_game(a, m([[0, 1], [0, 0]])) == 1.0
    assert pointing_game(a, m([[1, 0], [1, 1]])) == 0.0
    # tie: a plateau of maxima (as an SOP group) hits if one of its pixels is inside
    plateau = np.array([[1.0, 1.0], [1.0, 0.0]], np.float32)
    assert pointing_game(plateau, m([[0, 0], [1, 0]])) == 1.0
    assert pointing_game(plateau, m([[0, 0], [0, 1]])) == 0.0
    # an all-zero map: every pixel is maximal
    assert pointing_game(np.zeros((2, 2)), m([[0, 0], [0, 1]])) == 1.0


def test_mass_accuracy_is_the_signed_share_inside():
    a = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32)
    assert relevance_mass_accuracy(a, m([[1, 1], [0, 0]])) == pytest.approx(3 / 5)
    # negative attribution outside is not clipped (quantus's abs=False): the share can pass 1
    assert relevance_mass_accuracy(np.array([[2.0, 0.0], [0.0, -1.0]]), m([[1, 0], [0, 0]])) == pytest.approx(2.0)
    # scale does not matter (the map is divided by its max |value| first)
    assert relevance_mass_accuracy(7 * a, m([[1, 1], [0, 0]])) == pytest.approx(3 / 5)
    assert math.isnan(relevance_mass_accuracy(np.zeros((2, 2)), m([[1, 0], [0, 0]])))  # 0 / 0


def test_rank_accuracy_counts_mask_pixels_among_the_top_k():
    a = np.array([[4.0, 3.0], [2.0, 1.0]], np.float32)
    assert relevance_rank_accuracy(a, m([[0, 1], [1, 0]])) == 0.5      # K = 2: top {4, 3}, one inside
    assert relevance_rank_accuracy(a, m([[1, 1], [0, 0]])) == 1.0
    assert relevance_rank_accuracy(a, m([[0, 0], [0, 1]])) == 0.0      # K = 1: top {4}
    # a tie wholly inside the top K is unambiguous
    assert relevance_rank_accuracy(np.array([[5, 5, 5, 0]], np.float32), m([[1, 1, 1, 0]])) == 1.0


def test_rank_accuracy_breaks_a_straddling_tie_in_numpys_argsort_order():
    """A plateau across the K-th place: the pixels NumPy's default argsort puts first are in the top K."""
    rng = np.random.default_rng(0)
    a = np.zeros((8, 8), np.float32)
    a[:2] = 2.0
    a[2:6] = 1.0                                           # a 32-pixel plateau
    mask = np.zeros((8, 8), bool)
    mask[:2] = True                                        # 16 pixels above the plateau ...
    mask[2:6] = rng.random((4, 8)) < 0.5                   # ... and part of the plateau
    k = int(mask.sum())
    assert 16 < k < 48                                     # the plateau straddles the K-th place
    order = np.argsort(-(a / np.abs(a).max()).ravel())
    expected = mask.ravel()[order[:k]].sum() / k
    got = relevance_rank_accuracy(a, mask)
    assert got == expected
    inside_plateau = int(mask[2:6].sum())
    worst, best = (16 + max(0, k - 16 - (32 - inside_plateau))) / k, (16 + min(k - 16, inside_plateau)) / k
    assert worst <= got <= best


def test_empty_mask_is_nan_and_shapes_must_match():
    a = np.ones((3, 3), np.float32)
    assert all(math.isnan(v) for v in localisation_scores(a, np.zeros((3, 3), bool)).values())
    with pytest.raises(ValueError, match="same shape"):
        pointing_game(a, np.ones((3, 4), bool))


def test_torch_and_numpy_inputs_agree():
    a = torch.rand(6, 6)
    mask = torch.zeros(6, 6, dtype=torch.bool)
    mask[1:3, 2:5] = True
    assert localisation_scores(a, mask) == localisation_scores(a.numpy(), mask.numpy())


def test_ground_truth_masks_are_the_parts_decisive_masks():
    from sop.data import PartsScenes, load_split
    masks = ground_truth_masks("parts", "val")
    split = load_split("parts", "val")
    assert masks.shape == (len(split.dataset), 32, 32) and masks.dtype == bool
    labels = split.dataset.tensors[1].numpy()
    assert np.array_equal(masks.reshape(len(masks), -1).any(1), labels == 1)  # exactly the positives carry one
    np.testing.assert_array_equal(masks, PartsScenes.generate("val").decisive_masks())
    assert ground_truth_masks("digits", "test") is None


# --------------------------------------------------------------------------- quantus

N_INPUTS = 24


def test_agrees_with_quantus_on_real_parts_scenes():
    """SOP's own map and three baselines on the backbone twin, 24 positive test scenes."""
    import quantus

    import sop
    from sop.data import load_split
    model = sop.load(ROOT / "assets/models/parts_sop.safetensors")
    twin = sop.load(ROOT / "assets/models/parts_backbone.safetensors")
    split = load_split("parts", "test")
    masks = ground_truth_masks("parts", "test")
    positives = np.flatnonzero(masks.reshape(len(masks), -1).any(1))[:N_INPUTS]
    assert len(positives) == N_INPUTS
    # quantus's defaults (normalise=True, abs=False), one input per call as sop.localisation scores one map
    reference = {"pointing_game": quantus.PointingGame(disable_warnings=True),
                 "mass_accuracy": quantus.RelevanceMassAccuracy(disable_warnings=True),
                 "rank_accuracy": quantus.RelevanceRankAccuracy(disable_warnings=True)}
    runs = [("sop", model, {}), ("occlusion", twin, {}), ("gradcam", twin, {}), ("ig", twin, dict(n_steps=8))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ~100 tiny forward passes: one thread is several times faster on a busy machine
    try:
        straddling = _compare(runs, split, masks, positives, reference)
    finally:
        torch.set_num_threads(threads)
    assert straddling > 0, "no tie across the K-th place: the tie handling went unchecked"


def _compare(runs, split, masks, positives, reference) -> int:
    """Assert agreement on every input; return how many SOP maps have a tie across the K-th place."""
    from sop.explainers import explain
    straddling, skipped = 0, {}
    for method, on, settings in runs:
        for i in positives:
            x = split.dataset[int(i)][0].unsqueeze(0)
            a = explain(on, x, method, **settings).attribution.numpy()
            ours = localisation_scores(a, masks[i])
            if not a.any():  # Grad-CAM can give an all-zero map; quantus refuses those, we give no mass
                assert np.isnan(ours["mass_accuracy"]), (method, int(i))
                skipped[method] = skipped.get(method, 0) + 1
                continue
            for name, metric in reference.items():
                theirs = metric(model=None, x_batch=x.numpy(), y_batch=np.array([1]), a_batch=a[None],
                                s_batch=masks[i][None, None])
                assert abs(ours[name] - float(theirs[0])) < 1e-6, (method, int(i), name, ours[name], theirs)
            if method == "sop":  # count SOP maps whose plateau crosses the K-th place (ties decide the score)
                flat, k = a.ravel(), int(masks[i].sum())
                kth = np.sort(flat)[::-1][k - 1]
                straddling += int((flat > kth).sum() < k < (flat >= kth).sum())
    # every method but Grad-CAM (all-zero on 10 of these 24 scenes) is compared on all of them
    compared = {m: len(positives) - skipped.get(m, 0) for m, _, _ in runs}
    assert all(n >= 20 for m, n in compared.items() if m != "gradcam") and compared["gradcam"] >= 5, compared
    return straddling
