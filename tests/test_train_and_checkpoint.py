"""Training runs end to end, resumes, runs under torchrun, and checkpoints round-trip."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sop
from sop.data import load_split
from sop.presets import PRESETS
from sop.train import train_pair

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(PRESETS["digits"], backbone="vit_tiny_patch16_224", adapter_kwargs={}, backbone_kwargs=dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                                                     mlp_ratio=2.0, global_pool="token"),
            backbone_epochs=1, sop_epochs=1, num_groups=4)


def test_train_pair_writes_reloadable_checkpoints(tmp_path):
    metrics = train_pair(TINY, tmp_path / "tiny", seed=3, command="test", max_steps=3)
    model = sop.load(tmp_path / "tiny_sop.safetensors")
    twin = sop.load(tmp_path / "tiny_backbone.safetensors")
    assert isinstance(model, sop.SOPModel) and not isinstance(twin, sop.SOPModel)
    cfg = json.loads((tmp_path / "tiny_sop.json").read_text())
    assert cfg["training"]["command"] == "test" and cfg["num_groups"] == 4
    assert 0 <= metrics["test"]["accuracy"] <= 1 and 0 <= metrics["test"]["fidelity"] <= 1
    x = load_split("digits", "test").dataset.tensors[0][:8]
    with torch.no_grad():
        first = model(x)
        again = sop.load(tmp_path / "tiny_sop.safetensors")(x)
    assert torch.equal(first.logits, again.logits)
    assert torch.equal(first.group_scores, again.group_scores)


def test_resume_continues_from_saved_state(tmp_path):
    from sop.config import SOPConfig
    from sop.model import create_backbone
    from sop.train import StageSettings, fit
    train, val = load_split("digits", "train"), load_split("digits", "val")
    cfg = SOPConfig(backbone="vit_tiny_patch16_224", num_classes=10, img_size=(32, 32), in_chans=1,
                    backbone_kwargs=TINY["backbone_kwargs"])
    state = tmp_path / "state.safetensors"
    torch.manual_seed(0)
    m1 = create_backbone(cfg)
    fit(m1, train, val, StageSettings(epochs=1, lr=1e-3, state_path=state, max_steps=2), "backbone")
    assert state.is_file()
    torch.manual_seed(1)
    m2 = create_backbone(cfg)
    report = fit(m2, train, val, StageSettings(epochs=2, lr=1e-3, resume=state, max_steps=4), "backbone")
    assert [h["epoch"] for h in report["history"]] == [2], "resumed run must start at epoch 2"


@pytest.mark.parametrize("keep", ["best", "last"])
def test_fit_keeps_the_best_or_the_last_epoch(tmp_path, monkeypatch, keep):
    """A validation score that only falls makes epoch 1 the best: "best" returns its weights, "last"
    the final epoch's (the training state written after the last epoch holds them)."""
    from safetensors.torch import load_file

    from sop.config import SOPConfig
    from sop.model import create_backbone
    from sop.tasks import get_task
    from sop.train import StageSettings, fit
    from torch.utils.data import TensorDataset

    from sop.data.base import Split
    full = load_split("digits", "train")
    train = Split(TensorDataset(*(t[:32] for t in full.dataset.tensors)), full.info)   # 2 steps an epoch
    cfg = SOPConfig(backbone="vit_tiny_patch16_224", num_classes=10, img_size=(32, 32), in_chans=1,
                    backbone_kwargs=TINY["backbone_kwargs"])
    scores = iter([0.9, 0.5, 0.1])
    monkeypatch.setattr(type(get_task("classification")), "validation_score", lambda self, *a, **k: next(scores))
    torch.manual_seed(0)
    model = create_backbone(cfg)
    first = {}
    real_save = __import__("sop.train", fromlist=["save_state"]).save_state

    def save_and_remember(path, m, opt, meta):   # the weights after epoch 1, for the "best" case
        if meta["epoch"] == 1:
            first.update({k: v.detach().clone() for k, v in m.state_dict().items()})
        real_save(path, m, opt, meta)
    monkeypatch.setattr("sop.train.save_state", save_and_remember)
    state = tmp_path / "state.safetensors"
    report = fit(model, train, train, StageSettings(epochs=3, lr=1e-3, batch_size=16, state_path=state, keep=keep),
                 "backbone")
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3] and report["best_val_acc"] == 0.9
    last = {k[6:]: v for k, v in load_file(str(state)).items() if k.startswith("model.")}
    want = first if keep == "best" else last
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, want[k], rtol=0, atol=0)
    assert any(not torch.equal(first[k], last[k]) for k in last), "epochs 1 and 3 must differ for this test to mean anything"


