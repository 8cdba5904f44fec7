"""Page furniture shared by every page: sidebar pickers, captions, the group gallery, the share box."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import streamlit as st

import sop
from sop.faithfulness import BASELINES, DEFAULT_BASELINE, DEFAULT_STEPS
from sop.visualize import group_colour, overlay_mask, upscale

from . import urlstate, views
from .compute import MODES, POST_HOC, Forward
from .inputs import ModelInput, split_of
from .models import SOURCES, LoadedModel, ModelSpec, embedded_label, embedded_table, held_back, load_spec, \
    spec_for_embedded, spec_for_file

GROUP_HELP = ("A **group** is a set of image patches that SOP picked for this input. The backbone looks at each "
              "group alone (everything else hidden) and says what it sees.")
SCORE_HELP = ("A group's **score** is the weight it gets in the final answer: scores are never negative and add up "
              "to 1, and a group with score 0 is ignored. The prediction is the score-weighted sum of what the "
              "groups alone predict, so the groups and scores are the whole computation, not a guess about it.")
CURVES_HELP = ("**Insertion** starts from an empty image (every pixel replaced by the removal baseline) and puts "
               "pixels back, most important first; **deletion** starts from the image and removes them. A good "
               "explanation makes the insertion curve rise fast (high AUC) and the deletion curve fall fast (low "
               "AUC). *Pixel-wise* ranks the model's patches by attribution and moves them in equal steps; "
               "*grouped* moves whole groups, one per step.")
MODE_LABELS = {"pixel": "Pixel-wise", "grouped": "Grouped"}
BASELINE_LABELS = {"zero": "zero (mean colour)", "blur": "blur", "noisy_linear": "noisy linear (ROAD)"}
STEPS_RANGE = (2, 64)
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>$~:])")


def plain(text: str) -> str:
    """User text (file names, paths) made safe to show inside Markdown: no formatting, no HTML."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def code(text: str) -> str:
    """User text shown as inline code (backticks removed so it cannot close the span)."""
    return "`" + str(text).replace("`", "'") + "`"


def swatch(colour: str, size: int = 12) -> str:
    """An inline colour square (only our own palette colours ever go in here)."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        raise ValueError(colour)
    return (f'<span style="display:inline-block;width:{size}px;height:{size}px;background:{colour};'
            f'border-radius:3px;vertical-align:-1px;margin-right:4px"></span>')


@dataclass
class Context:
    lm: LoadedModel | None
    mi: ModelInput | None


def page_setup(*, need_input: bool = True) -> Context:
    """Read the URL once per session, then draw the sidebar pickers (model, and input)."""
    urlstate.init_session()
    with st.sidebar:
        lm = model_picker()
        mi = None
        if lm is not None and need_input:
            st.divider()
            mi = views.input_picker(lm)
            if mi is not None:
                _input_thumbnail(lm, mi)
    return Context(lm, mi)


def page_with_input(page: str) -> tuple[LoadedModel, ModelInput]:
    """`page_setup` for a page that needs a model and an input: without both, say so and stop here.

    A text or regression model's page is drawn by its own view module (explorer/views.py), then stops."""
    ctx = page_setup(need_input=True)
    if views.draw(page or "explain", ctx):
        st.stop()
    if ctx.lm is None or ctx.mi is None:
        st.info("Choose a model and an input in the sidebar.")
        finish({}, page)
        st.stop()
    return ctx.lm, ctx.mi


def _apply_url_model() -> None:
    url_model, url_timm = urlstate.pending("url_model"), urlstate.pending("url_timm")
    if not url_model:
        return
    names = [r["name"] for r in embedded_table()]
    if url_model in names and not url_timm:
        st.session_state["model_source"] = "Embedded"
        st.session_state["model_embedded"] = url_model
    elif url_timm:
        st.session_state["model_source"] = "timm + checkpoint"
        st.session_state["model_timm"] = url_timm
        st.session_state["model_timm_path"] = url_model
    else:
        st.session_state["model_source"] = "Checkpoint file"
        st.session_state["model_path"] = url_model


def model_picker() -> LoadedModel | None:
    """Sidebar model chooser.  A model that fails to load shows its error; the previous one stays."""
    _apply_url_model()
    names = [r["name"] for r in embedded_table()]
    source = _source_picker()
    spec = {"Embedded": _embedded_spec, "Checkpoint file": _file_spec}.get(source, _timm_spec)()
    lm, error = None, None
    if spec is not None:
        try:
            with st.spinner(f"Loading {spec.name}…"):
                lm = load_spec(spec)
        except sop.SOPError as err:
            error = str(err)
    elif source != "Embedded":
        st.caption("Enter a path to load it.")
    if error:
        st.error(f"Could not load this model: {error}", icon=":material/error:")
    if lm is not None:
        st.session_state["last_model_spec"] = spec
    else:
        lm = _fallback_model(names)
    if lm is not None:
        _model_summary(lm)
    return lm


