"""Datasets SOP trains on, all available offline.

    load_split("digits", "train")            # scikit-learn's handwritten digits
    load_split("parts", "test")              # synthetic scenes with true part masks
    load_split("folder:/path/to/images", "val")  # your own ImageFolder tree

Every split returns a torch Dataset of (normalised image, label) and a DatasetInfo
with what a checkpoint must remember to preprocess new inputs the same way.
"""
from __future__ import annotations

from .base import DatasetInfo, Split
from .digits import load_digits_split
from .folder import load_folder_split
from .parts import PART_NAMES, RULE_TEXT, PartsScenes, load_parts_split

__all__ = ["DatasetInfo", "Split", "load_split", "PartsScenes", "PART_NAMES", "RULE_TEXT", "dataset_names"]


def dataset_names() -> list[str]:
    return ["digits", "parts", "folder:<path>"]


def load_split(name: str, split: str, *, img_size: tuple[int, int] | None = None, seed: int = 0) -> Split:
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, not {split!r}")
    if name == "digits":
        return load_digits_split(split, img_size=img_size or (32, 32))
    if name == "parts":
        return load_parts_split(split, seed=seed)
    if name.startswith("folder:"):
        return load_folder_split(name[len("folder:"):], split, img_size=img_size or (224, 224), seed=seed)
    raise ValueError(f"unknown dataset {name!r}; known: {dataset_names()}")
