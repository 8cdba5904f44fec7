"""`sop verify`: recorded metrics recomputed exactly; a recorded command rebuilds identical weights."""
import json
import os
import subprocess
import sys

import pytest

import sop
from sop.cli import main
from sop.verification import compare_weights, full, quick, retrain_command

from conftest import ROOT


def test_quick_verify_recomputes_the_recorded_metrics_of_both_defaults(embedded, capsys):
    paths = [str(embedded[name].sop_path) for name in ("digits", "parts")]
    assert main(["verify", "--quick", *paths]) == 0
    out = capsys.readouterr().out
    assert out.count("verdict: OK") == 2
    for name in ("digits", "parts"):
        v = quick(embedded[name].sop_path)
        assert v.metrics_identical, v.format()
        assert v.metrics["accuracy"][1] == sop.read_config(embedded[name].sop_path).training["metrics"]["test"]["accuracy"]



def test_quick_verify_of_the_text_default_compares_every_recorded_metric():
    """The reviews default (MiniLM): its SOP statistics and its twin's accuracy, recorded rounded to
    5 decimals (`sop.train.recorded_value`), are recomputed from the shipped weights and compared."""
    path = ROOT / "assets" / "models" / "reviews_sop.safetensors"
    recorded = sop.read_config(path).training["metrics"]
    v = quick(path)
    assert set(v.metrics) == {"accuracy", "fidelity", "groups_used", "patches_per_group", "backbone_accuracy"}
    assert v.metrics["backbone_accuracy"][0] == round(recorded["backbone_test_accuracy"], 5)
    assert all(a is not None and b is not None for a, b in v.metrics.values()), v.format()
    assert v.metrics_identical and v.verdict.startswith("OK"), v.format()

def test_quick_verify_notices_a_tampered_record(embedded, tmp_path):
    from safetensors.torch import load_file, save_file
    src = embedded["parts"]
    cfg = json.loads(sop.read_config(src.sop_path).to_json())
    cfg["training"]["metrics"]["test"]["accuracy"] = 0.5
    save_file(load_file(str(src.sop_path)), str(tmp_path / "x_sop.safetensors"),
              metadata={"sop_config": json.dumps(cfg), "format": "sop"})
    (tmp_path / "x_backbone.safetensors").write_bytes(src.backbone_path.read_bytes())
    v = quick(tmp_path / "x_sop.safetensors")
    assert not v.metrics_identical and v.verdict.startswith("MISMATCH")
    assert main(["verify", "--quick", str(tmp_path / "x_sop.safetensors")]) == 1


def test_retrain_command_replaces_the_output_only(tmp_path):
    cmd = retrain_command("python -m sop train --preset parts --out /tmp/final/parts --seed 2", tmp_path / "r")
    assert cmd[1:] == ["-m", "sop", "train", "--preset", "parts", "--seed", "2", "--out", str(tmp_path / "r")]
    with pytest.raises(sop.CheckpointError):
        retrain_command("rm -rf /", tmp_path / "r")


@pytest.mark.slow
def test_full_verify_rebuilds_identical_weights_from_the_recorded_command(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "sop", "train", "--preset", "digits", "--backbone-epochs", "1", "--epochs", "1",
           "--groups", "4", "--max-steps", "3", "--out", str(tmp_path / "small")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = sop.read_config(tmp_path / "small_sop.safetensors")
    assert cfg.training["environment"]["pinned"] and cfg.training["environment"]["deterministic"]
    v = full(tmp_path / "small_sop.safetensors", workdir=tmp_path)
    assert v.weights_identical and v.max_weight_diff == 0.0, v.format()
    assert v.metrics_identical
    same, diff = compare_weights(tmp_path / "small_sop.safetensors", tmp_path / "small_backbone.safetensors")
    assert not same
