"""Benchmark: the cost of SOP relative to its backbone, on the embedded default models.

Prints, per model:
  * forward ratio  = SOP forward time / time of G plain backbone passes (goal <= 1.3);
  * training ratio = SOP training step / backbone training step (goal <= G + 2);
  * peak resident memory of the process after the runs.
Run:  PYTHONPATH=. .venv/bin/python bench/bench_sop.py [--batch 64] [--repeats 20] [--models lensing,...]
Not a test: these machines are shared, so quote ratios measured in one run.
"""
from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time

import torch
import torch.nn.functional as F

import sop
from sop.data import load_split


def best_time(fn, repeats: int) -> float:
    """Median wall time of `fn` over `repeats` runs after two warm-up runs."""
    fn(), fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_model(entry, batch: int, repeats: int) -> dict:
    model = sop.load(entry.sop_path)
    backbone = sop.load(entry.backbone_path)
    x = load_split(model.config.dataset, "test").dataset.tensors[0][:batch]
    y = torch.zeros(len(x), dtype=torch.long)
    g = model.num_groups
    with torch.no_grad():
        sop_fwd = best_time(lambda: model(x), repeats)
        xg = x.repeat(g, 1, 1, 1)  # the G full-image passes a naive SOP would need
        bb_fwd_g = best_time(lambda: backbone(xg), repeats)

    def step(net, out_fn):
        net.train()
        loss = F.cross_entropy(out_fn(net(x)), y)
        loss.backward()
        net.zero_grad(set_to_none=True)

    sop_step = best_time(lambda: step(model, lambda o: o.logits), repeats)
    bb_step = best_time(lambda: step(backbone, lambda o: o), repeats)
    with torch.no_grad():
        model.eval()
        kept = float((model(x).group_masks > 0).sum(-1).float().mean())
    return dict(model=entry.name, G=g, batch=batch, patches=model.adapter.num_patches, mean_group_size=kept,
                sop_forward_ms=sop_fwd * 1e3, g_backbone_forward_ms=bb_fwd_g * 1e3,
                forward_ratio=sop_fwd / bb_fwd_g, sop_step_ms=sop_step * 1e3, backbone_step_ms=bb_step * 1e3,
                training_ratio=sop_step / bb_step)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--models", help="comma-separated embedded model names (default: every image-kind model)")
    args = ap.parse_args()
    wanted = set(args.models.split(",")) if args.models else None
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}")
    for entry in sop.embedded_models():
        if wanted is not None and entry.name not in wanted:
            continue
        r = bench_model(entry, args.batch, args.repeats)
        print(f"[{r['model']}] G={r['G']} batch={r['batch']} patches={r['patches']} "
              f"mean group size={r['mean_group_size']:.1f} patches")
        print(f"  forward: SOP {r['sop_forward_ms']:.1f} ms vs {r['G']} backbone passes "
              f"{r['g_backbone_forward_ms']:.1f} ms -> ratio {r['forward_ratio']:.2f} (goal <= 1.3)")
        print(f"  training step: SOP {r['sop_step_ms']:.1f} ms vs backbone {r['backbone_step_ms']:.1f} ms "
              f"-> ratio {r['training_ratio']:.2f} (goal <= G + 2 = {r['G'] + 2})")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
