"""The pages of a text model (view kind "text", explorer/views.py): Explain, Compare and Mistakes
over one sentence's tokens.

The library computes (sop.text_explain, sop.text_eval, sop.faithfulness's token curves; cached
by explorer.text_compute); this module arranges and draws: the sentence with each group's tokens
in the group's colour (sop.visualize.group_colour, the image pages' colours), isolating a group,
curves over tokens with a step slider, token maps of the baselines, the test split's mistakes.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from sop.visualize import group_colour

from . import charts, compute, text_compute, text_export, text_inputs, text_view, ui, urlstate
from .method_runs import MethodRuns
from .models import LoadedModel
from .text_inputs import TextInput

CURVES_HELP = ("**Insertion** starts from the sentence with every word dropped (only [CLS] and [SEP] left) and "
               "puts tokens back, most important first; **deletion** starts from the sentence and drops them. A "
               "dropped token becomes [PAD], which the model does not read at all. *One token per step* ranks the "
               "tokens by the explanation's weight; *grouped* moves SOP's groups, one per step, by score. A good "
               "explanation makes insertion rise fast (high AUC) and deletion fall fast (low AUC).")
GROUP_HELP = ("A **group** is a set of tokens SOP picked for this sentence. The model reads each group alone "
              "(every other word dropped) and says what it sees; a group's **score** is its weight in the final "
              "answer (scores are never negative and add up to 1; score 0 = ignored).")
MISTAKES_PER_PAGE = 10


# --------------------------------------------------------------------------- the view-kind contract

def input_picker(lm: LoadedModel) -> TextInput | None:
    return text_inputs.input_picker(lm)


def thumbnail(lm: LoadedModel, mi: TextInput) -> None:
    with st.container(border=True, key="text_thumbnail"):
        st.caption(ui.plain(mi.text if len(mi.text) <= 300 else mi.text[:300] + " …"))
    if mi.label is not None:
        st.caption(f"True class: **{ui.plain(lm.class_names[mi.label])}**")


def draw(page: str, ctx) -> None:
    lm, ti = ctx.lm, ctx.mi
    if page == "mistakes":
        _mistakes(lm)
        return
    if ti is None:
        st.info("Choose a sample or type a sentence in the sidebar.")
        ui.finish({"model": lm.spec.url}, "compare" if page == "compare" else "")
        return
    {"explain": _explain, "compare": _compare}.get(page, _explain)(lm, ti)


# --------------------------------------------------------------------------- shared bits

def _sentence_html(html: str, key: str) -> None:
    # HTML from explorer.text_view only: every token string is escaped there.
    with st.container(key=key):
        st.markdown(html, unsafe_allow_html=True)


def _true_caption(lm: LoadedModel, ti: TextInput, pred: int) -> str:
    if ti.label is None:
        return ui.plain(ti.name)
    names = lm.class_names
    verdict = "✓ correct" if pred == ti.label else "✗ wrong"
    return f"True class: **{ui.plain(names[ti.label])}** ({verdict}) · {ui.plain(ti.name)}"


def _curve_mode() -> str:
    if st.session_state.get("curve_mode") not in text_compute.CURVE_MODES:
        st.session_state["curve_mode"] = text_compute.CURVE_MODES[0]
    return st.segmented_control("Curve", text_compute.CURVE_MODES, key="curve_mode", required=True,
                                persist_state="session",
                                format_func=lambda m: text_compute.MODE_LABELS.get(m, m)) or "token"


def _truncation_notice(lm: LoadedModel, ti: TextInput) -> None:
    if ti.truncated:
        st.warning(f"This text was truncated to the model's {text_inputs.length_of(lm)} tokens (it needs "
                   f"{ti.total_tokens}); the model never sees the rest.", icon=":material/content_cut:")


# --------------------------------------------------------------------------- Explain

def _explain(lm: LoadedModel, ti: TextInput) -> None:
    names = lm.class_names
    sx = text_compute.sentence(lm, ti.ids, ti.key)
    pred = sx.prediction
    G = len(sx.groups)
    group = ui.selected_group(G)

    st.markdown(f"#### Explain · {ui.plain(lm.spec.name)} · {ui.plain(ti.name)}")
    _truncation_notice(lm, ti)
    c_text, c_pred = st.columns([1.7, 1], gap="large")
    with c_text:
        st.markdown("**The sentence, coloured by group**")
        scored = [g.group for g in sx.used]
        shown = st.pills("Groups shown", options=sx.order, selection_mode="multi", default=scored,
                         format_func=lambda g: f"g{g} · {sx.scores[g]:.2f}", key=f"text_shown_{ti.key}_{lm.key}",
                         help="Each colour is one group (the same colours as on the image pages). Where groups "
                              "overlap, a token shows the group with the larger score × mask.")
        owner = sx.owner(shown or [])
        _sentence_html(text_view.groups_html(sx.tokens, sx.content, owner, sx.scores, shown or []), "text_sentence")
        st.caption(_true_caption(lm, ti, pred))
    with c_pred:
        st.metric("Predicted class", names[pred], help="argmax of the score-weighted sum of the group logits")
        st.caption(f"probability {sx.probs[pred]:.1%}")
        st.plotly_chart(charts.topk_bar(sx.probs, names, k=min(5, len(names)), true_label=ti.label,
                                        title="Top classes"), config=charts.CONFIG, theme=None, key="text_topk")

    if group is not None:
        _isolated(lm, ti, sx, group)

    st.markdown("#### Groups, by score")
    st.caption(GROUP_HELP)
    for start in range(0, G, 2):
        cols = st.columns(2)
        for col, tg in zip(cols, sx.groups[start:start + 2]):
            with col, st.container(border=True, key=f"text_group_card_{tg.group}"):
                colour = group_colour(tg.group)
                bar = (f'<div style="height:6px;border-radius:3px;background:#e5e7eb;margin:2px 0 4px">'
                       f'<div style="height:6px;width:{min(100.0, 100 * tg.score):.1f}%;background:{colour};'
                       f'border-radius:3px"></div></div>')
                st.markdown(f"{ui.swatch(colour)}**Group {tg.group:d}** · score {tg.score:.3f}{bar}",
                            unsafe_allow_html=True)
                members = np.where(sx.masks[tg.group] > 0, tg.group, -1)
                _sentence_html(text_view.groups_html(sx.tokens, sx.content, members, sx.scores),
                               f"text_group_{tg.group}")
                alone = tg.alone_probs
                st.caption(f"alone predicts **{ui.plain(names[tg.alone_class])}** ({alone.max():.0%}) · "
                           f"{len(tg.positions)} token(s)" + (" · ignored (score 0)" if tg.score <= 0 else ""))
                is_sel = group == tg.group
                st.button("Isolated" if is_sel else "Isolate", key=f"text_gallery_{tg.group}", on_click=ui.toggle_group,
                          args=(tg.group,), type="primary" if is_sel else "secondary",
                          icon=":material/center_focus_strong:", width="stretch")

    mode, step, curves = _explain_curves(lm, ti, sx)
    _explain_export(lm, ti, sx, curves, mode)
    ui.finish({"model": lm.spec.url, "input": ti.url, "text": ti.url_text, "group": group, "mode": mode,
               "step": step}, "")


def _isolated(lm: LoadedModel, ti: TextInput, sx, group: int) -> None:
    names = lm.class_names
    tg = sx.group(group)
    with st.container(border=True, key="isolated_panel"):
        st.markdown(f"{ui.swatch(group_colour(group), 14)}**Group {group} alone** · score {tg.score:.3f} · "
                    f"rank {sx.order.index(group) + 1:d} of {len(sx.groups):d}", unsafe_allow_html=True)
        a, b = st.columns([1.4, 1], gap="large")
        with a:
            only = np.isin(np.arange(len(sx.tokens)), tg.positions)
            _sentence_html(text_view.step_html(sx.tokens, sx.content, only), "isolated_sentence")
            st.caption("What the model reads for this group: only these tokens (with [CLS] and [SEP], at their "
                       "own positions); the struck-through words never reach it.")
            share = float(tg.score * sx.group_logits[group, sx.prediction])
            share = 0.0 if abs(share) < 5e-4 else share
            st.metric(f"Contribution to the logit of {names[sx.prediction]}", f"{share:+.3f}",
                      help="score × this group's logit for the predicted class")
            st.button("Show all groups", icon=":material/close:", on_click=ui.toggle_group, args=(group,),
                      key="clear_group")
        with b:
            st.plotly_chart(charts.topk_bar(tg.alone_probs, names, k=min(5, len(names)), true_label=ti.label,
                                            title="What this group alone predicts"),
                            config=charts.CONFIG, theme=None, key="alone_topk")
            st.caption(f"Alone, this group says **{ui.plain(names[tg.alone_class])}** "
                       f"({tg.alone_probs.max():.1%}).")


def _explain_curves(lm: LoadedModel, ti: TextInput, sx):
    names = lm.class_names
    st.markdown("#### Insertion and deletion over tokens")
    st.caption(CURVES_HELP)
    mode = _curve_mode()
    got = text_compute.curves(lm, ti.ids, ti.key, "sop", mode, compute=False)
    if got is None:
        with st.spinner("Computing the curves over tokens…"):
            got = text_compute.curves(lm, ti.ids, ti.key, "sop", mode)
    S = len(got["insertion"].scores) - 1
    step = ui.curve_step(S, S // 2)
    left, right = st.columns([1.2, 1], gap="large")
    with right:
        step = st.slider("Step", 0, S, key="curve_step", persist_state="session",
                         help="Or click a point on the curve.")
        for kind in ("insertion", "deletion"):
            c = got[kind]
            present = c.input_at(ti.ids, step).numpy() != 0
            verb = "inserted" if kind == "insertion" else "deleted"
            st.markdown(f"**{kind.capitalize()}**, step {step}/{S}: {c.fractions[step]:.0%} of tokens {verb}; "
                        f"p({ui.plain(names[c.target])}) = {c.scores[step]:.3f}")
            _sentence_html(text_view.step_html(sx.tokens, sx.content, present), f"step_{kind}")
        st.caption("The sentence as the model read it at this step (struck-through tokens dropped).")
    with left:
        curve_key = f"text_curve_chart_{mode}_{step}_{ti.key}"
        st.plotly_chart(charts.curves_figure(got, step=step, title=f"p({names[got['insertion'].target]})",
                                             unit="tokens"),
                        key=curve_key, on_select=ui.on_chart_point(curve_key, ui.set_curve_step),
                        selection_mode="points", config=charts.CONFIG,
                        theme=None)
        m1, m2 = st.columns(2)
        m1.metric("Insertion AUC", f"{got['insertion'].auc:.3f}", help="higher is better")
        m2.metric("Deletion AUC", f"{got['deletion'].auc:.3f}", help="lower is better")
        st.caption(f"{S} steps over {int(sx.content.sum())} content tokens.")
    return mode, step, got


def _explain_export(lm: LoadedModel, ti: TextInput, sx, curves, mode: str) -> None:
    st.markdown("#### Export")

    def _json_bytes() -> bytes:   # both curve kinds (the other one from the cache, or computed now)
        both = {m: (curves if m == mode else text_compute.curves(lm, ti.ids, ti.key, "sop", m))
                for m in text_compute.CURVE_MODES}
        return text_export.to_json(text_export.text_record(lm, ti, sx, both)).encode()

    stem = f"sop_{lm.spec.name}_{ti.url}".replace(":", "_").replace("/", "_").replace(" ", "_")
    e1, e2 = st.columns([1, 1])
    e1.download_button("Download JSON", _json_bytes, file_name=f"{stem}.json", mime="application/json",
                       icon=":material/data_object:", key="dl_json", on_click="ignore")
    e2.download_button("Download figure (PNG)", lambda: text_export.text_figure_png(lm, ti, sx),
                       file_name=f"{stem}.png", mime="image/png", icon=":material/image:", key="dl_png",
                       on_click="ignore")
    st.caption("The JSON holds the tokens, the groups (token masks, words), scores, per-group logits, the "
               "prediction and both curve kinds (one token per step and grouped) with their AUCs; the figure is "
               "the sentence with its scored groups in their colours.")


# --------------------------------------------------------------------------- Compare

# The baselines take from under a second to about ten each (text_compute.BASELINES_BY_COST).  They run on
# request through explorer/method_runs.py (as the image and regression Compare pages' expensive methods),
# cheapest first, each card filled as soon as its map is ready: a new sentence or curve kind (a rerun)
# stops the work and drops the request; *Cancel* stops it on purpose, and its note names the baselines
# that did not finish apart from those that did.  What was finished stays cached.

def _method_runs(lm: LoadedModel, ti: TextInput, sx, mode: str, slots: dict) -> MethodRuns:
    """The page's run requests: a baseline's run computes its map and curves and draws its card."""
    def run_one(m: str, progress) -> None:
        text_compute.token_map(lm, ti.ids, ti.key, m, progress=progress)
        text_compute.curves(lm, ti.ids, ti.key, m, mode)
        _map_card(lm, ti, sx, m, mode, slots[m], queued=True)

    return MethodRuns(view=lambda todo: compute.signature("text-compare-run", lm.key, ti.key, mode, list(todo)),
                      run_one=run_one, key="text_cmp_run", label=text_compute.label, cancel_key="text_cancel_run",
                      cancel_help="Stop the work in flight (a new sentence or setting stops it too).",
                      stopped_why=": the sentence or the curve kind changed while they ran")


def _computed(lm: LoadedModel, ti: TextInput, m: str, mode: str):
    """(token map, curves) of method m from the cache, or None while either is missing."""
    got = text_compute.token_map(lm, ti.ids, ti.key, m, compute=False)
    crv = text_compute.curves(lm, ti.ids, ti.key, m, mode, compute=False)
    return None if got is None or crv is None else (got, crv)


def _map_card(lm: LoadedModel, ti: TextInput, sx, m: str, mode: str, slot, queued: bool) -> None:
    """Method m's card body (in `slot`, an st.empty): its token map and AUCs, or why it is not there yet."""
    done = _computed(lm, ti, m, mode)
    with slot.container():
        if done is None:
            st.caption("Queued: it runs after the maps above it." if queued else
                       "Not computed yet: use the button above.")
            return
        (a, target, seconds), crv = done
        _sentence_html(text_view.heat_html(sx.tokens, sx.content, a), f"map_{m}")
        st.caption(f"insertion AUC {crv['insertion'].auc:.3f} · deletion AUC {crv['deletion'].auc:.3f} · "
                   f"explains p({ui.plain(lm.class_names[target])}) · {seconds:.2f} s")


