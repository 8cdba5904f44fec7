"""Cost of one text SOP explanation vs G masked backbone passes (issue 12's bar: <= 1.5 x).

    PYTHONPATH=. .venv/bin/python bench/bench_text.py --repeats 10

An SOP explanation is one SOP forward pass (GroupGen's token states + G group passes + GroupSelect).
The reference is G passes of the plain twin over the whole sentences (what a pixel-masking SOP, or
the authors' code, pays).  Prints the median times and the ratio; batch of test reviews, torch threads
as given.  Both wall time and the process's CPU time are reported: CPU time is far less disturbed by
other jobs on a shared machine; and the work itself, counted as (token, encoder layer) pairs the
transformer runs (padding included), which the machine's load cannot disturb.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import sop
from sop.data import load_split


def median_time(fn, repeats: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process) of `repeats` calls after a warm-up."""
    fn()   # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def token_layers(backbone, fn) -> int:
    """How many (token, encoder layer) pairs `fn` runs through `backbone` (a TextClassifier): the
    transformer's work, counted from the sequences its layers actually receive."""
    count = [0]
    run_layers = backbone.run_layers

    def counting(h, valid, start, stop):
        count[0] += h.shape[0] * h.shape[1] * len(backbone.bert.encoder.layer[start:stop])
        return run_layers(h, valid, start, stop)
    backbone.run_layers = counting
    try:
        fn()
    finally:
        del backbone.run_layers
    return count[0]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="assets/models/reviews_sop.safetensors")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model, twin, _ = sop.checkpoint.load_pair(a.model)
    x = load_split(model.config.dataset, "test", img_size=model.config.img_size).dataset.tensors[0][: a.batch]
    g = model.num_groups
    with torch.no_grad():
        t_sop = median_time(lambda: model(x), a.repeats)
        t_bb = median_time(lambda: twin(x), a.repeats)
        out = model(x)
        work_sop, work_bb = token_layers(model.backbone, lambda: model(x)), token_layers(twin, lambda: twin(x))
    size = float(((out.group_masks > 0).sum(-1)).float().mean())
    print(f"batch {a.batch}, G = {g}, mean group size {size:.1f} tokens, {a.threads} threads")
    print(f"work (token x layer passes, padding included; independent of the machine's load): SOP forward "
          f"{work_sop}, one twin pass {work_bb}; SOP explanation / (G backbone passes) = {work_sop / (g * work_bb):.2f}")
    for name, sop_s, bb_s in (("wall", t_sop[0], t_bb[0]), ("CPU", t_sop[1], t_bb[1])):
        print(f"{name}: SOP forward {1000 * sop_s:.1f} ms; one twin pass {1000 * bb_s:.1f} ms; "
              f"G twin passes {1000 * g * bb_s:.1f} ms; SOP explanation / (G backbone passes) = "
              f"{sop_s / (g * bb_s):.2f}  (goal <= 1.5)")


if __name__ == "__main__":
    main()
