"""`python -m sop evaluate`: SOP vs post-hoc explainers, one table per checkpoint."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

DEFAULT_SAMPLES = 50


def register(sub) -> None:
    from ..faithfulness import BASELINES, DEFAULT_BASELINE, DEFAULT_STEPS
    from ..methods import list_methods
    p = sub.add_parser("evaluate", help="faithfulness (insertion/deletion), localisation against ground-truth "
                                        "masks (pointing game, mass and rank accuracy, IoU) and speed of SOP "
                                        "and the baseline explainers, side by side")
    p.add_argument("--model", type=Path, nargs="+",
                   help="SOP checkpoint(s) (*_sop.safetensors); default: every embedded model")
    p.add_argument("--backbone", type=Path,
                   help="plain twin checkpoint the baselines explain (default: the _backbone sibling)")
    p.add_argument("--methods", default="all", help=f"'all' or a comma list of: {','.join(list_methods())}")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="test inputs explained per model")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="pixel-wise insertion/deletion steps")
    p.add_argument("--baseline", choices=BASELINES, default=DEFAULT_BASELINE, help="removal baseline")
    p.add_argument("--baselines-on", choices=("backbone", "sop"), default="backbone",
                   help="model the baseline explainers explain and are scored on")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="override an explainer setting, e.g. --set lime.n_samples=200 (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled test inputs")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (default: torch's choice); 1 is often faster on a busy shared machine")
    p.add_argument("--budgets", metavar="B,B,...",
                   help="budget sweep instead of the report: every sampling method at each budget (samples / "
                        "masks), IG at the same step counts (capped by --ig-max-steps), the other methods and SOP "
                        "once; writes <name>_budget.csv/.json/.html (and .png with matplotlib), e.g. "
                        "--budgets 9,18,36,72,144,288,1000")
    p.add_argument("--ig-max-steps", type=int, default=300, help="cap on IG's step count in a budget sweep")
    p.add_argument("--out", type=Path, default=Path("runs/evaluation"),
                   help="folder for <name>.csv and <name>.json")
    p.set_defaults(func=run)


def parse_methods(text: str) -> list[str]:
    from ..errors import InputError
    from ..methods import list_methods
    known = list_methods()
    if text.strip() == "all":
        return known
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise InputError(f"unknown method(s) {unknown}; choose 'all' or from {', '.join(known)}")
    return methods


def parse_overrides(items: list[str]) -> dict[str, dict]:
    """["lime.n_samples=200"] -> {"lime": {"n_samples": 200}} (values parsed as numbers when they are)."""
    import json

    from ..errors import InputError
    from ..explainers import default_settings
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not (sep and dot):
            raise InputError(f"--set takes METHOD.KEY=VALUE, got {item!r}")
        default_settings(method)  # validates the method name
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(method, {})[name] = parsed
    return out


def write_outputs(report: dict, out: Path, name: str) -> tuple[Path, Path]:
    import csv
    import json
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / f"{name}.csv", out / f"{name}.json"
    keys = list(dict.fromkeys(k for row in report["rows"] for k in row))
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["dataset", *keys])
        writer.writeheader()
        for row in report["rows"]:
            writer.writerow({"dataset": report["dataset"], **row})
    json_path.write_text(json.dumps(_clean(report), indent=2, allow_nan=False) + "\n")
    return csv_path, json_path


def _clean(v):
    """JSON-safe copy: NaN (a metric with no sample, e.g. IoU without positives) -> null."""
    import math
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if hasattr(v, "tolist"):
        return _clean(v.tolist())
    if v is None or isinstance(v, (int, str, bool)):
        return v
    return str(v)


def command_line(args, models) -> str:
    """The equivalent command with every setting explicit (recorded in the JSON)."""
    parts = ["python -m sop evaluate", "--model", *map(str, models)]
    if args.backbone is not None:
        parts += ["--backbone", str(args.backbone)]
    parts += ["--methods", args.methods, "--samples", str(args.samples), "--steps", str(args.steps),
              "--baseline", args.baseline, "--baselines-on", args.baselines_on, "--seed", str(args.seed)]
    if args.threads is not None:
        parts += ["--threads", str(args.threads)]
    for item in args.set:
        parts += ["--set", item]
    if getattr(args, "budgets", None):
        parts += ["--budgets", args.budgets, "--ig-max-steps", str(args.ig_max_steps)]
    parts += ["--out", str(args.out)]
    return " ".join(shlex.quote(p) if i else p for i, p in enumerate(parts))


def run(args) -> int:
    from tqdm import tqdm

    from ..checkpoint import checkpoint_name
    from ..errors import InputError
    from ..evaluation import EvalSettings, evaluate_checkpoint
    from ..zoo import embedded_models
    from ._evaluate_report import format_parameter_table, format_summary, format_table
    models = args.model or [m.sop_path for m in embedded_models()]
    if not models:
        raise InputError("no --model given and no embedded models found under assets/models")
    if args.backbone is not None and len(models) > 1:
        raise InputError("--backbone names one twin: use it with a single --model")
    if args.samples < 1 or args.steps < 1:
        raise InputError("--samples and --steps must be at least 1")
    methods = parse_methods(args.methods)
    if args.threads is not None:
        import torch
        torch.set_num_threads(max(1, args.threads))
    settings = EvalSettings(methods=methods, samples=args.samples, steps=args.steps, baseline=args.baseline,
                            baselines_on=args.baselines_on, seed=args.seed,
                            method_settings=parse_overrides(args.set))
    command = command_line(args, models)
    if args.budgets:
        return run_sweep(args, models, settings, command)
    for path in models:
        name = checkpoint_name(path)
        bar = tqdm(total=args.samples * len(methods), desc=f"evaluate {name}", file=sys.stderr,
                   dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 5.0)

        def tick(method: str, bar=bar) -> None:
            bar.set_postfix(method=method)
            bar.update(1)

        report = evaluate_checkpoint(path, args.backbone, settings, progress=tick)
        bar.close()
        report["command"] = command
        csv_path, json_path = write_outputs(report, args.out, name)
        per_parameter = format_parameter_table(report)
        per_parameter = f"\n\nPer parameter:\n\n{per_parameter}" if per_parameter else ""
        print(f"\n## {name}\n\n{format_summary(report)}\n\n{format_table(report)}{per_parameter}\n\n"
              f"(wrote {csv_path}, {json_path})", flush=True)
    return 0


def write_sweep(report: dict, out: Path, name: str) -> list[Path]:
    """<name>_budget.csv (one row per method and budget), .json (the report), .html (the Pareto charts,
    plotly.js from its CDN) and .png (matplotlib, when installed)."""
    import csv
    import json

    from ..budget import pareto_grid, save_png
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{name}_budget"
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".json"), stem.with_suffix(".html")]
    keys = list(dict.fromkeys(k for row in report["rows"] for k in row))
    with paths[0].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["dataset", *keys])
        writer.writeheader()
        for row in report["rows"]:
            writer.writerow({"dataset": report["dataset"], **row})
    paths[1].write_text(json.dumps(_clean(report), indent=2, allow_nan=False) + "\n")
    pareto_grid(report).write_html(paths[2], include_plotlyjs="cdn", full_html=True)
    if save_png(report, stem.with_suffix(".png")):
        paths.append(stem.with_suffix(".png"))
    return paths


def run_sweep(args, models, settings, command: str) -> int:
    from tqdm import tqdm

    from ..budget import parse_budgets, sop_frontier, sweep_checkpoint, sweep_plan
    from ..checkpoint import checkpoint_name
    from ..errors import InputError
    from ._evaluate_report import format_sweep_summary, format_sweep_table
    budgets = parse_budgets(args.budgets)
    if args.ig_max_steps < 1:
        raise InputError("--ig-max-steps must be at least 1")
    points = len(sweep_plan(settings.methods, budgets, settings.method_settings, ig_max_steps=args.ig_max_steps))
    for path in models:
        name = checkpoint_name(path)
        bar = tqdm(total=args.samples * points, desc=f"budget sweep {name}", file=sys.stderr,
                   dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 5.0)

        def tick(method: str, bar=bar) -> None:
            bar.set_postfix(method=method)
            bar.update(1)

        report = sweep_checkpoint(path, args.backbone, budgets, settings, ig_max_steps=args.ig_max_steps,
                                  progress=tick)
        bar.close()
        report["command"] = command
        paths = write_sweep(report, args.out, name)
        summary = format_sweep_summary(report, sop_frontier(report), sop_frontier(report, "seconds"))
        print(f"\n## {name}: budget sweep\n\n{summary}\n\n{format_sweep_table(report)}\n\n"
              f"(wrote {', '.join(map(str, paths))})", flush=True)
    return 0
