"""SOP Explorer: browse, compare and debug Sum-of-Parts explanations in the browser.

    streamlit run streamlit_app.py        (or: bash scripts/app.sh)

Pages (explorer/pages/): Explain (the SOP forward pass, groups, curves, export),
Compare methods (SOP beside six post-hoc methods), Mistakes (confusion matrix and
misclassified examples) and Theory.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch

import explorer  # installed with `sop` (pip install -e .; scripts/setup_env.sh does it)
from explorer.icon import app_icon

torch.set_num_threads(max(1, min(4, torch.get_num_threads())))

# The icon is drawn locally: a material-symbol favicon would be fetched from Google's CDN.
st.set_page_config(page_title="SOP Explorer", page_icon=app_icon(), layout="wide",
                   initial_sidebar_state="expanded",
                   menu_items={"About": "SOP Explorer: Sum-of-Parts self-attributing models (arXiv 2310.16316)."})

PAGES = Path(explorer.__file__).resolve().parent / "pages"  # the pages of the package imported above
pages = [
    st.Page(PAGES / "explain.py", title="Explain", icon=":material/visibility:", url_path="explain", default=True),
    st.Page(PAGES / "compare.py", title="Compare methods", icon=":material/compare:", url_path="compare"),
    st.Page(PAGES / "mistakes.py", title="Mistakes", icon=":material/bug_report:", url_path="mistakes"),
]
if (PAGES / "science.py").is_file():  # the lensing study (shown for every model; says what it is about)
    pages.append(st.Page(PAGES / "science.py", title="Science", icon=":material/science:", url_path="science"))
if (PAGES / "theory.py").is_file():
    pages.append(st.Page(PAGES / "theory.py", title="Theory", icon=":material/functions:", url_path="theory"))

page = st.navigation(pages, position="top")
with st.sidebar:
    st.markdown("### :material/extension: SOP Explorer")
    st.caption("Sum-of-Parts models explain themselves: a few groups of patches, each scored; "
               "the prediction is the score-weighted sum of what each group alone predicts.")
page.run()
