"""The pages of regression models (view kind "regression", explorer/views.py), e.g. the lensing model.

    Explain   the κ map (diverging colours, colour bar), the prediction per parameter (with the true
              values of a test map), every group outlined with its score and what it alone predicts;
              isolate a group; per-parameter insertion / deletion curves with the step slider; JSON.
    Compare   the post-hoc methods' maps for one parameter beside SOP's groups, and their curves; the
              expensive ones run on request with the image page's sample budget, progress bar and
              Cancel (explorer/method_runs.py).
    Mistakes  the **Residuals** view: predicted vs true per parameter (R², RMSE), click a point or
              pick one of the largest errors to open that map on Explain.

The library computes (`sop.regression_explain`, `sop.regression`); this module arranges and draws.
"""
from __future__ import annotations

import json

import numpy as np
import streamlit as st
import torch

import sop
from sop.explainers import explain, model_grid
from sop.map_io import map_of_input
from sop.methods import get_method
from sop.regression import r2_rmse, to_physical
from sop.regression_explain import MapExplanation, explain_map, export_record, largest_errors, parameter_names, \
    regression_curves
from sop.visualize import group_colour

from . import charts, compute, ui, urlstate
from . import regression_view as view
from .map_inputs import MapInput, input_picker, select_test_map  # noqa: F401  (input_picker: the views contract)
from .method_runs import MethodRuns, budget_slider
from .models import LoadedModel, compute_lock

CURVES_HELP = ("For one parameter, each step's value is its **closeness to the full-map prediction**, "
               "1 − |prediction at this step − prediction on the whole map| / σ, with σ the parameter's "
               "training-set standard deviation (1 = the whole map's answer; 1 lower for every σ away). "
               "**Insertion** starts from an empty map (every pixel set to the removal baseline) and puts "
               "pixels back, most important first: a good explanation makes it rise fast (high AUC). "
               "**Deletion** removes them: it should fall fast (low AUC).")
TOP_ERRORS = 10


# --------------------------------------------------------------------------- sidebar (views contract)

def thumbnail(lm: LoadedModel, mi: MapInput) -> None:
    st.image(view.map_rgb(mi.kappa, 160), caption=mi.name, width=160)
    if mi.truth is not None:
        st.caption("True: " + ", ".join(f"**{ui.plain(n)}** = {v:.4f}"
                                         for n, v in zip(parameter_names(lm.config), mi.truth)))


# --------------------------------------------------------------------------- cached computations

def forward(lm: LoadedModel, mi: MapInput) -> MapExplanation:
    key = compute.signature("regression_forward", lm.key, mi.key)
    return compute.cached(key) or compute.remember(key, explain_map(lm.model, mi.x))


def _method_settings(method: str, budget: int | None = None) -> dict:
    settings = compute.method_settings(method, budget)
    if "output" in settings:  # a regression output is explained as the estimate itself, never a softmax
        settings["output"] = "logit"
    return settings


def method_explanation(lm: LoadedModel, mi: MapInput, method: str, parameter: int, budget: int | None = None, *,
                       progress=None, compute_it: bool = True):
    """`method`'s explanation of one parameter (the twin's, for a post-hoc method), with the sampling
    methods' `budget`; None when not cached and `compute_it` is False.  `progress(fraction)`: a
    Streamlit call in it is where a rerun (a new map or setting) stops the work in flight."""
    model, model_key = lm.model_for(method)
    settings = _method_settings(method, budget)
    key = compute.signature("regression_explain", model_key, mi.key, method, parameter, settings)
    hit = compute.cached(key)
    if hit is None and compute_it:
        with compute_lock():
            hit = explain(model, mi.x, method, target=parameter, progress=progress, **settings)
        compute.remember(key, hit)
    return hit


