"""Choosing and loading models.  A checkpoint is loaded once per server and shared by sessions.

Three sources:
  * the embedded defaults (sop.embedded_models(): assets/models/<name>_sop.safetensors);
  * any SOP checkpoint file on disk (.safetensors with its config in the header);
  * a timm model name with its own SOP checkpoint: the checkpoint's config names the timm
    architecture and holds every weight, so nothing is downloaded (works offline).

Baseline methods explain the plain backbone twin (<name>_backbone.safetensors beside
the SOP checkpoint) when there is one, and the SOP model's own logits otherwise.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
from torch import nn

import sop
from sop.checkpoint import twin_path
from sop.model import SOPModel

from . import views

SOURCES = ("Embedded", "Checkpoint file", "timm + checkpoint")


@dataclass(frozen=True)
class ModelSpec:
    """What to load.  `url` is its value in the shared link (?model=...)."""
    source: str                 # one of SOURCES
    sop_path: str
    backbone_path: str | None
    name: str                   # display name
    url: str                    # embedded name, or the checkpoint path
    timm_name: str | None = None


@dataclass
class LoadedModel:
    spec: ModelSpec
    model: SOPModel
    key: str                    # cache key: path + modification time + size
    backbone_key: str | None = None
    _backbone: nn.Module | None = field(default=None, repr=False)

    @property
    def config(self) -> sop.SOPConfig:
        return self.model.config

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    @property
    def num_groups(self) -> int:
        return int(self.config.num_groups)

    @property
    def has_twin(self) -> bool:
        return self.spec.backbone_path is not None

    def backbone(self) -> nn.Module:
        """The model the baselines explain: the plain twin, or the SOP model itself."""
        if self._backbone is None:
            if self.spec.backbone_path is None:
                self._backbone = self.model
            else:
                self._backbone = load_checkpoint(self.spec.backbone_path)
        return self._backbone

    def key_for(self, method: str) -> str:
        """Cache key of the model that `method` explains (without loading it)."""
        if method == "sop" or not self.has_twin:
            return self.key
        return self.backbone_key or stamp(self.spec.backbone_path)

    def model_for(self, method: str) -> tuple[nn.Module, str]:
        """(model, its cache key) that `method` explains."""
        if method == "sop" or not self.has_twin:
            return self.model, self.key
        return self.backbone(), self.key_for(method)

    def describe_for(self, method: str) -> str:
        if method == "sop":
            return "the SOP model (its own groups)"
        return "the plain backbone twin" if self.has_twin else "the SOP model's logits (no backbone twin found)"


def stamp(path: str | Path) -> str:
    """path + mtime + size: a checkpoint replaced on disk gets a new cache entry."""
    p = Path(path)
    try:
        s = p.stat()
        return f"{p.resolve()}:{s.st_mtime_ns}:{s.st_size}"
    except OSError:
        return f"{p}:missing"


@st.cache_resource(show_spinner=False, max_entries=8)
def _load(path: str, version: str) -> nn.Module:
    """Cached per (path, version): a checkpoint replaced on disk is loaded afresh."""
    model = sop.load(path)
    model.requires_grad_(False)  # shared and read-only; gradient methods differentiate the input
    return model


def load_checkpoint(path: str | Path) -> nn.Module:
    """sop.load(path), once per server for a given file version.  Raises sop.CheckpointError."""
    return _load(str(path), stamp(path))


@st.cache_resource(show_spinner=False)
def compute_lock() -> threading.Lock:
    """One heavy computation at a time per server (a few CPU cores; hooks on shared models)."""
    return threading.Lock()


@st.cache_data(show_spinner=False, ttl=30)
def all_embedded() -> list[dict]:
    """Every embedded model with dataset, task, accuracy and number of groups."""
    rows = []
    for m in sop.embedded_models(modality=None):
        try:
            d = m.describe()
        except sop.SOPError as err:
            d = dict(name=m.name, dataset=None, task=None, groups=None, classes=None, accuracy=None, error=str(err))
        d.update(sop_path=str(m.sop_path), backbone_path=str(m.backbone_path), modality=m.modality)
        rows.append(d)
    return rows


def shown_row(row: dict) -> bool:
    """Whether the app's pages can show this embedded model (its view kind has pages: explorer/views.py)."""
    return views.shown(views.kind_of(row.get("modality"), row.get("task")))


