"""The explorer on the lensing regression model, with streamlit.testing.v1.AppTest (no browser).

Every value the regression pages show is checked against the library computing the same thing
on the same map: predictions, group scores and group predictions, curve AUCs, R², uploads."""
from __future__ import annotations

import io
import re
from functools import lru_cache

import numpy as np
import pytest
import torch

import sop
from sop.map_io import map_input
from sop.regression import r2_rmse, to_physical
from sop.regression_explain import explain_map, regression_curves, sop_explanation

from test_app import MODELS, metric, new_app, run, switch, texts
from test_compare_cancel import CALLS, LABEL, STOP_AT_FIRST_CALL, TOY, bars, toy  # noqa: F401  (toy: a fixture)

pytest.importorskip("pyccl")
pytest.importorskip("streamlit.testing.v1")

NAMES = ["Omega_m", "sigma_8"]


@lru_cache(maxsize=None)
def model():
    if not (MODELS / "lensing_sop.safetensors").is_file():
        pytest.skip("no embedded lensing model")
    return sop.load(MODELS / "lensing_sop.safetensors")


@lru_cache(maxsize=None)
def lensing_split():
    from sop.data.lensing import load_lensing_split
    return load_lensing_split("test")   # generated once, then cached under runs/cache/lensing


def lensing_app(**query):
    return run(new_app(model="lensing", **query))


def values_shown(text: str) -> dict[str, float]:
    return {n.replace("\\", ""): float(v) for n, v in re.findall(r"(Omega\\_m|sigma\\_8) = ([-0-9.]+)", text)}


def group_lines(at) -> dict[int, tuple[float, str]]:
    """{g: (score, the caption under it)} of the group cards."""
    md = [m.value for m in at.markdown]
    caps = [c.value for c in at.caption if c.value.startswith("alone predicts")]
    scores = {}
    for m in md:
        hit = re.search(r"\*\*Group (\d+)\*\* · score ([0-9.]+)$", m)
        if hit:
            scores[int(hit.group(1))] = float(hit.group(2))
    return {g: (s, c) for (g, s), c in zip(scores.items(), caps)}


def npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def upload(at, name: str, data: bytes, mime="application/octet-stream"):
    at.segmented_control(key="map_source").set_value("Upload")
    run(at)
    at.file_uploader(key="map_upload").upload(name, data, mime)
    return run(at)


def expect_prediction(at, x: torch.Tensor) -> None:
    e = explain_map(model(), x)
    for n, v in zip(NAMES, e.prediction):
        assert metric(at, n) == f"{v:.4f}"


# --------------------------------------------------------------------------- Explain

def test_lensing_model_is_in_the_picker_and_explain_matches_the_library():
    at = run(new_app())
    options = at.selectbox(key="model_embedded").options
    assert any(o.startswith("lensing") for o in options), options
    at.selectbox(key="model_embedded").set_value("lensing")
    run(at)
    x, y = lensing_split().dataset[0]
    x = x[None]
    e = explain_map(model(), x)
    expect_prediction(at, x)
    assert values_shown(next(m.value for m in at.markdown if m.value.startswith("True values"))) == \
        pytest.approx(dict(zip(NAMES, y.tolist())), abs=5e-5)
    # every group listed, in score order, with its score and what it alone predicts
    shown = group_lines(at)
    assert list(shown) == e.order
    for g, (score, caption) in shown.items():
        assert score == pytest.approx(e.scores[g], abs=5e-4)
        assert values_shown(caption) == pytest.approx(dict(zip(NAMES, e.group_predictions[g])), abs=5e-5)
    # curves: pixel-wise, zero baseline, 16 steps, first parameter
    c = regression_curves(model(), x, sop_explanation(model(), x), mode="pixel", steps=16)[0]
    assert metric(at, "Insertion AUC") == f"{c['insertion'].auc:.3f}"
    assert metric(at, "Deletion AUC") == f"{c['deletion'].auc:.3f}"
    assert at.query_params["model"] == "lensing" and at.query_params["input"] == "test:0"


