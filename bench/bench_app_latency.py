"""How live the Explain page is: upload -> groups drawn -> first curve pair -> finest curve.

Drives the app in Debian's Chromium (Playwright, as tests/test_browser.py does) with
(1) the embedded default model (digits) and (2) a generated `vit_small_patch16_224` SOP
(G = 20, 10 classes, random init, no download) opened as a checkpoint file, uploads a
640x427 photo-like image, and prints the time from the upload to

* groups drawn: one Isolate button per group on screen;
* first curve pair: the first "Curves at N steps" caption (the coarse preview);
* finest curve: "Curves at N steps." at the finest schedule (the 224 model: one-patch
  resolution, switched on as soon as the first pair is drawn);

each also as a ratio to one SOP forward pass `model(x)` timed in this process.

    PYTHONPATH=tests .venv/bin/python bench/bench_app_latency.py [--digits-only]
"""
from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import sop
from sop.image_io import image_to_tensor, load_image

ROOT = Path(__file__).resolve().parent.parent

TIMEOUT_MS = 1_800_000  # a 196-step curve pair on a busy 2-core machine takes minutes


def photo(path: Path, size=(640, 427)) -> Path:
    """A smooth, photo-like RGB image (gradients and blobs), deterministic."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    rng = np.random.default_rng(0)
    img = np.stack([0.5 + 0.5 * np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in (0.0, 1.0, 2.0)], -1)
    for _ in range(6):
        cy, cx, r = rng.random() * h / max(w, h), rng.random() * w / max(w, h), 0.05 + 0.1 * rng.random()
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.random(3)
    Image.fromarray((img * 255).clip(0, 255).astype(np.uint8)).save(path, quality=92)
    return path


def vit_small_sop() -> sop.SOPModel:
    """The issue's real-size model: vit_small_patch16_224 SOP, G = 20, 10 classes, random init."""
    torch.manual_seed(0)
    return sop.create_model("vit_small_patch16_224", num_classes=10, pretrained=False, img_size=(224, 224),
                            num_groups=20, group_heads=4, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                            class_names=[f"class {i}" for i in range(10)]).eval()


def forward_seconds(model, img_path: Path, repeats: int = 5) -> float:
    cfg = model.config
    img = load_image(img_path, mode="L" if cfg.in_chans == 1 else "RGB")  # as the app reads an upload
    x = image_to_tensor(img, img_size=cfg.img_size, mean=cfg.mean, std=cfg.std, in_chans=cfg.in_chans)
    times = []
    with torch.inference_mode():
        model(x)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


FRESH = """([tag, pattern, n]) => {
  const re = new RegExp(pattern);
  let c = 0;
  for (const el of document.querySelectorAll(tag)) {
    const box = el.closest('[data-stale]');
    if (re.test(el.innerText.trim()) && !(box && box.getAttribute('data-stale') === 'true')) c++;
  }
  return c >= n;
}"""


def wait_fresh(pg, tag: str, pattern: str, n: int = 1) -> None:
    """Wait until n elements `tag` drawn by the current script run (not stale ones) match `pattern`."""
    pg.wait_for_function(FRESH, arg=[tag, pattern, n], polling=25, timeout=TIMEOUT_MS)


def drive(browser, server, query: str, img_path: Path, groups: int, fine_toggle: str | None) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(f"{server.url}/?{query}")
    sidebar = pg.locator("[data-testid='stSidebar']")
    if "input=upload" not in query:
        sidebar.get_by_role("radio", name="Upload", exact=True).click()
    sidebar.locator("input[type='file']").wait_for(state="attached")  # the dropzone's input is hidden
    from browser_support import wait_idle  # PYTHONPATH=tests
    wait_idle(pg, timeout=600)
    t0 = time.perf_counter()
    sidebar.locator("input[type='file']").set_input_files(str(img_path))
    out = {}
    wait_fresh(pg, "h4", re.escape(f"upload: {img_path.name}"))
    wait_fresh(pg, "button", "Isolate$", groups)
    out["groups"] = time.perf_counter() - t0
    print(f"  groups drawn after {out['groups']:.2f} s", flush=True)
    wait_fresh(pg, "p", r"^Curves at \d+ steps")
    out["first_curve"] = time.perf_counter() - t0
    print(f"  first curve pair after {out['first_curve']:.2f} s", flush=True)
    if fine_toggle:
        wait_fresh(pg, "p", r"^Curves at \d+ steps\.$")  # the default schedule, done
        pg.get_by_text(fine_toggle).click()
        finest = int(re.search(r"\((\d+) steps\)", fine_toggle).group(1))
    else:
        finest = 16
    wait_fresh(pg, "p", f"^Curves at {finest} steps\\.$")
    out["finest"] = time.perf_counter() - t0
    out["finest_steps"] = finest
    wait_idle(pg, timeout=600)
    context.close()
    if errors:
        print("page errors:", errors, file=sys.stderr)
    return out


def main() -> None:
    from playwright.sync_api import sync_playwright

    from browser_support import CHROMIUM, CHROMIUM_ARGS, StreamlitServer, free_port  # PYTHONPATH=tests
    torch.set_num_threads(2)
    tmp = Path(tempfile.mkdtemp(prefix="sop_latency_"))
    img = photo(tmp / "photo.jpg")
    vit = vit_small_sop()
    vit_path = sop.save(vit, tmp / "vit_small_g20_sop.safetensors")
    digits = sop.load(ROOT / "assets" / "models" / "digits_sop.safetensors").eval()
    cases = [("digits (embedded default)", "model=digits&input=upload", digits, None),
             ("vit_small_patch16_224, G = 20", f"model={vit_path}&input=upload", vit,
              f"Curves at one-patch resolution ({14 * 14} steps)")]
    if "--digits-only" in sys.argv:
        cases = cases[:1]
    rows = []
    server = StreamlitServer(free_port(), tmp / "server.log").start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, query, model, toggle in cases:
                fwd = forward_seconds(model, img)
                print(f"{name}: one SOP forward pass {fwd * 1000:.0f} ms", flush=True)
                r = drive(browser, server, query, img, model.config.num_groups, toggle)
                rows.append((name, fwd, r))
            browser.close()
    finally:
        server.stop()
    print(f"torch threads: {torch.get_num_threads()}; image 640x427; times from the upload (s), "
          "× = ratio to one SOP forward pass\n")
    print("| model | one forward pass | groups drawn | first curve pair | finest curve |")
    print("|---|---|---|---|---|")
    for name, fwd, r in rows:
        cells = [f"{r[k]:.2f} s ({r[k] / fwd:.0f}×)" for k in ("groups", "first_curve", "finest")]
        cells[2] += f", {r['finest_steps']} steps"
        print(f"| {name} | {fwd * 1000:.0f} ms | " + " | ".join(cells) + " |")
    name, fwd, r = rows[-1]
    if len(rows) < 2:
        return
    print(f"\nGoals (224 model): groups within 2 × forward + 1 s = {2 * fwd + 1:.2f} s: "
          f"{'holds' if r['groups'] <= 2 * fwd + 1 else 'misses'} ({r['groups']:.2f} s); "
          f"first curve pair within 4 × forward = {4 * fwd:.2f} s: "
          f"{'holds' if r['first_curve'] <= 4 * fwd else 'misses'} ({r['first_curve']:.2f} s).")


if __name__ == "__main__":
    main()
