"""The dataset registry: one place holding each dataset's name, label, modality, task,
ground truth and loader (timm-style: a decorator, `list_datasets()`, `get_dataset()`).

    @register_dataset("stripes", label="Stripes", modality="image", task="classification")
    def load_stripes(split, *, img_size=None, seed=0) -> Split: ...

    list_datasets()                       # ["digits", "folder", "parts", "stripes"]
    spec = get_dataset("parts")           # its DatasetSpec
    spec.ground_truth                     # "part_masks" (what a scored input carries), or None
    spec.masks("test", 0)                 # those masks, (N, H, W) bool, aligned with spec.load("test")
    spec.load("test")                     # a Split, the same as load_split("parts", "test")
    get_dataset("folder:/data/pets")      # a path-taking dataset, bound to its path

A loader takes the split name ("train", "val" or "test") and the keywords `img_size`
(None = the dataset's default) and `seed`; a dataset registered with `takes_path=True`
also gets `path`, written after a colon in its name ("folder:/path/to/images").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError
from .base import Split

SPLITS = ("train", "val", "test")
# What ground truth a dataset's inputs carry, for localisation metrics.
GROUND_TRUTHS = {None: "none", "part_masks": "a pixel mask of the decisive parts of each positive input",
                 "token_spans": "a token mask (N, L) of the decisive words of each input (text)"}


@dataclass(frozen=True)
class DatasetSpec:
    """What the registry knows about one dataset (`path` set once bound by `get_dataset`)."""
    name: str
    label: str                          # human-readable, for the app and --help
    modality: str                       # "image" or "text" (inputs are (B, L) token ids)
    task: str                           # a name in sop.tasks: what its labels are
    loader: Callable[..., Split]
    ground_truth: str | None = None     # e.g. "part_masks"; None: no ground truth
    takes_path: bool = False            # named "<name>:<path>"
    description: str = ""
    path: str | None = None
    # (split, seed) -> (N, H, W) bool decisive-region masks aligned with load(split, seed=seed);
    # an empty mask means that input has no ground truth.  Set when ground_truth is.
    masks: Callable[..., np.ndarray] | None = None
    rule: str = ""                      # the labelling rule in words, when the labels follow one
    capabilities: tuple[str, ...] = ()  # e.g. "digit_like": uploads are prepared like its scans

    @property
    def full_name(self) -> str:
        """The name a checkpoint records (`SOPConfig.dataset`), with its path if it takes one."""
        return f"{self.name}:{self.path}" if self.takes_path and self.path is not None else self.name

    def load(self, split: str, *, img_size: tuple[int, int] | None = None, seed: int = 0) -> Split:
        """One split as a torch Dataset of (normalised input, label) plus its DatasetInfo."""
        if split not in SPLITS:
            raise ConfigError(f"split must be train, val or test, not {split!r}", field="split")
        if self.takes_path:
            if not self.path:
                raise ConfigError(f"dataset {self.name!r} needs a path: {self.name}:/path/to/data", field="dataset")
            return self.loader(split, img_size=img_size, seed=seed, path=self.path)
        return self.loader(split, img_size=img_size, seed=seed)


_DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, *, label: str, modality: str = "image", task: str = "classification",
                     ground_truth: str | None = None, takes_path: bool = False, description: str = "",
                     masks: Callable[..., np.ndarray] | None = None, rule: str = "",
                     capabilities: tuple[str, ...] = ()) -> Callable[[Callable[..., Split]], Callable[..., Split]]:
    """Decorator: register a loader `fn(split, *, img_size=None, seed=0[, path]) -> Split` as `name`."""
    if ":" in name:
        raise ConfigError(f"a dataset name cannot contain ':' ({name!r}); use takes_path=True", field="dataset")
    if (ground_truth is None) != (masks is None):
        raise ConfigError(f"dataset {name!r}: ground_truth and masks go together (the kind and its loader)",
                          field="ground_truth")

    def deco(fn: Callable[..., Split]) -> Callable[..., Split]:
        doc = (fn.__doc__ or "").strip().splitlines()
        _DATASETS[name] = DatasetSpec(name=name, label=label, modality=modality, task=task, loader=fn,
                                      ground_truth=ground_truth, takes_path=takes_path,
                                      description=description or (doc[0] if doc else ""), masks=masks,
                                      rule=rule, capabilities=tuple(capabilities))
        return fn
    return deco


def list_datasets(modality: str | None = None, task: str | None = None) -> list[str]:
    """Registered dataset names (sorted), optionally of one modality and/or task."""
    return sorted(n for n, s in _DATASETS.items()
                  if (modality is None or s.modality == modality) and (task is None or s.task == task))


def get_dataset(name: str) -> DatasetSpec:
    """The spec of `name`, or of "<name>:<path>" bound to that path; ConfigError if unknown."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a dataset name must be a non-empty string, got {name!r}", field="dataset")
    key, sep, path = name.partition(":")
    spec = _DATASETS.get(key)
    if spec is None:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(dataset_names())}", field="dataset")
    if sep and not spec.takes_path:
        raise ConfigError(f"dataset {key!r} takes no path (got {name!r})", field="dataset")
    return dataclasses.replace(spec, path=path) if sep else spec


def find_dataset(name: str) -> DatasetSpec | None:
    """`get_dataset(name)`, or None when the name is not registered (e.g. a checkpoint trained on a
    dataset this installation does not have): for callers that can do without it."""
    try:
        return get_dataset(name)
    except ConfigError:
        return None


def dataset_names() -> list[str]:
    """Names as a user writes them: path-taking ones as "<name>:<path>"."""
    return [f"{n}:<path>" if _DATASETS[n].takes_path else n for n in list_datasets()]