def curves(lm: LoadedModel, mi: MapInput, method: str, parameter: int, mode: str, baseline: str, steps: int,
           budget: int | None = None):
    """{parameter: {"insertion", "deletion"}} of `method` (SOP's groups are the same for every parameter)."""
    model, model_key = lm.model_for(method)
    key = compute.signature("regression_curves", model_key, mi.key, method, parameter, mode, baseline, steps,
                            _method_settings(method, budget))
    hit = compute.cached(key)
    if hit is None:
        exp = method_explanation(lm, mi, method, parameter, budget)
        with compute_lock():
            hit = regression_curves(model, mi.x, exp, mode=mode, baseline=baseline, steps=steps,
                                    memo=compute.curve_memo(model_key, mi.key))
        compute.remember(key, hit)
    return hit


def test_predictions(lm: LoadedModel) -> tuple[np.ndarray, np.ndarray] | None:
    """(pred, true) over the test split, physical units; computed once per model (progress bar)."""
    from .inputs import split_of
    key = compute.signature("regression_test_predictions", lm.key)
    hit = compute.cached(key)
    if hit is not None:
        return hit
    data, why = split_of(lm, "test")
    if data is None:
        st.info(f"No test split: {why}.")
        return None
    xs, ys = data.dataset.tensors
    bar = st.progress(0.0, text=f"Running the model on {len(xs)} test maps…")
    out = []
    with compute_lock(), torch.inference_mode():
        for i in range(0, len(xs), 64):
            out.append(lm.model(xs[i:i + 64]).logits)
            bar.progress(min(1.0, (i + 64) / len(xs)), text=f"Running the model on {len(xs)} test maps…")
    bar.empty()
    pred = to_physical(torch.cat(out), lm.config).numpy()
    return compute.remember(key, (pred, ys.double().numpy()))


# --------------------------------------------------------------------------- shared bits

def _parameter_picker(names: list[str]) -> int:
    if st.session_state.get("regression_parameter") not in names:
        st.session_state["regression_parameter"] = names[0]
    name = st.segmented_control("Parameter", names, key="regression_parameter", required=True,
                                persist_state="session") or names[0]
    return names.index(name)


def _selected_group(G: int) -> int | None:
    g = st.session_state.get("group")
    if not isinstance(g, int) or not 0 <= g < G:
        g = st.session_state["group"] = None
    return g


def _values(names: list[str], values) -> str:
    return ", ".join(f"{ui.plain(n)} = {float(v):.4f}" for n, v in zip(names, values))


def _link_params(lm: LoadedModel, mi: MapInput | None, **extra) -> dict:
    return {"model": lm.spec.url, "timm": lm.spec.timm_name, "input": mi.url if mi is not None else None, **extra}


# --------------------------------------------------------------------------- Explain

def _group_cards(e: MapExplanation, selected: int | None, columns: int = 4) -> None:
    order = e.order
    for start in range(0, len(order), columns):
        cols = st.columns(columns)
        for col, g in zip(cols, order[start:start + columns]):
            with col, st.container(border=True, key=f"regression_group_{g}"):
                score = float(e.scores[g])
                st.markdown(f"{ui.swatch(group_colour(g))}**Group {g}** · score {score:.3f}",
                            unsafe_allow_html=True)
                st.caption(f"alone predicts {_values(e.names, e.group_predictions[g])}"
                           + (" · ignored (score 0)" if score <= 0 else "")
                           + f" · {int((e.masks[g] > 0).sum())} pixels")
                is_sel = selected == g
                st.button("Isolated" if is_sel else "Isolate", key=f"isolate_{g}", on_click=ui.toggle_group,
                          args=(g,), type="primary" if is_sel else "secondary",
                          icon=":material/center_focus_strong:", width="stretch")


