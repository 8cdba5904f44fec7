"""The timm-style registries: adapters, datasets and tasks; and the task field of SOPConfig."""
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sop
from sop import adapters
from sop.data import registry

from conftest import TINY_VIT


# --------------------------------------------------------------------------- adapters

def test_adapter_registry_describes_each_adapter():
    assert sop.list_adapters() == ["pixel", "text", "vit"] == adapters.adapter_names()
    assert sop.list_adapters(modality="image") == ["pixel", "vit"] and sop.list_adapters(modality="text") == ["text"]
    vit, pixel = sop.get_adapter("vit"), sop.get_adapter("pixel")
    assert vit.cls is adapters.ViTAdapter and pixel.cls is adapters.PixelMaskAdapter
    assert vit.label and pixel.label and vit.modality == pixel.modality == "image"
    assert "token_dropping" in vit.capabilities and "pixel_fill" in pixel.capabilities
    assert pixel.config_kwargs == ("img_size", "in_chans") and pixel.defaults["grid"] == (8, 8)
    assert vit.defaults["token_layer"] == -2
    assert sop.list_adapters(modality="tokens") == []


def test_auto_resolves_a_vit_to_token_dropping_and_anything_else_to_pixels():
    import timm
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=2, **TINY_VIT)
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert adapters.resolve_adapter("auto", vit).name == "vit"
    assert adapters.resolve_adapter("auto", cnn).name == "pixel"
    assert adapters.resolve_adapter("pixel", vit).name == "pixel"
    no_token = timm.create_model("vit_tiny_patch16_224", num_classes=2, **dict(TINY_VIT, global_pool=""))
    assert adapters.resolve_adapter("auto", no_token).name == "pixel"


def test_the_pixel_adapter_takes_its_size_from_the_config_unless_adapter_kwargs_say_otherwise():
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    model = sop.create_model(cnn, num_classes=2, img_size=(16, 16), in_chans=1, adapter_kwargs={"grid": (4, 4)})
    assert model.adapter.img_size == (16, 16) and model.adapter.grid == (4, 4)
    assert model.adapter.adapter_name == "pixel"


def test_a_registered_adapter_takes_part_in_auto_resolution(monkeypatch):
    monkeypatch.setattr(adapters, "_ADAPTERS", dict(adapters._ADAPTERS))

    @adapters.register_adapter("linear", label="Linear toy", modality="tokens", capabilities=("toy",),
                               config_kwargs=("in_chans",), auto_priority=100)
    class LinearAdapter(adapters.PixelMaskAdapter):
        """A toy: any nn.Linear."""

        @staticmethod
        def supports(backbone):
            return isinstance(backbone, nn.Linear)

    entry = sop.get_adapter("linear")
    assert entry.label == "Linear toy" and entry.description == "A toy: any nn.Linear."
    assert sop.list_adapters(modality="tokens") == ["linear"]
    assert adapters.resolve_adapter("auto", nn.Linear(2, 2)).name == "linear"
    assert adapters.resolve_adapter("auto", nn.Conv2d(1, 1, 1)).name == "pixel"
    assert LinearAdapter.adapter_name == "linear"


# --------------------------------------------------------------------------- datasets

def test_dataset_registry_records_modality_task_and_ground_truth():
    assert sop.list_datasets() == ["csv", "digits", "folder", "lensing", "parts", "reviews"]
    assert sop.list_datasets(modality="image") == ["digits", "folder", "lensing", "parts"]
    assert sop.list_datasets(modality="text") == ["csv", "reviews"]
    parts, digits, folder = (sop.get_dataset(n) for n in ("parts", "digits", "folder"))
    assert parts.ground_truth == "part_masks" and digits.ground_truth is None and folder.ground_truth is None
    assert {s.modality for s in (parts, digits, folder)} == {"image"}
    assert {s.task for s in (parts, digits, folder)} == {"classification"}
    assert folder.takes_path and not parts.takes_path
    assert all(s.label and s.description for s in (parts, digits, folder))
    bound = sop.get_dataset("folder:/data/pets")
    assert bound.path == "/data/pets" and bound.full_name == "folder:/data/pets" and parts.full_name == "parts"
    assert sop.list_datasets(task="regression") == ["lensing"]
    assert sop.list_datasets(modality="image", task="classification") == ["digits", "folder", "parts"]