def _compare(lm: LoadedModel, ti: TextInput) -> None:
    names = lm.class_names
    sx = text_compute.sentence(lm, ti.ids, ti.key)
    twin = compute.backbone_prediction(lm, ti.ids, ti.key)
    st.markdown(f"#### Compare methods · {ui.plain(lm.spec.name)} · {ui.plain(ti.name)}")
    _truncation_notice(lm, ti)
    st.markdown(f"**SOP predicts {ui.plain(names[sx.prediction])}** ({sx.probs[sx.prediction]:.1%}) · "
                f"the post-hoc methods explain {lm.describe_for(compute.POST_HOC)}, which predicts "
                f"**{ui.plain(names[int(twin.argmax())])}** ({twin.max():.1%})"
                + (f" · true class **{ui.plain(names[ti.label])}**" if ti.label is not None else ""))
    st.caption("Token maps: blue = the token speaks for the explained class, red = against it (opacity: size). "
               "SOP's map is Σ score × group mask of the SOP model; each baseline explains the plain twin, as "
               "`python -m sop evaluate-text` does. The curves drop tokens ([PAD]) in the order of each map.")
    mode = _curve_mode()
    if _computed(lm, ti, "sop", mode) is None:
        with st.spinner("SOP's token map…"):
            text_compute.curves(lm, ti.ids, ti.key, "sop", mode)
    for m in text_compute.BASELINES_BY_COST:   # a map already computed: its curves of this kind are cheap
        if text_compute.token_map(lm, ti.ids, ti.key, m, compute=False) is not None and \
                _computed(lm, ti, m, mode) is None:
            with st.spinner(f"{text_compute.label(m)}: curves…"):
                text_compute.curves(lm, ti.ids, ti.key, m, mode)
    waiting = [m for m in text_compute.BASELINES_BY_COST if _computed(lm, ti, m, mode) is None]
    slots: dict = {}   # each card's body, filled in the card loop below
    runs = _method_runs(lm, ti, sx, mode, slots)
    run_area = st.container()
    request, note = runs.take()
    if note:
        run_area.info(note, icon=":material/stop_circle:")
    todo = [m for m in (request or {}).get("methods", []) if m in waiting]
    if waiting and not todo:
        run_area.button(f"Compute {', '.join(text_compute.label(m) for m in waiting)}", key="text_compute_baselines",
                        type="primary", icon=":material/play_arrow:", on_click=runs.request, args=(waiting,),
                        help="Cheapest first, each map shown as soon as it is ready: from under a second "
                             f"({text_compute.label(text_compute.BASELINES_BY_COST[0])}) to about ten "
                             f"({text_compute.label(text_compute.BASELINES_BY_COST[-1])}: 200 perturbed sentences). "
                             "A Cancel button stops the run.")
    cols = st.columns(2)
    for n, m in enumerate(text_compute.METHODS):
        with cols[n % 2], st.container(border=True, key=f"text_map_{m}"):
            st.markdown(f"**{text_compute.label(m)}** · explains "
                        f"{'the SOP model' if m == 'sop' else 'the twin'}")
            slots[m] = st.empty()
        _map_card(lm, ti, sx, m, mode, slots[m], queued=m in todo)
    if request is not None:   # (its finished methods come from the cache at once)
        runs.run(request, run_area)   # reruns the page when all is cached (a rerun or Cancel stops it first)
    rows = []
    for m in text_compute.METHODS:
        done = _computed(lm, ti, m, mode)
        if done is not None:
            (_, _, seconds), crv = done
            rows.append({"method": text_compute.label(m), "insertion AUC ↑": round(crv["insertion"].auc, 3),
                         "deletion AUC ↓": round(crv["deletion"].auc, 3), "seconds": round(seconds, 2)})
    if rows:
        import pandas as pd
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="text_auc_table")
        st.caption(f"Curves: {text_compute.MODE_LABELS[mode].lower()}; each on the model its method explains.")
    ui.finish({"model": lm.spec.url, "input": ti.url, "text": ti.url_text, "mode": mode}, "compare")


