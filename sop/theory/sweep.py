"""Per-feature vs grouped error as d grows: the rows of `python -m sop theory` and its plot.

For each d the row holds, for the chosen polynomial, tests and norm:
  per_feature  E* from the symmetry-reduced LP (the error of the best per-feature alpha,
               recomputed from the LP rows)
  bound        the certified lower bound from an exactly feasible dual point
  measured     E(alpha*) re-measured by `total_error` over all 2^d subsets (by symmetry
               classes above `exhaustive_max`): the LP's claim checked by independent code
  closed_form  `lp.closed_form` where one is proved, else None
  shapley      E of the exact Shapley value, the most common per-feature attribution
  grouped      E of the grouped attribution computed from f by the Mobius transform (by
               the polynomial's terms above `exhaustive_max`), measured like `measured`
  brute        E* from the brute-force LP over all subsets (d <= brute_max), else None
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputError
from .attribution import (Attribution, attribution_from_terms, exact_grouped_attribution,
                          model_table, total_error)
from .lp import MAX_BRUTE_D, MAX_D, brute_force_lp, closed_form, reduced_lp, symmetry_classes
from .polynomials import Polynomial, make_polynomial

#: exhaustive evaluation up to here (2^20 subsets take about a second); classes above.
EXHAUSTIVE_MAX = 20


@dataclass
class Row:
    d: int
    poly: str
    formula: str
    per_feature: float
    bound: float
    measured: float
    closed_form: float | None
    shapley: float
    grouped: float
    groups: int
    grouped_from: str        # "mobius" (computed from f's table) or "terms"
    brute: float | None
    seconds: float           # reduced LP: build + solve + certify
    brute_seconds: float | None
    eval_seconds: float      # measuring the errors
    tests: str
    norm: str

    def as_dict(self) -> dict:
        return asdict(self)


def parse_range(text: str) -> list[int]:
    """'2..20' -> [2, ..., 20];  '4,8,12' -> [4, 8, 12];  '2..20:2' -> [2, 4, ..., 20]."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*\.\.\s*(\d+)(?::(\d+))?", part)
        if m:
            lo, hi, step = int(m[1]), int(m[2]), int(m[3] or 1)
            if lo > hi or step < 1:
                raise InputError(f"bad range {part!r}: need lo <= hi and step >= 1")
            out.extend(range(lo, hi + 1, step))
        elif part.isdigit():
            out.append(int(part))
        else:
            raise InputError(f"cannot read {part!r} as d; write e.g. 2..20 or 4,8,12")
    if not out or min(out) < 1 or max(out) > MAX_D:
        raise InputError(f"d must lie in 1..{MAX_D}, got {text!r}")
    return sorted(set(out))


def shapley_from_terms(poly: Polynomial) -> np.ndarray:
    """Exact Shapley values of a polynomial at x = 1 (baseline 0): phi_i = sum_{m : i in M_m} c_m / |M_m|."""
    phi = np.zeros(poly.d)
    for t, c in zip(poly.terms, poly.coefs):
        for i in t:
            phi[i] += c / len(t)
    return phi


def analyse(poly: Polynomial, tests: str = "both", norm: str = "l1", brute_max: int = 12,
            exhaustive_max: int = EXHAUSTIVE_MAX) -> Row:
    """One row of the table for one polynomial (see module docstring)."""
    d = poly.d
    lp = reduced_lp(poly, tests, norm)
    t0 = time.perf_counter()
    if d <= exhaustive_max:
        # f's table, from running p on all 2^d binary inputs, serves every measurement
        f, classes = model_table(poly, d), None
        grouped, source = exact_grouped_attribution(f), "mobius"
    else:
        _, reps, sizes = symmetry_classes(poly.blocks())
        f, classes = poly, (reps, np.array(sizes, dtype=float))
        grouped, source = attribution_from_terms(poly.terms, poly.coefs), "terms"

    def err(att: Attribution) -> float:
        return total_error(f, att, d, tests, norm, classes=classes)

    measured = err(Attribution.per_feature(lp.alpha))
    shapley = err(Attribution.per_feature(shapley_from_terms(poly)))
    grouped_err = err(grouped)
    eval_seconds = time.perf_counter() - t0
    brute = brute_seconds = None
    if d <= min(brute_max, MAX_BRUTE_D):
        b = brute_force_lp(poly, d, tests, norm)
        brute, brute_seconds = b.value, b.seconds + b.certify_seconds
    return Row(d=d, poly=poly.name, formula=poly.describe(), per_feature=lp.value, bound=lp.bound,
               measured=measured, closed_form=closed_form(poly, tests, norm), shapley=shapley,
               grouped=grouped_err, groups=len(grouped.groups), grouped_from=source, brute=brute,
               seconds=lp.seconds + lp.certify_seconds, brute_seconds=brute_seconds,
               eval_seconds=eval_seconds, tests=tests, norm=norm)


