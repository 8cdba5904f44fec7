"""Issue 13 diagnostic: how much does the lensing twin lose when it sees only a group, and does
averaging its feature map over the kept positions only (`PixelMaskAdapter(pool="kept")`) recover it?

The shipped twin (never trained on masked maps) predicts (Omega_m, sigma_8) on the 512 test maps
from (a) the whole map, (b) each of the shipped SOP model's 8 groups alone (its GroupGen's hard
masks, 61 of 121 patches each) and (c) random 61-patch masks, with the plain head (global average
over the whole 2x2 feature map) and with the kept pool.  Prints test R2 per parameter.

    PYTHONPATH=. python bench/lensing_pool_diagnostic.py
"""
from __future__ import annotations

import torch

from sop.adapters import PixelMaskAdapter
from sop.checkpoint import load
from sop.data import load_split
from sop.regression import r2_rmse, to_physical


@torch.no_grad()
def main() -> None:
    torch.manual_seed(0)
    twin = load("assets/models/lensing_backbone.safetensors").eval()
    sop_model = load("assets/models/lensing_sop.safetensors").eval()
    cfg = sop_model.config
    x, y = load_split("lensing", "test").dataset.tensors
    true = y.double().numpy()
    kw = dict(img_size=(66, 66), in_chans=1, grid=(11, 11))
    adapters = {pool: PixelMaskAdapter(twin, pool=pool, **kw).eval() for pool in ("full", "kept")}

    def r2_of(pool: str, masks: torch.Tensor) -> str:
        """Mean over groups of the twin's test R2 per parameter, each group seen alone, and the
        mean bias (prediction - truth, physical units)."""
        out = torch.cat([adapters[pool].forward_groups(x[i:i + 64], masks[i:i + 64])[1]
                         for i in range(0, len(x), 64)])                 # (N, G, P) standardised
        pred = [to_physical(out[:, g], cfg).numpy() for g in range(out.shape[1])]
        r2 = sum(r2_rmse(p, true)[0] for p in pred) / len(pred)
        bias = sum((p - true).mean(0) for p in pred) / len(pred)
        return f"R2 {[round(float(v), 3) for v in r2]} bias {[round(float(v), 3) for v in bias]}"

    print("whole map:", [round(float(v), 3) for v in r2_rmse(to_physical(twin(x), cfg).numpy(), true)[0]])
    groups = torch.cat([sop_model.groups(x[i:i + 64]) for i in range(0, len(x), 64)])
    rand = torch.zeros(len(x), 8, 121)
    idx = torch.rand(len(x), 8, 121).argsort(-1)[..., :61]
    rand.scatter_(-1, idx, 1.0)
    for name, masks in [("SOP's groups", groups), ("random 61 patches", rand)]:
        print(f"{name} (kept {float((masks > 0).float().sum(-1).mean()):.1f} of 121 patches):",
              "full pool", r2_of("full", masks), "| kept pool", r2_of("kept", masks))


if __name__ == "__main__":
    main()
