"""`python -m sop lensing-study`: what voids and clusters inside SOP's groups say about Omega_m and sigma_8."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("lensing-study", help="over the lensing test maps: the score-weighted share of voids and "
                                             "clusters inside SOP's selected groups against their share of the "
                                             "sky, and how void- and cluster-dominated groups pull each parameter")
    p.add_argument("--model", default="lensing", help="an embedded model's name or a regression *_sop checkpoint")
    p.add_argument("--split", default="test", choices=("test", "val", "train"))
    p.add_argument("--samples", type=int, help="first N maps of the split (default: all)")
    p.add_argument("--out", type=Path, default=Path("runs/lensing-study"),
                   help="folder for study.json and study.png / study.pdf")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from ..checkpoint import load
    from ..data import load_split
    from ..errors import InputError
    from ..lensing_study import format_study, save_plots, study
    from .figure import resolve_model
    path = resolve_model(args.model)
    model = load(path)
    if getattr(model.config, "task", None) != "regression" or not hasattr(model, "group_gen"):
        raise InputError(f"{path.name} is not a regression SOP model; the study needs one (e.g. --model lensing)")
    split = load_split(model.config.dataset, args.split, seed=int(model.config.training.get("seed", 0)))
    report = study(model, split, args.samples)
    report.update(checkpoint=str(path), split=args.split)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "study.json").write_text(json.dumps(report, indent=2) + "\n")
    for suffix in (".png", ".pdf"):
        save_plots(report, args.out / f"study{suffix}")
    print(format_study(report))
    print(f"\n(wrote {args.out / 'study.json'}, study.png, study.pdf)")
    return 0
