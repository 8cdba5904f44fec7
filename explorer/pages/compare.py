"""Compare methods: SOP beside every registered post-hoc method (sop.methods) on the same input."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import charts, compute, export, ui
from explorer.compute import is_cheap, label
from explorer.inputs import split_of
from explorer.method_runs import MethodRuns, budget_slider
from sop import budget as sweeps
from sop.image_io import tensor_to_image
from sop.localisation import localisation_scores
from sop.visualize import overlay_heatmap, upscale

LOC_SAMPLES = (10, 20, 40, 100)
LOC_COLUMNS = {"pointing_game": "pointing ↑", "mass_accuracy": "mass acc. ↑", "rank_accuracy": "rank acc. ↑"}
LOC_HELP = ("Localisation against the scene's decisive parts (Arras et al. 2022, as the quantus package defines "
            "them, identical for every method): **pointing** = 1 if the map's maximum (any pixel of a tied "
            "maximum) lies in the parts; **mass acc.** = the map's signed sum inside the parts over its total; "
            "**rank acc.** = share of the parts' K pixels among the map's K highest pixels (ties in NumPy's sort "
            "order). See docs/evaluation.md.")

lm, mi = ui.page_with_input("compare")

names = lm.class_names
img = mi.image(lm)
fwd = compute.sop_forward(lm, mi.x, mi.key)
bb_probs = compute.backbone_prediction(lm, mi.x, mi.key)

st.markdown(f"#### Compare methods · {ui.plain(lm.spec.name)} · {ui.plain(mi.name)}")
h1, h2, h3 = st.columns([0.5, 1, 2], vertical_alignment="center")
h1.image(upscale(img, 120), width=120)
with h2:
    st.markdown(f"**SOP predicts {ui.plain(names[fwd.prediction])}** ({fwd.probs[fwd.prediction]:.1%})  \n"
                f"backbone predicts **{ui.plain(names[int(bb_probs.argmax())])}** ({bb_probs.max():.1%})"
                + (f"  \ntrue class **{ui.plain(names[mi.label])}**" if mi.label is not None else ""))
with h3:
    st.caption(f"SOP explains itself: its map is Σ score × group mask. The post-hoc methods explain "
               f"{lm.describe_for(compute.POST_HOC)}, each for the class that model predicts; their curves are "
               "measured on that model. Every method's map is ranked the same way for the curves (patches of the "
               "model's grid), and the grouped curves of the post-hoc methods use SOP's group sizes on this input, "
               "so all curves share their x positions.")

# --------------------------------------------------------------------------- settings
# Every registered method that can explain the model it would explain here (sop.methods: labels, cost, budget).
offered = compute.methods_for(lm)
valid = [m for m in (st.session_state.get("compare_methods") or []) if m in offered]
if "compare_methods" not in st.session_state or not valid:
    st.session_state["compare_methods"] = list(offered)
else:
    st.session_state["compare_methods"] = valid

with st.container(border=True):
    methods = st.pills("Methods", offered, selection_mode="multi", key="compare_methods", persist_state="session",
                       format_func=label)
    s1, s2, s3, s4 = st.columns(4, vertical_alignment="bottom")
    mode, baseline, steps = ui.curve_controls((s1, s2, s3))
    budget = budget_slider(s4)
methods = [m for m in offered if m in (methods or [])]
if not methods:
    st.info("Pick at least one method.")

settings = {m: compute.method_settings(m, budget) for m in methods}
group_sizes = None
exp_sop = compute.get_explanation(lm, mi.x, "sop", x_key=mi.key)
if mode == "grouped":
    group_sizes = compute.sop_group_sizes(exp_sop)


def explains_sop(method: str) -> bool:
    """Whether `method` explains (and is scored on) the SOP model itself rather than the backbone twin."""
    return lm.model_for(method)[0] is lm.model


pending = [m for m in methods if not is_cheap(m) and not compute.is_cached(lm, mi.key, m, settings[m])]

# Expensive methods run on request, with a progress bar and a Cancel button (explorer/method_runs.py).


def view_signature(todo: list[str]) -> str:
    return compute.signature("compare-run", lm.key, mi.key, list(todo), {m: settings[m] for m in todo}, mode,
                             baseline, steps)


runs = MethodRuns(view=view_signature, run_one=lambda m, progress: compute.get_explanation(
    lm, mi.x, m, settings[m], x_key=mi.key, progress=progress))
runs.area(pending)

# --------------------------------------------------------------------------- cards
results: dict[str, tuple] = {}
cols_per_row = 4
for start in range(0, len(methods), cols_per_row):
    cols = st.columns(cols_per_row)
    for col, m in zip(cols, methods[start:start + cols_per_row]):
        with col, st.container(border=True, key=f"card_{m}"):
            st.markdown(f"{ui.swatch(charts.method_colour(m))}**{ui.plain(label(m))}**", unsafe_allow_html=True)
            exp = compute.get_explanation(lm, mi.x, m, settings[m], x_key=mi.key, compute=is_cheap(m))
            if exp is None:
                runs.run_button(m)
                continue
            curve_args = dict(mode=mode, baseline=baseline, steps=steps, x_key=mi.key, group_sizes=group_sizes)
            curves = compute.get_curves(lm, mi.x, exp, compute=False, **curve_args)
            if curves is None:  # a progress bar: a new input or setting stops the curves there too
                bar = st.progress(0.0, text="Curves…")
                curves = compute.get_curves(lm, mi.x, exp, **curve_args,
                                            progress=lambda p, bar=bar: bar.progress(min(1.0, p), f"Curves… {p:.0%}"))
                bar.empty()
            results[m] = (exp, curves)
            st.image(upscale(overlay_heatmap(img, exp.attribution), 200), width="stretch")
            st.caption(f"{exp.seconds:.2f} s · explains class **{ui.plain(names[exp.target])}** of "
                       f"{'SOP' if explains_sop(m) else 'the backbone'}")
            a1, a2 = st.columns(2)
            a1.metric("Insertion AUC", f"{curves['insertion'].auc:.3f}")
            a2.metric("Deletion AUC", f"{curves['deletion'].auc:.3f}")
            st.plotly_chart(charts.curves_figure(curves, height=150, compact=True), config=charts.CONFIG, theme=None,
                            key=f"card_curve_{m}")

# --------------------------------------------------------------------------- all curves and table
if results:
    st.markdown("#### All methods")
    per_method = {m: c for m, (_, c) in results.items()}
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.compare_curves_figure(per_method, "insertion"), config=charts.CONFIG,
                    theme=None, key="all_insertion")
    c2.plotly_chart(charts.compare_curves_figure(per_method, "deletion"), config=charts.CONFIG,
                    theme=None, key="all_deletion")
    has_gt = compute.has_ground_truth(lm.config.dataset)
    mask = compute.ground_truth_mask(lm.config.dataset, mi.split, mi.index) if mi.kind == "sample" else None
    rows = []
    for m, (exp, curves) in results.items():
        row = {"method": label(m), "explains": "SOP" if explains_sop(m) else "backbone",
               "class": names[exp.target], "seconds": round(exp.seconds, 3),
               "insertion AUC ↑": round(curves["insertion"].auc, 4),
               "deletion AUC ↓": round(curves["deletion"].auc, 4)}
        if mask is not None:
            row |= {LOC_COLUMNS[k]: round(v, 4) for k, v in localisation_scores(exp.attribution, mask).items()}
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="auc_table")
    if mask is not None:
        st.caption(LOC_HELP)
    elif has_gt:
        st.caption("This input has no ground-truth mask (only a dataset sample with decisive parts has one, e.g. a "
                   "positive parts scene), so no localisation metrics here.")

    # ----------------------------------------------------------------------- mean over test inputs
    test_split, _ = split_of(lm, "test")
    if has_gt and test_split is not None:
        st.markdown("#### Localisation over test inputs")
        if st.session_state.get("loc_samples") not in LOC_SAMPLES:
            st.session_state["loc_samples"] = 20
        l1, l2 = st.columns([1, 2], vertical_alignment="bottom")
        n_loc = l1.select_slider("Test inputs with ground truth", LOC_SAMPLES, key="loc_samples",
                                 persist_state="session", help="A seeded sample of the test inputs that have a "
                                 "ground-truth mask (the same inputs for every method and setting).")
        studies = {m: compute.localisation_mean(lm, test_split, m, settings[m], n_loc, compute=False)
                   for m in results}
        missing = [m for m in results if studies[m] is None]
        if missing and l2.button(f"Compute for {', '.join(label(m) for m in missing)}", key="loc_run",
                                 icon=":material/play_arrow:"):
            bar = st.progress(0.0, text="Starting…")
            for j, m in enumerate(missing):
                def report(f: float, j=j, m=m) -> None:
                    bar.progress(min(1.0, (j + f) / len(missing)),
                                 text=f"{label(m)} ({j + 1}/{len(missing)}) on {n_loc} inputs… {f:.0%}")

                compute.localisation_mean(lm, test_split, m, settings[m], n_loc, progress=report)
            bar.empty()
            st.rerun()  # redraw with the cached means
        done = {m: s for m, s in studies.items() if s is not None}
        if done:
            st.dataframe(pd.DataFrame([
                {"method": label(m), "explains": "SOP" if explains_sop(m) else "backbone",
                 "inputs": s["samples"],
                 **{h: f"{s[k]:.3f} ± {s[k + '_sem']:.3f}" for k, h in LOC_COLUMNS.items()}}
                for m, s in done.items()]), hide_index=True, key="loc_table")
        st.caption(f"Mean ± standard error over {n_loc} test inputs with ground truth, each method with the settings "
                   "above, explaining the class its model predicts. `python -m sop evaluate` reports the same metrics.")

    # ----------------------------------------------------------------------- one method up close
    st.markdown("#### Step through one method's curves")
    done = list(results)
    if st.session_state.get("focus_method") not in done:
        st.session_state["focus_method"] = done[0]
    f1, f2 = st.columns([1, 2], vertical_alignment="bottom")
    focus = f1.selectbox("Method", done, key="focus_method", format_func=label,
                         persist_state="session")
    exp, curves = results[focus]
    S = len(curves["insertion"].scores) - 1
    st_step = st.session_state.get("cmp_step")
    if not isinstance(st_step, int) or not 0 <= st_step <= S:
        st.session_state["cmp_step"] = S // 4
    step = f2.slider("Step", 0, S, key="cmp_step", persist_state="session")
    v0, v1, v2, v3 = st.columns([1, 1, 1, 1.6])
    v0.image(upscale(overlay_heatmap(img, exp.attribution), 200), caption=f"{label(focus)} map", width="stretch")
    for col, kind in ((v1, "insertion"), (v2, "deletion")):
        c = curves[kind]
        col.image(upscale(tensor_to_image(c.input_at(mi.x, step), lm.config.mean, lm.config.std), 200), width="stretch",
                  caption=f"{kind} step {step}/{S}: {c.fractions[step]:.0%}, p = {c.scores[step]:.3f}")
    v3.plotly_chart(charts.curves_figure(curves, step=step, height=260), config=charts.CONFIG, theme=None,
                    key=f"focus_curve_{focus}")

    st.download_button("Download comparison PNG", lambda: export.comparison_png(lm, mi, results),
                       file_name=f"sop_compare_{lm.spec.name}_{mi.url}.png".replace(":", "_"), mime="image/png",
                       icon=":material/image:", key="dl_cmp_png", on_click="ignore")
    export.figure_download(lm, mi, fwd, baseline=baseline, steps=steps, key="dl_cmp_fig")  # SOP's paper figure
else:
    focus = None

# --------------------------------------------------------------------------- faithfulness per unit of compute
# A stored budget sweep (`sop evaluate --budgets`, minutes of compute) for this checkpoint: the library finds,
# shapes and reads it (sop.budget); the page only draws it.  Nothing is computed live here.
with st.expander("Faithfulness per unit of compute", icon=":material/speed:", expanded=False):
    sweep = compute.stored_sweep(lm.spec.sop_path)
    if sweep is None:
        st.markdown("No budget sweep is stored for this model. A sweep runs every method at several budgets on "
                    "test inputs and takes minutes, so the explorer does not compute it live; run")
        st.code(sweeps.sweep_command(lm.spec.sop_path), language="bash", wrap_lines=True)
        st.caption("and reopen this page: the sweep is read from runs/budget/<name>_budget.json "
                   "(see docs/evaluation.md, 'Faithfulness per unit of compute').")
    else:
        if st.session_state.get("budget_curve") not in sweeps.CURVES:
            st.session_state["budget_curve"] = sweeps.CURVES[0]
        b1, _ = st.columns([1, 2])
        curve = b1.selectbox("Curve", sweeps.CURVES, key="budget_curve", persist_state="session",
                             format_func=lambda k: sweeps.CURVE_LABELS[k])
        st.plotly_chart(sweeps.pareto_chart(sweep, curve), config=charts.CONFIG, theme=None, key="budget_pareto")
        st.markdown(sweeps.sweep_reading(sweep, curve))
        st.caption(f"Precomputed sweep {ui.plain(sweep['sweep_path'])}: budgets "
                   f"{', '.join(map(str, sweep.get('budgets', [])))}, N = {sweep.get('samples')} test inputs, "
                   "cost = model passes per explanation (a backward pass counts as one); SOP is the star, black "
                   "outlines mark the Pareto frontier. It is read, not recomputed: `python -m sop evaluate "
                   "--budgets ...` made it.")

ui.finish({"model": lm.spec.url, "timm": lm.spec.timm_name, "input": mi.url if mi.kind == "sample" else mi.kind,
           "method": focus, "methods": methods if set(methods) != set(offered) else None, "mode": mode,
           "baseline": baseline, "steps": steps}, "compare")
