"""Cancel on the Compare pages in a real browser (Playwright + Debian's Chromium, as tests/test_browser.py):
run LIME with the largest sample budget on the image Compare (digits) and on the regression Compare
(lensing), click the Cancel button on screen while it runs: the run stops (no progress bar, the app idle
again well before LIME could have finished), the Cancelled note shows, LIME waits on request again, and
the browser console stays clean.  Then a Cancel in LIME's last stretch (80-99 %): stopped, or finished
first, the note says which and the card agrees.

    pytest -m browser tests/test_browser_cancel.py
"""
from __future__ import annotations

import re
import time

import pytest

from browser_support import running_server, screenshot, wait_idle
# the image tests' Chromium and page fixtures (they use this module's server) and helpers
from test_browser import assert_clean, browser, page  # noqa: F401

pytestmark = pytest.mark.browser

COMPARE_PAGES = [  # (model, the page's URL query, the text that says the page is drawn, LIME's card)
    pytest.param("/compare?model=digits&input=test:1", "Insertion AUC", "card_lime", id="image"),
    pytest.param("/compare?model=lensing&input=test:9", "LIME", "regression_card_lime", id="regression"),
]


@pytest.fixture(scope="module")
def server():
    yield from running_server("server_cancel.log")


def progress_share(pg) -> int | None:
    """LIME's progress on the bar in per cent, or None when no bar is on screen."""
    bars = pg.locator("[data-testid='stProgress']")
    if not bars.count():
        return None
    m = re.search(r"(\d+)%", bars.first.inner_text())
    return int(m.group(1)) if m else 0


def running(pg) -> bool:
    """A script run in flight (Streamlit's status widget) or a progress bar on screen."""
    return pg.locator("[data-testid='stStatusWidget']").count() > 0 or progress_share(pg) is not None


def stays_idle(pg, seconds: float) -> None:
    """Fails as soon as a run or a progress bar shows up again within `seconds` (polled every 100 ms)."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        assert not running(pg), "the work started again after the Cancel"
        pg.wait_for_timeout(100)


@pytest.mark.parametrize("path, drawn, card", COMPARE_PAGES)
def test_cancel_stops_an_expensive_run(page, server, path, drawn, card):
    if "lensing" in path:
        pytest.importorskip("pyccl")
    pg, watch = page
    t0 = time.perf_counter()
    pg.goto(server.url + path)
    pg.get_by_text(drawn, exact=False).first.wait_for()
    wait_idle(pg)
    loaded = time.perf_counter() - t0
    # the largest budget: LIME then runs long enough to be cancelled mid-way
    samples = pg.locator("[data-testid='stSlider']").filter(has_text="Samples")
    thumb = samples.locator("input[type='range']")
    thumb.focus()
    thumb.press("End")
    samples.get_by_test_id("stSliderThumbValue").filter(has_text=re.compile(r"^\s*2000\s*$")).wait_for()
    wait_idle(pg)
    pg.locator(f".st-key-{card}").get_by_role("button", name=re.compile("Run")).click()
    # LIME at 2000 samples runs a few seconds here (20 batches of 100, a progress call before and after
    # each): click Cancel once the bar shows it part-way (1-79 %)
    pg.get_by_text(re.compile(r"Running LIME .*… ([1-7]\d|[1-9])%")).wait_for(timeout=60_000)
    started = progress_share(pg)
    cancel = pg.get_by_role("button", name=re.compile("Cancel"))
    visible = [cancel.nth(i) for i in range(cancel.count()) if cancel.nth(i).is_visible()]
    in_page = cancel.count()
    assert len(visible) == 1, f"{cancel.count()} Cancel buttons, {len(visible)} visible"
    t1 = time.perf_counter()
    visible[0].click()
    pg.get_by_text(re.compile("Cancelled LIME")).wait_for(timeout=30_000)
    wait_idle(pg, timeout=30)
    stopped_after = time.perf_counter() - t1
    # stopped: no bar, and none comes back; LIME waits on request again; no Cancel button left
    stays_idle(pg, 1.0)
    assert pg.locator(f".st-key-{card}").get_by_text("Not computed yet.").count() == 1
    assert pg.get_by_text(re.compile("Cancelled LIME")).count() == 1
    assert not [b for b in (cancel.nth(i) for i in range(cancel.count())) if b.is_visible()]
    assert not pg.locator("[data-testid='stException']").count()
    screenshot(pg, f"cancel_{card}_cancelled")
    late = cancel_late(pg, card)
    print(f"{card}: page ready in {loaded:.1f}s, cancelled at {started}% ({in_page} Cancel button(s) in the page, "
          f"1 visible), idle {stopped_after:.1f}s after the click; {late}; {time.perf_counter() - t0:.1f}s in all")
    assert_clean(watch)


def cancel_late(pg, card: str) -> str:
    """Run LIME again and click Cancel in its last stretch (80-99 %).  The work stops at its next progress
    call (before the next batch, or before the surrogate fit); if LIME finished first, its result shows and
    the note says so.  Either way: one note that matches what the card shows, and no Cancel button left."""
    run = pg.locator(f".st-key-{card}").get_by_role("button", name=re.compile("Run"))
    run.click()
    late = pg.get_by_text(re.compile(r"Running LIME .*… (8\d|9\d)%"))
    running = pg.get_by_text(re.compile(r"Running LIME"))
    waiting = pg.locator(f".st-key-{card}").get_by_text("Not computed yet.")
    # Poll rather than wait for the late text alone: on a loaded machine the browser may never draw a
    # state between 80 and 99 % (the run ends first), and a click made while the page reran can be lost.
    clicked, retried, deadline = time.monotonic(), False, time.monotonic() + 60
    while not (late.count() and late.first.is_visible()):
        assert time.monotonic() < deadline, "LIME neither reached 80 % nor finished within 60 s"
        if not running.count() and not waiting.count():   # finished before the late window: nothing to cancel
            wait_idle(pg, timeout=30)
            assert not pg.locator("[data-testid='stException']").count()
            return "LIME finished before the late window (no late Cancel)"
        if not running.count() and waiting.count() and not retried and time.monotonic() - clicked > 10:
            run.click()   # the first click was lost in a rerun
            retried = True
        time.sleep(0.05)
    at = progress_share(pg)
    cancel = pg.get_by_role("button", name=re.compile("Cancel"))
    visible = [cancel.nth(i) for i in range(cancel.count()) if cancel.nth(i).is_visible()]
    assert len(visible) == 1, f"{cancel.count()} Cancel buttons, {len(visible)} visible"
    visible[0].click()
    pg.get_by_text(re.compile("Cancelled LIME|LIME had finished before it could be cancelled")).wait_for(timeout=30_000)
    wait_idle(pg, timeout=30)
    stays_idle(pg, 0.5)
    cancelled = pg.get_by_text(re.compile("Cancelled LIME")).count()
    finished = pg.get_by_text(re.compile("LIME had finished before it could be cancelled")).count()
    waiting = pg.locator(f".st-key-{card}").get_by_text("Not computed yet.").count()
    assert (cancelled, finished, waiting) in ((1, 0, 1), (0, 1, 0)), (cancelled, finished, waiting)
    assert not [b for b in (cancel.nth(i) for i in range(cancel.count())) if b.is_visible()]
    assert not pg.locator("[data-testid='stException']").count()
    return f"late Cancel at {at}%: {'stopped' if cancelled else 'LIME had finished'}"
