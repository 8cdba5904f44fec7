"""The explorer's text pages (explorer/text_pages.py) with Streamlit AppTest, against the library on
the embedded reviews model: typed sentences, groups, isolation, curves over tokens, bad input, shared
links, Compare and Mistakes."""
from __future__ import annotations

import html
import re
from functools import lru_cache

import numpy as np
import pytest
import torch

import sop
from sop.faithfulness import token_insertion_deletion
from sop.text_eval import explain_text
from sop.text_explain import explain_sentence
from sop.typed_text import encode_typed

from test_app import MODELS, group_scores_shown, metric, new_app, run, switch, texts

SENTENCE = "the camera was not disappointing , but the staff was rude"


@lru_cache(maxsize=None)
def lib(kind: str = "sop"):
    return sop.load(MODELS / f"reviews_{kind}.safetensors").eval()


def lib_sentence(text: str):
    ids = encode_typed(text, lib().config.img_size[-1]).ids
    return ids, explain_sentence(lib(), ids)


def typed_app(text: str = SENTENCE, **query):
    at = run(new_app(**query))
    at.selectbox(key="model_embedded").set_value("reviews")
    run(at)
    at.segmented_control(key="text_source").set_value("Type a sentence")
    run(at)
    at.text_area(key="typed_text").input(text)
    return run(at)


def sentence_markup(at) -> str:
    """The coloured sentence on the Explain page (the first sop-sentence block)."""
    return next(m.value for m in at.markdown if 'class="sop-sentence"' in m.value)


def test_typed_sentence_shows_groups_isolation_and_curves_as_the_library():
    at = typed_app()
    ids, sx = lib_sentence(SENTENCE)
    names = lib().config.class_names
    assert metric(at, "Predicted class") == names[sx.prediction]
    scores = group_scores_shown(at)
    assert len(scores) == lib().config.num_groups
    for g in sx.groups:
        assert scores[g.group] == pytest.approx(g.score, abs=5e-4)
    # each token of a used group is highlighted in the colour of the used group with the largest score x mask
    markup = sentence_markup(at)
    used = [g.group for g in sx.used]
    weight = sx.scores[used, None] * sx.masks[used]                     # (U, L)
    owner = np.where((sx.masks[used] > 0).any(0), np.array(used)[weight.argmax(0)], -1)
    for g in used:
        assert markup.count(f'class="tok g{g}"') == int((owner == g).sum())
    assert sum(markup.count(f'class="tok g{g}"') for g in used) == int((owner >= 0).sum()) > 0
    top = sx.used[0]
    assert sop.visualize.group_colour(top.group) in markup
    # isolate the top group: what it alone predicts
    at.button(key=f"text_gallery_{top.group}").click()
    run(at)
    assert any(f"**Group {top.group} alone**" in m.value for m in at.markdown)
    assert f"Alone, this group says **{names[top.alone_class]}** ({top.alone_probs.max():.1%})" in texts(at)
    assert at.button(key=f"text_gallery_{top.group}").label == "Isolated"
    assert at.query_params["group"] == str(top.group)
    # curves over tokens, one token per step, as the library computes them
    curves = token_insertion_deletion(lib(), ids, attribution=sx.attribution())
    assert metric(at, "Insertion AUC") == f"{curves['insertion'].auc:.3f}"
    assert metric(at, "Deletion AUC") == f"{curves['deletion'].auc:.3f}"
    S = len(curves["deletion"].scores) - 1
    at.slider(key="curve_step").set_value(2)
    run(at)
    assert f"**Deletion**, step 2/{S}" in texts(at)
    values = [m.value for m in at.markdown]
    head = next(i for i, v in enumerate(values) if v.startswith(f"**Deletion**, step 2/{S}"))
    assert values[head + 1].count('class="tok dropped"') == 2          # the partial sentence under it
    ins_head = next(i for i, v in enumerate(values) if v.startswith(f"**Insertion**, step 2/{S}"))
    assert values[ins_head + 1].count('class="tok dropped"') == S - 2
    # grouped curves
    at.segmented_control(key="curve_mode").set_value("grouped")
    run(at)
    grouped = token_insertion_deletion(lib(), ids, groups=sx.masks, scores=sx.scores, mode="grouped")
    assert metric(at, "Insertion AUC") == f"{grouped['insertion'].auc:.3f}"
    assert at.query_params["input"] == "typed" and at.query_params["text"] == SENTENCE
    assert at.query_params["mode"] == "grouped"


