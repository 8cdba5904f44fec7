"""Checkpoints: one .safetensors file with the weights and the JSON config in its header.

Nothing is ever unpickled: safetensors stores raw tensors, and the config is JSON text
in the header's metadata.  A readable copy of the config is written beside the
weights as <name>.json (informational; loading trusts only the embedded copy).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import FORMAT_VERSION, SOPConfig
from .errors import CheckpointError, ConfigError, InputError

PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle"}
CONFIG_KEY = "sop_config"


def save(model: nn.Module, path: str | Path, config: SOPConfig | None = None) -> Path:
    """Write `model` (an SOPModel, or a plain backbone with `config`) to `path`."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    config = config if config is not None else model.config
    path.parent.mkdir(parents=True, exist_ok=True)
    skip = base_state_keys(model)   # text: the installed package's weights are not stored
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k not in skip}
    save_file(tensors, str(path), metadata={CONFIG_KEY: config.to_json(), "format": "sop"})
    path.with_suffix(".json").write_text(config.to_json() + "\n")
    return path


def base_state_keys(model: nn.Module) -> set[str]:
    """State-dict keys of `model` that are a package's base weights, unchanged (text backbones:
    `sop.text.TextClassifier.base_state_keys`), so a checkpoint stores only what changed."""
    from .text import TextClassifier
    for prefix, module in model.named_modules():
        if isinstance(module, TextClassifier):
            return {f"{prefix}.{k}" if prefix else k for k in module.base_state_keys()}
    return set()


def read_config(path: str | Path) -> SOPConfig:
    """The config embedded in a checkpoint, after the safety checks; reads the header only."""
    return _read_header(Path(path))


def _open(path: Path) -> tuple[SOPConfig, dict[str, torch.Tensor]]:
    config = _read_header(path)
    try:
        return config, load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable(path, err) from err


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(f"{path.name} is not a readable safetensors file (truncated or corrupt?): {err}")


def _read_header(path: Path) -> SOPConfig:
    """The checked config in a checkpoint's safetensors header (no tensor is read)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path.name}: pickle checkpoints (.pt/.pth/...) are refused because loading them can run "
            "arbitrary code. If you trust the file, convert it once in your own Python session: "
            "`safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')`.")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable(path, err) from err
    if CONFIG_KEY not in meta:
        raise CheckpointError(f"{path.name} has no SOP config in its header; was it saved with sop.save()?")
    try:
        data = json.loads(meta[CONFIG_KEY])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path.name}: its embedded config is not valid JSON ({err})") from err
    version = data.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path.name} uses checkpoint format {version}, newer than this library's "
                              f"{FORMAT_VERSION}; upgrade SOP Explorer to load it")
    try:
        return SOPConfig.from_dict(data).validate()
    except ConfigError as err:
        raise _config_error(path, err) from err
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path.name}: invalid config ({err})") from err


def _config_error(path: Path, err: ConfigError) -> CheckpointError:
    """A config value's error, restated for the checkpoint it came from (naming the field)."""
    where = f"config field {err.field!r}" if err.field else "config"
    return CheckpointError(f"{path.name}: invalid {where} in the checkpoint: {err}")


def load_state(module: nn.Module, tensors: dict[str, torch.Tensor], name: str) -> None:
    """load_state_dict with errors that name the offending parameters (base weights that a
    checkpoint does not store, `base_state_keys`, keep the values the model was built with)."""
    skip = base_state_keys(module)
    own = {k: v for k, v in module.state_dict().items() if k not in skip}
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = [f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
             for k in own if k in tensors and tensors[k].shape != own[k].shape]
    problems = []
    if wrong:
        problems.append("shape mismatch for " + "; ".join(wrong[:5]) + (" ..." if len(wrong) > 5 else ""))
    if missing:
        problems.append(f"missing {len(missing)} parameters (first: {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected parameters (first: {unexpected[:3]})")
    if problems:
        raise CheckpointError(f"{name}: the weights do not match the config: " + "; ".join(problems))
    module.load_state_dict(tensors, strict=not skip)


def load(path: str | Path, map_location: str | torch.device = "cpu", backbone: nn.Module | None = None) -> nn.Module:
    """Rebuild a model from a checkpoint: an SOPModel, or the plain backbone twin.

    Checkpoints of a custom `nn.Module` (config backbone "module") need that module,
    freshly constructed, as `backbone`: its architecture is code, not data.
    The result is in eval mode; its `.config` holds the full SOPConfig.
    """
    from .model import create_backbone, create_model
    path = Path(path)
    config, tensors = _open(path)
    if config.base_weights:   # text: the base weights come from an installed package; check it first
        from .text import check_base_weights
        check_base_weights(config.base_weights, path.name)
    if config.backbone == "module" and backbone is None:
        raise CheckpointError(f"{path.name} wraps a custom nn.Module: pass it as load(path, backbone=module)")
    try:
        if backbone is not None:
            model = backbone if config.kind == "backbone" else create_model(backbone, config=config)
            model.config = config if config.kind == "backbone" else model.config
        elif config.kind == "backbone":
            model = create_backbone(config)
            model.config = config
        else:
            model = create_model(config.backbone, config=config)
    except ConfigError as err:
        raise _config_error(path, err) from err
    except InputError as err:
        raise CheckpointError(f"{path.name}: {err}") from err
    load_state(model, tensors, path.name)
    return model.to(map_location).eval()


def checkpoint_name(path: str | Path) -> str:
    """<name>_sop.safetensors (or <name>.safetensors) -> <name>: how reports, runs, figures and
    twins name a checkpoint."""
    name = Path(path).name
    name = name[: -len(".safetensors")] if name.endswith(".safetensors") else Path(name).stem
    return name.removesuffix("_sop")


def twin_path(sop_path: str | Path) -> Path:
    """<name>_sop.safetensors -> <name>_backbone.safetensors (the plain twin beside it)."""
    return Path(sop_path).with_name(f"{checkpoint_name(sop_path)}_backbone.safetensors")


def load_pair(sop_path: str | Path, backbone_path: str | Path | None = None, *,
              need_dataset: bool = True) -> tuple[nn.Module, nn.Module | None, Path | None]:
    """An SOP checkpoint and its plain backbone twin: (model, twin or None, twin's path or None).

    `backbone_path` None = the ``_backbone`` sibling (`twin_path`) when it exists; a path
    given explicitly must exist.  Refuses a plain backbone checkpoint as `sop_path`, and
    (`need_dataset`) a checkpoint that does not record its dataset.
    """
    from .model import SOPModel
    sop_path = Path(sop_path)
    model = load(sop_path)
    if not isinstance(model, SOPModel):
        raise InputError(f"{sop_path.name} is a plain backbone checkpoint; pass its *_sop checkpoint instead")
    if need_dataset and not model.config.dataset:
        raise InputError(f"{sop_path.name} does not record its dataset; cannot pick its test inputs")
    if backbone_path is not None and not Path(backbone_path).is_file():
        raise InputError(f"backbone checkpoint {backbone_path} does not exist")
    path = Path(backbone_path) if backbone_path is not None else twin_path(sop_path)
    if not path.is_file():
        return model, None, None
    return model, load(path), path
