"""End-to-end training with the task's loss (cross-entropy, or MSE on standardised
regression targets) and no group labels.

Two stages, each a plain supervised loop:
  1. the backbone alone (or load one), saved as the plain "twin" checkpoint;
  2. SOP on top of it: GroupGen and GroupSelect from scratch, the backbone fine-tuned at
     a lower learning rate (0 freezes it), so it learns to read one group at a time.
Multi-process training uses torchrun + DistributedDataParallel (gloo on CPU, nccl on
GPU); run `torchrun --nproc_per_node 2 -m sop train ...`.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from .adapters import resolve_adapter
from .checkpoint import save
from .config import SOPConfig
from .data import Split, get_dataset, load_split
from .errors import CheckpointError, ConfigError, InputError
from .evaluation import sop_statistics
from .explainers import logits_of
from .model import SOPModel, create_backbone, create_model
from .regularisers import group_penalty, ramp_factor
from .tasks import Task, get_task, list_tasks

log = logging.getLogger(__name__)


KEEP_CHOICES = ("best", "last")


@dataclass
class StageSettings:
    epochs: int
    lr: float
    batch_size: int = 64
    weight_decay: float = 0.05
    backbone_lr: float | None = None   # SOP stage: lr of the wrapped backbone (0 = frozen)
    warmup_epochs: float = 1.0
    shift: int = 0                     # random translation augmentation, in pixels
    seed: int = 0
    resume: Path | None = None         # training-state file to continue from
    state_path: Path | None = None     # where to write the training state each epoch
    max_steps: int | None = None       # stop early (tests, smoke runs)
    area_weight: float = 0.0           # SOP stage: penalty on the area of the selected groups
    tv_weight: float = 0.0             # SOP stage: total-variation penalty (compact groups)
    penalty_ramp_epochs: float = 0.0   # SOP stage: raise both penalties linearly from 0 over this many epochs
    task: str = "classification"       # a name in sop.tasks: whose loss is minimised
    keep: str = "best"                 # which epoch's weights to keep: "best" validation score, or "last"


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the torchrun process group when launched by torchrun, else single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    rank = dist.get_rank()
    device = torch.device("cpu")
    if backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return DistInfo(rank=rank, world=dist.get_world_size(), device=device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `max_shift` pixels (wrapping; borders are background)."""
    if max_shift <= 0:
        return x
    shifts = torch.randint(-max_shift, max_shift + 1, (x.shape[0], 2), generator=generator)
    return torch.stack([torch.roll(img, (int(dy), int(dx)), dims=(-2, -1)) for img, (dy, dx) in zip(x, shifts)])


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, split: Split, batch_size: int = 256,
                      device: torch.device | str = "cpu") -> float:
    model.eval()
    correct = total = 0
    for x, y in DataLoader(split.dataset, batch_size=batch_size):
        pred = logits_of(model, x.to(device)).argmax(-1).cpu()
        correct += int((pred == y).sum())
        total += len(y)
    return correct / max(total, 1)


def optimizer_for(model: nn.Module, s: StageSettings) -> torch.optim.Optimizer:
    """AdamW; for SOP, the backbone gets its own (lower, possibly zero) learning rate."""
    inner = model.module if hasattr(model, "module") else model
    if isinstance(inner, SOPModel) and s.backbone_lr is not None:
        bb = {id(p) for p in inner.backbone.parameters()}
        if s.backbone_lr == 0:
            for p in inner.backbone.parameters():
                p.requires_grad_(False)
        groups = [{"params": [p for p in inner.parameters() if id(p) not in bb], "lr": s.lr}]
        if s.backbone_lr > 0:
            groups.append({"params": list(inner.backbone.parameters()), "lr": s.backbone_lr})
    else:
        groups = [{"params": [p for p in inner.parameters() if p.requires_grad], "lr": s.lr}]
    for g in groups:
        g["initial_lr"] = g["lr"]
    return torch.optim.AdamW(groups, weight_decay=s.weight_decay)


def schedule(opt: torch.optim.Optimizer, step: int, total: int, warmup: int) -> None:
    """Linear warm-up then cosine decay, applied to every parameter group."""
    factor = (step + 1) / max(warmup, 1) if step < warmup else \
        0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))
    for g in opt.param_groups:
        g["lr"] = g["initial_lr"] * factor


