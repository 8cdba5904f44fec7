"""The empirical twin: train on data labelled by a polynomial, then measure explanations.

Data: all 2^d binary inputs x (shape (1, 1, d): a one-row "image" with one channel),
target p(x) for a monomial or binomial.  Two models learn it by regression (weighted
squared error, half plain and half class-balanced, so the few inputs with p(x) > 0 are
not drowned by the many with p(x) = 0); the model's output F(x) is its single logit
(num_classes = 1):

  * backbone: a small MLP, the plain twin that post-hoc methods explain;
  * SOP: the same MLP architecture wrapped by `sop.create_model(..., adapter="pixel",
    grid=(1, d))` and trained end to end (groups, selector and backbone).  Groups may
    cover any number of features (max_group_frac=None): the monomial needs all of them.

Every explanation is judged against the model it explains, at x = 1, with the error of
`sop.theory.attribution` (insertion + deletion over all 2^d subsets, l1 by default):

  * SOP's own explanation: its groups at x = 1 (the support of each mask) with scores
    c_g = s_g * (group_logit_g - F(0)), where s_g is the selector's score.  F(0) is the
    output with every feature removed, and sum_g c_g = F(1) - F(0) since scores sum to 1.
  * per-feature methods on either model: LIME and KernelSHAP (captum, baseline 0),
    Integrated Gradients (baseline 0), the exact Shapley value, and the LP optimum
    (`brute_force_lp` on the model's table): the best any per-feature method can do.

`TwinRow.mean` is the total error divided by the number of tests (2 * 2^d for 'both'),
i.e. the average gap per perturbed input in units of the output.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from .attribution import (Attribution, all_subsets, exact_grouped_attribution, shapley_values,
                          subset_inputs, test_names, total_error)
from .lp import brute_force_lp, pairing_bound
from .polynomials import features_of, make_polynomial


@dataclass
class TwinConfig:
    poly: str = "monomial"
    d: int = 6
    degree: int | None = None
    sizes: tuple[int, int, int] | None = None
    num_groups: int = 4
    hidden: int = 64
    steps: int = 1000
    lr: float = 1e-2
    seed: int = 0
    lime_samples: int = 200
    shap_samples: int = 200
    ig_steps: int = 50
    tests: str = "both"
    norm: str = "l1"


@dataclass
class TwinRow:
    model: str      # "SOP" or "backbone"
    method: str
    kind: str       # "grouped" or "per-feature"
    total: float
    mean: float     # total / number of tests (l1); the max itself for linf
    groups: int


@dataclass
class TwinReport:
    config: TwinConfig
    formula: str
    rows: list[TwinRow]
    fit: dict[str, float]            # max |F(x) - p(x)| over all 2^d inputs, per model
    pairing: dict[str, float]        # lp.pairing_bound per model ('both', l1 only)
    theory_min: float                # LP minimum for p itself
    sop_groups: list[tuple[tuple[int, ...], float]]  # (features, score c_g) at x = 1
    seconds: dict[str, float] = field(default_factory=dict)

    def row(self, model: str, method: str) -> TwinRow:
        return next(r for r in self.rows if r.model == model and r.method == method)

    def as_dict(self) -> dict:
        return asdict(self)


class TabularMLP(nn.Module):
    """MLP on a (B, 1, 1, d) input with timm's head interface.

    `forward_features` / `forward_head(pre_logits=True)` / `get_classifier` let SOP's
    pixel adapter use the hidden layer as each group's embedding, so the group selector
    sees what a group contains (a 1-d logit alone would be flattened by its LayerNorm).
    """

    def __init__(self, d: int, hidden: int = 64):
        super().__init__()
        self.num_features = hidden
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.head = nn.Linear(hidden, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return feats if pre_logits else self.head(feats)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@contextlib.contextmanager
def _one_thread():
    """Tiny models run fastest, and reproducibly, on one thread; restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def twin_data(poly) -> tuple[torch.Tensor, torch.Tensor]:
    """All 2^d binary inputs (row T = 1_T) as (2^d, 1, 1, d) and their targets p(x)."""
    x = subset_inputs(all_subsets(poly.d), poly.d)
    return torch.tensor(x, dtype=torch.float32).view(-1, 1, 1, poly.d), torch.tensor(poly(x), dtype=torch.float32)


