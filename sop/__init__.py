"""SOP Explorer: Sum-of-Parts self-attributing networks (arXiv 2310.16316).

    import sop
    model = sop.load("assets/models/digits_sop.safetensors")
    out = model(x)            # SOPOutput: logits, probs, group masks, scores, per-group logits
    model = sop.create_model("vit_small_patch16_224", num_classes=10, pretrained=True,
                             img_size=(224, 224), backbone_kwargs={})

Registries (timm-style: a decorator to add one, `list_*()` to enumerate, `get_*()` for
one entry): adapters (`sop.adapters`), datasets (`sop.data`), tasks (`sop.tasks`).
Progress is reported through `logging` under the "sop" logger (the CLI shows it).
"""
import logging

from .adapters import get_adapter, list_adapters, register_adapter
from .checkpoint import load, read_config, save
from .config import SOPConfig
from .data import get_dataset, list_datasets, register_dataset
from .errors import CheckpointError, ConfigError, ExplanationError, ImageError, InputError, SOPError
from .model import SOPModel, SOPOutput, create_backbone, create_model
from .tasks import get_task, list_tasks, register_task
from .zoo import embedded_models
from . import text  # noqa: E402  sop.text.tokenize for text models (transformers is imported lazily)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["SOPConfig", "SOPModel", "SOPOutput", "create_model", "create_backbone", "load", "save",
           "read_config", "embedded_models", "SOPError", "InputError", "ImageError", "CheckpointError",
           "ConfigError", "ExplanationError", "list_adapters", "get_adapter", "register_adapter", "list_datasets", "get_dataset",
           "register_dataset", "list_tasks", "get_task", "register_task"]