def _explain(ctx) -> None:
    lm, mi = ctx.lm, ctx.mi
    if mi is None:
        st.info("Choose a map in the sidebar.")
        ui.finish(_link_params(lm, None))
        return
    names = parameter_names(lm.config)
    e = forward(lm, mi)
    G = len(e.scores)
    selected = _selected_group(G)
    st.markdown(f"#### Explain · {ui.plain(lm.spec.name)} · {ui.plain(mi.name)}")
    lim = float(np.percentile(np.abs(mi.kappa), 99.5)) or 1.0
    left, right = st.columns([1.2, 1], gap="large")
    with left:
        title = f"κ with group {selected} isolated" if selected is not None else "κ with the selected groups"
        owner = view.patch_owner(e.masks, e.scores, e.used, model_grid(lm.model))
        map_key = f"regression_map_{mi.key}_{selected}"   # a new map or group starts with no selection

        def _on_click() -> None:
            state = st.session_state.get(map_key)
            for point in (state.selection.points if state is not None else []):
                g = charts.point_data(point)
                if g is not None and int(g) >= 0:
                    st.session_state["group"] = int(g)
                    return

        st.plotly_chart(view.map_figure(mi.kappa, masks=e.masks, groups=e.used, selected=selected, title=title,
                                        limit=lim, owner=owner, scores=e.scores),
                        config=charts.CONFIG, theme=None, key=map_key, on_select=_on_click,
                        selection_mode="points")
        st.caption("Convergence κ (blue: under-dense, voids; red: over-dense, clusters; 0 = mean density). "
                   "Outlines: the groups with a score above 0, in their colours. Click a patch to isolate the "
                   "group it belongs to (where groups overlap: the one with the larger score).")
    with right:
        st.markdown("**Prediction**")
        cols = st.columns(len(names))
        for p, (col, n) in enumerate(zip(cols, names)):
            delta = None if mi.truth is None else f"{e.prediction[p] - mi.truth[p]:+.4f} vs true"
            col.metric(n, f"{e.prediction[p]:.4f}", delta=delta, delta_color="off",
                       help="the score-weighted sum of what each group alone predicts, in physical units")
        if mi.truth is not None:
            st.markdown(f"True values: {_values(names, mi.truth)}")
        else:
            st.caption("An uploaded map: no true values.")
        st.caption(ui.SCORE_HELP)
        if selected is not None:
            alone = np.where(e.masks[selected] > 0, mi.kappa, 0.0)
            st.plotly_chart(view.map_figure(alone, masks=e.masks, groups=[selected], title=f"Group {selected} alone",
                                            limit=lim, height=300), config=charts.CONFIG, theme=None,
                            key="regression_isolated")
            st.markdown(f"**Group {selected}** · score {e.scores[selected]:.3f} · alone predicts "
                        f"{_values(names, e.group_predictions[selected])}")
    st.markdown("#### Groups")
    st.caption(ui.GROUP_HELP.replace("image patches", "map patches") + " Click **Isolate** to see one group alone.")
    _group_cards(e, selected)

    # ----------------------------------------------------------------------- curves
    st.markdown("#### Insertion and deletion", help=CURVES_HELP)
    c1, c2, c3, c4 = st.columns([1, 1, 1, 1.2])
    mode, baseline, steps = ui.curve_controls((c1, c2, c3))
    with c4:
        p = _parameter_picker(names)
    with st.spinner("Computing the curves…"):
        pair = curves(lm, mi, "sop", p, mode, baseline, steps)[p]
    S = len(pair["insertion"].fractions) - 1
    step = ui.curve_step(S)
    cl, cr = st.columns([1.3, 1], gap="large")
    with cl:
        st.plotly_chart(view.curves_figure(pair, step=step, name=names[p]), config=charts.CONFIG, theme=None,
                        key=f"regression_curves_{mode}_{baseline}_{steps}_{p}_{step}")
        m1, m2 = st.columns(2)
        m1.metric("Insertion AUC", f"{pair['insertion'].auc:.3f}", help="higher is better")
        m2.metric("Deletion AUC", f"{pair['deletion'].auc:.3f}", help="lower is better")
        st.caption(CURVES_HELP)
    with cr:
        step = st.slider("Step", 0, S, key="curve_step", persist_state="session")
        i1, i2 = st.columns(2)
        for col, kind in ((i1, "insertion"), (i2, "deletion")):
            c = pair[kind]
            partial = map_of_input(c.input_at(mi.x, step), lm.config)
            with col:
                st.plotly_chart(view.map_figure(partial, limit=lim, height=230), config=charts.CONFIG, theme=None,
                                key=f"regression_partial_{kind}")
                verb = "inserted" if kind == "insertion" else "deleted"
                st.caption(f"**{kind.capitalize()}**, step {step}/{S}: {c.fractions[step]:.0%} of pixels {verb}; "
                           f"{ui.plain(names[p])} = {c.predictions[step]:.4f} (closeness {c.closeness[step]:.3f})")
        st.caption("The map as the model saw it at this step.")

    # ----------------------------------------------------------------------- export
    record = export_record(e, pair, mode=mode, baseline=baseline, truth=mi.truth,
                           model=lm.spec.name, input=mi.name)
    st.download_button("Export JSON", json.dumps(record, indent=2), file_name="regression_explanation.json",
                       mime="application/json", icon=":material/download:", key="regression_export_json")
    ui.finish(_link_params(lm, mi, group=selected, mode=mode, baseline=baseline, steps=steps, step=step))


