"""End to end in a real browser: the tests start the Streamlit server, Playwright drives Debian's
Chromium through the app, and every test asserts what is shown, the shared URL, and a clean
browser console.  Screenshots are saved under test-artifacts/browser/ (git-ignored); with
SOP_DOCS_SCREENSHOTS=1 the documentation screenshots in docs/screenshots/ are refreshed too.

    pytest -m browser tests/test_browser.py
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import torch

from sop.explainers import explain, model_grid
from sop.faithfulness import insertion_deletion
from sop.image_io import image_to_tensor, load_image
from sop.visualize import group_assignment

from browser_support import (CHROMIUM, CHROMIUM_ARGS, ConsoleWatch,  # tests/ is on pytest's pythonpath
                             running_server, screenshot, wait_idle)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "assets" / "models"
SAMPLES = ROOT / "assets" / "samples"
TIMEOUT_MS = 120_000


from test_app import lib_model, lib_split  # noqa: E402  (one set of library references)


def lib_sample(name: str, index: int):
    x, y = lib_split(name).dataset[index]
    with torch.no_grad():
        return x.unsqueeze(0), int(y), lib_model(name)(x.unsqueeze(0))


def class_name(name: str, out) -> str:
    return lib_model(name).config.class_names[int(out.logits.argmax())]


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def server():
    yield from running_server("server.log")


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    watch = ConsoleWatch(pg)
    yield pg, watch
    context.close()


# --------------------------------------------------------------------------- helpers

def open_app(page, server, path: str = "/", wait_for: str = "Predicted class"):
    t0 = time.perf_counter()
    page.goto(server.url + path)
    page.get_by_text(wait_for, exact=True).first.wait_for()
    wait_idle(page)
    return time.perf_counter() - t0


def metric(page, label: str, nth: int = 0) -> str:
    box = page.locator("[data-testid='stMetric']").filter(
        has=page.locator("[data-testid='stMetricLabel']", has_text=re.compile(rf"^{re.escape(label)}$"))).nth(nth)
    return box.locator("[data-testid='stMetricValue']").inner_text().strip()


def query(page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}


def click_at(page, x: float, y: float) -> None:
    """A user's click on a plotly chart: hover first (plotly picks the point on mouse move), then click."""
    page.mouse.move(x - 2, y - 2)
    page.wait_for_timeout(150)
    page.mouse.move(x, y)
    page.wait_for_timeout(350)
    page.mouse.click(x, y)


def click_point(page, point) -> None:
    point.scroll_into_view_if_needed()
    b = point.bounding_box()
    click_at(page, b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)


def click_patch(page, chart_key: str, row: int, col: int, grid: tuple[int, int]) -> None:
    """A user's click on patch (row, col) of a `grid`-patch image drawn by the plotly chart whose
    Streamlit key starts with `chart_key` (its plot area, not the axes)."""
    plot = page.locator(f"[class*='st-key-{chart_key}'] .nsewdrag").first
    plot.scroll_into_view_if_needed()
    b = plot.bounding_box()
    click_at(page, b["x"] + (col + 0.5) / grid[1] * b["width"], b["y"] + (row + 0.5) / grid[0] * b["height"])


def sidebar(page):
    return page.locator("[data-testid='stSidebar']")


def assert_clean(watch: ConsoleWatch) -> None:
    errors = watch.take()
    assert not errors, "browser console errors:\n" + "\n".join(errors)


# --------------------------------------------------------------------------- tests

def test_first_paint_shows_the_sop_forward_pass(page, server):
    pg, watch = page
    seconds = open_app(pg, server, "/")
    x, y, out = lib_sample("digits", 0)
    assert metric(pg, "Predicted class") == class_name("digits", out)
    cfg = lib_model("digits").config
    assert pg.get_by_role("button", name=re.compile("^Isolate")).count() == cfg.num_groups
    model = lib_model("digits")
    curves = insertion_deletion(model, x, explain(model, x, "sop"))
    assert metric(pg, "Insertion AUC") == f"{curves['insertion'].auc:.3f}"
    assert metric(pg, "Deletion AUC") == f"{curves['deletion'].auc:.3f}"
    assert query(pg)["model"] == "digits" and query(pg)["input"] == "test:0"
    screenshot(pg, "explain", docs=True)
    print(f"first paint (load, forward pass, curves) in {seconds:.1f}s")
    assert_clean(watch)