def test_fit_refuses_an_unknown_keep():
    from sop.errors import InputError
    from sop.train import StageSettings, fit
    with pytest.raises(InputError, match="keep must be one of best, last"):
        fit(torch.nn.Linear(2, 2), None, None, StageSettings(epochs=1, lr=1e-3, keep="worst"), "backbone")


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    """DistributedDataParallel over gloo with 2 processes, through the real CLI."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "sop", "train", "--preset", "digits", "--backbone-epochs", "1", "--epochs", "1", "--groups", "4",
           "--max-steps", "2", "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = sop.read_config(tmp_path / "ddp_sop.safetensors")
    assert cfg.training["metrics"]["world_size"] == 2
    assert "--nproc_per_node" not in cfg.training["command"]  # the command recorded is sop's own


def test_checkpoint_refusals(tmp_path, tiny_vit_sop):
    path = sop.save(tiny_vit_sop, tmp_path / "m.safetensors")
    # truncated file
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(sop.CheckpointError, match="truncated or corrupt"):
        sop.load(tmp_path / "cut.safetensors")
    # pickle files are never opened
    (tmp_path / "evil.pt").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(sop.CheckpointError, match="pickle"):
        sop.load(tmp_path / "evil.pt")
    # config that does not match the weights
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(path))
    cfg = json.loads(sop.read_config(path).to_json())
    cfg["num_groups"] = 8
    save_file(tensors, str(tmp_path / "mismatch.safetensors"), metadata={"sop_config": json.dumps(cfg)})
    with pytest.raises(sop.CheckpointError, match=r"group_gen\.query"):
        sop.load(tmp_path / "mismatch.safetensors")
    # unknown backbone
    cfg = json.loads(sop.read_config(path).to_json())
    cfg["backbone"] = "definitely_not_a_model"
    save_file(tensors, str(tmp_path / "unknown.safetensors"), metadata={"sop_config": json.dumps(cfg)})
    with pytest.raises(sop.CheckpointError, match="unknown backbone"):
        sop.load(tmp_path / "unknown.safetensors")
    # newer format
    cfg = json.loads(sop.read_config(path).to_json())
    cfg["format_version"] = 99
    save_file(tensors, str(tmp_path / "future.safetensors"), metadata={"sop_config": json.dumps(cfg)})
    with pytest.raises(sop.CheckpointError, match="newer"):
        sop.load(tmp_path / "future.safetensors")
    # a safetensors file with no SOP config
    save_file(tensors, str(tmp_path / "bare.safetensors"))
    with pytest.raises(sop.CheckpointError, match="no SOP config"):
        sop.load(tmp_path / "bare.safetensors")


@pytest.mark.parametrize("name", ["digits", "parts"])
def test_embedded_models_reload_to_their_recorded_accuracy_and_meet_the_bars(name):
    """The committed checkpoints, reloaded, score what their configs (and the README) report on the
    test split, and meet issue 9's accuracy bar: SOP within 1 point of its backbone twin."""
    from sop.train import evaluate_accuracy
    entry = {m.name: m for m in sop.embedded_models()}[name]
    model, twin = sop.load(entry.sop_path), sop.load(entry.backbone_path)
    split = load_split(name, "test")
    recorded = model.config.training["metrics"]
    one_sample = 1 / len(split.dataset)
    acc, twin_acc = evaluate_accuracy(model, split), evaluate_accuracy(twin, split)
    assert acc == pytest.approx(recorded["test"]["accuracy"], abs=one_sample / 2)
    assert twin_acc == pytest.approx(recorded["backbone_test_accuracy"], abs=one_sample / 2)
    # issue 9's bar (SOP within 1 point of its twin); issue 2's "digits >= 97 %" is missed by one
    # scan since the TV-penalty default (96.9 %) and reported as such in the README
    assert acc >= twin_acc - 0.01