def test_load_split_goes_through_the_registry():
    from sop.data import load_split
    split = load_split("digits", "val")
    again = sop.get_dataset("digits").load("val")
    assert split.info.name == "digits" and len(split.dataset) == len(again.dataset) == 180
    assert torch.equal(split.dataset.tensors[0], again.dataset.tensors[0])
    assert load_split("digits", "val", img_size=(16, 16)).info.img_size == (16, 16)


def test_a_registered_dataset_loads_by_name(monkeypatch):
    from sop.data import DatasetInfo, load_split, tensor_split
    monkeypatch.setattr(registry, "_DATASETS", dict(registry._DATASETS))
    calls = []

    @sop.register_dataset("stripes", label="Stripes", modality="image", task="classification")
    def load_stripes(split, *, img_size=None, seed=0):
        """Vertical or horizontal stripes."""
        calls.append((split, img_size, seed))
        size = img_size or (8, 8)
        images = torch.zeros(4, 1, *size)
        images[:2, :, :, ::2] = 1
        images[2:, :, ::2, :] = 1
        info = DatasetInfo(name="stripes", class_names=["vertical", "horizontal"], in_chans=1,
                           img_size=size, mean=(0.5,), std=(0.5,))
        return tensor_split(images, torch.tensor([0, 0, 1, 1]), info)

    split = load_split("stripes", "train", seed=3)
    assert calls == [("train", None, 3)] and len(split.dataset) == 4 and split.info.num_classes == 2
    assert "stripes" in sop.list_datasets() and sop.get_dataset("stripes").description == "Vertical or horizontal stripes."


def test_a_registered_dataset_with_masks_gets_localisation_ground_truth(monkeypatch):
    """Localisation reads a dataset's masks from the registry: no dataset name is special-cased."""
    from sop.data import DatasetInfo, tensor_split
    from sop.errors import ConfigError
    from sop.localisation import ground_truth_masks
    monkeypatch.setattr(registry, "_DATASETS", dict(registry._DATASETS))
    wanted = np.zeros((4, 8, 8), bool)
    wanted[0, :4] = True

    @sop.register_dataset("boxes", label="Boxes", ground_truth="box_masks", masks=lambda split, seed: wanted,
                          rule="the box is on top", capabilities=("toy",))
    def load_boxes(split, *, img_size=None, seed=0):
        info = DatasetInfo(name="boxes", class_names=["a", "b"], in_chans=1, img_size=(8, 8), mean=(0.5,), std=(0.5,))
        return tensor_split(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]), info)

    assert np.array_equal(ground_truth_masks("boxes", "test"), wanted)
    spec = sop.get_dataset("boxes")
    assert spec.rule == "the box is on top" and spec.capabilities == ("toy",)
    assert ground_truth_masks("digits", "test") is None and ground_truth_masks("no-such-data", "test") is None
    assert ground_truth_masks("parts", "test").shape[1:] == (32, 32)
    with pytest.raises(ConfigError, match="ground_truth and masks go together"):
        sop.register_dataset("half", label="Half", ground_truth="box_masks")


# --------------------------------------------------------------------------- tasks

def test_task_registry():
    assert sop.list_tasks() == ["classification", "regression"]
    assert sop.list_tasks(trainable=True) == ["classification", "regression"]
    cls, reg = sop.get_task("classification"), sop.get_task("regression")
    assert cls.label and reg.label and cls.output and reg.output and cls.trainable and reg.trainable


def test_classification_task_matches_what_training_and_the_curves_use():
    task = sop.get_task("classification")
    torch.manual_seed(0)
    logits, y = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    assert torch.equal(task.loss(logits, y), F.cross_entropy(logits, y))
    probs = logits.softmax(-1)
    assert torch.allclose(task.score(logits, 2), probs[:, 2])
    assert torch.allclose(task.score(logits, y), probs[torch.arange(5), y])
    assert torch.equal(task.predict(logits), logits.argmax(-1))
    name, p = task.headline(torch.tensor([0.0, 3.0, 0.0]), ["cat", "dog", "eel"])
    assert name == "dog" and p == pytest.approx(torch.tensor([0.0, 3.0, 0.0]).softmax(-1)[1].item())
    assert task.describe(torch.tensor([0.0, 3.0, 0.0]), ["cat", "dog", "eel"]).startswith("dog (p = 0.9")