def test_pick_sample_open_groups_and_follow_the_shared_link(page, server, browser):
    pg, watch = page
    open_app(pg, server, "/")
    box = sidebar(pg).get_by_label(re.compile(r"^Sample \(0-"))
    box.fill("12")
    box.press("Enter")
    pg.get_by_text("Explain · digits · test sample #12").wait_for()
    wait_idle(pg)
    x, _, out = lib_sample("digits", 12)
    assert metric(pg, "Predicted class") == class_name("digits", out)
    # open the top group from the gallery
    scores = out.group_scores[0]
    order = [int(g) for g in torch.argsort(-scores, stable=True)]
    pg.get_by_role("button", name=re.compile("^Isolate")).first.click()
    pg.get_by_text(f"Group {order[0]} alone").wait_for()
    wait_idle(pg)
    assert query(pg)["group"] == str(order[0])
    screenshot(pg, "group_isolated", docs=True)
    # click another scored group on the combined image
    scored = [g for g in order if scores[g] > 0]
    model = lib_model("digits")
    grid = model_grid(model)
    owner = group_assignment(out.group_masks[0].reshape(-1, *grid).numpy(), scored, weights=scores.numpy())
    target = next((g for g in scored[1:] if (owner == g).any()), None)
    if target is not None:
        r, c = (int(v) for v in np.argwhere(owner == target)[0])
        click_patch(pg, "group_image", r, c, grid)
        pg.get_by_text(f"Group {target} alone").wait_for()
        wait_idle(pg)
        assert query(pg)["group"] == str(target)
    # the share box holds a link that reopens this view in a fresh session
    sidebar(pg).get_by_text("Share this view").click()
    link = sidebar(pg).locator(".st-key-share_link code").inner_text().strip()
    assert "input=test%3A12" in link or "input=test:12" in link
    other = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    other_watch = ConsoleWatch(other)
    other.goto(link)
    other.get_by_text("Explain · digits · test sample #12").wait_for(timeout=TIMEOUT_MS)
    wait_idle(other)
    shown = str(target if target is not None else order[0])
    other.get_by_text(f"Group {shown} alone").wait_for(timeout=TIMEOUT_MS)
    assert metric(other, "Predicted class") == class_name("digits", out)
    other.context.close()
    assert_clean(watch)
    assert_clean(other_watch)


def test_curve_step_slider_shows_the_image_at_that_step(page, server):
    pg, watch = page
    open_app(pg, server, "/?input=test:7&step=4")
    pg.get_by_text("Insertion", exact=True).first.wait_for()
    slider = pg.locator("input[type='range'][aria-label='Step']")
    slider.scroll_into_view_if_needed()
    slider.focus()
    slider.press("ArrowRight")
    slider.press("ArrowRight")
    pg.get_by_text(re.compile(r"step 6/16")).first.wait_for()
    wait_idle(pg)
    assert query(pg)["step"] == "6"
    x, _, _ = lib_sample("digits", 7)
    model = lib_model("digits")
    ins = insertion_deletion(model, x, explain(model, x, "sop"))["insertion"]
    assert pg.get_by_text(re.compile(rf"p\({ins_class(model, ins)}\) = {ins.scores[6]:.3f}")).count() >= 1
    # clicking a point on the insertion curve moves the step there
    click_point(pg, pg.locator("[class*='st-key-curve_chart'] .scatterlayer .trace").first.locator(".point").nth(10))
    pg.get_by_text(re.compile(r"step 10/16")).first.wait_for()
    wait_idle(pg)
    assert query(pg)["step"] == "10"
    screenshot(pg, "curves")
    assert_clean(watch)


def ins_class(model, curve) -> str:
    return model.config.class_names[curve.target]


def test_upload_an_image_then_a_broken_file(page, server):
    pg, watch = page
    open_app(pg, server, "/")
    sidebar(pg).get_by_role("radio", name="Upload", exact=True).click()
    wait_idle(pg)
    path = next(SAMPLES.glob("digit_7_*.png"))
    sidebar(pg).locator("input[type='file']").set_input_files(str(path))
    pg.get_by_text(f"Explain · digits · upload: {path.name}").wait_for()
    wait_idle(pg)
    cfg = lib_model("digits").config
    x = image_to_tensor(load_image(path.read_bytes(), mode="L"), img_size=cfg.img_size, mean=cfg.mean, std=cfg.std,
                        in_chans=cfg.in_chans)
    with torch.no_grad():
        out = lib_model("digits")(x)
    assert metric(pg, "Predicted class") == class_name("digits", out)
    assert query(pg)["input"] == "upload"
    screenshot(pg, "upload")
    sidebar(pg).locator("input[type='file']").set_input_files(
        files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"definitely not a PNG"}])
    pg.get_by_text(re.compile("not an image we can read")).wait_for()
    wait_idle(pg)
    assert metric(pg, "Predicted class") == class_name("digits", out)  # the previous view stays
    screenshot(pg, "upload_error", full=False)
    assert_clean(watch)


