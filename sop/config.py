"""SOPConfig: everything needed to rebuild a model from its weights (stored as JSON)."""
from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

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
    group_spread: float = 0.0            # "patch" GroupGen: push each group off the patches earlier groups hold
    group_select: str = "shared"         # "shared" (class-agnostic scores) or "per_class" (the authors')
    group_dropout: float = 0.0           # training only: share of groups hidden from GroupSelect
    class_names: list[str] = field(default_factory=list)
    dataset: str | None = None
    kind: str = "sop"                    # "sop" or "backbone" (the plain twin)
    task: str = "classification"         # a name in sop.tasks (older checkpoints: classification)
    # Regression only (sop.regression): the parameters, in output order, and the training split's
    # mean and std of each; the model outputs (y - mean) / std, `sop.regression.to_physical` undoes it.
    target_names: list[str] = field(default_factory=list)
    target_mean: list[float] = field(default_factory=list)
    target_std: list[float] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)  # command, seed, metrics...
    # Text backbones (sop.text): the installed package whose weights the checkpoint was fine-tuned
    # from ({"package", "version", "file", "sha256"}); those weights are not stored in the checkpoint.
    base_weights: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        try:
            self.img_size = tuple(int(s) for s in (self.img_size if isinstance(self.img_size, (list, tuple))
                                                    else (self.img_size, self.img_size)))
        except (TypeError, ValueError):
            raise ConfigError(f"img_size must be an int or (height, width), got {self.img_size!r}",
                              field="img_size") from None
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        if not _positive_int(self.num_classes):
            raise ConfigError(f"num_classes must be a positive integer, got {self.num_classes!r}",
                              field="num_classes")
        if not self.class_names:
            self.class_names = [str(i) for i in range(self.num_classes)]

    def validate(self) -> "SOPConfig":
        """Check the values a model is built from; a ConfigError naming the field otherwise.

        Called when a model is built and when a checkpoint is opened (`sop.load` turns the
        error into a CheckpointError naming the same field).  Returns the config.
        """
        from .adapters import get_adapter
        from .tasks import get_task
        get_task(self.task)
        if self.adapter != "auto":
            get_adapter(self.adapter)
        if len(self.img_size) != 2 or min(self.img_size) < 1:
            raise ConfigError(f"img_size must be two positive sizes, got {self.img_size}", field="img_size")
        if not _positive_int(self.in_chans):
            raise ConfigError(f"in_chans must be a positive integer, got {self.in_chans!r}", field="in_chans")
        if not _positive_int(self.num_groups):
            raise ConfigError(f"num_groups must be a positive integer, got {self.num_groups!r}", field="num_groups")
        if not _positive_int(self.group_heads) or self.num_groups % self.group_heads:
            raise ConfigError(f"group_heads ({self.group_heads!r}) must be a positive divisor of num_groups "
                              f"({self.num_groups}): each head proposes num_groups / group_heads groups",
                              field="group_heads")
        if self.max_group_frac is not None and not 0 < self.max_group_frac <= 1:
            raise ConfigError(f"max_group_frac must lie in (0, 1] or be None, got {self.max_group_frac!r}",
                              field="max_group_frac")
        if not isinstance(self.group_spread, numbers.Real) or not 0 <= self.group_spread < float("inf"):
            raise ConfigError(f"group_spread must be a finite number >= 0, got {self.group_spread!r}",
                              field="group_spread")
        if self.group_spread and self.group_gen != "patch":
            raise ConfigError("group_spread applies to the top-k GroupGen (group_gen='patch') only, "
                              f"not {self.group_gen!r}", field="group_spread")
        if self.kind not in ("sop", "backbone"):
            raise ConfigError(f"kind must be 'sop' or 'backbone', got {self.kind!r}", field="kind")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SOPConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown config fields: {sorted(unknown)} (known: {', '.join(sorted(known))})",
                              field=sorted(unknown)[0])
        missing = {f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING} - set(data)
        if missing:
            raise ConfigError(f"missing config fields: {sorted(missing)}", field=sorted(missing)[0])
        return cls(**data)


def _positive_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1
