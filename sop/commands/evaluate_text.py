"""`python -m sop evaluate-text`: a text SOP checkpoint vs LIME, KernelSHAP, IG and Occlusion over tokens."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("evaluate-text", help="text SOP vs post-hoc baselines over tokens (accuracy, fidelity, "
                                             "groups used, pointing game, relevance mass and rank accuracy)")
    p.add_argument("--model", type=Path, default=Path("assets/models/reviews_sop.safetensors"),
                   help="a text SOP checkpoint; its _backbone twin beside it is the baselines' model")
    p.add_argument("--samples", type=int, default=150, help="test sentences explained by every method")
    p.add_argument("--n-samples", type=int, default=200, help="LIME / KernelSHAP perturbations per sentence")
    p.add_argument("--ig-steps", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", type=Path, help="write the full report (with per-input records) as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch
    from ..checkpoint import load_pair
    from ..data import get_dataset
    from ..errors import InputError
    from ..text_eval import TextEvalSettings, evaluate_text, format_report
    if args.threads:
        torch.set_num_threads(args.threads)
    model, backbone, _ = load_pair(args.model)
    if getattr(model, "modality", "image") != "text":
        raise InputError(f"{args.model.name} is not a text model; use `python -m sop evaluate`")
    if backbone is None:
        raise InputError(f"{args.model.name} has no _backbone twin beside it")
    spec = get_dataset(model.config.dataset)
    if spec.masks is None:
        raise InputError(f"dataset {spec.name!r} carries no decisive-token ground truth")
    length = model.config.img_size[-1]
    seed = int(model.config.training.get("seed", 0))
    split = spec.load("test", img_size=(1, length), seed=seed)
    masks = spec.masks("test", seed, length)
    s = TextEvalSettings(samples=args.samples, seed=args.seed, n_samples=args.n_samples, ig_steps=args.ig_steps)
    report = evaluate_text(model, backbone, split, masks, s,
                           progress=lambda f: print(f"\r{f:.0%}", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    print(format_report(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0