def test_draw_a_digit_with_the_mouse(page, server):
    pg, watch = page
    open_app(pg, server, "/?input=draw")
    canvas = sidebar(pg).locator("canvas").last
    canvas.wait_for()
    canvas.scroll_into_view_if_needed()
    b = canvas.bounding_box()
    x0, y0 = b["x"] + b["width"] * 0.5, b["y"] + b["height"] * 0.15
    pg.mouse.move(x0, y0)
    pg.mouse.down()
    for k in range(1, 16):
        pg.mouse.move(x0, y0 + k * b["height"] * 0.7 / 15)
    pg.mouse.up()
    pg.get_by_text("Explain · digits · your drawing").wait_for()
    wait_idle(pg)
    assert metric(pg, "Predicted class") in lib_model("digits").config.class_names
    screenshot(pg, "drawing", full=False)
    assert_clean(watch)


def test_mistakes_view_and_opening_a_misclassified_example(page, server):
    pg, watch = page
    open_app(pg, server, "/mistakes", wait_for="Test accuracy")
    model = lib_model("digits")
    xs, ys = lib_split("digits").dataset.tensors
    with torch.no_grad():
        preds = torch.cat([model(xs[i:i + 64]).logits.argmax(-1) for i in range(0, len(xs), 64)])
    assert metric(pg, "Test accuracy") == f"{float((preds == ys).float().mean()):.1%}"
    wrong = torch.nonzero(preds != ys).flatten().tolist()
    assert metric(pg, "Misclassified") == f"{len(wrong)} of {len(ys)}"
    if wrong:
        # click the confusion-matrix cell of the first mistake: the gallery lists that cell
        i = wrong[0]
        t, p = int(ys[i]), int(preds[i])
        k = len(model.config.class_names)
        names = model.config.class_names
        cells = pg.locator("[class*='st-key-confusion'] .scatterlayer .point")
        click_point(pg, cells.nth(t * k + p))
        n = int(((ys == t) & (preds == p)).sum())
        pg.get_by_text(f"True {names[t]}, predicted {names[p]} · {n} example(s)").wait_for()
        wait_idle(pg)
        assert query(pg)["cell"] == f"{t},{p}"
        pg.locator(f".st-key-open_{i} button").click()
        pg.get_by_text(f"Test example #{i}: true {names[int(ys[i])]}, predicted {names[int(preds[i])]}").wait_for()
        wait_idle(pg)
        assert query(pg)["example"] == str(i)
        screenshot(pg, "mistakes", docs=True)
        pg.get_by_role("button", name=re.compile("Open in Explain")).click()
        pg.get_by_text(f"Explain · digits · test sample #{i}").wait_for()
        wait_idle(pg)
    assert_clean(watch)


def test_shared_urls_reopen_parts_view_and_compare_page(page, server):
    pg, watch = page
    open_app(pg, server, "/?model=parts&input=test:3&group=1&mode=grouped&baseline=blur")
    pg.get_by_text("Group 1 alone").wait_for()
    x, _, out = lib_sample("parts", 3)
    assert metric(pg, "Predicted class") == class_name("parts", out)
    assert pg.get_by_role("radio", name="Grouped", exact=True).get_attribute("aria-checked") == "true"
    model = lib_model("parts")
    curves = insertion_deletion(model, x, explain(model, x, "sop"), mode="grouped", baseline="blur")
    assert metric(pg, "Insertion AUC") == f"{curves['insertion'].auc:.3f}"
    screenshot(pg, "parts_shared_link", docs=True)

    open_app(pg, server, "/compare?model=digits&input=test:1", wait_for="Insertion AUC")
    x, _, _ = lib_sample("digits", 1)
    sop_model = lib_model("digits")
    sop_curves = insertion_deletion(sop_model, x, explain(sop_model, x, "sop"))
    assert metric(pg, "Insertion AUC", 0) == f"{sop_curves['insertion'].auc:.3f}"
    pg.locator(".st-key-card_rise").get_by_role("button", name=re.compile("Run")).click()
    pg.locator(".st-key-card_rise [data-testid='stMetric']").first.wait_for()
    wait_idle(pg)
    assert pg.get_by_role("button", name=re.compile("Run 3 expensive methods")).count() == 1
    screenshot(pg, "compare", docs=True)
    assert_clean(watch)