def sweep(kind: str, ds, *, degree: int | None = None, sizes: tuple[int, int, int] | None = None,
          tests: str = "both", norm: str = "l1", brute_max: int = 12,
          exhaustive_max: int = EXHAUSTIVE_MAX, on_row=None) -> list[Row]:
    """`analyse` for each d; `on_row(row)` is called as each row finishes (for live printing)."""
    rows = []
    for d in ds:
        poly = make_polynomial(kind, d, degree=degree, sizes=sizes)
        row = analyse(poly, tests, norm, brute_max, exhaustive_max)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def fit_exponential(rows: list[Row]) -> tuple[float, float] | None:
    """Least-squares (gamma1, gamma0) with per_feature ~ exp(gamma1 * d + gamma0), over rows with error > 0."""
    pts = [(r.d, math.log(r.per_feature)) for r in rows if r.per_feature > 1e-9]
    if len(pts) < 2:
        return None
    x, y = np.array(pts).T
    g1, g0 = np.polyfit(x, y, 1)
    return float(g1), float(g0)


def _fmt(x: float | None, width: int) -> str:
    if x is None:
        return "-".rjust(width)
    if x != 0 and (abs(x) >= 1e13 or abs(x) < 1e-3):
        return f"{x:.6g}".rjust(width)
    return f"{x:,.10g}".rjust(width)


HEADER = ("d", "per-feature min", "certified >=", "closed form", "Shapley", "grouped", "LP s",
          "brute LP", "brute s")


def format_row(row: Row) -> str:
    cells = [str(row.d).rjust(3), _fmt(row.per_feature, 16), _fmt(row.bound, 16), _fmt(row.closed_form, 16),
             _fmt(row.shapley, 16), _fmt(row.grouped, 8), f"{row.seconds:7.3f}",
             _fmt(row.brute, 14), "-".rjust(8) if row.brute_seconds is None else f"{row.brute_seconds:8.2f}"]
    return "  ".join(cells)


def format_header() -> str:
    widths = (3, 16, 16, 16, 16, 8, 7, 14, 8)
    return "  ".join(h.rjust(w) for h, w in zip(HEADER, widths))


def figure(rows: list[Row], title: str | None = None):
    """Plotly figure: error vs d on a log axis, per-feature (LP, bound, Shapley) and grouped."""
    import plotly.graph_objects as go

    pos = [r for r in rows if r.per_feature > 0]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[r.d for r in pos], y=[r.per_feature for r in pos], mode="lines+markers",
                             name="best per-feature attribution (LP minimum)"))
    fig.add_trace(go.Scatter(x=[r.d for r in pos], y=[max(r.bound, 1e-12) for r in pos], mode="markers",
                             marker=dict(symbol="x", size=9), name="certified lower bound (dual)"))
    sh = [r for r in rows if r.shapley > 0]
    fig.add_trace(go.Scatter(x=[r.d for r in sh], y=[r.shapley for r in sh], mode="lines",
                             line=dict(dash="dot"), name="Shapley values"))
    fit = fit_exponential(rows)
    if fit is not None and pos:
        ds = np.array([r.d for r in pos], dtype=float)
        fig.add_trace(go.Scatter(x=ds, y=np.exp(fit[0] * ds + fit[1]), mode="lines", line=dict(dash="dash", width=1),
                                 name=f"fit exp({fit[0]:.3f} d {fit[1]:+.3f})"))
    worst = max((r.grouped for r in rows), default=0.0)
    note = ("grouped attribution: error exactly 0 at every d (a log axis cannot draw 0)" if worst == 0
            else f"grouped attribution: largest error {worst:.3g}")
    fig.add_annotation(text=note, xref="paper", yref="paper", x=0.01, y=0.99, showarrow=False, align="left")
    if rows:
        r0 = rows[0]
        title = title or f"{r0.poly.split('(')[0]}: total {r0.tests} error ({r0.norm}) vs d"
    fig.update_layout(title=title, xaxis_title="d (number of features)", yaxis_title="total error (log scale)",
                      yaxis_type="log", legend=dict(x=0.01, y=0.9), template="plotly_white")
    return fig
