"""Theory: why SOP explains with groups of features (the paper's Section 2, computed live).

Everything on this page comes from `sop.theory`: the table and plot from the same code as
`python -m sop theory`, the toy from the same error definitions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from sop.errors import InputError
from sop.theory import (Row, analyse, brute_force_lp, exact_grouped_attribution, figure, make_polynomial,
                        model_table, shapley_values)
from sop.theory.polynomials import features_of

TABLE_COLUMNS = {
    "d": "d",
    "per_feature": "best per-feature error (LP)",
    "bound": "certified lower bound",
    "closed_form": "closed form",
    "shapley": "Shapley values' error",
    "grouped": "grouped error",
    "seconds": "LP seconds",
}
TOY_ALPHAS = ("Shapley values", "best possible (LP)")
#: the page measures errors over all subsets up to this d, by symmetry classes above it
PAGE_EXHAUSTIVE_MAX = 16


def fmt(x: float) -> str:
    """How the toy shows numbers (tests parse these back)."""
    return f"{x:.4g}"


@st.cache_data(show_spinner="Solving the linear programs ...", max_entries=64)
def lp_rows(kind: str, dmin: int, dmax: int, tests: str, norm: str, degree: int | None,
            sizes: tuple[int, int, int] | None) -> list[dict]:
    """One `sop.theory.analyse` row per d; d values that the chosen sizes do not fit are skipped."""
    rows = []
    for d in range(dmin, dmax + 1):
        try:
            poly = make_polynomial(kind, d, degree=degree, sizes=sizes)
        except InputError:
            continue
        rows.append(analyse(poly, tests, norm, brute_max=0, exhaustive_max=PAGE_EXHAUSTIVE_MAX).as_dict())
    return rows


@st.cache_data(max_entries=64)
def toy_model(kind: str, d: int, degree: int | None, sizes: tuple[int, int, int] | None, tests: str, norm: str):
    """Table of p, the two per-feature attributions and the grouped one, for the toy."""
    poly = make_polynomial(kind, d, degree=degree, sizes=sizes)
    table = model_table(poly, d)
    grouped = exact_grouped_attribution(table)
    alphas = {TOY_ALPHAS[0]: shapley_values(table),
              TOY_ALPHAS[1]: brute_force_lp(table, d, tests, norm, certify_dual=False).alpha}
    return poly.describe(), table, alphas, grouped


# --------------------------------------------------------------------------- intro
st.markdown("#### Why does SOP explain with *groups* of features?")
st.markdown(
    "An **attribution** gives each input feature a number: *this feature contributed this much*. "
    "A fair test of it: switch some features off and check that the model's output moves by the sum of "
    "their numbers (**deletion**), or start from nothing, switch some on and check that the output is the "
    "sum of theirs (**insertion**).\n\n"
    "When features only count *together* (the model says 1 only if all of them are on, like an AND) "
    "no choice of numbers passes these tests: switch off one half, the output drops to 0; switch off the "
    "other half, it drops to 0 too; but the two halves' numbers must add up to the full output. "
    "Every such split costs at least 1, and there are about 2^d of them. Give one number to the "
    "**whole group** instead, counted only when the group is complete, and every test passes. "
    "That is why SOP's explanations are scored groups.")

# --------------------------------------------------------------------------- controls
with st.container(border=True):
    c1, c2, c3 = st.columns([1.2, 1, 1])
    kind = c1.radio("Model", ["monomial", "binomial"], horizontal=True, key="th_poly",
                    format_func=lambda k: {"monomial": "monomial  x1·x2·…·xd",
                                           "binomial": "binomial  (S1∪S2 product) + (S2∪S3 product)"}[k])
    tests = c2.radio("Tests", ["both", "insertion", "deletion"], horizontal=True, key="th_tests")
    norm = c3.radio("Add up the errors as", ["l1", "linf"], horizontal=True, key="th_norm",
                    format_func=lambda n: {"l1": "sum over all subsets", "linf": "worst subset"}[n])
    dmin, dmax = st.slider("Number of features d", 2, 20, (2, 14), key="th_d")
    custom = st.checkbox("Choose the sizes of the feature sets myself (otherwise: all features, split evenly)",
                         key="th_custom")
    degree = sizes = None
    if custom and kind == "monomial":
        degree = int(st.number_input("|S|: features in the product (the others are ignored by the model)",
                                     1, 20, 3, key="th_degree"))
    elif custom:
        s1, s2, s3 = st.columns(3)
        sizes = (int(s1.number_input("|S1|", 0, 20, 2, key="th_s1")),
                 int(s2.number_input("|S2|", 0, 20, 1, key="th_s2")),
                 int(s3.number_input("|S3|", 0, 20, 2, key="th_s3")))

try:
    rows = lp_rows(kind, dmin, dmax, tests, norm, degree, sizes)
except InputError as err:
    st.error(str(err))
    rows = []

# --------------------------------------------------------------------------- table and plot
if not rows:
    st.warning("No d in the chosen range fits these sizes: widen the range or shrink the sets.")
else:
    last = rows[-1]
    st.markdown(f"**{len(rows)} models**, e.g. for d = {last['d']}:  `p(x) = {last['formula']}`")
    frame = pd.DataFrame([{label: r[key] for key, label in TABLE_COLUMNS.items()} for r in rows])
    st.dataframe(frame, hide_index=True, key="th_table",
                 column_config={TABLE_COLUMNS["seconds"]: st.column_config.NumberColumn(format="%.3f")})
    st.caption(
        "**best per-feature error**: the smallest total error that *any* per-feature attribution can reach, "
        "found by a linear program. **certified lower bound**: a second, independent proof from the LP's dual, "
        "checked in exact arithmetic; no per-feature attribution can do better. **closed form**: the formula "
        "where one is proved (blank otherwise). **Shapley values' error**: the most popular per-feature "
        "attribution. **grouped error**: one score per term of the polynomial, measured with the same "
        "tests: always exactly 0.")
    st.plotly_chart(figure([Row(**r) for r in rows]), key="th_plot")

# --------------------------------------------------------------------------- toy
st.markdown("#### Try it: switch features on and off")
t1, t2 = st.columns(2)
toy_d = t1.slider("Features in the toy", 2, 8, 4, key="th_toy_d")
which = t2.radio("Per-feature attribution to test", TOY_ALPHAS, horizontal=True, key="th_toy_alpha",
                 help="Shapley values: the most widely used per-feature attribution. Best possible: the numbers "
                      "with the smallest total error over all on/off patterns, for the tests chosen above.")
try:
    formula, table, alphas, grouped = toy_model(kind, toy_d, degree, sizes, tests, norm)
except InputError:
    st.caption("Your custom sizes do not fit this many features; the toy splits them evenly instead.")
    formula, table, alphas, grouped = toy_model(kind, toy_d, None, None, tests, norm)
alpha = alphas[which]
st.markdown(f"`p(x) = {formula}`")

st.caption("Ticked features are ON (1), the others OFF (0). Row 1 switches the ON features on, starting from "
           "nothing; row 2 switches the same features off, starting from everything.")
cols = st.columns(toy_d)
on = [cols[i].checkbox(f"x{i}", value=i < (toy_d + 1) // 2, key=f"th_x{i}") for i in range(toy_d)]
full = (1 << toy_d) - 1
mask = sum(1 << i for i, v in enumerate(on) if v)   # the ON set T, as a bitmask
f0, f1, f_on, f_off = (float(table[m]) for m in (0, full, mask, full ^ mask))
a_on = float(sum(a for a, v in zip(alpha, on) if v))
T = np.array([mask])
readings = {  # test -> (true output, per-feature prediction, grouped prediction)
    "insertion": (f_on, f0 + a_on, f0 + float(grouped.inserted(T)[0])),
    "deletion": (f_off, f1 - a_on, f1 - float(grouped.removed(T)[0])),
}
titles = {"insertion": "Switch the ON features on (insertion): p(x)",
          "deletion": "Switch the ON features off (deletion): p(OFF features only)"}
per_feature_total = 0.0
for test, (true, pf, gr) in readings.items():
    per_feature_total += abs(pf - true)
    st.markdown(f"**{titles[test]}**")
    m1, m2, m3 = st.columns(3)
    m1.metric(f"{test}: model output", fmt(true))
    m2.metric(f"{test}: per-feature prediction", fmt(pf), delta=f"error {fmt(abs(pf - true))}", delta_color="off")
    m3.metric(f"{test}: grouped prediction", fmt(gr), delta=f"error {fmt(abs(gr - true))}", delta_color="off")

unavoidable = abs(f_on + f_off - f1 - f0)
groups_text = "; ".join("{" + ", ".join(f"x{i}" for i in features_of(g)) + "} = " + fmt(c)
                        for g, c in zip(grouped.groups, grouped.scores))
st.markdown(f"Per-feature numbers: {', '.join(f'x{i} = {fmt(a)}' for i, a in enumerate(alpha))}.  \n"
            f"Groups: {groups_text} (a group counts only while all its features are on).")
st.info(
    f"**Why no per-feature numbers can fix this.** Both rows use the same sum, the numbers of the ON features "
    f"({fmt(a_on)} here). Row 1 needs it to be p(x) − p(0) = {fmt(f_on - f0)}; row 2 needs it to be "
    f"p(1) − p(OFF only) = {fmt(f1 - f_off)}. These differ by **{fmt(unavoidable)}**, so the two per-feature "
    f"errors add up to at least that, whatever the numbers (now: {fmt(per_feature_total)}). Summed over all "
    f"{1 << toy_d} on/off patterns this is the table's per-feature error; the grouped attribution is exact on "
    "every pattern.")
