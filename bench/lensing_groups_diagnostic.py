"""Issue 13 diagnostic: where the lensing SOP model loses accuracy against its twin.

On the 512 test maps it prints test R2 (Omega_m, sigma_8) of
  * the SOP model, its score-weighted sum without the gates, the plain mean of its groups'
    predictions, and each group alone (what the sum is made of);
  * how much its groups overlap (mean share of a group's patches that another group also holds)
    and how often each patch is in a group (a patch in all groups or in none: one repeated view);
  * the frozen twin reading (a) the whole map, (b) the SOP's groups, (c) random masks of half, three
    quarters and the groups' share of the patches, one mask and the mean over 8, (d) two complementary halves --
    through the SOP model's own adapter (token dropping for a ViT, pixel masking otherwise), so
    these are what a half or three quarters of a map can tell a model never trained on parts.

    PYTHONPATH=. python bench/lensing_groups_diagnostic.py [--model assets/models/lensing_sop.safetensors]
"""
from __future__ import annotations

import argparse

import torch

from sop.adapters import get_adapter
from sop.checkpoint import load, twin_path
from sop.data import load_split
from sop.regression import r2_rmse, to_physical


def random_masks(b: int, g: int, n: int, k: int) -> torch.Tensor:
    """(b, g, n) 0/1 masks, each keeping k patches drawn at random."""
    idx = torch.rand(b, g, n).argsort(-1)[..., :k]
    return torch.zeros(b, g, n).scatter_(-1, idx, 1.0)


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="assets/models/lensing_sop.safetensors")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = load(args.model).eval()
    cfg = model.config
    twin = load(twin_path(args.model)).eval()
    # The twin behind an adapter of the SOP model's own kind (and settings): groups are read the same way.
    adapter = get_adapter(model.adapter.adapter_name).build(twin, cfg).eval()
    x, y = load_split(cfg.dataset, "test").dataset.tensors
    true = y.double().numpy()

    def r2(pred: torch.Tensor) -> list[float]:
        return [round(float(v), 3) for v in r2_rmse(to_physical(pred, cfg).numpy(), true)[0]]

    def batched(fn):
        return torch.cat([fn(x[i:i + 64], i) for i in range(0, len(x), 64)])

    out = [model(x[i:i + 64]) for i in range(0, len(x), 64)]
    cat = lambda f: torch.cat([getattr(o, f) for o in out])   # noqa: E731
    scores, group_logits, masks = cat("group_scores"), cat("group_logits"), cat("group_masks")
    g, n = masks.shape[1:]
    print(f"SOP model: {r2(cat('logits'))}")
    print(f"  score-weighted sum without gates: {r2(torch.einsum('bg,bgk->bk', scores, group_logits))}")
    print(f"  mean of the {g} groups' predictions: {r2(group_logits.mean(1))}")
    print(f"  each group alone: {[r2(group_logits[:, i]) for i in range(g)]}")
    size = int(round(float((masks > 0).float().sum(-1).mean())))
    shared = (masks.unsqueeze(2) * masks.unsqueeze(1)).sum(-1) / masks.sum(-1, keepdim=True).clamp(min=1)
    overlap = float(((shared.sum((1, 2)) - g) / (g * (g - 1))).mean())
    freq = masks.mean(1).flatten()
    print(f"  groups keep {size} of {n} patches; mean pairwise overlap {overlap:.3f}; patches in every group "
          f"{float((freq == 1).float().mean()):.3f}, in none {float((freq == 0).float().mean()):.3f}")

    def twin_on(m: torch.Tensor) -> torch.Tensor:
        return batched(lambda xb, i: adapter.forward_groups(xb, m[i:i + len(xb)])[1])

    print(f"twin, whole map: {r2(twin(x))}")
    on_groups = twin_on(masks)
    print(f"twin on the SOP's groups: one {r2(on_groups[:, 0])}, mean over groups {r2(on_groups.mean(1))}")
    for k in sorted({n // 2 + 1, round(0.75 * n), size}):   # half, three quarters, the groups' size
        rand = twin_on(random_masks(len(x), 8, n, k))
        print(f"twin on random {k}-patch masks: one {r2(rand[:, 0])}, mean of 8 {r2(rand.mean(1))}")
    half = random_masks(len(x), 1, n, n // 2 + 1)
    halves = twin_on(torch.cat([half, 1 - half], 1))
    print(f"twin on two complementary halves: one {r2(halves[:, 0])}, mean of the two {r2(halves.mean(1))}")


if __name__ == "__main__":
    main()