def _source_picker() -> str:
    if st.session_state.get("model_source") not in SOURCES:
        st.session_state["model_source"] = SOURCES[0]
    return st.segmented_control("Model", SOURCES, key="model_source", required=True, persist_state="session",
                                help="An embedded default, any SOP checkpoint on disk, or a timm architecture "
                                     "with its own SOP checkpoint.") or SOURCES[0]


def _embedded_spec() -> ModelSpec | None:
    rows = embedded_table()
    names = [r["name"] for r in rows]
    labels = {r["name"]: embedded_label(r) for r in rows}
    if not names:
        st.warning("No embedded models found in assets/models.")
        return None
    if st.session_state.get("model_embedded") not in names:
        st.session_state["model_embedded"] = names[0]
    name = st.selectbox("Embedded model", names, key="model_embedded", persist_state="session",
                        format_func=lambda n: labels.get(n, n),
                        help="Small models trained here: dataset, test accuracy, number of groups.")
    held = held_back()
    if held:
        st.caption("Not shown yet: " + ", ".join(f"{r['name']} ({r.get('modality')}, {r['task']})" for r in held)
                   + " — the pages cannot draw these yet; `python -m sop evaluate` / `evaluate-text` report on them.")
    return spec_for_embedded(name)


def _file_spec() -> ModelSpec | None:
    path = st.text_input("SOP checkpoint (.safetensors)", key="model_path", persist_state="session",
                         placeholder="runs/my_model_sop.safetensors",
                         help="A checkpoint written by sop.save() / `python -m sop train`: weights and config in "
                              "one safetensors file. Pickle files (.pt, .pth) are refused.")
    return spec_for_file(path) if path.strip() else None


def _timm_spec() -> ModelSpec | None:
    name = st.text_input("timm model name", key="model_timm", persist_state="session",
                         placeholder="vit_tiny_patch16_224")
    path = st.text_input("Its SOP checkpoint (.safetensors)", key="model_timm_path", persist_state="session",
                         placeholder="runs/vit_tiny_sop.safetensors")
    st.caption("Any timm architecture wrapped by SOP. The checkpoint holds every weight and names its timm "
               "architecture, so nothing is downloaded: this works offline. Train one with "
               "`python -m sop train --backbone <name>`.")
    return spec_for_file(path, timm_name=name.strip()) if path.strip() else None


def _fallback_model(names: list[str]) -> LoadedModel | None:
    """The previously loaded model (else the first embedded one), while the chosen one cannot load."""
    previous = st.session_state.get("last_model_spec")
    fallback = previous or (spec_for_embedded(names[0]) if names else None)
    if fallback is None:
        return None
    try:
        lm = load_spec(fallback)
        st.caption(f"Using {plain(fallback.name)} meanwhile.")
        return lm
    except sop.SOPError as err:
        st.error(str(err))
        return None


def _model_summary(lm: LoadedModel) -> None:
    cfg = lm.config
    metrics = cfg.training.get("metrics", {}) if isinstance(cfg.training, dict) else {}
    acc = metrics.get("test", {}).get("accuracy") if isinstance(metrics.get("test"), dict) else None
    size = (f"up to {cfg.img_size[-1]} tokens" if views.kind_of_model(lm) == "text"
            else f"{cfg.img_size[0]}×{cfg.img_size[1]}×{cfg.in_chans}")
    outputs = "parameters" if cfg.task == "regression" else "classes"
    bits = [f"**{plain(cfg.dataset or 'unknown dataset')}**", f"{len(cfg.class_names)} {outputs}",
            f"{cfg.num_groups} groups", size]
    if acc is not None:
        bits.append(f"test accuracy {acc:.1%}")
    st.caption(" · ".join(bits))
    with st.expander("About this model"):
        st.markdown(f"- backbone: {code(cfg.backbone)}\n"
                    f"- checkpoint: {code(lm.spec.sop_path)}\n"
                    f"- baselines explain: {lm.describe_for(POST_HOC)}\n"
                    f"- classes: {plain(', '.join(cfg.class_names[:20]))}{' …' if len(cfg.class_names) > 20 else ''}")
        bb = metrics.get("backbone_test_accuracy")
        if bb is not None:
            st.markdown(f"- backbone twin test accuracy: {bb:.1%}")
        cmd = cfg.training.get("command") if isinstance(cfg.training, dict) else None
        if cmd:
            st.code(cmd, language="bash")


def _input_thumbnail(lm: LoadedModel, mi: ModelInput) -> None:
    kind = views.kind_of_model(lm)
    if kind != "image":
        views.module(kind).thumbnail(lm, mi)
        return
    st.image(upscale(mi.image(lm), 160), caption=mi.name, width=160)
    if mi.label is not None:
        st.caption(f"True class: **{plain(lm.class_names[mi.label])}**")