# --------------------------------------------------------------------------- Compare

COMPARE_PER_ROW = 4


def _method_card(lm: LoadedModel, mi: MapInput, m: str, p: int, budget: int, runs: MethodRuns,
                 per_method: dict) -> None:
    """One post-hoc method's card: its map of parameter p and (into `per_method`) its curves, or a
    Run button while an expensive one is not computed."""
    names = parameter_names(lm.config)
    with st.container(border=True, key=f"regression_card_{m}"):
        st.markdown(f"{ui.swatch(charts.method_colour(m))}**{ui.plain(compute.label(m))}**", unsafe_allow_html=True)
        try:
            exp = method_explanation(lm, mi, m, p, budget, compute_it=compute.is_cheap(m))
        except sop.SOPError as err:
            st.warning(f"{compute.label(m)}: {err}")
            return
        if exp is None:
            runs.run_button(m)
            return
        st.plotly_chart(view.attribution_figure(exp.attribution.numpy(), f"{compute.label(m)} · {names[p]}"),
                        config=charts.CONFIG, theme=None, key=f"compare_map_{m}")
        budget_setting = get_method(m).budget_setting
        samples = f" · {exp.settings[budget_setting]} samples" if budget_setting in exp.settings else ""
        st.caption(f"{exp.seconds:.2f} s{samples} · purple: raises {ui.plain(names[p])}, orange: lowers it")
        per_method[m] = curves(lm, mi, m, p, "pixel", "zero", 16, budget)[p]


def _compare(ctx) -> None:
    lm, mi = ctx.lm, ctx.mi
    if mi is None:
        st.info("Choose a map in the sidebar.")
        ui.finish(_link_params(lm, None), "compare")
        return
    names = parameter_names(lm.config)
    st.markdown(f"#### Compare methods · {ui.plain(lm.spec.name)} · {ui.plain(mi.name)}")
    offered = [m for m in compute.methods_for(lm) if m != "sop"]
    if not isinstance(st.session_state.get("regression_methods"), list):
        st.session_state["regression_methods"] = list(offered)   # the expensive ones wait for a Run click
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    with c1:
        methods = st.pills("Methods", offered, selection_mode="multi", key="regression_methods",
                           persist_state="session", format_func=compute.label,
                           help=f"Post-hoc methods explain {lm.describe_for(compute.POST_HOC)}.") or []
    with c2:
        p = _parameter_picker(names)
    budget = budget_slider(c3)
    methods = [m for m in offered if m in methods]
    pending = [m for m in methods if not compute.is_cheap(m)
               and method_explanation(lm, mi, m, p, budget, compute_it=False) is None]

    def view_signature(todo) -> str:
        return compute.signature("regression-compare-run", lm.key, mi.key, p, list(todo), budget)

    runs = MethodRuns(view=view_signature, run_one=lambda m, progress: method_explanation(
        lm, mi, m, p, budget, progress=progress))
    runs.area(pending)
    e = forward(lm, mi)
    per_method = {"sop": curves(lm, mi, "sop", p, "pixel", "zero", 16)[p]}
    cells = ["sop", *methods]                 # SOP's groups first, then a card per method, 4 to a row
    for start in range(0, len(cells), COMPARE_PER_ROW):
        for col, m in zip(st.columns(COMPARE_PER_ROW), cells[start:start + COMPARE_PER_ROW]):
            with col:
                if m == "sop":
                    st.plotly_chart(view.map_figure(mi.kappa, masks=e.masks, groups=e.used, title="SOP's groups",
                                                    height=300), config=charts.CONFIG, theme=None,
                                    key="compare_sop_groups")
                    st.caption(f"SOP predicts {ui.plain(names[p])} = {e.prediction[p]:.4f}")
                else:
                    _method_card(lm, mi, m, p, budget, runs, per_method)
    labels = {m: compute.label(m) for m in per_method}
    colours = {m: charts.method_colour(m) for m in per_method}
    k1, k2 = st.columns(2)
    k1.plotly_chart(view.compare_curves_figure(per_method, "insertion", labels, colours), config=charts.CONFIG,
                    theme=None, key="compare_regression_insertion")
    k2.plotly_chart(view.compare_curves_figure(per_method, "deletion", labels, colours), config=charts.CONFIG,
                    theme=None, key="compare_regression_deletion")
    st.caption("Pixel-wise curves, 16 steps, zero baseline, for " + ui.plain(names[p]) + ". " + CURVES_HELP)
    ui.finish(_link_params(lm, mi), "compare")