def test_empty_text_gets_a_message_and_the_previous_sentence_stays():
    at = typed_app()
    before = metric(at, "Predicted class")
    for bad in ("", "   \n  "):
        at.text_area(key="typed_text").input(bad)
        run(at)
        assert any("empty" in w.value for w in at.warning), [w.value for w in at.warning]
        assert "Still showing the previous sentence" in texts(at)
        assert metric(at, "Predicted class") == before
        assert "camera" in sentence_markup(at)


def test_over_long_text_is_truncated_with_a_notice():
    long = " ".join(["the film was great"] * 20)
    at = typed_app(long)
    notices = [w.value for w in at.warning]
    assert any("Truncated" in w and "82 tokens" in w for w in notices), notices
    ids, sx = lib_sentence(long)
    assert metric(at, "Predicted class") == lib().config.class_names[sx.prediction]
    assert sentence_markup(at).count('class="tok') == int(sx.content.sum()) == 30


def test_typed_text_goes_into_the_link_and_reopens_the_view():
    text = "i never found the phone disappointing"
    at = run(new_app(model="reviews", input="typed", text=text, mode="grouped"))
    assert at.text_area(key="typed_text").value == text
    assert at.segmented_control(key="curve_mode").value == "grouped"
    ids, sx = lib_sentence(text)
    assert metric(at, "Predicted class") == lib().config.class_names[sx.prediction]
    assert at.query_params["text"] == text
    # a text longer than the link's limit: cut to 500 characters in the link, with a notice
    long = "the book was good " * 40
    at = typed_app(long)
    assert len(at.query_params["text"]) == 500 and long.startswith(at.query_params["text"])
    assert "The shared link keeps the first 500 characters" in texts(at)
    at2 = run(new_app(model="reviews", input="typed", text=long))
    assert at2.text_area(key="typed_text").value == long[:500]


def test_typed_markup_is_shown_as_text():
    """The tokenizer splits "<script>" into "<", "script", ">", so the page can never hold that string
    anyway: check instead that every "<" and ">" token is escaped and the markup has only our tags."""
    from html.parser import HTMLParser
    at = typed_app("<script>alert(1)</script> the film was <b>bad</b>")
    markup = sentence_markup(at)

    class Tags(HTMLParser):
        tags, text = set(), []

        def handle_starttag(self, tag, attrs):
            self.tags.add(tag)

        def handle_data(self, data):
            self.text.append(data)

    parsed = Tags()
    parsed.feed(markup)
    assert parsed.tags == {"div", "span"}
    assert markup.count("&lt;") == markup.count("&gt;") == 4            # <script> </script> <b> </b>
    assert "".join(parsed.text).count("<") == 4 and "[SEP]" not in markup


def test_token_strings_are_escaped_in_every_view():
    """explorer.text_view escapes whatever a token string holds (a checkpoint's tokenizer could keep "<b>"
    as one token): the sentence, the heat map and the step views."""
    from explorer import text_view
    tokens = ["[CLS]", "<img src=x onerror=alert(1)>", "fine", "[SEP]"]
    content = np.array([False, True, True, False])
    views = [text_view.groups_html(tokens, content, np.array([-1, 0, 0, -1]), np.array([1.0])),
             text_view.heat_html(tokens, content, np.array([0.0, 0.5, -0.2, 0.0])),
             text_view.step_html(tokens, content, np.array([True, False, True, True]))]
    for markup in views:
        assert "<img" not in markup and html.escape(tokens[1]) in markup and "fine" in markup


