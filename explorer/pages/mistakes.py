"""Mistakes: the test split's confusion matrix, the misclassified examples, and why each went wrong."""
from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import charts, compute, ui, views
from explorer.inputs import select_sample, split_tensors
from sop.image_io import tensor_to_image
from sop.visualize import group_colour, overlay_groups, upscale

PER_PAGE = 24
COLUMNS = 6

ctx = ui.page_setup(need_input=False)
if views.draw("mistakes", ctx):
    st.stop()
lm = ctx.lm
if lm is None:
    st.info("Choose a model in the sidebar.")
    ui.finish({}, "mistakes")
    st.stop()

names = lm.class_names
K = len(names)
data = ui.mistakes_heading(lm, {"model": lm.spec.url, "timm": lm.spec.timm_name})
if data is None:
    st.stop()

images, labels = split_tensors(data)
preds = ui.mistakes_summary(lm, images, labels, "images")
cm = preds.confusion(K)
mistakes = preds.mistakes


# --------------------------------------------------------------------------- state
cell = ui.parse_cell(st.session_state.get("mistake_cell"), K)
if cell is None:
    st.session_state.pop("mistake_cell", None)
example = st.session_state.get("mistake_example")
if not isinstance(example, int) or not 0 <= example < len(labels):
    example = st.session_state["mistake_example"] = None


def _open(i: int) -> None:
    st.session_state["mistake_example"] = int(i)


def _clear_cell() -> None:
    st.session_state.pop("mistake_cell", None)
    st.session_state["mistake_page"] = 1


# --------------------------------------------------------------------------- matrix and gallery
left, right = st.columns([1, 1.6], gap="large")
with left:
    ui.confusion_picker(cm, names, cell, key=f"confusion_{lm.key}_{cell}",
                        on_pick=lambda: st.session_state.update(mistake_page=1))

with right:
    if cell is not None:
        t, p = cell
        shown = np.flatnonzero((preds.labels == t) & (preds.preds == p))
        title = f"**True {ui.plain(names[t])}, predicted {ui.plain(names[p])}** · {len(shown)} example(s)"
    else:
        shown = mistakes
        title = f"**All misclassified examples** · {len(shown)}"
    h1, h2 = st.columns([3, 1], vertical_alignment="center")
    h1.markdown(title)
    if cell is not None:
        h2.button("All mistakes", on_click=_clear_cell, key="clear_cell", icon=":material/filter_alt_off:")
    if len(shown) == 0:
        st.info("No examples here." if cell is not None else "No mistakes on the test split.")
    else:
        pages = int(np.ceil(len(shown) / PER_PAGE))
        page = st.session_state.get("mistake_page", 1)
        if not isinstance(page, int) or not 1 <= page <= pages:
            st.session_state["mistake_page"] = 1
        if pages > 1:
            page = st.number_input(f"Page (of {pages})", 1, pages, key="mistake_page", width=160)
        else:
            page = 1
        chunk = shown[(page - 1) * PER_PAGE: page * PER_PAGE]
        for start in range(0, len(chunk), COLUMNS):
            cols = st.columns(COLUMNS)
            for col, i in zip(cols, chunk[start:start + COLUMNS]):
                i = int(i)
                with col:
                    x = images[i:i + 1]
                    st.image(upscale(tensor_to_image(x, lm.config.mean, lm.config.std), 96), width="stretch")
                    st.caption(f"#{i}: {ui.plain(names[preds.labels[i]])} → {ui.plain(names[preds.preds[i]])}")
                    st.button("Open", key=f"open_{i}", on_click=_open, args=(i,), width="stretch",
                              type="primary" if example == i else "secondary")

# --------------------------------------------------------------------------- one example
if example is not None:
    x = images[example:example + 1]
    x_key = compute.tensor_key(x)
    fwd = compute.sop_forward(lm, x, x_key)
    true, pred = int(preds.labels[example]), fwd.prediction
    img = tensor_to_image(x, lm.config.mean, lm.config.std)
    st.divider()
    st.markdown(f"#### Test example #{example}: true **{ui.plain(names[true])}**, predicted "
                f"**{ui.plain(names[pred])}**")
    # Each group's share of the margin logit[pred] - logit[true] (per-class scores: each class its own).
    contrib = fwd.contributions(pred) - fwd.contributions(true)
    drivers = [int(g) for g in np.argsort(-contrib, kind="stable")]
    a, b, c = st.columns([1, 1, 1.3], gap="large")
    with a:
        st.image(upscale(img, 240), width="stretch", caption="input")
    with b:
        scored = [g for g in fwd.order if fwd.scores[g] > 0]
        st.image(upscale(overlay_groups(img, fwd.pixel_masks, scored, weights=fwd.scores), 240), width="stretch",
                 caption="its scored groups")
    with c:
        st.plotly_chart(charts.topk_bar(fwd.probs, names, k=min(5, K), true_label=true, title="Prediction"),
                        config=charts.CONFIG, theme=None, key="mistake_topk")
    if pred == true:
        st.success("The model gets this example right.")
    else:
        wrong = [g for g in drivers if contrib[g] > 0]
        if wrong:
            parts = ", ".join(f"group {g} ({contrib[g]:+.2f})" for g in wrong[:3])
            st.markdown(f"**Which groups drove the wrong class:** {parts}. Each number is what that group adds to the logit of "
                        f"{ui.plain(names[pred])} minus what it adds to the logit of {ui.plain(names[true])} "
                        f"(score × its own logit, per class); they add up to the margin {fwd.logits[pred] - fwd.logits[true]:+.2f} by which "
                        f"{ui.plain(names[pred])} beat {ui.plain(names[true])}.")
        g1, g2 = st.columns(2, gap="large")
        g1.plotly_chart(charts.contribution_figure(contrib, drivers, title="Push towards the wrong class, per group"),
                        config=charts.CONFIG, theme=None, key="mistake_contrib")
        g2.plotly_chart(charts.group_logits_figure(fwd.group_logits, fwd.scores, true, pred, names, fwd.order),
                        config=charts.CONFIG, theme=None, key="mistake_logits")
        st.markdown("**The groups that pushed hardest**")
        top = [g for g in drivers if fwd.scores[g] > 0][:4] or drivers[:4]

        def _extra(g: int) -> None:
            # HTML allowed for our swatch only: no user text (class names come from the checkpoint) here
            st.caption(f"{ui.swatch(group_colour(g), 10)}pushes {contrib[g]:+.3f} towards the predicted class",
                       unsafe_allow_html=True)

        ui.group_gallery(fwd, img, names, key="mistake_gallery", columns=4, groups=top,
                         selected=st.session_state.get("group"), extra=_extra)
    if st.button("Open in Explain", type="primary", icon=":material/visibility:", key="open_in_explain"):
        select_sample("test", example)
        st.switch_page("explorer/pages/explain.py")

ui.finish({"model": lm.spec.url, "timm": lm.spec.timm_name, "cell": st.session_state.get("mistake_cell"),
           "example": example}, "mistakes")
