"""The lensing regression model in a real browser (Playwright driving Debian's Chromium): a test map,
its groups drawn on the κ map, a group isolated, the Residuals view opened and a point clicked
there; no browser console errors.  Screenshots under test-artifacts/browser/.

    pytest -m browser tests/test_browser_lensing.py
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from explorer.regression_view import OUTLINE_RINGS
from sop.regression import r2_rmse, to_physical
from sop.regression_explain import explain_map

from browser_support import running_server, screenshot, wait_idle
# the image tests' Chromium and page fixtures (they use this module's server) and helpers
from test_browser import browser, click_patch, click_point, metric, page, query, sidebar  # noqa: F401

pytestmark = pytest.mark.browser
pytest.importorskip("pyccl")

from test_app_lensing import lensing_split, model  # noqa: E402  (one set of library references)


@pytest.fixture(scope="module")
def server():
    yield from running_server("server_lensing.log")


def outlines(pg, key: str) -> int:
    """How many groups the chart `key` outlines: each is its colour's contour trace on top of the rings'."""
    traces = pg.locator(f"[class*='st-key-{key}'] g.contour").count()
    assert traces % (len(OUTLINE_RINGS) + 1) == 0, traces
    return traces // (len(OUTLINE_RINGS) + 1)


def test_lensing_map_groups_isolate_and_residuals(page, server):
    pg, watch = page
    pg.goto(server.url + "/?model=lensing&input=test:9")
    pg.get_by_text("Explain · lensing · test map #9").wait_for()
    wait_idle(pg)
    x = lensing_split().dataset[9][0][None]
    e = explain_map(model(), x)
    for n, v in zip(("Omega_m", "sigma_8"), e.prediction):
        assert metric(pg, n) == f"{v:.4f}"
    # the κ map with a colour bar and one outline per group with a score above 0
    pg.locator("[class*='st-key-regression_map_'] .colorbar").first.wait_for()
    assert outlines(pg, "regression_map") == len(e.used) > 0
    assert pg.get_by_role("button", name=re.compile("^Isolate")).count() == len(e.scores)
    screenshot(pg, "lensing_explain", docs=True)
    # isolate the group with the highest score: its map alone, one outline
    g = e.used[0]
    pg.locator(f".st-key-regression_group_{g}").get_by_role("button", name=re.compile("^Isolate")).click()
    pg.get_by_text(f"Group {g} alone").wait_for()
    wait_idle(pg)
    assert outlines(pg, "regression_map") == 1 and outlines(pg, "regression_isolated") == 1
    assert query(pg)["group"] == str(g)
    screenshot(pg, "lensing_group_isolated", docs=True)
    # click a patch of the map that belongs to another scored group: that group is isolated instead
    from explorer.regression_view import patch_owner
    grid = tuple(model().adapter.grid)
    owner = patch_owner(e.masks, e.scores, e.used, grid)
    other = next((h for h in e.used[1:] if (owner == h).any()), None)
    if other is not None:
        r, c = (int(v) for v in np.argwhere(owner == other)[0])
        click_patch(pg, "regression_map_", r, c, grid)
        pg.get_by_text(f"Group {other} alone").wait_for()
        wait_idle(pg)
        assert query(pg)["group"] == str(other)
    # the Residuals view (the Mistakes page of a regression model)
    pg.get_by_role("link", name=re.compile("Mistakes")).click()
    pg.get_by_text("Residuals · lensing on its test maps").wait_for()
    wait_idle(pg)
    xs, ys = lensing_split().dataset.tensors
    with torch.no_grad():
        pred = to_physical(torch.cat([model()(xs[i:i + 128]).logits for i in range(0, len(xs), 128)]),
                           model().config).numpy()
    r2, _ = r2_rmse(pred, ys.double().numpy())
    assert metric(pg, "R² (Omega_m)") == f"{r2[0]:.3f}" and metric(pg, "R² (sigma_8)") == f"{r2[1]:.3f}"
    chart = pg.locator(".st-key-residuals_0")
    assert chart.locator(".scatterlayer .trace").nth(1).locator(".point").count() == len(pred)
    screenshot(pg, "lensing_residuals", docs=True)
    # click a point of the scatter: that map opens on Explain
    point = chart.locator(".scatterlayer .trace").nth(1).locator(".point").nth(int(np.argmax(pred[:, 0])))
    click_point(pg, point)
    pg.get_by_text(re.compile(r"Explain · lensing · test map #\d+")).wait_for()
    wait_idle(pg)
    pg.wait_for_url(re.compile(r"[?&]input=test%3A\d+|[?&]input=test:\d+"), timeout=10_000)
    opened = int(query(pg)["input"].split(":")[1])
    assert metric(pg, "Omega_m") == f"{pred[opened, 0]:.4f}"
    assert sidebar(pg).get_by_label(re.compile(r"^Test map \(0-")).input_value() == str(opened)
    assert not pg.locator("[data-testid='stException']").count()
    # the Science page: the study's plotly charts (run on request when no stored run matches)
    pg.get_by_role("link", name=re.compile("Science")).click()
    pg.get_by_text("Science · voids, clusters and the cosmological parameters").wait_for()
    wait_idle(pg)
    run = pg.get_by_role("button", name=re.compile("Run the study"))
    if run.count():
        run.click()
    pg.get_by_text(re.compile(r"^N = 512 test maps")).wait_for()
    wait_idle(pg)
    assert pg.locator(".st-key-study_shares .bars .point").count() == 6      # 3 classes x (sky, groups)
    screenshot(pg, "lensing_science", docs=True)
    assert not pg.locator("[data-testid='stException']").count()
    errors = watch.take()
    assert not errors, "browser console errors:\n" + "\n".join(errors)


def test_upload_npy_and_fits_maps_in_the_browser(page, server, tmp_path):
    from astropy.io import fits
    from sop.map_io import map_input
    pg, watch = page
    pg.goto(server.url + "/?model=lensing&input=test:1")
    pg.get_by_text("Explain · lensing · test map #1").wait_for()
    wait_idle(pg)
    kappa = (lensing_split().dataset.tensors[0][21, 0].numpy() * model().config.std[0]).astype(np.float32)
    good, small, image = tmp_path / "kappa.npy", tmp_path / "small.npy", tmp_path / "kappa.fits"
    np.save(good, kappa)
    np.save(small, kappa[:60, :60])
    fits.PrimaryHDU(kappa).writeto(image)
    sidebar(pg).get_by_role("radio", name="Upload").or_(sidebar(pg).get_by_role("button", name="Upload")).first.click()
    wait_idle(pg)
    uploader = sidebar(pg).locator("input[type='file']")
    uploader.set_input_files(str(good))
    pg.get_by_text("Explain · lensing · upload: kappa.npy").wait_for()
    wait_idle(pg)
    e = explain_map(model(), map_input(kappa, model().config))
    assert metric(pg, "Omega_m") == f"{e.prediction[0]:.4f}" and metric(pg, "sigma_8") == f"{e.prediction[1]:.4f}"
    uploader.set_input_files(str(small))
    pg.get_by_text(re.compile(r"shape \(60, 60\); this model needs one 66x66 map")).wait_for()
    wait_idle(pg)
    assert metric(pg, "Omega_m") == f"{e.prediction[0]:.4f}"          # the previous map stays
    uploader.set_input_files(str(image))
    pg.get_by_text("Explain · lensing · upload: kappa.fits").wait_for()
    wait_idle(pg)
    assert metric(pg, "Omega_m") == f"{e.prediction[0]:.4f}"          # the same map, as FITS
    errors = watch.take()
    assert not errors, "browser console errors:\n" + "\n".join(errors)


def test_compare_runs_an_expensive_method_on_request(page, server):
    """Regression Compare in Chromium: the expensive methods wait for Run; a card's Run computes one
    (RISE, at the Samples budget) and draws its map; no console errors.  (Cancel is checked with
    AppTest, tests/test_app_lensing.py, as for the image page.)"""
    pg, watch = page
    pg.goto(server.url + "/compare?model=lensing&input=test:3")
    pg.get_by_text("Compare methods · lensing · test map #3").wait_for()
    wait_idle(pg)
    run_all = pg.locator(".st-key-run_all button")
    assert re.search(r"Run \d expensive methods", run_all.inner_text()), run_all.inner_text()
    assert pg.get_by_text("Not computed yet.").count() >= 1
    pg.locator(".st-key-run_rise button").click()
    pg.get_by_text(re.compile(r"1000 samples · purple: raises Omega_m")).wait_for()
    wait_idle(pg)
    assert pg.locator(".st-key-compare_map_rise .heatmaplayer, .st-key-compare_map_rise .hm").count() >= 1
    screenshot(pg, "lensing_compare")
    assert not pg.locator("[data-testid='stException']").count()
    errors = watch.take()
    assert not errors, "browser console errors:\n" + "\n".join(errors)
