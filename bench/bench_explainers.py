"""Seconds per explanation for every method, and what an insertion/deletion call costs.

    .venv/bin/python bench/bench_explainers.py [--model assets/models/digits_sop.safetensors]

1. Every method explains the same test input at its default settings; SOP runs on the
   SOP model, the baselines on its backbone twin (the same backbone SOP wraps).  The
   fastest wall time of `--repeats` runs (after one warm-up) and its ratio to SOP's
   are printed.  Goal: SOP >= 50x faster than KernelSHAP and LIME.
2. Curve cost ratio: time of `insertion_deletion` (pixel mode, both curves) divided by
   the time of just its forward passes (the same perturbed inputs, same batches).
   Goal: <= 2 for the default "zero" baseline.

Not a test: timings depend on the machine and on whatever else it runs.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import sop
from sop.data import load_split
from sop.evaluation import twin_path
from sop.explainers import METHODS, default_settings, explain, model_grid
from sop.faithfulness import BASELINES, DEFAULT_STEPS, cumulative_sets, insertion_deletion, perturb, \
    target_probabilities


def best_time(fn, repeats: int) -> float:
    """Fastest of `repeats` runs after a warm-up: on a shared machine the minimum is the
    run least disturbed by other jobs, so it is the closest to the method's own cost."""
    fn()  # warm-up: lazy imports, allocator, first-call overheads
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_methods(model, backbone, x, repeats: int) -> dict[str, float]:
    results = {}
    for method in METHODS:
        on = model if method == "sop" else backbone
        results[method] = best_time(lambda: explain(on, x, method), repeats)
    return results


def bench_curve(model, x, explanation, baseline: str, repeats: int, steps: int = DEFAULT_STEPS,
                batch_size: int = 64) -> tuple[float, float, int]:
    """(seconds of insertion_deletion, seconds of its forward passes alone, forward samples)."""
    full = best_time(lambda: insertion_deletion(model, x, explanation, steps=steps, baseline=baseline,
                                                  batch_size=batch_size), repeats)
    sets = cumulative_sets(explanation, "pixel", steps, model_grid(model))
    inputs = perturb(x, torch.cat([sets, ~sets]), baseline, grid=model_grid(model))
    forward = best_time(lambda: target_probabilities(model, inputs, batch_size), repeats)
    return full, forward, len(inputs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(__file__).resolve().parent.parent / "assets/models/digits_sop.safetensors"
    p.add_argument("--model", type=Path, default=default, help="SOP checkpoint (twin: its _backbone sibling)")
    p.add_argument("--backbone", type=Path)
    p.add_argument("--index", type=int, default=0, help="test input to explain")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2,
                   help="torch CPU threads; on a busy shared machine 1 is often faster")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = sop.load(args.model)
    backbone = sop.load(args.backbone or twin_path(args.model))
    x = load_split(model.config.dataset, "test").dataset[args.index][0].unsqueeze(0)
    print(f"# {args.model.name} (+ twin), input {args.index} of the {model.config.dataset} test split, "
          f"{torch.get_num_threads()} threads, best of {args.repeats} after a warm-up\n")

    secs = bench_methods(model, backbone, x, args.repeats)
    print("| method | model | settings | s / explanation | × SOP's time |")
    print("|---|---|---|---:|---:|")
    for method, s in secs.items():
        settings = {k: v for k, v in default_settings(method).items() if k in ("n_samples", "n_steps", "n_masks")}
        desc = ", ".join(f"{k}={v}" for k, v in settings.items()) or "-"
        print(f"| {method} | {'sop' if method == 'sop' else 'backbone'} | {desc} | {s:.4f} | {s / secs['sop']:.1f} |")
    for method in ("lime", "kernelshap"):
        ratio = secs[method] / secs["sop"]
        print(f"\nSOP vs {method}: {ratio:.0f}x faster (goal >= 50x): {'met' if ratio >= 50 else 'NOT met'}", end="")
    print("\n")

    print("| curves on | baseline | forward samples | insertion_deletion s | forward passes s | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    exp_sop = explain(model, x, "sop")
    exp_bb = explain(backbone, x, "gradcam")
    for name, on, exp in (("sop", model, exp_sop), ("backbone", backbone, exp_bb)):
        for baseline in BASELINES:
            full, fwd, n = bench_curve(on, x, exp, baseline, args.repeats)
            print(f"| {name} | {baseline} | {n} | {full:.4f} | {fwd:.4f} | {full / fwd:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