def embedded_table() -> list[dict]:
    """The embedded models the pages can show (for the picker)."""
    return [r for r in all_embedded() if shown_row(r)]


def held_back() -> list[dict]:
    """Embedded models of a kind the pages cannot show yet."""
    return [r for r in all_embedded() if not shown_row(r)]


def embedded_label(row: dict) -> str:
    parts = [row["name"]]
    if row.get("dataset"):
        parts.append(f"{row['dataset']}")
    if row.get("accuracy") is not None:
        parts.append(f"acc {row['accuracy']:.1%}")
    if row.get("groups"):
        parts.append(f"{row['groups']} groups")
    return " · ".join(parts)


def twin_of(sop_path: str | Path) -> str | None:
    """<name>_backbone.safetensors beside <name>_sop.safetensors, if it exists."""
    if Path(sop_path).name.endswith("_sop.safetensors"):
        twin = twin_path(sop_path)
        if twin.is_file():
            return str(twin)
    return None


def spec_for_embedded(name: str) -> ModelSpec | None:
    for row in embedded_table():
        if row["name"] == name:
            return ModelSpec("Embedded", row["sop_path"], row["backbone_path"], name, name)
    return None


def spec_for_file(path: str, timm_name: str | None = None) -> ModelSpec:
    path = path.strip()
    source = "timm + checkpoint" if timm_name else "Checkpoint file"
    name = Path(path).name or path
    if timm_name:
        name = f"{timm_name} ({name})"
    return ModelSpec(source, path, twin_of(path), name, path, timm_name or None)


def load_spec(spec: ModelSpec) -> LoadedModel:
    """Load (or fetch from the server-wide cache) the SOP model of `spec`.

    Raises sop.SOPError with a readable message for every user mistake.
    """
    if not spec.sop_path:
        raise sop.CheckpointError("enter the path of a .safetensors SOP checkpoint")
    if spec.timm_name is not None:
        _check_timm_name(spec.timm_name)
    try:
        model = load_checkpoint(spec.sop_path)
    except sop.SOPError:
        raise
    except Exception as err:  # timm or torch failing on a config it cannot build
        raise sop.CheckpointError(f"{Path(spec.sop_path).name}: could not build the model ({err})") from err
    if not isinstance(model, SOPModel):
        raise sop.CheckpointError(
            f"{Path(spec.sop_path).name} is a plain backbone checkpoint (kind 'backbone'), not an SOP model; "
            "choose the matching *_sop.safetensors file")
    kind = views.kind_of(getattr(model, "modality", "image"), model.config.task)
    if not views.shown(kind):
        raise sop.CheckpointError(
            f"{Path(spec.sop_path).name} is a {kind} model; the explorer's pages cannot show {kind} models yet. "
            f"Use `python -m sop evaluate --model {spec.sop_path}` for its metrics, groups and curves")
    if spec.timm_name is not None and model.config.backbone != spec.timm_name:
        raise sop.CheckpointError(
            f"{Path(spec.sop_path).name} was trained on the timm model {model.config.backbone!r}, "
            f"not {spec.timm_name!r}; use that name or another checkpoint")
    lm = LoadedModel(spec, model, stamp(spec.sop_path))
    if spec.backbone_path:
        lm.backbone_key = stamp(spec.backbone_path)
    return lm


def _check_timm_name(name: str) -> None:
    import timm
    if not name.strip():
        raise sop.InputError("enter a timm model name, e.g. vit_tiny_patch16_224")
    if not timm.list_models(name.strip()):
        raise sop.InputError(f"{name!r} is not a timm model name (see timm.list_models())")
