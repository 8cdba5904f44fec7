"""Explain: the SOP forward pass on one input -- prediction, groups, scores, curves, export."""
from __future__ import annotations

import streamlit as st
import torch

from explorer import charts, compute, export, ui
from explorer.inputs import PART_HEX, part_legend
from sop.data import find_dataset
from sop.explainers import model_grid
from sop.image_io import tensor_to_image
from sop.visualize import draw_outlines, group_assignment, group_colour, overlay_groups, upscale

lm, mi = ui.page_with_input("")

names = lm.class_names
img = mi.image(lm)
fwd = compute.sop_forward(lm, mi.x, mi.key)
pred = fwd.prediction
G = len(fwd.scores)
group = ui.selected_group(G)

st.markdown(f"#### Explain · {ui.plain(lm.spec.name)} · {ui.plain(mi.name)}")

# --------------------------------------------------------------------------- prediction row
c_in, c_pred, c_groups = st.columns([1.0, 1.1, 1.3], gap="large")
with c_in:
    st.markdown("**Input**")
    shown = img
    if mi.part_masks is not None:
        if st.toggle("Outline the true parts", key="show_parts", value=True, persist_state="session"):
            shown = draw_outlines(img, mi.part_masks, PART_HEX)
    st.image(upscale(shown, 288), width="stretch")
    if mi.label is not None:
        st.caption(f"True class: **{ui.plain(names[mi.label])}** · {ui.plain(mi.name)}")
    else:
        st.caption(ui.plain(mi.name))
    legend = part_legend(mi)
    if legend:
        st.markdown(" ".join(f"{ui.swatch(c)}{n}" for n, c in legend), unsafe_allow_html=True)
        rule = getattr(find_dataset(lm.config.dataset), "rule", "")
        if rule:
            st.caption(f"Rule: positive iff {rule}.")

with c_pred:
    st.markdown("**Prediction**")
    verdict = ""
    if mi.label is not None:
        verdict = " ✓ correct" if pred == mi.label else f" ✗ wrong (true: {names[mi.label]})"
    st.metric("Predicted class", names[pred], help="argmax of the score-weighted sum of the group logits")
    st.caption(f"probability {fwd.probs[pred]:.1%}{verdict}")
    st.plotly_chart(charts.topk_bar(fwd.probs, names, k=min(5, len(names)), true_label=mi.label,
                                    title="Top classes"),
                    config=charts.CONFIG, theme=None, key="topk")
    st.caption("The final answer is Σ score × (what each group alone predicts); the bars are its softmax.")

with c_groups:
    st.markdown("**Groups on the image**")
    scored = [g for g in fwd.order if fwd.scores[g] > 0]
    shown_key = f"shown_groups_{mi.key}_{lm.key}"
    shown_groups = st.pills("Groups shown", options=fwd.order, selection_mode="multi", default=scored,
                            format_func=lambda g: f"g{g} · {fwd.scores[g]:.2f}", key=shown_key,
                            help="Each colour is one group (the same colour on every page).")
    grid = model_grid(lm.model)
    patch_masks = fwd.group_masks.reshape(G, *grid)
    owner = group_assignment(patch_masks, shown_groups, weights=fwd.scores)
    combined = overlay_groups(img, fwd.pixel_masks, shown_groups, weights=fwd.scores)
    fig = charts.clickable_image(combined, owner, fwd.scores, size=300, selected=group)
    img_key = f"group_image_{mi.key}_{group}"

    def _on_click() -> None:
        state = st.session_state.get(img_key)
        points = state.selection.points if state is not None else []
        for p in points:
            g = charts.point_data(p)
            if g is not None and int(g) >= 0:
                g = int(g)
                st.session_state["group"] = g
                return

    st.plotly_chart(fig, key=img_key, on_select=_on_click, selection_mode="points", config=charts.CONFIG, theme=None)
    st.caption("Click a coloured patch to isolate its group. Where groups overlap, the patch shows the group "
               "with the larger score × mask.")

# --------------------------------------------------------------------------- isolated group
if group is not None:
    with st.container(border=True, key="isolated_panel"):
        colour = group_colour(group)
        st.markdown(f"{ui.swatch(colour, 14)}**Group {group} alone** · score {fwd.scores[group]:.3f} · "
                    f"rank {fwd.order.index(group) + 1} of {G}", unsafe_allow_html=True)
        a, b, c = st.columns([1, 1.2, 1.2], gap="large")
        with a:
            mask = torch.from_numpy(fwd.pixel_masks[group])
            seen = tensor_to_image(mi.x[0] * mask, lm.config.mean, lm.config.std)
            st.image(upscale(seen, 220), width="stretch")
            st.caption("What the backbone sees for this group: only these patches (weighted by the mask); the rest "
                       "never reaches it (shown in the dataset's mean colour).")
        with b:
            alone = fwd.alone_probs(group)
            st.plotly_chart(charts.topk_bar(alone, names, k=min(5, len(names)), true_label=mi.label,
                                            title="What this group alone predicts"),
                            config=charts.CONFIG, theme=None, key="alone_topk")
        with c:
            share = float(fwd.scores[group] * fwd.group_logits[group, pred])
            share = 0.0 if abs(share) < 5e-4 else share  # no "-0.000" for a score-0 group
            st.metric(f"Contribution to the logit of {names[pred]}", f"{share:+.3f}",
                      help="score × this group's logit for the predicted class")
            st.caption(f"Final logit of {ui.plain(names[pred])}: {fwd.logits[pred]:.3f} = the sum of every "
                       f"group's contribution. A score-0 group contributes nothing, whatever it sees.")
            st.button("Show all groups", icon=":material/close:", on_click=ui.toggle_group, args=(group,),
                      key="clear_group")