def test_isolate_a_group_move_the_step_and_switch_parameter():
    at = lensing_app(input="test:5")
    x = lensing_split().dataset[5][0][None]
    e = explain_map(model(), x)
    g = e.used[-1]
    at.button(key=f"isolate_{g}").click()
    run(at)
    iso = [m.value for m in at.markdown if m.value.startswith(f"**Group {g}** · score") and "alone predicts" in m.value]
    assert iso and values_shown(iso[0]) == pytest.approx(dict(zip(NAMES, e.group_predictions[g])), abs=5e-5)
    assert at.button(key=f"isolate_{g}").label == "Isolated" and at.query_params["group"] == str(g)
    # the step slider: the caption gives the prediction at that step, as the library computes it
    c = regression_curves(model(), x, sop_explanation(model(), x), mode="pixel", steps=16)
    at.slider(key="curve_step").set_value(6)
    run(at)
    cap = next(t.value for t in at.caption if t.value.startswith("**Insertion**, step 6/16"))
    assert f"Omega\\_m = {c[0]['insertion'].predictions[6]:.4f}" in cap
    at.segmented_control(key="regression_parameter").set_value("sigma_8")
    run(at)
    assert metric(at, "Insertion AUC") == f"{c[1]['insertion'].auc:.3f}"
    cap = next(t.value for t in at.caption if t.value.startswith("**Deletion**, step 6/16"))
    assert f"sigma\\_8 = {c[1]['deletion'].predictions[6]:.4f}" in cap
    # isolating again clears it
    at.button(key=f"isolate_{g}").click()
    run(at)
    assert at.button(key=f"isolate_{g}").label == "Isolate"


# --------------------------------------------------------------------------- Residuals

def test_residuals_page_matches_the_library_and_opens_a_map_on_explain():
    at = lensing_app()
    switch(at, "mistakes")
    xs, ys = lensing_split().dataset.tensors
    with torch.no_grad():
        pred = to_physical(torch.cat([model()(xs[i:i + 128]).logits for i in range(0, len(xs), 128)]),
                           model().config).numpy()
    r2, rmse = r2_rmse(pred, ys.double().numpy())
    for p, n in enumerate(NAMES):
        assert metric(at, f"R² ({n})") == f"{r2[p]:.3f}"
    err = np.sqrt((((pred - ys.double().numpy()) / np.array(model().config.target_std)) ** 2).mean(1))
    worst = int(np.argmax(err))
    assert f"Test map **#{worst}** · error {err[worst]:.2f} σ" in texts(at)
    at.button(key=f"open_map_{worst}").click()
    run(at)  # st.switch_page: this run is the Explain page
    assert any(m.value.startswith("#### Explain · lensing · test map \\#" + str(worst)) for m in at.markdown)
    expect_prediction(at, xs[worst:worst + 1])


# --------------------------------------------------------------------------- uploads

def test_upload_a_good_npy_map_is_explained_like_the_library():
    kappa = lensing_split().dataset.tensors[0][17, 0].numpy() * model().config.std[0]
    at = upload(lensing_app(), "my_map.npy", npy(kappa.astype(np.float64)))
    assert not at.error, [e.value for e in at.error]
    assert any("upload\\: my\\_map\\.npy" in m.value for m in at.markdown)
    expect_prediction(at, map_input(kappa, model().config))
    assert "An uploaded map: no true values." in texts(at)
    assert at.query_params["input"] == "upload"


@pytest.mark.parametrize("name, data, message", [
    ("small.npy", lambda: npy(np.zeros((64, 64))), "shape (64, 64); this model needs one 66x66 map"),
    ("nan.npy", lambda: npy(np.where(np.eye(66) > 0, np.nan, 0.0)), "NaN or infinite"),
    ("words.npy", lambda: npy(np.array([["x"] * 66] * 66)), "a map must hold real numbers"),
    ("notes.npy", lambda: b"kappa map, please\n" * 10, "neither a .npy file"),
])
def test_bad_uploads_show_an_error_and_keep_the_previous_map(name, data, message):
    at = lensing_app(input="test:3")
    before = (metric(at, "Omega_m"), metric(at, "sigma_8"))
    upload(at, name, data())
    errors = [e.value.replace("\\", "") for e in at.error]     # shown as plain text (Markdown-escaped)
    assert any(message in e for e in errors), errors
    assert (metric(at, "Omega_m"), metric(at, "sigma_8")) == before
    assert any("Still showing the previous map" in c.value for c in at.caption)