def test_theory_page_opens_from_the_navigation(page, server):
    pg, watch = page
    open_app(pg, server, "/")
    pg.get_by_role("link", name=re.compile("Theory")).click()
    pg.wait_for_url(re.compile(r"/theory"))
    wait_idle(pg)
    assert pg.locator("[data-testid='stException']").count() == 0
    assert_clean(watch)


def test_download_figure_pdf_then_svg_from_the_explain_page(page, server):
    pg, watch = page
    open_app(pg, server, "/?model=digits&input=test:2")
    button = pg.get_by_role("button", name=re.compile(r"Download figure \(PDF\)"))
    button.scroll_into_view_if_needed()
    with pg.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename.endswith(".pdf")
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page(?!s)\b", data)) == 1
    pg.locator(".st-key-dl_fig_format").get_by_text("SVG", exact=True).click()
    wait_idle(pg)
    with pg.expect_download() as info:
        pg.get_by_role("button", name=re.compile(r"Download figure \(SVG\)")).click()
    svg = Path(info.value.path()).read_text()
    assert "<svg" in svg and "<text" in svg and "insertion AUC" in svg
    screenshot(pg, "download_figure", full=False)
    assert_clean(watch)


# Records, in order, every curve caption and curve progress text the page ever shows (a coarse preview
# lives only while the finer curve computes, so the test cannot poll for it afterwards).
RECORD_CURVES = """() => {
  window.__curves = [];
  const seen = (t) => { if (window.__curves[window.__curves.length - 1] !== t) window.__curves.push(t); };
  const scan = () => {
    for (const el of document.querySelectorAll('p, [data-testid="stProgress"]')) {
      const box = el.closest('[data-stale]');
      if (box && box.getAttribute('data-stale') === 'true') continue;
      const t = el.innerText.trim().replace(/ \\d+%$/, '');
      if (/^(Curves at \\d+ steps|Computing the curves at \\d+ steps)/.test(t)) seen(t);
    }
  };
  new MutationObserver(scan).observe(document.body, {subtree: true, childList: true, characterData: true});
  scan();
}"""


def test_progressive_curves_coarse_then_refined(page, server, tmp_path_factory):
    """Explain on a 224-pixel ViT (196 patches): the coarse pair is drawn first, with a progress bar,
    then the one-patch curves replace it in place; no console errors."""
    import sop
    from PIL import Image
    tmp = tmp_path_factory.mktemp("progressive")
    torch.manual_seed(0)
    kw = dict(img_size=224, patch_size=16, embed_dim=64, depth=3, num_heads=2, mlp_ratio=2.0, global_pool="token")
    model = sop.create_model("vit_tiny_patch16_224", num_classes=3, img_size=(224, 224), in_chans=3,
                             backbone_kwargs=kw, num_groups=8, group_heads=2, group_dim=16,
                             class_names=["a", "b", "c"]).eval()
    path = sop.save(model, tmp / "vit224_sop.safetensors")
    rng = np.random.default_rng(0)
    photo = tmp / "photo.png"
    Image.fromarray((rng.random((180, 240, 3)) * 255).astype(np.uint8)).save(photo)
    pg, watch = page
    pg.goto(f"{server.url}/?model={path}&input=upload")
    sidebar(pg).locator("input[type='file']").wait_for(state="attached")
    wait_idle(pg)
    pg.evaluate(RECORD_CURVES)
    sidebar(pg).locator("input[type='file']").set_input_files(str(photo))
    pg.get_by_text("Curves at 16 steps.", exact=True).wait_for()
    wait_idle(pg)
    toggle = pg.get_by_text("Curves at one-patch resolution (196 steps)")
    toggle.scroll_into_view_if_needed()
    toggle.click()
    pg.get_by_text("Curves at 196 steps.", exact=True).wait_for(timeout=300_000)
    wait_idle(pg, timeout=300)
    seen = pg.evaluate("() => window.__curves")
    fine = seen[seen.index("Curves at 16 steps.") + 1:]
    # the refinement: the coarse pair (kept from the first curves) with a progress bar, then 196 steps
    coarse = [i for i, t in enumerate(fine) if t.startswith("Curves at 4 steps (coarse, refining)")]
    computing = [i for i, t in enumerate(fine) if t.startswith("Computing the curves at 196 steps")]
    done = fine.index("Curves at 196 steps.")
    assert coarse and computing and coarse[0] < done and computing[0] < done, seen
    assert query(pg)["fine"] == "1"
    assert pg.get_by_text(re.compile(r"^Curves at 4 steps \(coarse")).count() == 0  # replaced in place
    screenshot(pg, "progressive_curves", full=False)
    assert_clean(watch)