def test_compare_page_draws_token_maps_of_sop_and_the_baselines():
    at = typed_app()
    switch(at, "compare")
    ids, sx = lib_sentence(SENTENCE)
    maps = lambda: [m.value for m in at.markdown if 'class="sop-sentence"' in m.value]  # noqa: E731
    assert len(maps()) == 1 and texts(at).count("Not computed yet") == 4      # SOP at once, baselines on request
    assert at.button(key="text_compute_baselines").label == \
        "Compute Occlusion (one token), Integrated Gradients, KernelSHAP, LIME"     # cheapest first
    at.button(key="text_compute_baselines").click()
    run(at)
    assert "Not computed yet" not in texts(at) and "Queued" not in texts(at) and len(maps()) == 5
    assert not [b for b in at.button if b.key in ("text_cancel_run", "text_compute_baselines")]
    captions = [c.value for c in at.caption if "insertion AUC" in c.value]
    assert len(captions) == 5
    # occlusion on the twin, one token per step, as the library computes it
    a, target = explain_text(lib("backbone"), ids, "occlusion")
    curves = token_insertion_deletion(lib("backbone"), ids, attribution=a, target=target)
    df = at.dataframe[0].value
    row = df[df["method"] == "Occlusion (one token)"].iloc[0]
    assert row["insertion AUC ↑"] == pytest.approx(round(curves["insertion"].auc, 3))
    assert row["deletion AUC ↓"] == pytest.approx(round(curves["deletion"].auc, 3))
    sop_curves = token_insertion_deletion(lib(), ids, attribution=sx.attribution())
    row = df[df["method"] == "SOP (own groups)"].iloc[0]
    assert row["insertion AUC ↑"] == pytest.approx(round(sop_curves["insertion"].auc, 3))
    # grouped curves of the maps already computed come at once, without another request
    at.segmented_control(key="curve_mode").set_value("grouped")
    run(at)
    assert not [b for b in at.button if b.key == "text_compute_baselines"] and len(maps()) == 5
    assert len(at.dataframe[0].value) == 5


def test_mistakes_page_lists_misclassified_sentences_and_opens_one():
    at = run(new_app(model="reviews"))
    switch(at, "mistakes")
    split = sop.data.load_split("reviews", "test", img_size=(1, 32))
    ids, labels = split.dataset.tensors
    wrong, total = (int(v) for v in re.match(r"(\d+) of (\d+)", metric(at, "Misclassified")).groups())
    assert total == len(labels)
    assert metric(at, "Test accuracy") == f"{1 - wrong / total:.1%}"
    shown = [int(k.split("_")[1]) for k in (b.key for b in at.button) if k and k.startswith("open_")]
    assert shown and len(shown) == min(10, wrong)
    with torch.no_grad():
        preds = lib()(ids[shown]).logits.argmax(-1)
    assert (preds != labels[shown]).all()            # every listed sentence is a real mistake
    i = shown[0]
    at.button(key=f"open_{i}").click()
    run(at)   # st.switch_page: this run is the Explain page
    assert any(f"test sample \\#{i}" in m.value for m in at.markdown)
    assert metric(at, "Predicted class") == lib().config.class_names[int(preds[0])]


def test_text_export_json_and_figure_hold_the_library_values():
    import io
    import json
    from PIL import Image
    from explorer import text_export
    from explorer.models import load_spec, spec_for_embedded
    from explorer.text_inputs import typed_input
    lm = load_spec(spec_for_embedded("reviews"))
    ti = typed_input(lm, SENTENCE)
    ids, sx = lib_sentence(SENTENCE)
    assert torch.equal(ti.ids, ids)
    curves = {"token": token_insertion_deletion(lib(), ids, attribution=sx.attribution()),
              "grouped": token_insertion_deletion(lib(), ids, groups=sx.masks, scores=sx.scores, mode="grouped")}
    record = json.loads(text_export.to_json(text_export.text_record(lm, ti, sx, curves)))
    assert record["prediction"]["class_index"] == sx.prediction
    assert record["input"]["text"] == SENTENCE and record["input"]["tokens"][0] == "[CLS]"
    assert [g["group"] for g in record["groups"]] == sx.order
    for g in record["groups"]:
        assert g["score"] == pytest.approx(float(sx.scores[g["group"]]), abs=1e-6)
        assert g["words"] == [sx.tokens[p] for p in g["positions"]]
    for mode in ("token", "grouped"):
        for kind in ("insertion", "deletion"):
            assert record["curves"][mode][kind]["auc"] == pytest.approx(curves[mode][kind].auc, abs=1e-6)
    img = Image.open(io.BytesIO(text_export.text_figure_png(lm, ti, sx, dpi=100)))
    assert img.format == "PNG" and img.width == 1100 and img.height > 100


