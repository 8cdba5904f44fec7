"""The shareable link: the URL's query parameters hold the model, the input and the view.

    ?model=digits&input=test:12&group=3&mode=grouped&baseline=blur&steps=16&step=4
    ?model=runs/vit_sop.safetensors&input=test:0&fine=1      (one-patch curves on a large grid)
    /compare?model=parts&input=test:7&method=lime
    /mistakes?model=digits&cell=3,8&input=test:41

Session state is the source of truth while a session lives; the URL is read once when a
session starts (`init_session`) and rewritten from the state after every run (`sync`),
so a copied link reopens the same view and page switches do not lose it.
Uploaded and drawn images are not in the link (they live only in the browser session).
"""
from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

# Query parameter -> session-state key it initialises.
PARAMS = {
    "model": "url_model",        # embedded name, or a checkpoint path
    "timm": "url_timm",          # timm model name (with a checkpoint path in `model`)
    "input": "url_input",        # "<split>:<index>" (e.g. "test:12"), "upload", "draw"
    "group": "group",            # isolated group (Explain)
    "mode": "curve_mode",        # pixel | grouped
    "baseline": "curve_baseline",
    "steps": "curve_steps",
    "step": "curve_step",
    "fine": "curve_fine",        # curves at one-patch resolution (Explain, grids over 64 patches): 1
    "method": "focus_method",    # method in focus (Compare)
    "methods": "compare_methods",
    "cell": "mistake_cell",      # "<true>,<pred>" (Mistakes)
    "example": "mistake_example",  # test-split index of the opened mistake
    "text": "url_text",          # a typed sentence (text models; with input=typed), at most MAX_TEXT_CHARS
}
MAX_TEXT_CHARS = 500             # a link stays short enough for every browser and chat client
_INT_PARAMS = {"group", "steps", "step", "example"}
_LIST_PARAMS = {"methods"}
_BOOL_PARAMS = {"fine"}     # "1" / "true" / "on" -> True, "0" / "false" / "off" -> False


def parse(name: str, raw: str):
    """A query parameter's value in the type the session state holds (None if invalid)."""
    if name == "text":             # typed text: kept as typed (not stripped), cut to the link's limit
        return raw[:MAX_TEXT_CHARS] if raw.strip() else None
    raw = raw.strip()
    if name in _INT_PARAMS:
        try:
            return int(raw)
        except ValueError:
            return None
    if name in _LIST_PARAMS:
        return [v for v in raw.split(",") if v]
    if name in _BOOL_PARAMS:
        return {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}.get(raw.lower())
    return raw or None


def init_session() -> None:
    """Copy the URL's parameters into session state, once per browser session."""
    if st.session_state.get("_url_loaded"):
        return
    st.session_state["_url_loaded"] = True
    qp = st.query_params
    for name, key in PARAMS.items():
        if name in qp:
            value = parse(name, qp.get(name, ""))
            if value is not None:
                st.session_state[key] = value


def pending(key: str, default=None):
    """Take a value the URL asked for (once), e.g. the input index to select."""
    return st.session_state.pop(key, default)


def as_query(params: dict) -> dict[str, str]:
    """`params` as the URL writes them: None and empty values left out, lists comma-joined."""
    return {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
            for k, v in params.items() if v is not None and v != "" and v != []}


def sync(params: dict) -> None:
    """Make the URL show `params` (None values left out); no rerun, no history spam."""
    want = as_query(params)
    have = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if have != want:
        st.query_params.from_dict(want)


def open_page(page: str, params: dict) -> None:
    """Switch to `page` with `params` already in its URL: without them the switch clears the query
    and the new page's own `sync` races the page change in the browser (a link could lose ?input=)."""
    st.switch_page(page, query_params=as_query(params))


def share_link(params: dict, page_path: str = "") -> str:
    """An absolute link to this view when the browser's URL is known, else a relative one."""
    query = urlencode(as_query(params))
    base = None
    try:
        base = st.context.url
    except Exception:
        base = None
    if base:
        base = base.split("?", 1)[0].split("#", 1)[0]
        root = base.rstrip("/")
        # st.context.url ends with the current page's path; replace it with the wanted page
        for p in ("compare", "mistakes", "theory", "explain", "science"):
            if root.endswith("/" + p):
                root = root[: -len(p) - 1]
                break
        return f"{root}/{page_path}?{query}" if page_path else f"{root}/?{query}"
    return f"/{page_path}?{query}"
