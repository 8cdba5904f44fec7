"""Budget sweep: faithfulness per unit of compute (``python -m sop evaluate --budgets ...``).

Every *sampling* method (``get_method(m).samples``: LIME, KernelSHAP, RISE) runs at each
budget (its ``budget_setting``: ``n_samples`` / ``n_masks``); a method with a step count
(IG's ``n_steps``) runs at the same values as step counts, capped at ``ig_max_steps``;
the other methods (Occlusion, Grad-CAM) run once at their fixed cost; SOP is its own
point.  Each (method, budget) is scored by the evaluation's own code path
(`sop.evaluation.score_input`: the same inputs, curves, group sizes and the seconds of
`explain`), and its cost is counted in model passes per explanation as each method declares
it when it is registered (`register_method(passes=..., pass_rule=...)`; `count_rule()` collects
the rules in words, `COUNT_RULE` for the built-ins):

* passes are images through the model the method explains (the backbone twin by
  default), *including* the one forward pass `sop.explainers.explain` makes to find the
  predicted class for every method but SOP;
* sampling method at budget b: b + 1 forward;
* IG at n steps: n + 1 forward and n backward;
* Occlusion: one per window + 1 for the unoccluded input + 1 = windows + 2 forward;
* Grad-CAM: 2 forward + 1 backward;
* SOP: G + 1 backbone passes (one for the features GroupGen reads, one per group; its
  prediction is the same pass), an upper bound: a ViT adapter's GroupGen pass may stop
  before the last block and token dropping shortens the group passes;
* ``cost`` = forward + backward, a backward pass counted as one forward-equivalent (a
  convention: on these CPUs it costs about 1-2 forwards); ``seconds`` is the measured
  median wall time of `explain`, the other cost axis.

`pareto_front` marks the points no other point beats at lower-or-equal cost;
`pareto_chart` / `pareto_grid` draw AUC vs cost (plotly), `save_png` the same with
matplotlib when it is installed.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .checkpoint import checkpoint_name
from .errors import InputError
from .evaluation import EvalSettings, load_for_evaluation, mean_sem, sample_indices, score_input
from .explainers import explain, model_grid
from .methods import SAMPLING_PASSES, PassContext, get_method, list_methods, method_label

log = logging.getLogger(__name__)

CURVES = ("insertion", "deletion", "grouped_insertion", "grouped_deletion")
LOWER_IS_BETTER = frozenset({"deletion", "grouped_deletion"})
CURVE_LABELS = {"insertion": "insertion AUC", "deletion": "deletion AUC",
                "grouped_insertion": "grouped insertion AUC", "grouped_deletion": "grouped deletion AUC"}
COSTS = {"cost": "model passes per explanation (forward + backward)", "seconds": "seconds per explanation"}
IG_MAX_STEPS = 300
DEFAULT_BUDGETS = (9, 18, 36, 72, 144, 288, 1000)

_COUNT_UNIT = {"unit": "images through the explained model per explanation, including the one forward pass "
                       "explain() makes to find the predicted class (all methods but SOP)"}
_COUNT_COST = {"cost": "forward + backward (a backward pass counted as one forward-equivalent)"}


def count_rule(methods: Sequence[str] | None = None) -> dict[str, str]:
    """How passes are counted, from the methods' own declarations (`register_method(passes=,
    pass_rule=)`): {"unit", "sampling", <method>: rule..., "cost"}."""
    rules = dict(_COUNT_UNIT, sampling=SAMPLING_PASSES)
    for m in (list_methods() if methods is None else methods):
        info = get_method(m)
        if info.count_rule is not None and not (info.samples and info.passes is None):
            rules[m] = info.count_rule
    return {**rules, **_COUNT_COST}


COUNT_RULE = count_rule()


def parse_budgets(text: str) -> list[int]:
    """"9,18,36" -> [9, 18, 36] (sorted, distinct, each >= 1)."""
    try:
        budgets = sorted({int(b) for b in str(text).split(",") if b.strip()})
    except ValueError:
        raise InputError(f"--budgets takes a comma list of integers, got {text!r}") from None
    if not budgets or budgets[0] < 1:
        raise InputError(f"--budgets needs at least one budget, each at least 1, got {text!r}")
    return budgets


def sweep_plan(methods: Sequence[str], budgets: Sequence[int], method_settings: dict[str, dict] | None = None, *,
               ig_max_steps: int = IG_MAX_STEPS) -> list[tuple[str, int | None, dict]]:
    """[(method, budget or None, explain() settings)]: each sampling method at every budget, a
    stepped method (IG) at min(budget, ig_max_steps) (distinct values), the others once."""
    overrides = method_settings or {}
    plan = []
    for method in methods:
        info = get_method(method)
        base = dict(overrides.get(method, {}))
        if info.budget_setting is None:
            plan.append((method, None, base))
            continue
        values = budgets if info.samples else sorted({min(int(b), ig_max_steps) for b in budgets})
        for b in values:
            plan.append((method, int(b), {**base, info.budget_setting: int(b)}))
    return plan


def pass_count(method: str, settings: dict, *, grid: tuple[int, int], image_size: tuple[int, int],
               num_groups: int) -> dict:
    """{"forward", "backward", "cost"} model passes of one explanation, as the method declares them
    (`MethodInfo.pass_count`; None for a registered method that declares no count)."""
    counted = get_method(method).pass_count(settings, PassContext(grid=tuple(grid), image_size=tuple(image_size),
                                                                  num_groups=int(num_groups)))
    if counted is None:
        return dict(forward=None, backward=None, cost=None)
    fwd, bwd = counted
    return dict(forward=fwd, backward=bwd, cost=fwd + bwd)


def pareto_front(costs: Sequence[float], values: Sequence[float], *, higher_is_better: bool = True) -> list[bool]:
    """For each point, whether it is on the Pareto frontier: no other point costs at most as
    much and scores at least as well, strictly better in one of the two.  NaN points never are."""
    c = np.asarray(costs, dtype=float)
    v = np.asarray(values, dtype=float) * (1.0 if higher_is_better else -1.0)  # larger = better from here on
    ok = np.isfinite(c) & np.isfinite(v)
    front = []
    for i in range(len(c)):
        if not ok[i]:
            front.append(False)
            continue
        dominated = ok & (c <= c[i]) & (v >= v[i]) & ((c < c[i]) | (v > v[i]))
        front.append(not bool(dominated.any()))
    return front


def summarise(records: list[dict], plan, counts: dict) -> list[dict]:
    """One row per plan point: means (and SEMs) of the curve AUCs, median seconds, pass counts."""
    rows = []
    for method, budget, _ in plan:
        recs = [r for r in records if r["method"] == method and r["budget"] == budget]
        info = get_method(method)
        row = dict(method=method, label=method_label(method), budget=budget,
                   budget_setting=info.budget_setting if budget is not None else None,
                   **counts[(method, budget)])
        secs = [r["seconds"] for r in recs]
        row["seconds"] = float(np.median(secs)) if secs else float("nan")
        for k in CURVES:
            row[k], row[f"{k}_sem"] = mean_sem([r[k] for r in recs])
        rows.append(row)
    return mark_fronts(rows)


def mark_fronts(rows: list[dict]) -> list[dict]:
    """Set each row's ``front_<curve>`` (by passes) and ``front_<curve>_seconds`` flags in place
    (`pareto_front` over all rows); returns `rows`."""
    for cost in ("cost", "seconds"):
        for k in CURVES:
            flags = pareto_front([r[cost] if r.get(cost) is not None else float("nan") for r in rows],
                                 [r[k] if r.get(k) is not None else float("nan") for r in rows],
                                 higher_is_better=k not in LOWER_IS_BETTER)
            for r, f in zip(rows, flags):
                r[f"front_{k}" if cost == "cost" else f"front_{k}_seconds"] = f
    return rows


def budget_sweep(model: nn.Module, backbone: nn.Module | None, split, budgets: Sequence[int],
                 settings: EvalSettings | None = None, *, ig_max_steps: int = IG_MAX_STEPS,
                 progress: Callable[[str], None] | None = None) -> dict:
    """The sweep for one model: {"dataset", "rows": [one per (method, budget)], "per_input", "count_rule", ...}.

    `settings` as for `sop.evaluation.evaluate` (methods, samples, steps, baseline,
    baselines_on, seed, method_settings: the budget setting is the sweep's).  Each point is
    scored by `score_input` on the same seeded inputs.  `progress(method)` after each point.
    """
    s = settings or EvalSettings()
    budgets = sorted({int(b) for b in budgets})
    explained = backbone if (s.baselines_on == "backbone" and backbone is not None) else model
    plan = sweep_plan(s.methods, budgets, s.method_settings, ig_max_steps=ig_max_steps)
    indices = sample_indices(len(split.dataset), s.samples, s.seed)
    image_size = tuple(split.dataset[indices[0]][0].shape[-2:])
    counts = {(m, b): pass_count(m, st, grid=model_grid(model if m == "sop" else explained),
                                 image_size=image_size, num_groups=model.num_groups) for m, b, st in plan}
    records: list[dict] = []
    log.debug("budget sweep over %d inputs of %s: %d points", len(indices), split.info.name, len(plan))
    for i in indices:
        x, label = split.dataset[i]
        x = x.unsqueeze(0)
        e_sop = explain(model, x, "sop")  # once per input: every point's grouped curves and SOP's row use it
        for method, budget, ms in plan:
            point = dataclasses.replace(s, method_settings={method: ms})
            (rec,) = score_input(model, explained, x, [method], point, e_sop=e_sop)
            records.append(dict(index=int(i), label=int(label), budget=budget, **rec))
            if progress is not None:
                progress(method)
    rows = summarise(records, plan, counts)
    return dict(dataset=split.info.name, num_groups=model.num_groups, grid=list(model_grid(model)),
                samples=len(indices), budgets=budgets, ig_max_steps=ig_max_steps, count_rule=count_rule(s.methods),
                baselines_on="sop" if explained is model else "backbone", rows=rows, per_input=records,
                settings=dict(methods=list(s.methods), samples=s.samples, steps=s.steps, baseline=s.baseline,
                              seed=s.seed, method_settings=s.method_settings))


def sweep_checkpoint(sop_path, backbone_path=None, budgets: Sequence[int] = DEFAULT_BUDGETS,
                     settings: EvalSettings | None = None, *, ig_max_steps: int = IG_MAX_STEPS,
                     progress: Callable[[str], None] | None = None) -> dict:
    """`budget_sweep` for a checkpoint and its twin on its dataset's test split."""
    model, backbone, backbone_path, split, _, settings = load_for_evaluation(sop_path, backbone_path, settings)
    with torch.random.fork_rng(devices=[]):
        report = budget_sweep(model, backbone, split, budgets, settings, ig_max_steps=ig_max_steps,
                              progress=progress)
    report.update(checkpoint=str(sop_path), backbone=str(backbone_path) if backbone is not None else None)
    return report


def sop_frontier(report: dict, cost: str = "cost") -> list[str]:
    """The curve kinds for which SOP's point is on the frontier (by passes, or by seconds)."""
    suffix = "" if cost == "cost" else "_seconds"
    sop = [r for r in report["rows"] if r["method"] == "sop"]
    return [k for k in CURVES if sop and sop[0].get(f"front_{k}{suffix}")]


# --------------------------------------------------------------------------- stored sweeps

CURVE_NAMES = {"insertion": "insertion", "deletion": "deletion", "grouped_insertion": "grouped insertion",
               "grouped_deletion": "grouped deletion"}


def sweep_dirs() -> list[Path]:
    """Where `find_sweep` looks, in order: assets/budget (the embedded models' precomputed sweeps),
    then runs/budget under the current folder and under the repository root (`--out`'s usual value)."""
    from .zoo import ASSETS
    dirs = [ASSETS / "budget", Path.cwd() / "runs" / "budget", ASSETS.parent / "runs" / "budget"]
    out: list[Path] = []
    for d in dirs:
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def _same_file(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


def find_sweep(checkpoint, dirs: Sequence[Path] | None = None) -> dict | None:
    """The stored budget sweep (`sop evaluate --budgets ... --out DIR`) of an SOP checkpoint, or None.

    An embedded model's sweep ships as assets/budget/<name>_budget.json; any other sweep is
    taken from runs/budget/<name>_budget.json only if the report's ``checkpoint`` is this file
    (or names a file that no longer exists and has the same file name).  The report gets a
    ``"sweep_path"`` key: the JSON it was read from (relative to the repository root when under
    it, e.g. assets/budget/parts_budget.json).  Reads only: nothing is computed.
    """
    import json

    from .zoo import ASSETS, MODELS_DIR
    if not checkpoint:
        return None
    ckpt = Path(checkpoint)
    embedded = _same_file(ckpt.parent, MODELS_DIR) and ckpt.is_file()
    for d in (sweep_dirs() if dirs is None else [Path(d) for d in dirs]):
        path = d / f"{checkpoint_name(ckpt)}_budget.json"
        if not path.is_file():
            continue
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            log.warning("skipping unreadable budget sweep %s: %s", path, err)
            continue
        if not isinstance(report, dict) or not isinstance(report.get("rows"), list):
            continue
        recorded = report.get("checkpoint")
        if _same_file(d, ASSETS / "budget"):
            ok = embedded  # the shipped sweeps belong to the embedded models only
        else:
            rec = Path(str(recorded)) if recorded else None
            ok = rec is not None and (_same_file(rec, ckpt) or (not rec.exists() and rec.name == ckpt.name))
        if ok:
            try:
                report["sweep_path"] = path.resolve().relative_to(ASSETS.parent.resolve()).as_posix()
            except ValueError:
                report["sweep_path"] = str(path)
            return report
    return None


def sweep_command(checkpoint, budgets: Sequence[int] = DEFAULT_BUDGETS, samples: int = 20,
                  out: str = "runs/budget") -> str:
    """The command that computes (in minutes) the sweep `find_sweep` would then find for `checkpoint`."""
    import shlex
    return (f"python -m sop evaluate --model {shlex.quote(str(checkpoint))} --budgets "
            f"{','.join(map(str, budgets))} --samples {samples} --out {out}")


def _better(curve: str, a: float, b: float) -> bool:
    """Whether AUC `a` is strictly better than `b` on `curve`."""
    return a < b if curve in LOWER_IS_BETTER else a > b


def beaten_at(report: dict, curve: str, cost: str = "cost") -> dict | None:
    """The cheapest row (by `cost`) whose `curve` AUC is better than SOP's, or None (none is, or no SOP row)."""
    sop = [r for r in report["rows"] if r["method"] == "sop"]
    if not sop or sop[0].get(curve) is None:
        return None
    rows = [r for r in report["rows"] if r["method"] != "sop" and r.get(cost) is not None
            and r.get(curve) is not None and math.isfinite(r[curve]) and _better(curve, r[curve], sop[0][curve])]
    return min(rows, key=lambda r: (r[cost], r[curve] if curve in LOWER_IS_BETTER else -r[curve]), default=None)


def _join(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _point(row: dict) -> str:
    return row["label"] + (f" at {row['budget']}" if row.get("budget") is not None else "")


def sweep_reading(report: dict, curve: str | None = None, cost: str = "cost") -> str:
    """A plain reading of a sweep, from the data: the curve kinds for which SOP is on the Pareto
    frontier (`sop_frontier`) and those it is not, and, for `curve` if given, the cheapest point
    that beats SOP's AUC."""
    sop = [r for r in report["rows"] if r["method"] == "sop"]
    if not sop:
        return f"This sweep ({report.get('dataset', '?')}) has no SOP point."
    unit = "passes" if cost == "cost" else "s"
    spent = f"{sop[0]['cost']:g} passes" if cost == "cost" else f"{sop[0]['seconds']:.3g} s"
    on = sop_frontier(report, cost)
    off = [k for k in CURVES if k not in on]
    by = "by passes" if cost == "cost" else "by seconds"
    if on:
        text = (f"SOP ({spent} per explanation) is on the Pareto frontier ({by}) for "
                f"{_join([CURVE_NAMES[k] for k in on])} AUC: no other point of the sweep does at least as well for no more")
        text += f"; it is not for {_join([CURVE_NAMES[k] for k in off])}." if off else "."
    else:
        text = (f"SOP ({spent} per explanation) is not on the Pareto frontier ({by}) for any curve kind: "
                "some method scores at least as well for less.")
    if curve is not None:
        if curve not in CURVES:
            raise InputError(f"curve must be one of {CURVES}")
        best = beaten_at(report, curve, cost)
        mine = f"SOP's {CURVE_NAMES[curve]} AUC {sop[0][curve]:.3f}"
        if best is None:
            text += f" No point of the sweep beats {mine}."
        else:
            text += (f" The cheapest point that beats {mine} is {_point(best)} "
                     f"({best[cost]:.3g} {unit}, {best[curve]:.3f}).")
    n = report.get("samples")
    if n:
        text += f" Means over N = {n} test inputs."
    return text


# --------------------------------------------------------------------------- charts

def _axis_title(curve: str) -> str:
    return CURVE_LABELS[curve] + (" (lower is better ↓)" if curve in LOWER_IS_BETTER else " (higher is better ↑)")


def _traces(report: dict, curve: str, cost: str):
    """[(method, label, xs, ys, on_front)] per method in row order, points sorted by cost."""
    suffix = "" if cost == "cost" else "_seconds"
    out = []
    for method in dict.fromkeys(r["method"] for r in report["rows"]):
        rows = sorted((r for r in report["rows"] if r["method"] == method and r[cost] is not None),
                      key=lambda r: r[cost])
        if rows:
            out.append((method, rows[0]["label"], [r[cost] for r in rows], [r[curve] for r in rows],
                        [bool(r.get(f"front_{curve}{suffix}")) for r in rows],
                        [r["budget"] for r in rows]))
    return out


def _add_traces(fig, report: dict, curve: str, cost: str, row=None, col=None, legend: bool = True) -> None:
    import plotly.graph_objects as go
    kw = dict(row=row, col=col) if row is not None else {}
    for method, label, xs, ys, front, budgets in _traces(report, curve, cost):
        is_sop = method == "sop"
        text = [f"{label}" + (f" @ {b}" if b is not None else "") + (" (frontier)" if f else "")
                for b, f in zip(budgets, front)]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, name=label, legendgroup=method, showlegend=legend, text=text,
            hovertemplate="%{text}<br>cost %{x:.4g}<br>AUC %{y:.3f}<extra></extra>",
            mode="markers" if is_sop or len(xs) == 1 else "lines+markers",
            marker=dict(symbol="star" if is_sop else "circle", size=18 if is_sop else 8,
                        line=dict(width=[2 if f else 0 for f in front], color="black"))), **kw)


def pareto_chart(report: dict, curve: str, *, cost: str = "cost", title: str | None = None):
    """AUC vs cost for one curve kind: one trace per method (a line over its budgets), SOP a star
    marker, log x; points on the Pareto frontier outlined in black.  A plotly Figure."""
    import plotly.graph_objects as go
    if curve not in CURVES or cost not in COSTS:
        raise InputError(f"curve must be one of {CURVES} and cost one of {tuple(COSTS)}")
    fig = go.Figure()
    _add_traces(fig, report, curve, cost)
    fig.update_layout(title=title or f"{report['dataset']}: {CURVE_LABELS[curve]} vs cost", template="plotly_white",
                      xaxis=dict(type="log", title=COSTS[cost]), yaxis=dict(title=_axis_title(curve)),
                      legend=dict(title="method"))
    return fig


def pareto_grid(report: dict, *, cost: str = "cost"):
    """The four curve kinds' Pareto charts as one 2 x 2 plotly Figure (one legend)."""
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=2, cols=2, subplot_titles=[_axis_title(k) for k in CURVES],
                        horizontal_spacing=0.08, vertical_spacing=0.14)
    for n, curve in enumerate(CURVES):
        _add_traces(fig, report, curve, cost, row=n // 2 + 1, col=n % 2 + 1, legend=n == 0)
    fig.update_xaxes(type="log", title_text=COSTS[cost])
    fig.update_yaxes(title_text="AUC")
    fig.update_layout(title=f"{report['dataset']}: faithfulness vs cost (N = {report['samples']}; "
                            "black outline = on the Pareto frontier)",
                      template="plotly_white", height=800, width=1100)
    return fig


def save_png(report: dict, path, *, cost: str = "cost") -> bool:
    """The 2 x 2 grid as a PNG drawn with matplotlib; False (nothing written) if matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError:
        return False
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    for ax, curve in zip(axes.flat, CURVES):
        for method, label, xs, ys, front, _ in _traces(report, curve, cost):
            if method == "sop":
                ax.scatter(xs, ys, marker="*", s=260, color="black", zorder=5, label=label)
            else:
                ax.plot(xs, ys, marker="o", ms=5, label=label)
            fx = [x for x, f in zip(xs, front) if f]
            fy = [y for y, f in zip(ys, front) if f]
            ax.scatter(fx, fy, s=110, facecolors="none", edgecolors="black", linewidths=1.2, zorder=6)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(COSTS[cost])
        ax.set_title(_axis_title(curve), fontsize=10)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{report['dataset']}: faithfulness vs cost (N = {report['samples']}; "
                 "circled = on the Pareto frontier)")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


__all__ = ["CURVES", "LOWER_IS_BETTER", "COUNT_RULE", "DEFAULT_BUDGETS", "IG_MAX_STEPS", "parse_budgets",
           "sweep_plan", "pass_count", "pareto_front", "budget_sweep", "sweep_checkpoint", "sop_frontier",
           "mark_fronts", "find_sweep", "sweep_dirs", "sweep_command", "beaten_at", "sweep_reading",
           "pareto_chart", "pareto_grid", "save_png"]