def interrupt_baseline(monkeypatch, stopped: str) -> list[str]:
    """Make baseline `stopped` stop the script run half-way on its first call (st.stop(): what a Cancel or
    a rerun does to the running script at its next Streamlit call); returns the baselines called, in order."""
    import streamlit as st

    from explorer import text_compute
    calls: list[str] = []
    real = text_compute.explain_text

    def interrupted(model, ids, method, progress=None, **kw):
        if method != "sop":   # SOP's own map is read off its forward pass, before the baselines
            calls.append(method)
        if method == stopped and calls.count(method) == 1:
            progress(0.5)
            st.stop()
        return real(model, ids, method, progress=progress, **kw)

    monkeypatch.setattr(text_compute, "explain_text", interrupted)
    return calls


def test_compare_baselines_run_one_by_one_with_a_cancel(monkeypatch):
    """The baselines run cheapest first; each map shows as soon as it is ready, with a progress bar and a
    Cancel button.  AppTest runs a script to its end, so the second baseline stops the script run with
    st.stop() half-way (what a click on Cancel does to the running script at its next Streamlit call)."""
    calls = interrupt_baseline(monkeypatch, "integrated_gradients")
    at = typed_app("the battery was never bad , and the screen was lovely")   # nothing cached for it
    switch(at, "compare")
    at.button(key="text_compute_baselines").click()
    run(at)
    assert calls == ["occlusion", "integrated_gradients"]
    maps = [m.value for m in at.markdown if 'class="sop-sentence"' in m.value]
    assert len(maps) == 2                              # SOP's map and Occlusion's, drawn before IG finished
    assert texts(at).count("Queued") == 3              # IG (in flight), KernelSHAP and LIME wait in their cards
    bars = [p.text for p in at.get("progress")]
    assert any("Running Integrated Gradients (2/4)… 50%" in t for t in bars), bars
    at.button(key="text_cancel_run").click()
    run(at)
    assert calls == ["occlusion", "integrated_gradients"]          # nothing runs again
    notes = [i.value for i in at.info]
    # the note names what did not finish, and apart the baseline that finished before the Cancel was seen
    assert any(n.startswith("Cancelled Integrated Gradients, KernelSHAP, LIME.") and
               "Occlusion (one token) had finished and stays cached" in n for n in notes), notes
    assert not any(n.startswith("Cancelled Occlusion") for n in notes), notes
    assert not [b for b in at.button if b.key == "text_cancel_run"]
    assert at.button(key="text_compute_baselines").label == "Compute Integrated Gradients, KernelSHAP, LIME"
    assert len([m for m in at.markdown if 'class="sop-sentence"' in m.value]) == 2   # occlusion stays cached
    assert set(at.dataframe[0].value["method"]) == {"SOP (own groups)", "Occlusion (one token)"}


def test_compare_a_new_curve_kind_while_running_stops_the_rest_and_names_what_finished(monkeypatch):
    """A new setting while the baselines run (a rerun) stops the work and drops the request; the note names
    the baselines that did not finish apart from those that finished before (their maps stay cached)."""
    calls = interrupt_baseline(monkeypatch, "kernelshap")
    at = typed_app("the lens was hardly sharp , though the price was fair")   # nothing cached for it
    switch(at, "compare")
    at.button(key="text_compute_baselines").click()
    run(at)
    assert calls == ["occlusion", "integrated_gradients", "kernelshap"]
    at.segmented_control(key="curve_mode").set_value("grouped")
    run(at)
    assert calls == ["occlusion", "integrated_gradients", "kernelshap"]     # nothing runs again
    notes = [i.value for i in at.info]
    assert any(n.startswith("Stopped KernelSHAP, LIME: the sentence or the curve kind changed") and
               "Occlusion (one token), Integrated Gradients had finished and stay cached" in n for n in notes), notes
    assert at.button(key="text_compute_baselines").label == "Compute KernelSHAP, LIME"
    assert set(at.dataframe[0].value["method"]) == {"SOP (own groups)", "Occlusion (one token)",
                                                   "Integrated Gradients"}