def test_upload_a_fits_map():
    from astropy.io import fits
    kappa = (lensing_split().dataset.tensors[0][40, 0].numpy() * model().config.std[0]).astype(np.float32)
    buf = io.BytesIO()
    fits.PrimaryHDU(kappa).writeto(buf)
    at = upload(lensing_app(), "map.fits", buf.getvalue())
    assert not at.error, [e.value for e in at.error]
    assert any("upload\\: map\\.fits" in m.value for m in at.markdown)
    expect_prediction(at, map_input(kappa, model().config))


# --------------------------------------------------------------------------- Compare, Science

def test_compare_shows_baseline_maps_for_a_parameter_beside_sops_groups():
    at = lensing_app(input="test:2")
    switch(at, "compare")
    assert not at.warning, [w.value for w in at.warning]
    caps = texts(at)
    e = explain_map(model(), lensing_split().dataset[2][0][None])
    assert f"SOP predicts Omega\\_m = {e.prediction[0]:.4f}" in caps
    assert "raises Omega\\_m" in caps


def test_compare_runs_expensive_methods_on_request_with_progress_and_cancel(toy):
    """The image Compare page's machinery (explorer/method_runs.py) on the regression page: a toy
    expensive method (test_compare_cancel) waits for Run, shows its bar and Cancel, and a Cancel stops it."""
    at = lensing_app(input="test:4")
    switch(at, "compare")
    at.pills(key="regression_methods").set_value([TOY])
    run(at)
    assert CALLS == [] and "Not computed yet." in texts(at)
    assert at.button(key="run_all").label == "Run 1 expensive method"
    at.button(key=f"run_{TOY}").click()
    run(at)
    assert CALLS == [1] and any(f"Running {LABEL} (1/1)… 50%" in t for t in bars(at)), bars(at)
    at.button(key="cancel_run").click()
    run(at)
    assert CALLS == [1] and any(f"Cancelled {LABEL}" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "cancel_run"]
    # a new sample budget while it runs drops the request too
    STOP_AT_FIRST_CALL["on"] = True      # interrupted again
    at.button(key="run_all").click()
    run(at)
    assert CALLS == [1, 1] and at.button(key="cancel_run")
    at.select_slider(key="cmp_budget").set_value(250)
    run(at)
    assert CALLS == [1, 1] and any(f"Stopped {LABEL}" in i.value for i in at.info)
    at.button(key=f"run_{TOY}").click()
    run(at)
    assert CALLS == [1, 1, 1] and "Not computed yet." not in texts(at)
    assert "raises Omega\\_m" in texts(at)


def test_compare_budget_sets_the_samples_of_a_sampling_method():
    at = lensing_app(input="test:5")
    switch(at, "compare")
    at.pills(key="regression_methods").set_value(["rise"])
    at.select_slider(key="cmp_budget").set_value(100)
    run(at)
    at.button(key="run_all").click()
    run(at)
    assert "100 samples · purple: raises Omega\\_m" in texts(at), texts(at)


def test_science_page_runs_the_study_and_says_what_it_is_about_for_other_models():
    from sop.lensing_study import format_study, study
    at = new_app(model="lensing")
    at.switch_page("explorer/pages/science.py")     # the first run opens Science with the URL's model
    run(at)
    assert "**lensing** · 2 parameters" in texts(at)
    if any(b.key == "run_study" for b in at.button):
        at.button(key="run_study").click()
        run(at)
    report = study(model(), lensing_split())
    assert any(m.value == format_study(report) for m in at.markdown)
    assert "void* = κ < -1 σ, *cluster* = κ > +2 σ" in texts(at)
    other = new_app(model="digits")
    other.switch_page("explorer/pages/science.py")
    run(other)
    assert "This page is about the lensing regression model" in "\n".join(i.value for i in other.info)