def finish(params: dict, page: str = "") -> None:
    """Write the view into the URL and show the share link in the sidebar."""
    urlstate.sync(params)
    with st.sidebar:
        st.divider()
        with st.expander("Share this view", icon=":material/link:"):
            st.caption("The link reopens this page with the same model, input and settings "
                       "(uploaded or drawn images stay in your browser).")
            with st.container(key="share_link"):
                st.code(urlstate.share_link(params, page), language=None, wrap_lines=True)


# --------------------------------------------------------------------------- groups

def toggle_group(g: int) -> None:
    st.session_state["group"] = None if st.session_state.get("group") == g else int(g)


def group_gallery(fwd: Forward, img: np.ndarray, class_names: list[str], *, key: str, columns: int = 4,
                  selected: int | None = None, groups: list[int] | None = None, tile: int = 168,
                  on_click=toggle_group, extra=None) -> None:
    """Every group (by decreasing score) as a card: its overlay, score, what it alone predicts, and a button."""
    order = groups if groups is not None else fwd.order
    for start in range(0, len(order), columns):
        cols = st.columns(columns)
        for col, g in zip(cols, order[start:start + columns]):
            with col, st.container(border=True):
                colour = group_colour(g)
                st.image(upscale(overlay_mask(img, fwd.pixel_masks[g], colour, outline=True), tile), width="stretch")
                score = float(fwd.scores[g])
                alone = fwd.alone_probs(g)
                top = int(alone.argmax())
                bar = (f'<div style="height:6px;border-radius:3px;background:#e5e7eb;margin:2px 0 4px">'
                       f'<div style="height:6px;width:{min(100.0, 100 * score):.1f}%;background:{colour};'
                       f'border-radius:3px"></div></div>')
                st.markdown(f"{swatch(colour)}**Group {g}** · score {score:.3f}{bar}", unsafe_allow_html=True)
                st.caption(f"alone predicts **{plain(class_names[top])}** ({alone[top]:.0%})"
                           + (" · ignored (score 0)" if score <= 0 else ""))
                if extra is not None:
                    extra(g)
                is_sel = selected == g
                st.button("Isolated" if is_sel else "Isolate", key=f"{key}_{g}", on_click=on_click, args=(g,),
                          type="primary" if is_sel else "secondary", icon=":material/center_focus_strong:",
                          width="stretch")


# --------------------------------------------------------------------------- curve controls

def curve_controls(columns) -> tuple[str, str, int]:
    """The curve kind, removal baseline and step count, one widget in each of three `columns`.

    Shared by Explain and Compare: the same session keys, so a choice made on one page holds
    on the other (and in the URL).  Returns (mode, baseline, steps)."""
    lo, hi = STEPS_RANGE
    if st.session_state.get("curve_mode") not in MODES:
        st.session_state["curve_mode"] = MODES[0]
    if st.session_state.get("curve_baseline") not in BASELINES:
        st.session_state["curve_baseline"] = DEFAULT_BASELINE
    steps_now = st.session_state.get("curve_steps")
    if not isinstance(steps_now, int) or not lo <= steps_now <= hi:
        st.session_state["curve_steps"] = DEFAULT_STEPS
    c_mode, c_baseline, c_steps = columns
    with c_mode:
        mode = st.segmented_control("Curve", MODES, key="curve_mode", required=True, persist_state="session",
                                    format_func=lambda m: MODE_LABELS.get(m, m)) or MODES[0]
    with c_baseline:
        baseline = st.selectbox("Removal baseline", BASELINES, key="curve_baseline", persist_state="session",
                                format_func=lambda b: BASELINE_LABELS.get(b, b), help="What a removed pixel becomes.")
    with c_steps:
        steps = st.slider("Steps", lo, hi, key="curve_steps", persist_state="session", disabled=mode == "grouped",
                          help="Pixel-wise curves move the ranked patches in this many equal steps; grouped curves "
                               "move one group per step.")
    return mode, baseline, steps


