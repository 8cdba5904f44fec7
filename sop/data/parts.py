"""Synthetic "parts" scenes: images whose label is a logical rule over coloured shapes.

Each 32x32 scene holds some of four parts, drawn in separate cells of a 3x3 layout
(so parts never overlap) over a noisy grey background:
    A = red square, B = blue circle, C = green triangle, D = yellow cross (a distractor).
Label: positive iff (A AND B) OR C.  Every sample carries its true part masks, and the
*decisive* mask of a positive scene is the union of the parts of every satisfied clause
(A and B for the AND, C for the OR).  Negative scenes have no decisive part (their
evidence is an absence), so ground-truth IoU is measured on positives only.

Scenes are a pure function of (seed, split, index): the same call gives the same pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import DatasetInfo, Split, tensor_split
from .registry import register_dataset

PART_NAMES = ("red square", "blue circle", "green triangle", "yellow cross")
PART_COLOURS = np.array([(0.9, 0.15, 0.15), (0.2, 0.35, 0.95), (0.15, 0.8, 0.25), (0.95, 0.85, 0.1)],
                        dtype=np.float32)
PART_PROB = (0.5, 0.5, 0.3, 0.5)
RULE_TEXT = "(red square AND blue circle) OR green triangle"
CLASS_NAMES = ["negative", "positive"]
SPLIT_SIZES = {"train": 4000, "val": 500, "test": 1000}
SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}
IMG, CELL, SHAPE = 32, 10, 8
PARTS_MEAN, PARTS_STD = (0.36, 0.36, 0.36), (0.2, 0.2, 0.2)  # mean = the background grey


def rule(present: np.ndarray) -> np.ndarray:
    """present (..., 4) bool -> label (...,): (A and B) or C."""
    return (present[..., 0] & present[..., 1]) | present[..., 2]


def shape_mask(part: int) -> np.ndarray:
    """The SHAPE x SHAPE boolean stencil of a part."""
    yy, xx = np.mgrid[0:SHAPE, 0:SHAPE] + 0.5
    c = SHAPE / 2
    if part == 0:
        return np.ones((SHAPE, SHAPE), bool)
    if part == 1:
        return (yy - c) ** 2 + (xx - c) ** 2 <= c ** 2
    if part == 2:  # upward triangle: width grows with the row
        return np.abs(xx - c) <= yy / 2
    return (np.abs(xx - c) < 1.5) | (np.abs(yy - c) < 1.5)


STENCILS = [shape_mask(p) for p in range(4)]


def render_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: image (3, H, W) in [0, 1], part masks (4, H, W) bool, present (4,) bool."""
    img = np.clip(0.35 + 0.08 * rng.standard_normal((3, IMG, IMG)), 0, 1).astype(np.float32)
    masks = np.zeros((4, IMG, IMG), bool)
    present = rng.random(4) < np.array(PART_PROB)
    cells = rng.permutation(9)[:4]
    for part in np.flatnonzero(present):
        cy, cx = divmod(int(cells[part]), 3)
        y = 1 + cy * CELL + rng.integers(0, CELL - SHAPE + 1)
        x = 1 + cx * CELL + rng.integers(0, CELL - SHAPE + 1)
        stencil = STENCILS[part]
        masks[part, y:y + SHAPE, x:x + SHAPE] = stencil
        shade = PART_COLOURS[part] * rng.uniform(0.85, 1.0)
        img[:, masks[part]] = shade[:, None]
    return img, masks, present


@dataclass
class PartsScenes:
    images: np.ndarray        # (N, 3, 32, 32) float32 in [0, 1]
    part_masks: np.ndarray    # (N, 4, 32, 32) bool
    present: np.ndarray       # (N, 4) bool
    labels: np.ndarray        # (N,) int64

    @classmethod
    def generate(cls, split: str, seed: int = 0, size: int | None = None) -> "PartsScenes":
        n = SPLIT_SIZES[split] if size is None else size
        rng = np.random.default_rng([seed, SPLIT_OFFSET[split]])
        scenes = [render_scene(rng) for _ in range(n)]
        images, masks, present = (np.stack(a) for a in zip(*scenes))
        return cls(images, masks, present, rule(present).astype(np.int64))

    def decisive_masks(self) -> np.ndarray:
        """(N, H, W) bool: pixels of the parts that make a positive scene positive."""
        m = self.part_masks
        both = (self.present[:, 0] & self.present[:, 1])[:, None, None]
        green = self.present[:, 2][:, None, None]
        return ((m[:, 0] | m[:, 1]) & both) | (m[:, 2] & green)


def parts_info() -> DatasetInfo:
    return DatasetInfo(name="parts", class_names=list(CLASS_NAMES), in_chans=3, img_size=(IMG, IMG),
                       mean=PARTS_MEAN, std=PARTS_STD, description=f"synthetic scenes; positive iff {RULE_TEXT}",
                       extra={"part_names": list(PART_NAMES), "rule": RULE_TEXT})


def load_parts_split(split: str, seed: int = 0) -> Split:
    scenes = PartsScenes.generate(split, seed=seed)
    return tensor_split(torch.from_numpy(scenes.images), torch.from_numpy(scenes.labels), parts_info())


def decisive_masks(split: str, seed: int = 0) -> np.ndarray:
    """(N, 32, 32) bool: the parts that make each positive scene positive (empty for negatives)."""
    return PartsScenes.generate(split, seed=seed).decisive_masks()


@register_dataset("parts", label="Parts scenes", modality="image", task="classification", ground_truth="part_masks",
                  masks=decisive_masks, rule=RULE_TEXT)
def parts(split: str, *, img_size: tuple[int, int] | None = None, seed: int = 0) -> Split:
    """Synthetic 32x32 scenes, positive iff (red square AND blue circle) OR green triangle."""
    return load_parts_split(split, seed=seed)   # always 32x32: the part masks are drawn at that size
