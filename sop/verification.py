"""`sop verify`: does a checkpoint still give what its config records?

Two levels:
* **quick** -- reload the shipped weights and recompute the recorded test metrics
  (accuracy, fidelity, groups used, patches per group; backbone twin accuracy).  Same
  weights and same data must give exactly the same figures.
* **full** -- rerun the recorded training command into a temporary folder, then compare
  the new weights with the shipped ones tensor by tensor, and the new metrics with the
  recorded ones.  Identical weights need the same processor kind (see README,
  "Reproducibility"); elsewhere the metrics should agree within the seed spread.
"""
from __future__ import annotations

import logging
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import CheckpointError
from .tasks import get_task

log = logging.getLogger(__name__)

def _flat(stats: dict, keys) -> dict[str, float | None]:
    """{key: value}, a per-parameter dict spread out as "key name" (e.g. "r2 Omega_m")."""
    out: dict[str, float | None] = {}
    for k in keys:
        v = stats.get(k)
        out.update({f"{k} {n}": x for n, x in v.items()} if isinstance(v, dict) else {k: v})
    return out


@dataclass
class Verdict:
    checkpoint: str
    metrics: dict[str, tuple[float | None, float | None]]   # name -> (recorded, recomputed)
    weights_identical: bool | None = None                   # None: weights not compared (quick)
    max_weight_diff: float | None = None
    notes: list[str] = field(default_factory=list)
    # Relative tolerance (`Task.verify_tolerance`): 0 (exact) for classification.
    tolerance: float = 0.0

    @property
    def metrics_identical(self) -> bool:
        return all(a is not None and b is not None and abs(a - b) <= self.tolerance * max(1.0, abs(a))
                   for a, b in self.metrics.values())

    @property
    def verdict(self) -> str:
        if self.weights_identical:
            return "REPRODUCED: identical weights and metrics"
        if self.weights_identical is None:
            return (("OK: the shipped weights give exactly the recorded test metrics" if not self.tolerance else
                     f"OK: the shipped weights give the recorded test metrics (to {self.tolerance:g})")
                    if self.metrics_identical
                    else "MISMATCH: the shipped weights do not give the recorded test metrics")
        return ("weights differ (max |diff| %.3g); metrics %s" %
                (self.max_weight_diff, "identical" if self.metrics_identical else "differ: see the table"))

    def format(self) -> str:
        lines = [f"{self.checkpoint}", "| metric | recorded | recomputed | difference |", "|---|---:|---:|---:|"]
        for name, (a, b) in self.metrics.items():
            diff = "" if a is None or b is None else f"{b - a:+.4g}"
            lines.append(f"| {name} | {_fmt(a)} | {_fmt(b)} | {diff} |")
        lines += [f"- {n}" for n in self.notes]
        lines.append(f"verdict: {self.verdict}")
        return "\n".join(lines)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.5g}"


def recorded_metrics(cfg) -> dict[str, float | None]:
    """What training recorded: the task's compared test statistics (`Task.compared_keys`) and the
    twin's test figures (`Task.compared_twin_metrics`, recorded as "backbone_test_<name>")."""
    task = get_task(cfg.task)
    m = cfg.training.get("metrics", {})
    out = _flat(m.get("test", {}), task.compared_keys)
    # Rounded as training now records them: checkpoints written before that hold the twin's figure unrounded.
    from .train import recorded_value
    out.update({_twin_name(k): recorded_value(m.get(f"backbone_{k}")) for k in task.compared_twin_metrics})
    return out


def _twin_name(key: str) -> str:
    """"test_accuracy" -> "backbone_accuracy" (the name the statistics give the twin's figure)."""
    return "backbone_" + key.removeprefix("test_")


