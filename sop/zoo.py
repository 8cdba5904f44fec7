"""The embedded default models: small checkpoints trained here, committed under assets/models."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MODELS_DIR = ASSETS / "models"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str            # e.g. "digits"
    sop_path: Path
    backbone_path: Path  # the plain twin it was trained from
    modality: str = "image"   # "image" or "text" (its adapter's modality)

    def describe(self) -> dict:
        from .checkpoint import read_config
        cfg = read_config(self.sop_path)
        metrics = cfg.training.get("metrics", {})
        return dict(name=self.name, dataset=cfg.dataset, task=cfg.task, groups=cfg.num_groups, classes=len(cfg.class_names),
                    accuracy=metrics.get("test", {}).get("accuracy"),
                    backbone_accuracy=metrics.get("backbone_test_accuracy"), command=cfg.training.get("command"))


def checkpoint_modality(path: Path) -> str:
    """"image" or "text", read from the checkpoint's header alone (no tensors loaded)."""
    from .checkpoint import read_config
    from .errors import CheckpointError
    from .text import is_text_backbone
    try:
        cfg = read_config(path)
    except CheckpointError:  # unreadable: let the loader report it; treat as an image model
        return "image"
    return "text" if cfg.adapter == "text" or is_text_backbone(cfg.backbone) else "image"


def embedded_models(models_dir: Path = MODELS_DIR, modality: str | None = "image") -> list[EmbeddedModel]:
    """Every <name>_sop.safetensors with its <name>_backbone.safetensors twin, digits first.

    `modality`: "image" (the default: what the explorer's pages, `sop evaluate` and `sop figure`
    handle today), "text", or None for every model."""
    found = []
    for sop_path in sorted(models_dir.glob("*_sop.safetensors")):
        name = sop_path.name[: -len("_sop.safetensors")]
        twin = models_dir / f"{name}_backbone.safetensors"
        if twin.is_file():
            kind = checkpoint_modality(sop_path)
            if modality is None or kind == modality:
                found.append(EmbeddedModel(name, sop_path, twin, kind))
    return sorted(found, key=lambda m: (m.name != "digits", m.name))