# --------------------------------------------------------------------------- gallery
st.markdown("#### Groups, by score")
st.caption(ui.GROUP_HELP + " " + ui.SCORE_HELP)
ui.group_gallery(fwd, img, names, key="gallery", columns=4 if G <= 8 else 5, selected=group)

# --------------------------------------------------------------------------- curves
st.markdown("#### Insertion and deletion")
st.caption(ui.CURVES_HELP)
mode, baseline, steps = ui.curve_controls(st.columns([1, 1, 1.4], vertical_alignment="bottom"))
patches = int(grid[0] * grid[1])
slider_steps = steps
fine = None
if mode == "pixel" and patches > compute.LARGE_GRID:
    # A large grid: the step slider's (coarse) schedule by default, one step per patch on request.
    if st.toggle(f"Curves at one-patch resolution ({patches} steps)", key="curve_fine", value=False,
                 persist_state="session",
                 help=f"{patches} steps of one patch each: {2 * (patches + 1)} forward passes of the model, "
                      "instead of the Steps slider's schedule."):
        steps, fine = patches, 1
exp_sop = compute.get_explanation(lm, mi.x, "sop", x_key=mi.key)
# Progressive curves: everything above is already on screen; a coarse pair is drawn first, then
# refined into the same placeholder.  Each progress update is a Streamlit call, so a new input or
# setting (a rerun) stops the work in flight there.
curve_args = dict(mode=mode, baseline=baseline, x_key=mi.key)
schedule = compute.curve_schedule(mode, steps)
if compute.get_curves(lm, mi.x, exp_sop, steps=steps, compute=False, **curve_args) is not None:
    schedule = [steps]
live = st.empty()
curves = None
for n in schedule:
    got = compute.get_curves(lm, mi.x, exp_sop, steps=n, compute=False, **curve_args)
    if got is None:
        with live.container():
            if curves is not None:
                ui.curve_preview(curves, names, key=f"curve_preview_{mode}_{baseline}_{mi.key}")
            bar = st.progress(0.0, text=f"Computing the curves at {n} steps…")

        def _progress(p: float, bar=bar, n=n) -> None:
            bar.progress(min(1.0, max(0.0, p)), text=f"Computing the curves at {n} steps… {p:.0%}")

        got = compute.get_curves(lm, mi.x, exp_sop, steps=n, progress=_progress, **curve_args)
    curves = got
live.empty()
S = len(curves["insertion"].scores) - 1
step = ui.curve_step(S)

left, right = st.columns([1.35, 1], gap="large")
with left:
    curve_key = f"curve_chart_{mode}_{baseline}_{steps}_{step}_{mi.key}"
    st.plotly_chart(charts.curves_figure(curves, step=step, title=f"p({names[curves['insertion'].target]})"),
                    key=curve_key, on_select=ui.on_chart_point(curve_key, ui.set_curve_step), selection_mode="points",
                    config=charts.CONFIG,
                    theme=None)
    st.caption(f"Curves at {S} steps.")
    m1, m2 = st.columns(2)
    m1.metric("Insertion AUC", f"{curves['insertion'].auc:.3f}", help="higher is better")
    m2.metric("Deletion AUC", f"{curves['deletion'].auc:.3f}", help="lower is better")
with right:
    step = st.slider("Step", 0, S, key="curve_step", persist_state="session",
                     help="Or click a point on the curve.")
    i1, i2 = st.columns(2)
    for col, kind in ((i1, "insertion"), (i2, "deletion")):
        c = curves[kind]
        with col:
            st.image(upscale(tensor_to_image(c.input_at(mi.x, step), lm.config.mean, lm.config.std), 200), width="stretch")
            verb = "inserted" if kind == "insertion" else "deleted"
            st.caption(f"**{kind.capitalize()}**, step {step}/{S}: {c.fractions[step]:.0%} of pixels {verb}; "
                       f"p({names[c.target]}) = {c.scores[step]:.3f}")
    st.caption("The image as the model saw it at this step.")

# --------------------------------------------------------------------------- export
st.markdown("#### Export")
lock_curves = {mode: curves}


def _json_bytes() -> bytes:
    # Runs on a separate thread when clicked: the other curve kind comes from the app's curve cache.
    both = export.sop_curve_pairs(lm, mi, lock_curves, baseline=baseline, steps=steps)
    record = export.explanation_record(lm, mi, fwd, both, baseline=baseline, steps=steps)
    return export.to_json(record).encode()


def _png_bytes() -> bytes:
    return export.explanation_png(lm, mi, fwd, curves)


stem = f"sop_{lm.spec.name}_{mi.url}".replace(":", "_").replace("/", "_").replace(" ", "_")
e1, e2, e3 = st.columns([1, 1, 2.2])
e1.download_button("Download PNG", _png_bytes, file_name=f"{stem}.png", mime="image/png",
                   icon=":material/image:", key="dl_png", on_click="ignore")
e2.download_button("Download JSON", _json_bytes, file_name=f"{stem}.json", mime="application/json",
                   icon=":material/data_object:", key="dl_json", on_click="ignore")
st.caption("The JSON holds the groups (patch masks), scores, per-group logits, the prediction and both curve "
           "kinds (pixel-wise and grouped) with their AUCs.")
with e3:
    export.figure_download(lm, mi, fwd, baseline=baseline, steps=steps, curves=lock_curves, key="dl_fig")

ui.finish({"model": lm.spec.url, "timm": lm.spec.timm_name, "input": mi.url if mi.kind == "sample" else mi.kind,
           "group": group, "mode": mode, "baseline": baseline, "steps": slider_steps, "step": step,
           "fine": fine}, "")