def curve_step(S: int, default: int | None = None, key: str = "curve_step") -> int:
    """The step slider's value kept within [0, S] (a new curve may have fewer steps than the last
    one): the stored step clamped, or `default` (S // 4) when there is none.  Explain pages share it."""
    step = st.session_state.get(key)
    if not isinstance(step, int) or not 0 <= step <= S:
        st.session_state[key] = step = min(S, max(0, step if isinstance(step, int) else
                                                  (S // 4 if default is None else default)))
    return step


def curve_preview(curves: dict, class_names: list[str], *, key: str) -> None:
    """A coarse curve pair shown while the finer one computes (Explain's progressive curves)."""
    from . import charts
    ins, dele = curves["insertion"], curves["deletion"]
    steps = len(ins.scores) - 1
    st.plotly_chart(charts.curves_figure(curves, step=0, title=f"p({class_names[ins.target]})"), key=key,
                    config=charts.CONFIG, theme=None)
    st.caption(f"Curves at {steps} steps (coarse, refining) · insertion AUC {ins.auc:.3f} · "
               f"deletion AUC {dele.auc:.3f}")


def on_chart_point(chart_key: str, handle, dims: int = 1):
    """An `on_select` callback for the plotly chart drawn with key `chart_key`: calls
    handle(*customdata[:dims]) of the first selected point that carries them (clicked curve step,
    confusion cell, image patch...)."""
    from . import charts

    def _callback() -> None:
        state = st.session_state.get(chart_key)
        for p in (state.selection.points if state is not None else []):
            values = [charts.point_data(p, i) for i in range(dims)]
            if all(v is not None for v in values):
                handle(*values)
                return
    return _callback


def set_curve_step(step) -> None:
    st.session_state["curve_step"] = int(step)


def parse_cell(raw, k: int) -> tuple[int, int] | None:
    """The Mistakes page's selected confusion cell "true,predicted" (None unless both lie in 0..k-1)."""
    try:
        t, p = (int(v) for v in str(raw).split(","))
    except (TypeError, ValueError):
        return None
    return (t, p) if 0 <= t < k and 0 <= p < k else None


def confusion_picker(cm: np.ndarray, names: list[str], cell: tuple[int, int] | None, *, key: str,
                     what: str = "examples", on_pick=None) -> None:
    """The confusion matrix whose cells select `st.session_state["mistake_cell"]` (then `on_pick()`)."""
    from . import charts
    k = len(names)

    def _pick(t, q) -> None:
        st.session_state["mistake_cell"] = f"{int(t)},{int(q)}"
        if on_pick is not None:
            on_pick()

    st.markdown("**Confusion matrix**")
    st.plotly_chart(charts.confusion_figure(cm, names, selected=cell, height=min(480, max(260, 36 * k + 110))),
                    key=key, on_select=on_chart_point(key, _pick, 2), selection_mode="points", config=charts.CONFIG,
                    theme=None)
    st.caption(f"Rows: true class; columns: predicted class. Click a cell to list its {what}.")


def selected_group(num_groups: int) -> int | None:
    """The isolated group (`st.session_state["group"]`), reset to None unless it is one of this model's."""
    group = st.session_state.get("group")
    if not isinstance(group, int) or not 0 <= group < num_groups:
        group = st.session_state["group"] = None
    return group


def mistakes_heading(lm: LoadedModel, state: dict):
    """The Mistakes page's heading and `lm`'s test split; None (after a notice, with the page's URL state
    `state` written) when the split cannot be loaded here."""
    st.markdown(f"#### Mistakes · {plain(lm.spec.name)} on its test split")
    data, why = split_of(lm, "test")
    if data is None:
        st.info(f"No test split to examine: {why}.")
        finish(state, "mistakes")
    return data


def mistakes_summary(lm: LoadedModel, inputs, labels, noun: str):
    """Run the model on its test split (cached, with a progress bar) and show accuracy, mistakes,
    classes and groups; returns the `compute.split_predictions` result (the Mistakes pages)."""
    from . import compute
    bar = st.empty()
    preds = compute.split_predictions(
        lm, lm.config.dataset, "test", inputs, labels,
        progress=lambda f: bar.progress(f, text=f"Running the model on {len(labels)} test {noun}… {f:.0%}"))
    bar.empty()
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Test accuracy", f"{preds.accuracy:.1%}")
    m2.metric("Misclassified", f"{len(preds.mistakes)} of {len(labels)}")
    m3.metric("Classes", len(lm.class_names))
    m4.metric("Groups per input", lm.num_groups)
    return preds


def run_progress(where, labels: list[str], *, cancel_key: str, on_cancel, help: str):
    """One progress bar over the jobs named `labels`, with a Cancel button, in `where` (Compare's
    expensive methods).  Returns job(i) -> progress(share) callback of job i.  Each callback is a
    Streamlit call: a rerun (Cancel, a new input or setting) stops the work there."""
    with where:
        b1, b2 = st.columns([4, 1], vertical_alignment="center")
        bar = b1.progress(0.0, text="Starting…")
        b2.button("Cancel", key=cancel_key, icon=":material/stop:", on_click=on_cancel, help=help)

    def job(i: int):
        text = f"{labels[i]} ({i + 1}/{len(labels)})"

        def report(f: float) -> None:
            f = max(0.0, min(1.0, f))
            bar.progress(min(1.0, (i + f) / len(labels)), text=f"Running {text}… {f:.0%}")

        report(0.0)
        return report
    return job

