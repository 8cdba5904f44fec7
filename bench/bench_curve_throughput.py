"""What one step of an insertion/deletion curve costs, against the forward passes it needs.

    .venv/bin/python bench/bench_curve_throughput.py [--repeats 3] [--fine] [--threads 2]

Model: a generated `vit_small_patch16_224` SOP (G = 20, 10 classes, random init, no download,
made as bench/bench_app_latency.py makes its checkpoint), input: a 640x427 photo-like image read
with `sop.image_io.load_image`.  For each schedule (pixel-wise at 4 and 16 steps, grouped; with
`--fine` also 196 one-patch steps, once) it times `insertion_deletion` (both curves, zero
baseline, the library's default batch size) and, in the same run, the forward passes that call
needs: `model(x_i)` for every distinct perturbed input x_i, one at a time (batch 1, inference
mode).  Printed per schedule:

* curve ÷ needed passes: the runner's cost over the passes it cannot avoid (goal <= 1.1);
* per step ÷ one forward on x: the cost of one curve step (2 (S + 1) inputs per call) over one
  SOP forward pass on the unperturbed input.

Costs are CPU seconds of this process (`time.process_time`, all threads), which other jobs on a
shared machine disturb far less than wall time; the wall time of the curve pair is printed too.
The lowest of `--repeats` runs of each; the two timings of a repeat are taken back to back.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

import sop
from sop.explainers import explain, model_grid
from sop.faithfulness import cumulative_sets, default_batch_size, insertion_deletion, memo_key, perturb
from sop.image_io import image_to_tensor, load_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_app_latency import photo, vit_small_sop  # noqa: E402  (the same image and model)


def seconds(fn) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of fn()."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - t0


def distinct_inputs(model, x, exp, mode: str, steps: int) -> torch.Tensor:
    """The distinct perturbed inputs of one insertion/deletion call (what it must evaluate)."""
    sets = cumulative_sets(exp, mode, steps, model_grid(model))
    kept = torch.cat([sets, ~sets])
    first = {}
    for i, k in enumerate(kept):
        first.setdefault(memo_key(k, "zero"), i)
    return perturb(x, kept[list(first.values())], "zero")


def needed_passes(model, inputs: torch.Tensor) -> float:
    """CPU seconds of one SOP forward pass per input, one input at a time."""
    with torch.inference_mode():
        return seconds(lambda: [model(inputs[i:i + 1]) for i in range(len(inputs))])[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fine", action="store_true", help="also the 196-step one-patch schedule (once)")
    ap.add_argument("--fine-only", action="store_true", help="only the 196-step schedule")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 = CPU time undisturbed by idle "
                    "threads spinning on a busy machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = vit_small_sop()
    cfg = model.config
    img = load_image(photo(Path(tempfile.mkdtemp(prefix="sop_curves_")) / "photo.jpg"), mode="RGB")
    x = image_to_tensor(img, img_size=cfg.img_size, mean=cfg.mean, std=cfg.std, in_chans=cfg.in_chans)
    exp = explain(model, x, "sop")
    with torch.inference_mode():
        model(x)  # warm-up
        fwd = min(seconds(lambda: model(x))[0] for _ in range(5))
    schedules = [("pixel", 4), ("pixel", 16), ("grouped", None)]
    if args.fine or args.fine_only:
        schedules = ([] if args.fine_only else schedules) + [("pixel", 14 * 14)]
    print(f"vit_small_patch16_224 SOP, G = {cfg.num_groups}, torch threads {torch.get_num_threads()}, "
          f"batch size {default_batch_size(model)}; one SOP forward pass on x: {fwd * 1000:.0f} ms CPU\n")
    print("| schedule | inputs (distinct) | curve pair, CPU (wall) | needed passes, CPU | curve ÷ needed "
          "| per step ÷ one forward |")
    print("|---|---|---|---|---|---|")
    for mode, steps in schedules:
        inputs = distinct_inputs(model, x, exp, mode, steps or 0)
        repeats = 1 if steps and steps > 16 else args.repeats
        best_curve = best_needed = wall = float("inf")
        for _ in range(repeats):
            cpu, w = seconds(lambda: insertion_deletion(model, x, exp, mode=mode, steps=steps or 0))
            if cpu < best_curve:
                best_curve, wall = cpu, w
            best_needed = min(best_needed, needed_passes(model, inputs))
        n = 2 * len(cumulative_sets(exp, mode, steps or 0, model_grid(model)))
        name = f"pixel, {steps} steps" if mode == "pixel" else f"grouped, {n // 2 - 1} steps"
        print(f"| {name} | {n} ({len(inputs)}) | {best_curve:.2f} s ({wall:.2f} s) | {best_needed:.2f} s | "
              f"{best_curve / best_needed:.2f} | {best_curve / n / fwd:.2f} |", flush=True)


if __name__ == "__main__":
    main()
