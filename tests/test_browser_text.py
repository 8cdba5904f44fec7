"""The text explorer in a real browser (Playwright + Debian's Chromium, as tests/test_browser.py):
type a sentence, see its groups highlighted, isolate one, move the curve step slider; no console errors.

    pytest -m browser tests/test_browser_text.py
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from sop.faithfulness import token_insertion_deletion

from browser_support import running_server, screenshot, wait_idle
from test_app_text import lib, lib_sentence
from test_browser import assert_clean, browser, metric, page, query, sidebar  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

SENTENCE = "to be fair , the laptop was never boring but the price was awful"


@pytest.fixture(scope="module")
def server():
    yield from running_server("server_text.log")


def test_type_a_sentence_see_groups_isolate_one_and_move_the_step(page, server):
    pg, watch = page
    pg.goto(server.url + "/?model=reviews")
    pg.get_by_text("Predicted class", exact=True).first.wait_for()
    wait_idle(pg)
    # type the sentence
    sidebar(pg).get_by_role("radio", name="Type a sentence", exact=True).click()
    wait_idle(pg)
    box = sidebar(pg).get_by_role("textbox", name="Sentence")
    box.fill(SENTENCE)
    box.press("Control+Enter")
    pg.locator(".st-key-text_sentence").get_by_text("laptop").wait_for()
    wait_idle(pg)
    ids, sx = lib_sentence(SENTENCE)
    names = lib().config.class_names
    assert metric(pg, "Predicted class") == names[sx.prediction]
    assert query(pg)["input"] == "typed" and query(pg)["text"] == SENTENCE
    # the groups are highlighted: each used group's tokens carry its class and a tinted background
    used = [g.group for g in sx.used]
    weight = sx.scores[used, None] * sx.masks[used]
    owner = np.where((sx.masks[used] > 0).any(0), np.array(used)[weight.argmax(0)], -1)
    sentence = pg.locator(".st-key-text_sentence")
    for g in used:
        spans = sentence.locator(f"span.tok.g{g}")
        assert spans.count() == int((owner == g).sum())
        if spans.count():
            bg = spans.first.evaluate("e => getComputedStyle(e).backgroundColor")
            assert bg not in ("rgba(0, 0, 0, 0)", "transparent"), bg
    assert sentence.locator("span.tok").count() == int(sx.content.sum())
    screenshot(pg, "text_explain", docs=True)
    # isolate the top group
    top = sx.used[0]
    pg.locator(f".st-key-text_gallery_{top.group} button").click()
    pg.get_by_text(f"Group {top.group} alone").wait_for()
    wait_idle(pg)
    assert query(pg)["group"] == str(top.group)
    isolated = pg.locator(".st-key-isolated_sentence")
    assert isolated.locator("span.tok.dropped").count() == int(sx.content.sum()) - len(top.positions)
    # the curve step slider shows the partial sentence at that step
    curves = token_insertion_deletion(lib(), ids, attribution=sx.attribution())
    S = len(curves["deletion"].scores) - 1
    start = int(query(pg)["step"])
    slider = pg.locator("input[type='range'][aria-label='Step']")
    if slider.count() == 0:
        slider = pg.get_by_role("slider", name="Step")
    slider.scroll_into_view_if_needed()
    slider.focus()
    slider.press("ArrowRight")
    slider.press("ArrowRight")
    pg.get_by_text(re.compile(rf"Deletion, step {start + 2}/{S}")).first.wait_for()
    wait_idle(pg)
    assert query(pg)["step"] == str(start + 2)
    assert pg.locator(".st-key-step_deletion span.tok.dropped").count() == start + 2
    assert pg.locator(".st-key-step_insertion span.tok.dropped").count() == S - start - 2
    screenshot(pg, "text_curve_step", docs=True)
    assert_clean(watch)


def test_compare_draws_each_baseline_map_when_ready_and_cancel_stops_the_rest(page, server):
    """Compare for text: Compute runs the baselines cheapest first; Occlusion's map is on screen while LIME
    (last, several seconds) still waits in its card, and Cancel stops the run with a note that names what
    it stopped apart from what had finished."""
    from urllib.parse import quote
    pg, watch = page
    text = "the keyboard was never annoying , yet the fan was loud"
    pg.goto(server.url + f"/compare?model=reviews&input=typed&text={quote(text)}")
    pg.get_by_text("Insertion AUC", exact=False).first.wait_for()
    wait_idle(pg)
    assert pg.locator(".st-key-map_sop span.tok").count() > 0          # SOP's map at once
    pg.get_by_role("button", name=re.compile("^Compute Occlusion")).click()
    pg.locator(".st-key-map_occlusion span.tok").first.wait_for()       # the first map, drawn when ready...
    assert pg.locator(".st-key-text_map_lime").get_by_text("Queued").count() == 1   # ...while LIME waits
    pg.get_by_role("button", name=re.compile("Cancel")).click()
    # the note names what the Cancel stopped (LIME at least) and, apart, Occlusion: it had finished
    pg.get_by_text(re.compile(r"Cancelled (Integrated Gradients, )?(KernelSHAP, )?LIME\. "
                              r"Occlusion \(one token\)(, [^.]+)? had finished")).wait_for()
    wait_idle(pg)
    assert pg.locator(".st-key-map_occlusion span.tok").count() > 0     # what finished stays
    assert pg.locator(".st-key-map_lime").count() == 0
    assert pg.get_by_role("button", name=re.compile("^Compute .*LIME$")).count() == 1   # the rest, on request
    assert_clean(watch)
