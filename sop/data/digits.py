"""scikit-learn's 8x8 handwritten digits (1,797 real scans that ship with the package).

Each 8x8 scan is upsampled by pixel replication, so with the default 32x32 input and
4x4 ViT patches one patch is exactly one original pixel: groups are sets of pen pixels.
Split (fixed, stratified, seed 0): 1,257 train / 180 val / 360 test.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import DatasetInfo, Split, tensor_split
from .registry import register_dataset

# Mean/std of the training split at 32x32 (ink is bright: white digit on black).
DIGITS_MEAN, DIGITS_STD = (0.3049,), (0.3758,)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split
    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=360, stratify=labels, random_state=0)
    train, val = train_test_split(rest, test_size=180, stratify=labels[rest], random_state=0)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def load_digits_split(split: str, img_size: tuple[int, int] = (32, 32)) -> Split:
    images, labels = digits_arrays()
    idx = split_indices(labels)[split]
    x = torch.from_numpy(images[idx]).unsqueeze(1)
    x = F.interpolate(x, size=tuple(img_size), mode="nearest")
    info = DatasetInfo(name="digits", class_names=[str(i) for i in range(10)], in_chans=1,
                       img_size=tuple(img_size), mean=DIGITS_MEAN, std=DIGITS_STD,
                       description="scikit-learn handwritten digits, 8x8 scans upsampled; white ink on black",
                       train_shift=max(1, img_size[0] // 8))
    return tensor_split(x, torch.from_numpy(labels[idx]), info)


@register_dataset("digits", label="Handwritten digits", modality="image", task="classification", ground_truth=None,
                  capabilities=("digit_like",))
def digits(split: str, *, img_size: tuple[int, int] | None = None, seed: int = 0) -> Split:
    """scikit-learn's 1,797 handwritten digit scans, 10 classes (default 32x32, fixed split)."""
    return load_digits_split(split, img_size=img_size or (32, 32))
