"""SOP Explorer: Sum-of-Parts self-attributing networks (arXiv 2310.16316).

    import sop
    model = sop.load("assets/models/digits_sop.safetensors")
    out = model(x)            # SOPOutput: logits, probs, group masks, scores, per-group logits
    model = sop.create_model("vit_small_patch16_224", num_classes=10, pretrained=True,
                             img_size=(224, 224), backbone_kwargs={})
"""
from .checkpoint import load, read_config, save
from .config import SOPConfig
from .errors import CheckpointError, ImageError, InputError, SOPError
from .model import SOPModel, SOPOutput, create_backbone, create_model
from .zoo import embedded_models

__all__ = ["SOPConfig", "SOPModel", "SOPOutput", "create_model", "create_backbone", "load", "save",
           "read_config", "embedded_models", "SOPError", "InputError", "ImageError", "CheckpointError"]
