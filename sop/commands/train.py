"""`python -m sop train`: train the backbone twin and the SOP model for a preset."""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path


def register(sub) -> None:
    from ..data import dataset_names
    from ..presets import preset_names
    p = sub.add_parser("train", help="train a backbone and its SOP model end to end")
    p.add_argument("--preset", choices=preset_names(), default="digits")
    p.add_argument("--dataset", help=f"override the preset's dataset ({', '.join(dataset_names())})")
    p.add_argument("--backbone", help="override the timm backbone name (kwargs from the preset are dropped)")
    p.add_argument("--backbone-checkpoint", type=Path, help="skip stage 1: use this backbone checkpoint")
    p.add_argument("--groups", type=int, help="number of groups G")
    p.add_argument("--max-group-frac", type=float, help="largest share of patches one group may cover")
    p.add_argument("--patch-size", type=int,
                   help="patch side in pixels: the ViT's patch_size, or the pixel adapter's grid = image / patch")
    p.add_argument("--pool", choices=("full", "kept"),
                   help="pixel adapter on a timm CNN: a group's features pooled over the whole map (full) "
                        "or only over the positions its mask keeps (kept)")
    p.add_argument("--group-gen", choices=("learned", "patch"),
                   help="GroupGen design: learned sparsemax queries (ours) or patch-token queries + top-k (authors')")
    p.add_argument("--group-blur", type=float, help="Gaussian sigma, in patches, over GroupGen's attention")
    p.add_argument("--group-spread", type=float,
                   help="patch GroupGen: lower each group's attention on the patches earlier groups hold, by this "
                        "many standard deviations times the share of earlier groups holding them (diverse groups)")
    p.add_argument("--group-select", choices=("shared", "per_class"),
                   help="GroupSelect: class-agnostic scores or one score per group and class (authors')")
    p.add_argument("--select-scale", type=float,
                   help="initial inverse temperature of GroupSelect's sparsemax (larger: fewer groups get a score)")
    p.add_argument("--group-dropout", type=float, help="training: share of groups hidden from GroupSelect")
    p.add_argument("--area-weight", type=float, help="training penalty on the area of the selected groups")
    p.add_argument("--tv-weight", type=float, help="training total-variation penalty (compact groups)")
    p.add_argument("--penalty-ramp", type=float,
                   help="raise --area-weight/--tv-weight linearly from 0 over this many SOP epochs")
    p.add_argument("--keep", choices=("best", "last"),
                   help="SOP stage: keep the epoch with the best validation score, or the last epoch")
    p.add_argument("--backbone-epochs", type=int)
    p.add_argument("--epochs", type=int, help="SOP epochs")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--backbone-lr", type=float, help="SOP stage learning rate of the backbone (0 = frozen)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (default: the preset's, else torch's choice); a fixed count makes "
                        "the result independent of the machine's core count")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin CPU kernels, threads and deterministic algorithms (faster on big machines; "
                        "the weights then depend on the processor)")
    p.add_argument("--resume", type=Path, help="training-state file written by an interrupted run")
    p.add_argument("--max-steps", type=int, help="stop each stage after this many steps (smoke tests)")
    p.add_argument("--out", type=Path, default=Path("runs/model"),
                   help="output prefix: writes <out>_backbone.safetensors and <out>_sop.safetensors")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..presets import PRESETS
    from ..reproducibility import ensure_pinned, set_deterministic
    from ..train import train_pair
    if not args.no_pin and getattr(args, "reexec_argv", None) is not None:
        ensure_pinned(args.reexec_argv)   # re-executes this command once, before any training
    preset = dict(PRESETS[args.preset])
    if args.backbone:
        preset["backbone"], preset["backbone_kwargs"] = args.backbone, {}
    for key, attr in [("dataset", "dataset"), ("num_groups", "groups"), ("backbone_epochs", "backbone_epochs"),
                      ("sop_epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"),
                      ("backbone_lr", "backbone_lr"), ("max_group_frac", "max_group_frac"), ("threads", "threads"),
                      ("group_gen", "group_gen"), ("group_blur", "group_blur"), ("group_spread", "group_spread"),
                      ("group_select", "group_select"), ("group_dropout", "group_dropout"),
                      ("select_scale", "select_scale"),
                      ("area_weight", "area_weight"), ("tv_weight", "tv_weight"),
                      ("penalty_ramp_epochs", "penalty_ramp"), ("sop_keep", "keep")]:
        if getattr(args, attr) is not None:
            preset[key] = getattr(args, attr)
    if args.lr is not None:
        preset.pop("sop_lr", None)   # --lr sets both stages' learning rate
    if args.patch_size is not None:
        apply_patch_size(preset, args.patch_size)
    if args.pool is not None:   # an adapter setting: recorded in the config's adapter_kwargs
        preset["adapter_kwargs"] = dict(preset.get("adapter_kwargs", {}), pool=args.pool)
    if not args.no_pin:
        set_deterministic()
        if args.threads not in (None, 1):
            print("note: --threads is ignored while pinned (one thread); add --no-pin to use more", file=sys.stderr)
    elif preset.get("threads"):
        import torch
        torch.set_num_threads(int(preset["threads"]))
    command = "python -m sop " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    metrics = train_pair(preset, args.out, seed=args.seed, command=command, backbone_ckpt=args.backbone_checkpoint,
                         resume=args.resume, max_steps=args.max_steps)
    if int(os.environ.get("RANK", "0")) == 0:   # under torchrun, one process reports
        twin = {k: v for k, v in metrics.items() if k.startswith("backbone_test_")}   # backbone_test_accuracy
        print(json.dumps(dict(twin, **metrics["test"]), indent=2))
        print(f"-> {args.out}_sop.safetensors", file=sys.stderr)
    return 0


def apply_patch_size(preset: dict, patch: int) -> None:
    """Patch granularity for either adapter: a ViT's patch_size, else the pixel grid."""
    from ..errors import InputError
    if patch < 1:
        raise InputError(f"--patch-size must be at least 1, got {patch}")
    if "patch_size" in preset.get("backbone_kwargs", {}):
        preset["backbone_kwargs"] = dict(preset["backbone_kwargs"], patch_size=patch)
    else:
        from ..data import load_split
        size = preset.get("img_size") or load_split(preset["dataset"], "val").info.img_size
        grid = tuple(max(1, s // patch) for s in size)
        preset["adapter_kwargs"] = dict(preset.get("adapter_kwargs", {}), grid=grid)
