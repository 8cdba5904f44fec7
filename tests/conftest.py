import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent  # the repository (importing sop/explorer: pytest.ini pythonpath)
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TINY_VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, global_pool="token")


@pytest.fixture
def tiny_vit_sop():
    """A random tiny ViT SOP model: 4x4 patch grid, 6 groups, on 3x32x32 inputs."""
    from sop import create_model
    torch.manual_seed(0)
    return create_model("vit_tiny_patch16_224", num_classes=5, img_size=(32, 32), in_chans=3,
                        backbone_kwargs=TINY_VIT, num_groups=6, group_heads=2, group_dim=16,
                        max_group_frac=0.4).eval()


@pytest.fixture(scope="session")
def embedded():
    from sop import embedded_models
    models = {m.name: m for m in embedded_models()}
    assert {"digits", "parts"} <= set(models), f"embedded models missing: {sorted(models)}"
    return models