# --------------------------------------------------------------------------- Residuals (Mistakes)

def _open_map(i: int) -> None:
    st.session_state["regression_open_map"] = int(i)


def _residuals(ctx) -> None:
    lm = ctx.lm
    names = parameter_names(lm.config)
    st.markdown(f"#### Residuals · {ui.plain(lm.spec.name)} on its test maps")
    got = test_predictions(lm)
    if got is None:
        ui.finish(_link_params(lm, None), "mistakes")
        return
    pred, true = got
    r2, rmse = r2_rmse(pred, true)
    worst = largest_errors(pred, true, lm.config, TOP_ERRORS)
    cols = st.columns(len(names), gap="large")
    for p, (col, n) in enumerate(zip(cols, names)):
        chart_key = f"residuals_{p}"

        def _on_select(chart_key=chart_key) -> None:
            state = st.session_state.get(chart_key)
            for point in (state.selection.points if state is not None else []):
                i = charts.point_data(point)
                if i is not None:
                    _open_map(int(i))
                    return

        with col:
            col.metric(f"R² ({n})", f"{r2[p]:.3f}")
            st.plotly_chart(view.residual_figure(pred[:, p], true[:, p], n, float(r2[p]), float(rmse[p]),
                                                 worst=[w["index"] for w in worst]),
                            key=chart_key, on_select=_on_select, selection_mode="points", config=charts.CONFIG,
                            theme=None)
    st.caption(f"{len(pred)} test maps; the dashed line is y = x. Red points: the {TOP_ERRORS} largest errors. "
               "Click a point to open that map on Explain.")
    st.markdown("**Largest errors** (root-mean-square over the parameters of |predicted − true| / σ)")
    for w in worst:
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        c1.markdown(f"Test map **#{w['index']}** · error {w['error']:.2f} σ · predicted "
                    f"{_values(names, w['predicted'].values())} · true {_values(names, w['true'].values())}")
        c2.button("Open", key=f"open_map_{w['index']}", on_click=_open_map, args=(w["index"],),
                  icon=":material/visibility:", width="stretch")
    ui.finish(_link_params(lm, None), "mistakes")
    opened = st.session_state.pop("regression_open_map", None)
    if isinstance(opened, int) and 0 <= opened < len(pred):
        select_test_map(opened)
        st.session_state["group"] = None
        urlstate.open_page("explorer/pages/explain.py",
                           {"model": lm.spec.url, "timm": lm.spec.timm_name, "input": f"test:{opened}"})


# --------------------------------------------------------------------------- entry point (views contract)

PAGES = {"explain": _explain, "compare": _compare, "mistakes": _residuals}


def draw(page: str, ctx) -> None:
    PAGES.get(page, _explain)(ctx)
