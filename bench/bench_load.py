"""Benchmark: many users on one Streamlit server (issue 6).

Starts one server (tests/browser_support.StreamlitServer), opens `--pages` browser pages in
one headless Chromium (one context each, so each is its own Streamlit session) and, round
after round, points every page at a different digits test sample through the shared-link
query parameters (?model=digits&input=test:N).  Every page must show the prediction the
library computes for its own sample; the server's resident memory is read (psutil) as the
number of explanations grows.

Prints: RSS after the first --early explanations and after --explanations in all, the
growth between them, and seconds per round (all pages loaded and explained).
Run:  PYTHONPATH=tests .venv/bin/python bench/bench_load.py [--pages 8] [--explanations 200] [--early 20]
(`sop` comes from the editable install scripts/setup_env.sh makes; PYTHONPATH=tests for browser_support.)
The pages are driven from one thread with Playwright's sync API: every page is sent to its
URL first (without waiting), then each is awaited, so the server serves them concurrently.
Not a test: the machines are shared, so quote figures from one run.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import psutil
import torch

import sop
from sop.data import load_split

ROOT = Path(__file__).resolve().parent.parent

MODEL = "digits"
TIMEOUT_MS = 180_000


def expected_predictions(name: str = MODEL) -> tuple[list[str], list[str]]:
    """(predicted class name, true class name) of every test sample, computed by the library."""
    model = sop.load(ROOT / "assets" / "models" / f"{name}_sop.safetensors").eval()
    ds = load_split(name, "test").dataset
    xs, ys = ds.tensors[0].float(), ds.tensors[1]
    with torch.no_grad():
        pred = torch.cat([model(xs[i:i + 64]).logits.argmax(-1) for i in range(0, len(xs), 64)])
    names = model.config.class_names
    return [names[int(p)] for p in pred], [names[int(y)] for y in ys]


def plan_rounds(preds: list[str], pages: int, rounds: int) -> list[list[int]]:
    """`rounds` lists of `pages` sample indices: no index used twice (every explanation is new),
    and within a round the pages' predicted classes differ as far as the classes allow, so a
    page showing another session's result would be caught."""
    unused = list(range(len(preds)))
    plan = []
    for _ in range(rounds):
        chosen, classes = [], set()
        for i in list(unused):  # first one sample per predicted class ...
            if len(chosen) < pages and preds[i] not in classes:
                chosen.append(i)
                classes.add(preds[i])
                unused.remove(i)
        for i in list(unused):  # ... then any unused sample (a weak model predicts few classes)
            if len(chosen) < pages:
                chosen.append(i)
                unused.remove(i)
        if len(chosen) < pages:
            raise ValueError("not enough test samples for that many rounds")
        plan.append(chosen)
    return plan


def server_rss(pid: int) -> int:
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def shown_prediction(page) -> str:
    box = page.locator("[data-testid='stMetric']").filter(
        has=page.locator("[data-testid='stMetricLabel']", has_text="Predicted class")).first
    return box.locator("[data-testid='stMetricValue']").inner_text().strip()


def run_load(browser, server, *, pages: int = 8, rounds: int = 2, marks: tuple[int, ...] = (),
             log=print) -> dict:
    """Drive `pages` sessions for `rounds` rounds; returns figures and any problems found.

    `marks`: explanation counts after which the server's RSS is recorded (the first round's
    end is always recorded)."""
    from browser_support import ConsoleWatch, wait_idle

    preds, _ = expected_predictions()
    plan = plan_rounds(preds, pages, rounds)
    contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(pages)]
    tabs = [c.new_page() for c in contexts]
    watches = [ConsoleWatch(t) for t in tabs]
    for t in tabs:
        t.set_default_timeout(TIMEOUT_MS)
    rss, seconds, problems, done = {}, [], [], 0
    try:
        for r, indices in enumerate(plan):
            t0 = time.perf_counter()
            for tab, idx in zip(tabs, indices):  # send every page on its way first ...
                tab.goto(f"{server.url}/?model={MODEL}&input=test:{idx}", wait_until="commit")
            for n, (tab, idx) in enumerate(zip(tabs, indices)):  # ... then wait for each
                main = tab.locator("[data-testid='stMain']")
                main.get_by_text(f"test sample #{idx}", exact=False).first.wait_for()
                tab.get_by_text("Predicted class", exact=True).first.wait_for()
                wait_idle(tab, timeout=TIMEOUT_MS / 1000)
                got = shown_prediction(tab)
                heading = main.locator("h4").first.inner_text()
                if got != preds[idx] or f"#{idx}" not in heading:
                    problems.append(f"round {r} page {n}: sample {idx} shows {got!r} under {heading!r}, "
                                    f"library says {preds[idx]!r}")
            seconds.append(time.perf_counter() - t0)
            done += len(indices)
            if r == 0 or done in marks or r == len(plan) - 1:
                rss[done] = server_rss(server.proc.pid)
            log(f"round {r + 1}/{len(plan)}: {seconds[-1]:.1f} s, {done} explanations, "
                f"server RSS {server_rss(server.proc.pid) / 2**20:.0f} MiB")
        for n, w in enumerate(watches):
            problems += [f"page {n}: {e}" for e in w.take()]
    finally:
        for c in contexts:
            c.close()
    return {"rss": rss, "seconds": seconds, "problems": problems, "explanations": done}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=8)
    ap.add_argument("--explanations", type=int, default=200)
    ap.add_argument("--early", type=int, default=20)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, StreamlitServer, free_port

    rounds = -(-args.explanations // args.pages)
    early = -(-args.early // args.pages) * args.pages   # first round boundary at or after --early
    server = StreamlitServer(free_port(), ARTIFACTS / "bench_load_server.log").start()
    try:
        start_rss = server_rss(server.proc.pid)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                out = run_load(browser, server, pages=args.pages, rounds=rounds, marks=(early,))
            finally:
                browser.close()
    finally:
        server.stop()
    rss = out["rss"]
    last = max(rss)
    mib = lambda b: b / 2**20  # noqa: E731
    print(f"\nserver RSS at start (idle)        : {mib(start_rss):7.0f} MiB")
    for n in sorted(rss):
        print(f"server RSS after {n:4d} explanations: {mib(rss[n]):7.0f} MiB")
    if early in rss:
        print(f"growth from {early} to {last} explanations : {mib(rss[last] - rss[early]):+7.0f} MiB")
    s = out["seconds"]
    print(f"seconds per round ({args.pages} pages): first {s[0]:.1f}, median {sorted(s)[len(s) // 2]:.1f}, "
          f"max {max(s):.1f}")
    print(f"problems: {len(out['problems'])}")
    for line in out["problems"][:20]:
        print("  " + line)


if __name__ == "__main__":
    main()