def test_regression_task_scores_closeness_to_the_target():
    task = sop.get_task("regression")
    out = torch.tensor([[0.3, 0.8], [0.1, 0.1]])
    target = torch.tensor([0.3, 0.8])
    score = task.score(out, target)   # mean over parameters of 1 - |out - target| (standardised units)
    assert score[0] == 1 and score[1] == pytest.approx(1 - (0.2 + 0.7) / 2)
    assert task.loss(out, target.expand(2, 2)) == pytest.approx(F.mse_loss(out, target.expand(2, 2)).item())
    assert task.describe(out[0], ["Omega_m", "sigma_8"]) == "Omega_m = 0.3, sigma_8 = 0.8"


def test_the_task_round_trips_through_checkpoints(tmp_path, tiny_vit_sop):
    assert tiny_vit_sop.config.task == "classification"
    tiny_vit_sop.config.task = "regression"
    path = sop.save(tiny_vit_sop, tmp_path / "m.safetensors")
    assert sop.load(path).config.task == "regression" and sop.read_config(path).task == "regression"


def test_embedded_checkpoints_without_a_task_field_are_classifiers(embedded):
    from safetensors import safe_open
    for name in ("digits", "parts"):              # written before the task field existed
        with safe_open(str(embedded[name].sop_path), framework="pt") as f:
            assert '"task"' not in f.metadata()["sop_config"]
        assert sop.read_config(embedded[name].sop_path).task == "classification"
    if "lensing" in embedded:
        assert sop.read_config(embedded["lensing"].sop_path).task == "regression"


# --------------------------------------------------------------------------- statistics and logging

def test_training_records_and_the_report_read_the_same_statistics(tiny_vit_sop):
    from sop.data import DatasetInfo, Split
    from sop.evaluation import model_statistics, sop_statistics
    from sop.train import RECORDED_STATISTICS, recorded_statistics
    torch.manual_seed(0)
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, 5, (6,))
    info = DatasetInfo(name="fake", class_names=[str(i) for i in range(5)], in_chans=3, img_size=(32, 32),
                       mean=(0, 0, 0), std=(1, 1, 1))
    split = Split(torch.utils.data.TensorDataset(x, y), info)
    every = sop_statistics(tiny_vit_sop, split, tiny_vit_sop.backbone)
    recorded = recorded_statistics(tiny_vit_sop, split, tiny_vit_sop.backbone)
    report = model_statistics(tiny_vit_sop, tiny_vit_sop.backbone, split)
    assert tuple(recorded) == RECORDED_STATISTICS
    assert all(every[k] == v for k, v in {**recorded, **report}.items())
    assert "patches_per_group" not in report and "pixels_per_group" not in recorded


def test_fit_reports_each_epoch_through_logging(caplog):
    from sop.config import SOPConfig
    from sop.data import DatasetInfo, Split
    from sop.model import create_backbone
    from sop.train import StageSettings, fit
    torch.manual_seed(0)
    info = DatasetInfo(name="fake", class_names=["a", "b"], in_chans=3, img_size=(32, 32), mean=(0, 0, 0),
                       std=(1, 1, 1))
    split = Split(torch.utils.data.TensorDataset(torch.randn(8, 3, 32, 32), torch.randint(0, 2, (8,))), info)
    model = create_backbone(SOPConfig(backbone="vit_tiny_patch16_224", num_classes=2, backbone_kwargs=TINY_VIT))
    with caplog.at_level(logging.INFO, logger="sop.train"):
        fit(model, split, split, StageSettings(epochs=1, lr=1e-3, batch_size=4), "backbone")
    lines = [r.getMessage() for r in caplog.records if r.name == "sop.train"]
    assert len(lines) == 1 and lines[0].startswith("backbone epoch 1/1: loss ") and "val acc" in lines[0]


def test_the_cli_shows_library_logs_on_stderr_as_plain_lines(capsys):
    from sop.cli import configure_logging
    configure_logging()
    configure_logging()   # idempotent: one handler
    logging.getLogger("sop.train").info("backbone epoch 1/1: loss 0.1")
    assert capsys.readouterr().err == "backbone epoch 1/1: loss 0.1\n"
    logging.getLogger("sop.train").debug("hidden")
    assert capsys.readouterr().err == ""


def test_no_library_function_is_longer_than_60_lines():
    import ast
    from pathlib import Path
    root = Path(sop.__file__).parent
    long = [f"{p.relative_to(root)}:{node.lineno} {node.name}" for p in sorted(root.rglob("*.py"))
            for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60]
    assert not long, long
