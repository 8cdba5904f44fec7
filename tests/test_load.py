"""Many users, one server: 8 browser sessions explain different samples at the same time.

One Streamlit server, one headless Chromium, 8 contexts (8 Streamlit sessions) driven from
one thread (Playwright's sync API is not thread-safe): every page is sent to its URL
(?model=digits&input=test:N) first, then each is awaited, so the server works on them
concurrently.  Brief: 2 rounds of 8 pages = 16 explanations, each on a new sample.
Asserted: every page shows the library's prediction for its own sample under its own
heading, no console or page errors, and the server's RSS after the last round is within
150 MiB of its RSS after the first round (bench/bench_load.py runs 200 explanations).

    pytest -m browser tests/test_load.py
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from browser_support import CHROMIUM, CHROMIUM_ARGS, running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
PAGES, ROUNDS = 8, 2
RSS_BOUND = 150 * 2**20


def _bench():
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "bench_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def load_server():
    yield from running_server("load_server.log")


def test_eight_sessions_each_see_their_own_prediction_and_memory_stays_flat(load_server):
    from playwright.sync_api import sync_playwright
    bench = _bench()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            out = bench.run_load(browser, load_server, pages=PAGES, rounds=ROUNDS)
        finally:
            browser.close()
    assert not out["problems"], "\n".join(out["problems"])
    assert out["explanations"] == PAGES * ROUNDS
    rss = out["rss"]
    first, last = rss[min(rss)], rss[max(rss)]
    print(f"server RSS after {min(rss)}: {first / 2**20:.0f} MiB, after {max(rss)}: {last / 2**20:.0f} MiB; "
          f"seconds per round: {[round(s, 1) for s in out['seconds']]}")
    assert last - first < RSS_BOUND, f"server RSS grew by {(last - first) / 2**20:.0f} MiB"
