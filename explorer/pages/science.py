"""Science: what voids and clusters inside SOP's groups say about Ωm and σ8 (`sop.lensing_study`).

Shown for every model; for a model that is not a lensing regression model it says what the page
is about.  The study comes from a stored run (`python -m sop lensing-study` writes
runs/lensing-study/study.json) when that run is of this checkpoint, else it is computed here on
request (progress bar) and kept for the server's life.
"""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from explorer import compute, ui
from explorer import regression_view as view
from explorer.inputs import split_of
from explorer.models import compute_lock
from sop.lensing_study import CLUSTER_SIGMA, VOID_SIGMA, format_study, study

STORED = Path("runs") / "lensing-study" / "study.json"
ABOUT = ("The paper's third application is scientific discovery: an SOP model regresses the cosmological "
         "parameters Ωm and σ8 from weak-lensing convergence (κ) maps, and its groups show which structures "
         "it reads them from. This page reports, over the lensing test maps, how much of SOP's selected groups "
         "lies in **voids** (under-dense regions) and **clusters** (over-dense peaks) against their share of "
         "the sky, and how void- and cluster-dominated groups pull each parameter (`python -m sop "
         "lensing-study`, docs/lensing.md).")

ctx = ui.page_setup(need_input=False)
lm = ctx.lm
st.markdown("#### Science · voids, clusters and the cosmological parameters")
st.markdown(ABOUT)
is_lensing = lm is not None and lm.config.task == "regression" and lm.config.dataset == "lensing" \
    and hasattr(lm.model, "group_gen")
if not is_lensing:
    st.info("This page is about the lensing regression model (the embedded **lensing** default): choose it in "
            "the sidebar. The model shown now "
            + (f"({ui.plain(lm.spec.name)}, dataset {ui.plain(lm.config.dataset or 'unknown')}, task "
               f"{ui.plain(lm.config.task)}) " if lm is not None else "")
            + "is not one, so there is nothing to report for it here.", icon=":material/science:")
    ui.finish({"model": lm.spec.url if lm is not None else None}, "science")
    st.stop()

st.markdown(f"**Thresholds**, per map in units of that map's standard deviation σ of κ: *void* = κ < "
            f"{VOID_SIGMA:+g} σ, *cluster* = κ > {CLUSTER_SIGMA:+g} σ, *neither* otherwise. "
            "Mean ± standard error over maps.")


def _stored_report() -> dict | None:
    """The stored run, if it is of this very checkpoint file."""
    try:
        report = json.loads(STORED.read_text())
        same = Path(report.get("checkpoint", "")).resolve() == Path(lm.spec.sop_path).resolve()
    except (OSError, ValueError):
        return None
    return report if same and report.get("split") == "test" else None


key = compute.signature("lensing_study", lm.key)
report = compute.cached(key) or _stored_report()
if report is None:
    offer = st.empty()   # the offer disappears once the study is shown
    with offer.container():
        st.caption("No stored run of the study for this checkpoint (`python -m sop lensing-study` writes one).")
        clicked = st.button("Run the study on the test maps", type="primary", icon=":material/play_arrow:",
                            key="run_study")
    if clicked:
        data, why = split_of(lm, "test")
        if data is None:
            st.error(f"No test maps: {why}")
            st.stop()
        bar = st.progress(0.0, text="Running the study…")
        with compute_lock():
            report = study(lm.model, data, progress=lambda f: bar.progress(f, text=f"Running the study… {f:.0%}"))
        bar.empty()
        offer.empty()
        report.update(checkpoint=str(lm.spec.sop_path), split="test")
        compute.remember(key, report)
else:
    compute.remember(key, report)

if report is not None:
    shares, pulls = view.study_figures(report)
    c1, c2 = st.columns(2, gap="large")
    c1.plotly_chart(shares, config=view.CONFIG, theme=None, key="study_shares")
    c2.plotly_chart(pulls, config=view.CONFIG, theme=None, key="study_pulls")
    st.markdown(format_study(report))
    st.caption(f"{report['maps']} test maps of {ui.code(Path(report.get('checkpoint', '')).name)}. A group is "
               "void-dominated when its void pixels, relative to the map's share of voids, exceed its cluster "
               "pixels relative to the map's share of clusters; its pull is what it alone predicts minus the "
               "model's prediction (standardised units).")
ui.finish({"model": lm.spec.url, "timm": lm.spec.timm_name}, "science")
