"""A user's own images in ImageFolder layout: root/<class>/<image>.

If root has train/ and val/ (and optionally test/) subfolders they are the splits;
otherwise the images are split 80/10/10 per class, deterministically from the seed.
Images are decoded with sop.image_io (size limits, EXIF, alpha and mode handling).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import ConfigError
from .base import DatasetInfo, Split
from .registry import register_dataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def scan(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ConfigError(f"image folder {root} has no class subfolders (expected root/<class>/<image>)",
                          field="dataset")
    items = [(f, i) for i, c in enumerate(classes) for f in sorted((root / c).rglob("*"))
             if f.suffix.lower() in IMAGE_SUFFIXES]
    return classes, items


class ImageFiles(Dataset):
    def __init__(self, items: list[tuple[Path, int]], info: DatasetInfo):
        self.items, self.info = items, info

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from ..image_io import image_to_tensor, load_image
        path, label = self.items[i]
        img = load_image(path, mode="L" if self.info.in_chans == 1 else "RGB")
        x = image_to_tensor(img, img_size=self.info.img_size, mean=self.info.mean, std=self.info.std,
                            in_chans=self.info.in_chans)
        return x[0], label


def load_folder_split(root: str, split: str, img_size=(224, 224), seed: int = 0,
                      in_chans: int = 3) -> Split:
    root_path = Path(root)
    if not root_path.is_dir():
        raise ConfigError(f"image folder {root!r} does not exist or is not a folder (dataset folder:<path>)",
                          field="dataset")
    info_kwargs = dict(name=f"folder:{root}", in_chans=in_chans, img_size=tuple(img_size),
                       mean=IMAGENET_MEAN[:in_chans] if in_chans == 3 else (0.5,),
                       std=IMAGENET_STD[:in_chans] if in_chans == 3 else (0.5,),
                       description=f"image folder {root}")
    if (root_path / "train").is_dir() and (root_path / "val").is_dir():
        sub = root_path / split if (root_path / split).is_dir() else root_path / "val"
        classes, items = scan(sub)
        return Split(ImageFiles(items, DatasetInfo(class_names=classes, **info_kwargs)), DatasetInfo(
            class_names=classes, **info_kwargs))
    classes, items = scan(root_path)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(len(classes)):
        mine = [it for it in items if it[1] == c]
        order = rng.permutation(len(mine))
        n_val = n_test = max(1, len(mine) // 10) if len(mine) >= 3 else 0
        bounds = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
        chosen += [mine[j] for j in sorted(bounds[split])]
    info = DatasetInfo(class_names=classes, **info_kwargs)
    return Split(ImageFiles(chosen, info), info)


@register_dataset("folder", label="Image folder", modality="image", task="classification", ground_truth=None,
                  takes_path=True)
def folder(split: str, *, img_size: tuple[int, int] | None = None, seed: int = 0, path: str = "") -> Split:
    """Your own images, root/<class>/<image> (default 224x224; split 80/10/10 unless train/ and val/ exist)."""
    return load_folder_split(path, split, img_size=img_size or (224, 224), seed=seed)