def recompute_metrics(sop_path: Path, backbone_path: Path | None = None) -> dict[str, float | None]:
    """The test metrics `train_pair` records, recomputed from the checkpoint(s) on disk the way
    training computed them (the twin's figures by `Task.test_report`, rounded as recorded)."""
    from .checkpoint import load_pair
    from .data import load_split
    from .evaluation import sop_statistics
    from .train import recorded_value
    model, backbone, _ = load_pair(sop_path, backbone_path)
    cfg = model.config
    task = get_task(cfg.task)
    split = load_split(cfg.dataset, "test", img_size=cfg.img_size, seed=int(cfg.training.get("seed", 0)))
    log.debug("recomputing the test metrics of %s on %d inputs", Path(sop_path).name, len(split.dataset))
    out = _flat(sop_statistics(model, split, backbone), task.compared_keys)
    twin = task.test_report(backbone, split, cfg) if backbone is not None and task.compared_twin_metrics else {}
    out.update({_twin_name(k): recorded_value(twin[k]) if k in twin else None for k in task.compared_twin_metrics})
    return out


def quick(sop_path, backbone_path=None) -> Verdict:
    from .checkpoint import read_config
    cfg = read_config(sop_path)
    rec = recorded_metrics(cfg)
    new = recompute_metrics(Path(sop_path), backbone_path)
    return Verdict(str(sop_path), {k: (rec[k], new.get(k)) for k in rec}, tolerance=get_task(cfg.task).verify_tolerance)


def compare_weights(a: Path, b: Path) -> tuple[bool, float]:
    from safetensors.torch import load_file
    ta, tb = load_file(str(a)), load_file(str(b))
    if set(ta) != set(tb):
        return False, float("inf")
    diff = max((float((ta[k].double() - tb[k].double()).abs().max()) if ta[k].numel() else 0.0) for k in ta)
    return all(torch.equal(ta[k], tb[k]) for k in ta), diff


def retrain_command(recorded: str, out_prefix: Path) -> list[str]:
    """The recorded `python -m sop train ...` as argv, writing to `out_prefix` instead."""
    argv = shlex.split(recorded)
    if argv[:4] != ["python", "-m", "sop", "train"]:
        raise CheckpointError(f"the recorded command is not a `python -m sop train` command: {recorded!r}")
    args = argv[3:]
    if "--out" in args:
        i = args.index("--out")
        args = args[:i] + args[i + 2:]
    return [sys.executable, "-m", "sop", *args, "--out", str(out_prefix)]


def full(sop_path, workdir: Path | None = None) -> Verdict:
    from .checkpoint import read_config, twin_path
    sop_path = Path(sop_path)
    cfg = read_config(sop_path)
    command = cfg.training.get("command")
    if not command:
        raise CheckpointError(f"{sop_path.name} records no training command")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        prefix = Path(tmp) / "retrained"
        cmd = retrain_command(command, prefix)
        log.info("retraining: %s", " ".join(shlex.quote(c) for c in cmd[1:]))
        # Run where the user is: relative paths in the recorded command (a backbone checkpoint,
        # a folder data set) mean what they meant when it was recorded from the same place.
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            raise CheckpointError(f"the recorded command failed (exit {proc.returncode})")
        new_sop, new_bb = Path(f"{prefix}_sop.safetensors"), Path(f"{prefix}_backbone.safetensors")
        same_sop, diff_sop = compare_weights(sop_path, new_sop)
        twin = twin_path(sop_path)
        same_bb, diff_bb = compare_weights(twin, new_bb) if twin.is_file() and new_bb.is_file() else (True, 0.0)
        rec = recorded_metrics(cfg)
        new = recorded_metrics(read_config(new_sop))
        env = read_config(new_sop).training.get("environment", {})
    v = Verdict(str(sop_path), {k: (rec[k], new[k]) for k in rec}, weights_identical=same_sop and same_bb,
                max_weight_diff=max(diff_sop, diff_bb))
    shipped_env = cfg.training.get("environment", {})
    v.notes.append(f"shipped on: {shipped_env.get('cpu', 'unrecorded')} (pinned: {shipped_env.get('pinned', 'unrecorded')}); "
                   f"rerun on: {env.get('cpu')} (pinned: {env.get('pinned')})")
    if shipped_env.get("cpu_flags") != env.get("cpu_flags"):  # a model name hides the processor generation
        v.notes.append(f"vector extensions differ: shipped {shipped_env.get('cpu_flags', 'unrecorded')}, "
                       f"rerun {env.get('cpu_flags')}")
    v.notes.append(f"max |weight diff|: SOP {diff_sop:.3g}, backbone twin {diff_bb:.3g}")
    return v