# --------------------------------------------------------------------------- Mistakes

def _mistakes(lm: LoadedModel) -> None:
    names = lm.class_names
    K = len(names)
    data = ui.mistakes_heading(lm, {"model": lm.spec.url})
    if data is None:
        return
    ids, labels = data.dataset.tensors
    preds = ui.mistakes_summary(lm, ids, labels, "sentences")
    cm = preds.confusion(K)

    cell = ui.parse_cell(st.session_state.get("mistake_cell"), K)
    if cell is None:
        st.session_state.pop("mistake_cell", None)
    left, right = st.columns([1, 1.8], gap="large")
    with left:
        ui.confusion_picker(cm, names, cell, key=f"text_confusion_{lm.key}_{cell}", what="sentences")
    with right:
        if cell is not None:
            t, p = cell
            shown = np.flatnonzero((preds.labels == t) & (preds.preds == p))
            st.markdown(f"**True {ui.plain(names[t])}, predicted {ui.plain(names[p])}** · {len(shown)} sentence(s)")
            st.button("All mistakes", on_click=lambda: st.session_state.pop("mistake_cell", None), key="clear_cell",
                      icon=":material/filter_alt_off:")
        else:
            shown = preds.mistakes
            st.markdown(f"**All misclassified sentences** · {len(shown)}")
        if len(shown) == 0:
            st.info("No sentences here." if cell is not None else "No mistakes on the test split.")
        pages = max(1, int(np.ceil(len(shown) / MISTAKES_PER_PAGE)))
        page = 1
        if pages > 1:
            if not 1 <= int(st.session_state.get("text_mistake_page", 1) or 1) <= pages:
                st.session_state["text_mistake_page"] = 1
            page = st.number_input(f"Page (of {pages})", 1, pages, key="text_mistake_page", width=160)
        for i in shown[(page - 1) * MISTAKES_PER_PAGE: page * MISTAKES_PER_PAGE]:
            i = int(i)
            x = ids[i:i + 1]
            sx = text_compute.sentence(lm, x, compute.tensor_key(x))
            with st.container(border=True, key=f"text_mistake_{i}"):
                st.markdown(f"**#{i}**: true **{ui.plain(names[preds.labels[i]])}** → predicted "
                            f"**{ui.plain(names[preds.preds[i]])}** ({preds.probs[i].max():.0%})")
                owner = sx.owner()
                _sentence_html(text_view.groups_html(sx.tokens, sx.content, owner, sx.scores,
                                                     [g.group for g in sx.used]), f"mistake_sentence_{i}")
                st.caption(" · ".join(f"group {g.group}: {g.score:.2f} → {ui.plain(names[g.alone_class])}"
                                      for g in sx.used[:4]))
                if st.button("Open in Explain", key=f"open_{i}", icon=":material/visibility:"):
                    text_inputs.select_text_sample("test", i)
                    st.session_state["group"] = None
                    urlstate.open_page("explorer/pages/explain.py", {"model": lm.spec.url, "input": f"test:{i}"})
    ui.finish({"model": lm.spec.url, "cell": st.session_state.get("mistake_cell")}, "mistakes")

