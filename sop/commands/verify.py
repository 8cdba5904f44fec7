"""`python -m sop verify`: do a checkpoint's weights give (and does its command rebuild) what it records?"""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("verify", help="recompute a checkpoint's recorded test metrics (--quick) or retrain it "
                                      "from its recorded command and compare weights and metrics")
    p.add_argument("checkpoint", type=Path, nargs="+", help="*_sop.safetensors checkpoint(s)")
    p.add_argument("--quick", action="store_true", help="evaluate the shipped weights only (no retraining)")
    p.add_argument("--backbone", type=Path, help="the plain twin (default: the _backbone sibling)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..verification import full, quick
    failed = False
    for path in args.checkpoint:
        v = quick(path, args.backbone) if args.quick else full(path)
        print(v.format() + "\n", flush=True)
        failed |= not (v.weights_identical or (v.weights_identical is None and v.metrics_identical))
    return 1 if failed else 0
