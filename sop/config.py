"""SOPConfig: everything needed to rebuild a model from its weights (stored as JSON)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = 1


@dataclass
class SOPConfig:
    backbone: str                        # timm model name, or "module" for a user nn.Module
    num_classes: int
    img_size: tuple[int, int] = (32, 32)
    in_chans: int = 3
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    adapter: str = "auto"                # "auto", "vit", "pixel"
    adapter_kwargs: dict[str, Any] = field(default_factory=dict)
    num_groups: int = 8
    group_heads: int = 1
    group_dim: int = 64
    max_group_frac: float | None = 0.25  # largest share of patches one group may cover
    group_scale: float = 1.0
    select_scale: float = 1.0
    group_gen: str = "learned"           # "learned" (sparsemax, learned queries) or "patch" (the authors')
    group_blur: float = 0.0              # Gaussian sigma (patches) over GroupGen's attention logits
    group_select: str = "shared"         # "shared" (class-agnostic scores) or "per_class" (the authors')
    group_dropout: float = 0.0           # training only: share of groups hidden from GroupSelect
    class_names: list[str] = field(default_factory=list)
    dataset: str | None = None
    kind: str = "sop"                    # "sop" or "backbone" (the plain twin)
    training: dict[str, Any] = field(default_factory=dict)  # command, seed, metrics...
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        self.img_size = tuple(int(s) for s in (self.img_size if isinstance(self.img_size, (list, tuple))
                                                else (self.img_size, self.img_size)))
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        if not self.class_names:
            self.class_names = [str(i) for i in range(self.num_classes)]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SOPConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        return cls(**data)
