from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset, TensorDataset


@dataclass
class DatasetInfo:
    name: str
    class_names: list[str]
    in_chans: int
    img_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str = ""
    # Pixel shift (in pixels) used as training augmentation; 0 disables it.
    train_shift: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class Split:
    dataset: Dataset
    info: DatasetInfo


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """images in [0, 1], (N, C, H, W) -> (images - mean) / std per channel."""
    m = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - m) / s


def tensor_split(images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo) -> Split:
    return Split(TensorDataset(normalise(images, info.mean, info.std), labels.long()), info)