def save_state(path: Path, model: nn.Module, opt: torch.optim.Optimizer, meta: dict) -> None:
    """Training state (weights, optimizer moments, progress) as safetensors + JSON header."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    for pid, st in osd["state"].items():
        for key, val in st.items():
            tensors[f"optim.{pid}.{key}"] = torch.as_tensor(val).detach().cpu().contiguous()
    meta = dict(meta, param_groups=[{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]}
                                    for g in osd["param_groups"]])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"train_state": json.dumps(meta)})
    tmp.replace(path)  # atomic: a crash mid-write never leaves a half state


def load_state(path: Path, model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["train_state"])
        tensors = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - any failure means an unusable resume file
        raise CheckpointError(f"cannot resume from {path}: {err}") from err
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, key = k.split(".", 2)
            state.setdefault(int(pid), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    return meta


@dataclass
class _Loop:
    """What one stage's epochs share: the (wrapped) model, its optimizer and schedule."""
    net: nn.Module                     # the model, or its DistributedDataParallel wrapper
    model: nn.Module
    opt: torch.optim.Optimizer
    loader: DataLoader
    settings: StageSettings
    dist: DistInfo
    task: Task
    aug: torch.Generator
    step: int = 0
    total: int = 0                     # steps in the whole stage
    warmup: int = 0
    ramp_steps: int = 0                # the penalty ramp, in steps

    @property
    def done(self) -> bool:
        return self.settings.max_steps is not None and self.step >= self.settings.max_steps


def _loader(train: Split, s: StageSettings, d: DistInfo) -> tuple[DistributedSampler | None, DataLoader]:
    sampler = DistributedSampler(train.dataset, d.world, d.rank, shuffle=True, seed=s.seed) if d.world > 1 else None
    loader = DataLoader(train.dataset, batch_size=s.batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=len(train.dataset) > s.batch_size * d.world,
                        generator=torch.Generator().manual_seed(s.seed))
    return sampler, loader


def _train_epoch(loop: _Loop, epoch: int, name: str) -> tuple[float, float]:
    """One pass over the training split: (mean loss, mean training metric: accuracy, or regression MSE)."""
    s, d = loop.settings, loop.dist
    loop.net.train()
    # Redraw at most every 2 s when stderr is a log file, so logs stay readable.
    bar = tqdm(loop.loader, desc=f"{name} {epoch + 1}/{s.epochs}", disable=not d.main, file=sys.stderr,
               leave=False, dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 2.0)
    seen = 0
    loss_sum = metric_sum = 0.0
    metric = loop.task.metric
    for x, y in bar:
        schedule(loop.opt, loop.step, loop.total, loop.warmup)
        x, y = random_shift(x, s.shift, loop.aug).to(d.device), y.to(d.device)
        out = loop.net(x)
        logits = out.logits if hasattr(out, "logits") else out
        loss = loop.task.loss(logits, y)
        if hasattr(out, "group_masks"):
            ramp = ramp_factor(loop.step, loop.ramp_steps)
            loss = loss + group_penalty(out, y, loop.model.adapter.grid, ramp * s.area_weight, ramp * s.tv_weight)
        loop.opt.zero_grad(set_to_none=True)
        loss.backward()
        loop.opt.step()
        loop.step += 1
        seen += len(y)
        metric_sum += loop.task.batch_metric(logits, y)
        loss_sum += loss.item() * len(y)
        bar.set_postfix({"loss": f"{loss_sum / seen:.3f}", metric: f"{metric_sum / seen:.3f}"})
        if loop.done:
            break
    return loss_sum / max(seen, 1), metric_sum / max(seen, 1)


