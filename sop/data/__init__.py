"""Datasets SOP trains on, all available offline, in one registry (`sop.data.registry`).

    load_split("digits", "train")            # scikit-learn's handwritten digits
    load_split("parts", "test")              # synthetic scenes with true part masks
    load_split("folder:/path/to/images", "val")  # your own ImageFolder tree
    load_split("reviews", "test")            # generated reviews with decisive words (text)
    load_split("csv:/path/file.csv", "train")   # your own texts (columns text,label[,split])
    list_datasets()                          # ["digits", "folder", "parts"]
    get_dataset("parts").ground_truth        # "part_masks"

Every split returns a torch Dataset of (normalised image, label) and a DatasetInfo
with what a checkpoint must remember to preprocess new inputs the same way.  To add a
dataset, decorate its loader with `register_dataset` (see README, "Adding a dataset").
"""
from __future__ import annotations

from .base import DatasetInfo, Split, normalise, tensor_split
# Importing the loaders registers them.
from .digits import load_digits_split
from .folder import load_folder_split
from .lensing import LensingSettings, load_lensing_split
from .parts import PART_NAMES, RULE_TEXT, PartsScenes, load_parts_split
from .reviews import load_reviews_split
from .csv_text import load_csv_split
from .registry import DatasetSpec, dataset_names, find_dataset, get_dataset, list_datasets, register_dataset

__all__ = ["DatasetInfo", "Split", "load_split", "split_sample", "SAMPLE_SEED", "PartsScenes", "PART_NAMES", "RULE_TEXT", "dataset_names",
           "DatasetSpec", "register_dataset", "list_datasets", "get_dataset", "find_dataset", "tensor_split", "normalise",
           "load_digits_split", "load_folder_split", "load_parts_split", "LensingSettings", "load_lensing_split",
           "load_reviews_split", "load_csv_split"]


def load_split(name: str, split: str, *, img_size: tuple[int, int] | None = None, seed: int = 0) -> Split:
    """One split of the dataset `name` (a registered name, or "folder:<path>")."""
    return get_dataset(name).load(split, img_size=img_size, seed=seed)


# "test:12" (a shared link's input, `sop figure --input test:12`) names sample 12 of the split
# loaded with this seed, whatever seed the model was trained with: the same image everywhere.
SAMPLE_SEED = 0


def split_sample(split: Split, index: int, *, where: str | None = None):
    """(x, label) of sample `index` of a loaded split: x (1, C, H, W) float, or for text (1, L) token
    ids (long); InputError when out of range.

    The app's dataset samples and ``sop figure --input SPLIT:INDEX`` both read inputs here, from
    splits loaded with `SAMPLE_SEED`."""
    from ..errors import InputError
    n = len(split.dataset)
    if not 0 <= int(index) < n:
        raise InputError(f"{where or 'the ' + split.info.name + ' split'} has {n} samples (0-{n - 1}); "
                         f"there is no sample {index}")
    x, y = split.dataset[int(index)]
    return x.unsqueeze(0) if not x.is_floating_point() else x.unsqueeze(0).float(), int(y)
