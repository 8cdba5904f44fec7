"""`python -m sop train`: train the backbone twin and the SOP model for a preset."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path


def register(sub) -> None:
    from ..presets import preset_names
    p = sub.add_parser("train", help="train a backbone and its SOP model end to end")
    p.add_argument("--preset", choices=preset_names(), default="digits")
    p.add_argument("--dataset", help="override the preset's dataset (digits, parts, folder:<path>)")
    p.add_argument("--backbone", help="override the timm backbone name (kwargs from the preset are dropped)")
    p.add_argument("--backbone-checkpoint", type=Path, help="skip stage 1: use this backbone checkpoint")
    p.add_argument("--groups", type=int, help="number of groups G")
    p.add_argument("--max-group-frac", type=float, help="largest share of patches one group may cover")
    p.add_argument("--backbone-epochs", type=int)
    p.add_argument("--epochs", type=int, help="SOP epochs")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--backbone-lr", type=float, help="SOP stage learning rate of the backbone (0 = frozen)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (default: the preset's, else torch's choice); a fixed count makes "
                        "the result independent of the machine's core count")
    p.add_argument("--resume", type=Path, help="training-state file written by an interrupted run")
    p.add_argument("--max-steps", type=int, help="stop each stage after this many steps (smoke tests)")
    p.add_argument("--out", type=Path, default=Path("runs/model"),
                   help="output prefix: writes <out>_backbone.safetensors and <out>_sop.safetensors")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..presets import PRESETS
    from ..train import train_pair
    preset = dict(PRESETS[args.preset])
    if args.backbone:
        preset["backbone"], preset["backbone_kwargs"] = args.backbone, {}
    for key, attr in [("dataset", "dataset"), ("num_groups", "groups"), ("backbone_epochs", "backbone_epochs"),
                      ("sop_epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"),
                      ("backbone_lr", "backbone_lr"), ("max_group_frac", "max_group_frac"), ("threads", "threads")]:
        if getattr(args, attr) is not None:
            preset[key] = getattr(args, attr)
    if preset.get("threads"):
        import torch
        torch.set_num_threads(int(preset["threads"]))
    command = "python -m sop " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    train_pair(preset, args.out, seed=args.seed, command=command, backbone_ckpt=args.backbone_checkpoint,
               resume=args.resume, max_steps=args.max_steps)
    return 0