def fit(model: nn.Module, train: Split, val: Split, s: StageSettings, name: str,
        dist_info: DistInfo | None = None) -> dict:
    """Train `model` in place; keep the weights with the best validation score (accuracy; regression:
    mean R2 over the parameters, on standardised targets), or those of the last epoch (`s.keep="last"`:
    for a validation split too small to rank epochs, where "best" picks noise)."""
    if s.keep not in KEEP_CHOICES:
        raise InputError(f"keep must be one of {', '.join(KEEP_CHOICES)}, not {s.keep!r}")
    d = dist_info or DistInfo()
    seed_everything(s.seed)
    model.to(d.device)
    net = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
    sampler, loader = _loader(train, s, d)
    opt = optimizer_for(net, s)
    # The penalty ramp lets the model learn to classify before the penalties shrink its groups
    # (a full-weight TV penalty from step 0 collapsed one parts run to single-patch groups).
    loop = _Loop(net=net, model=model, opt=opt, loader=loader, settings=s, dist=d, task=get_task(s.task),
                 aug=None, total=s.epochs * len(loader), warmup=int(s.warmup_epochs * len(loader)),
                 ramp_steps=int(s.penalty_ramp_epochs * len(loader)))
    start_epoch, best_acc, best_state = 0, float("-inf"), None   # regression R2 may lie below -1
    if s.resume is not None:
        meta = load_state(Path(s.resume), model, opt)
        start_epoch, best_acc, loop.step = meta["epoch"], meta["best_acc"], meta["step"]
        best_state = copy.deepcopy(model.state_dict())
    loop.aug = torch.Generator().manual_seed(s.seed + 1 + d.rank)
    history = []
    for epoch in range(start_epoch, s.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        loss, train_metric = _train_epoch(loop, epoch, name)
        val_acc = loop.task.validation_score(model, val, device=d.device)
        row = {"epoch": epoch + 1, "loss": loss, f"train_{loop.task.metric}": train_metric,
               loop.task.val_metric: val_acc, "seconds": time.perf_counter() - t0}
        history.append(row)
        if d.main:
            log.info("%s epoch %d/%d: loss %.4f train %s %.4f %s %.4f (%.1fs)", name, epoch + 1, s.epochs,
                     row["loss"], loop.task.metric, train_metric, loop.task.val_metric.replace("_", " "), val_acc,
                     row["seconds"])
        if val_acc > best_acc:
            best_acc = val_acc
            if s.keep == "best":   # keeping the last epoch needs no copy of the best weights
                best_state = copy.deepcopy(model.state_dict())
        if s.state_path is not None and d.main:
            save_state(s.state_path, model, opt, dict(epoch=epoch + 1, best_acc=best_acc, step=loop.step, stage=name))
        if loop.done:
            break
    if best_state is not None:    # only set when keeping the best epoch
        model.load_state_dict(best_state)
    model.eval()
    return {f"best_{loop.task.val_metric}": best_acc, "history": history}


# The statistics a trained SOP classifier records for its test split (`sop verify` recomputes them);
# a regression model records `RegressionTask.recorded` (R2 and RMSE per parameter, ...).
RECORDED_STATISTICS = get_task("classification").recorded


def recorded_statistics(model: SOPModel, split: Split, backbone: nn.Module | None = None) -> dict:
    """The task's recorded statistics (`Task.recorded`): classification: accuracy, fidelity to the
    plain backbone, groups used and patches per group (`sop_statistics`)."""
    stats = sop_statistics(model, split, backbone)
    return {k: stats[k] for k in get_task(model.config.task).recorded if k in stats}


def build_config(preset: dict, info, kind: str, targets: dict | None = None) -> SOPConfig:
    return SOPConfig(backbone=preset["backbone"], num_classes=info.num_classes, img_size=info.img_size,
                     in_chans=info.in_chans, mean=info.mean, std=info.std,
                     backbone_kwargs=dict(preset.get("backbone_kwargs", {})),
                     adapter_kwargs=dict(preset.get("adapter_kwargs", {})),
                     num_groups=preset["num_groups"], group_heads=preset.get("group_heads", 1),
                     max_group_frac=preset.get("max_group_frac", 0.25), class_names=info.class_names,
                     dataset=info.name, kind=kind, task=get_dataset(info.name).task,
                     **(targets or {}), **{k: preset[k] for k in DESIGN_KEYS if k in preset})


# The SOP design knobs a preset (or the train CLI) may set on the model config; the
# training penalties (area_weight, tv_weight) live in StageSettings.
DESIGN_KEYS = ("group_gen", "group_blur", "group_spread", "group_select", "group_dropout", "select_scale",
               "group_scale")


@dataclass
class _Pair:
    """What both stages of `train_pair` share."""
    preset: dict
    splits: dict[str, Split]
    dist: DistInfo
    out: Path
    seed: int
    command: str
    common: dict                       # StageSettings fields both stages use
    resume: Path | None = None
    targets: dict = field(default_factory=dict)   # regression: target names, mean, std (config fields)
    fitting: dict = field(default_factory=dict)   # the train / val splits as training sees them

    def state_path(self, stage: str) -> Path:
        return self.out.parent / ".train-state" / f"{self.out.name}_{stage}.state.safetensors"

    def resume_for(self, stage: str) -> Path | None:
        return self.resume if self.resume is not None and _state_stage(self.resume) == stage else None


def _check_trainable(preset: dict) -> None:
    task = get_task(get_dataset(preset["dataset"]).task)
    if not task.trainable:
        raise ConfigError(f"dataset {preset['dataset']!r} is a {task.name} task, which sop.train does not "
                          f"train yet (trainable tasks: {', '.join(list_tasks(trainable=True))})", field="task")
    if preset.get("group_gen") == "patch" and (preset.get("area_weight") or preset.get("tv_weight")):
        # Its masks are hard top-k sets: no gradient, constant area; the penalties would do nothing.
        raise InputError("--area-weight/--tv-weight need the learned GroupGen (the authors' hard top-k masks "
                         "have a fixed area and no gradient)")


def _check_model_settings(preset: dict, info, targets: dict) -> None:
    """Refuse an invalid SOP config (e.g. `--group-spread` on the learned GroupGen) or adapter settings the
    preset's adapter does not take (e.g. `--pool` on a ViT preset) before stage 1, not after it: the
    backbone is built once, untrained, to resolve "auto"."""
    cfg = build_config(preset, info, "sop", targets).validate()
    if not preset.get("adapter_kwargs"):
        return
    entry = resolve_adapter(cfg.adapter, create_backbone(cfg))
    entry.check_settings(entry.settings(cfg))


def _backbone_stage(pair: _Pair, backbone_ckpt: Path | None) -> tuple[nn.Module, dict]:
    """Stage 1: train the plain backbone twin and save it (or load `backbone_ckpt`)."""
    from .checkpoint import load as load_ckpt
    from .reproducibility import describe
    if backbone_ckpt is not None:
        backbone = load_ckpt(backbone_ckpt)
        return backbone, backbone.config.training.get("metrics", {})
    preset, splits, d = pair.preset, pair.splits, pair.dist
    bb_cfg = build_config(preset, splits["train"].info, "backbone", pair.targets)
    torch.manual_seed(pair.seed)
    backbone = create_backbone(bb_cfg)
    s = StageSettings(epochs=preset["backbone_epochs"], lr=preset["lr"], resume=pair.resume_for("backbone"),
                      state_path=pair.state_path("backbone"), task=bb_cfg.task, **pair.common)
    bb_report = fit(backbone, pair.fitting["train"], pair.fitting["val"], s, "backbone", d)
    bb_report.update(get_task(bb_cfg.task).test_report(backbone, splits["test"], bb_cfg, device=d.device))
    bb_cfg.training = dict(command=pair.command, seed=pair.seed, metrics=_public(bb_report), environment=describe())
    if d.main:
        bb_path = Path(f"{pair.out}_backbone.safetensors")
        save(backbone.cpu(), bb_path, bb_cfg)
        log.info("backbone test %s -> %s", {k: v for k, v in bb_report.items() if k.startswith("test")}, bb_path)
    return backbone, bb_report


def _sop_stage(pair: _Pair, backbone: nn.Module, bb_report: dict, started: float) -> dict:
    """Stage 2: SOP on the twin's weights; save it with its recorded metrics."""
    from .reproducibility import describe
    preset, splits, d = pair.preset, pair.splits, pair.dist
    sop_cfg = build_config(preset, splits["train"].info, "sop", pair.targets)
    torch.manual_seed(pair.seed)
    model = create_model(sop_cfg.backbone, config=sop_cfg)
    model.backbone.load_state_dict(backbone.state_dict())
    s = StageSettings(epochs=preset["sop_epochs"], lr=preset.get("sop_lr", preset["lr"]),
                      backbone_lr=preset.get("backbone_lr", 0.0),
                      area_weight=preset.get("area_weight", 0.0), tv_weight=preset.get("tv_weight", 0.0),
                      penalty_ramp_epochs=preset.get("penalty_ramp_epochs", 0.0), resume=pair.resume_for("sop"),
                      state_path=pair.state_path("sop"), task=sop_cfg.task, keep=preset.get("sop_keep", "best"),
                      **pair.common)
    report = fit(model, pair.fitting["train"], pair.fitting["val"], s, "sop", d)
    model.cpu()
    backbone.cpu().eval()
    stats = recorded_statistics(model, splits["test"], backbone)
    # backbone_test_accuracy; rounded as every recorded figure, whether the twin was trained in this
    # run or read from --backbone-checkpoint (whose header already holds it rounded).
    twin = {f"backbone_{k}": recorded_value(v) for k, v in bb_report.items() if k.startswith("test_")}
    metrics = dict(_public(report), test=stats, **twin,
                   train_minutes=round((time.time() - started) / 60, 2), world_size=d.world)
    sop_cfg.training = dict(command=pair.command, seed=pair.seed, metrics=metrics, environment=describe(),
                            sop_stage=dict(epochs=s.epochs, lr=s.lr, backbone_lr=s.backbone_lr,
                                           area_weight=s.area_weight, tv_weight=s.tv_weight,
                                           penalty_ramp_epochs=s.penalty_ramp_epochs, keep=s.keep))
    if d.main:
        sop_path = save(model, Path(f"{pair.out}_sop.safetensors"), sop_cfg)
        log.debug("SOP test statistics %s -> %s", stats, sop_path)
    return metrics


def train_pair(preset: dict, out: Path, *, seed: int = 0, command: str = "", backbone_ckpt: Path | None = None,
               resume: Path | None = None, max_steps: int | None = None) -> dict:
    """Train (or load) the backbone twin, then SOP on it; write both checkpoints.

    Writes <out>_backbone.safetensors and <out>_sop.safetensors (plus .json copies of
    their configs).  Returns the metrics recorded in the SOP checkpoint (its test
    statistics under "test").  Progress goes to the `sop.train` logger.
    """
    _check_trainable(preset)
    d = init_distributed()
    img_size = tuple(preset["img_size"]) if preset.get("img_size") else None
    splits = {k: load_split(preset["dataset"], k, img_size=img_size, seed=seed) for k in ("train", "val", "test")}
    info = splits["train"].info
    started = time.time()
    common = dict(batch_size=preset["batch_size"], weight_decay=preset.get("weight_decay", 0.05),
                  shift=preset.get("shift", info.train_shift), seed=seed, max_steps=max_steps,
                  **({"warmup_epochs": preset["warmup_epochs"]} if "warmup_epochs" in preset else {}))
    pair = _Pair(preset=preset, splits=splits, dist=d, out=Path(out), seed=seed, command=command, common=common,
                 resume=resume)
    task = get_task(get_dataset(preset["dataset"]).task)
    pair.targets = task.config_fields(splits["train"])
    _check_model_settings(preset, info, pair.targets)
    pair.fitting = {k: task.training_split(splits[k], pair.targets) for k in ("train", "val")}
    backbone, bb_report = _backbone_stage(pair, backbone_ckpt)
    metrics = _sop_stage(pair, backbone, bb_report, started)
    if d.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return metrics


def _state_stage(path: Path) -> str:
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["train_state"])["stage"]


RECORDED_DIGITS = 5   # a checkpoint's training metrics keep this many decimals


def recorded_value(v):
    """A metric as a checkpoint header records it (floats rounded to RECORDED_DIGITS decimals)."""
    return round(v, RECORDED_DIGITS) if isinstance(v, float) else v


def _public(report: dict) -> dict:
    """Metrics worth keeping in a checkpoint header (the per-epoch history is too)."""
    return {k: recorded_value(v) for k, v in report.items()}