def _loss_weights(y: torch.Tensor) -> torch.Tensor:
    """Half plain average, half class-balanced (each distinct target value gets the same
    total weight): the rare inputs with p(x) > 0 are learnt without neglecting the
    many zeros.  Weights sum to 1."""
    values, inverse, counts = torch.unique(y, return_inverse=True, return_counts=True)
    return 0.5 / len(y) + 0.5 / (counts[inverse].float() * len(values))


def _train(model: nn.Module, output, x: torch.Tensor, y: torch.Tensor, cfg: TwinConfig) -> float:
    w = _loss_weights(y)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    # Cosine decay to zero: at a constant rate Adam's last iterate keeps jittering by a few
    # hundredths, which is the size of the fit the tests ask for.
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    model.train()
    for _ in range(cfg.steps):
        loss = (w * (output(model, x) - y) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return loss.item()


def _backbone_out(model, x):
    return model(x).reshape(-1)


def _sop_out(model, x):
    return model(x).logits[:, 0]


def train_backbone(cfg: TwinConfig, poly) -> TabularMLP:
    torch.manual_seed(cfg.seed)
    model = TabularMLP(poly.d, cfg.hidden)
    _train(model, _backbone_out, *twin_data(poly), cfg)
    return model


def train_sop(cfg: TwinConfig, poly):
    from ..model import create_model
    torch.manual_seed(cfg.seed)
    d = poly.d
    model = create_model(TabularMLP(d, cfg.hidden), num_classes=1, img_size=(1, d), in_chans=1,
                         adapter="pixel", adapter_kwargs={"grid": (1, d)}, num_groups=cfg.num_groups,
                         max_group_frac=None, group_dim=16)
    _train(model, _sop_out, *twin_data(poly), cfg)
    return model


def _table(model, output, poly) -> np.ndarray:
    """F(1_T) for all 2^d subsets T: the model run on every binary input."""
    x, _ = twin_data(poly)
    with torch.no_grad():
        return output(model, x).double().numpy()


def sop_attribution(model, d: int) -> Attribution:
    """SOP's own explanation at x = 1 as a grouped attribution (see module docstring)."""
    with torch.no_grad():
        out = model(torch.ones(1, 1, 1, d))
        f0 = float(model(torch.zeros(1, 1, 1, d)).logits[0, 0])
    masks, scores, logits = out.group_masks[0], out.group_scores[0], out.group_logits[0, :, 0]
    groups, values = [], []
    for g in range(masks.shape[0]):
        if scores[g] > 0:  # sparsemax zeros: the group takes no part in the prediction
            groups.append(int(sum(1 << i for i in range(d) if masks[g, i] > 0)))
            values.append(float(scores[g]) * (float(logits[g]) - f0))
    return Attribution(tuple(groups), tuple(values), "grouped")


def _captum_attributions(forward, d: int, cfg: TwinConfig) -> dict[str, np.ndarray]:
    from captum.attr import IntegratedGradients, KernelShap, Lime
    one = torch.ones(1, d)
    runs = {
        "LIME": lambda: Lime(forward).attribute(one, baselines=0.0, n_samples=cfg.lime_samples),
        "KernelSHAP": lambda: KernelShap(forward).attribute(one, baselines=0.0, n_samples=cfg.shap_samples),
        "Integrated Gradients": lambda: IntegratedGradients(forward).attribute(
            one, baselines=torch.zeros_like(one), n_steps=cfg.ig_steps),
    }
    out = {}
    for name, run in runs.items():
        torch.manual_seed(cfg.seed)  # LIME / KernelSHAP sample coalitions
        out[name] = run().detach().double().numpy().reshape(-1)
    return out


def _rows_for(model_name: str, table: np.ndarray, forward, d: int, cfg: TwinConfig) -> list[TwinRow]:
    n_tests = len(test_names(cfg.tests)) * (1 << d) if cfg.norm == "l1" else 1
    alphas = _captum_attributions(forward, d, cfg)
    alphas["exact Shapley"] = shapley_values(table)
    alphas["best per-feature (LP)"] = brute_force_lp(table, d, cfg.tests, cfg.norm, certify_dual=False).alpha
    rows = []
    for name, alpha in alphas.items():
        e = total_error(table, Attribution.per_feature(alpha), d, cfg.tests, cfg.norm)
        rows.append(TwinRow(model_name, name, "per-feature", e, e / n_tests, d))
    return rows


def run_twin(cfg: TwinConfig | None = None) -> TwinReport:
    """Train both twins, explain them, and measure every explanation (seconds on CPU)."""
    cfg = cfg or TwinConfig()
    poly = make_polynomial(cfg.poly, cfg.d, degree=cfg.degree, sizes=cfg.sizes)
    d = poly.d
    n_tests = len(test_names(cfg.tests)) * (1 << d) if cfg.norm == "l1" else 1
    seconds = {}
    with _one_thread():
        t = time.perf_counter()
        backbone = train_backbone(cfg, poly)
        seconds["train backbone"] = time.perf_counter() - t
        t = time.perf_counter()
        sop = train_sop(cfg, poly)
        seconds["train SOP"] = time.perf_counter() - t
        t = time.perf_counter()
        truth = poly(subset_inputs(all_subsets(d), d))
        tables = {"backbone": _table(backbone, _backbone_out, poly), "SOP": _table(sop, _sop_out, poly)}
        forwards = {"backbone": lambda z: _backbone_out(backbone, z.view(-1, 1, 1, d)),
                    "SOP": lambda z: _sop_out(sop, z.view(-1, 1, 1, d))}
        groups = sop_attribution(sop, d)
        e = total_error(tables["SOP"], groups, d, cfg.tests, cfg.norm)
        rows = [TwinRow("SOP", "SOP groups", "grouped", e, e / n_tests, len(groups.groups))]
        mob = exact_grouped_attribution(tables["backbone"], tol=1e-6)
        e = total_error(tables["backbone"], mob, d, cfg.tests, cfg.norm)
        rows.append(TwinRow("backbone", "Mobius groups (all interactions)", "grouped", e, e / n_tests, len(mob.groups)))
        for name in ("SOP", "backbone"):
            rows += _rows_for(name, tables[name], forwards[name], d, cfg)
        seconds["explain + measure"] = time.perf_counter() - t
    both_l1 = test_names(cfg.tests) == ("insertion", "deletion") and cfg.norm == "l1"
    return TwinReport(
        config=cfg, formula=poly.describe(), rows=rows,
        fit={k: float(np.max(np.abs(v - truth))) for k, v in tables.items()},
        pairing={k: pairing_bound(v, d) for k, v in tables.items()} if both_l1 else {},
        theory_min=brute_force_lp(poly, d, cfg.tests, cfg.norm, certify_dual=False).value,
        sop_groups=[(features_of(g), c) for g, c in zip(groups.groups, groups.scores)],
        seconds=seconds)


def format_report(rep: TwinReport) -> str:
    """Plain-text table of a twin run."""
    cfg = rep.config
    lines = [f"empirical twin: p(x) = {rep.formula}  (d = {cfg.d}, seed {cfg.seed}, {cfg.steps} steps, "
             f"{cfg.num_groups} SOP groups; tests {cfg.tests}, {cfg.norm})",
             f"fit, max |F(x) - p(x)| over all {1 << cfg.d} inputs: "
             + ", ".join(f"{k} {v:.2g}" for k, v in rep.fit.items()),
             f"best per-feature error for p itself (LP): {rep.theory_min:.4g}"
             + ("; pairing lower bound for the trained models: "
                + ", ".join(f"{k} {v:.4g}" for k, v in rep.pairing.items()) if rep.pairing else ""),
             "SOP groups at x = 1 (features: score): "
             + "; ".join(f"{{{','.join(map(str, f))}}}: {c:.3f}" for f, c in rep.sop_groups),
             "",
             f"{'model':>9}  {'explanation':<34} {'kind':<11} {'groups':>6} {'total error':>12} {'mean/test':>10}"]
    for r in rep.rows:
        lines.append(f"{r.model:>9}  {r.method:<34} {r.kind:<11} {r.groups:>6} {r.total:12.4g} {r.mean:10.3g}")
    lines.append("")
    lines.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in rep.seconds.items()))
    return "\n".join(lines)
