"""A user's own ImageFolder tree trains end to end with any timm model name, offline."""
import numpy as np
import pytest
import torch
from PIL import Image

import sop
from sop.data import load_split
from sop.train import train_pair


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for c, colour in enumerate([(220, 30, 30), (30, 30, 220)]):
        d = tmp_path / "imgs" / f"class_{c}"
        d.mkdir(parents=True)
        for i in range(10):
            arr = rng.integers(0, 40, (40, 50, 3), dtype=np.uint8)
            arr[10:30, 15:35] = colour
            Image.fromarray(arr).save(d / f"{i}.png" if i % 2 else d / f"{i}.jpg")
    return tmp_path / "imgs"


def test_folder_splits_are_disjoint_and_normalised(image_folder):
    splits = {s: load_split(f"folder:{image_folder}", s, img_size=(32, 32)) for s in ("train", "val", "test")}
    sizes = {s: len(v.dataset) for s, v in splits.items()}
    assert sizes == {"train": 16, "val": 2, "test": 2}
    x, y = splits["train"].dataset[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y in (0, 1)
    assert splits["train"].info.class_names == ["class_0", "class_1"]


def test_folder_trains_with_a_timm_cnn(image_folder, tmp_path):
    preset = dict(dataset=f"folder:{image_folder}", backbone="resnet10t", backbone_kwargs={},
                  adapter_kwargs={"grid": (4, 4)}, num_groups=3, group_heads=1, max_group_frac=0.5,
                  backbone_epochs=1, sop_epochs=1, batch_size=8, lr=1e-3, backbone_lr=1e-4,
                  img_size=(32, 32))  # the folder default is 224x224; keep the test small
    train_pair(preset, tmp_path / "mine", max_steps=2)
    model = sop.load(tmp_path / "mine_sop.safetensors")
    assert model.config.dataset.startswith("folder:") and model.adapter.adapter_name == "pixel"
    out = model(torch.zeros(1, 3, 32, 32))
    assert out.logits.shape == (1, 2)
