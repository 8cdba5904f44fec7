"""Choosing a map for a regression model: a test map of its dataset, or an uploaded .npy / FITS map.

The sidebar keeps its own session keys (``map_*``), so the image pages' input state is untouched.
An upload is read from its bytes by `sop.map_io.read_map` (format told by content, shape, NaN and
size checked); a bad file shows its error and the previous map stays on screen.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

import sop
from sop.map_io import MAX_MAP_BYTES, map_input, map_of_input, read_map

from . import urlstate
from .compute import tensor_key
from .inputs import fits_model, index_picker, last_good, split_of
from .models import LoadedModel
from .ui import plain

SOURCES = ("Test map", "Upload")
UPLOAD_TYPES = ["npy", "fits", "fit", "fts"]
RANDOM_SEED = 0   # the Random button walks a seeded sequence: the same maps in every session


@dataclass
class MapInput:
    kind: str                       # "sample" | "upload"
    x: torch.Tensor                 # (1, 1, H, W) normalised as the checkpoint says
    key: str                        # content hash: the cache key of everything computed on it
    name: str
    kappa: np.ndarray               # (H, W) the map in physical units
    truth: np.ndarray | None = None  # (P,) true parameters of a test map
    split: str | None = None
    index: int | None = None
    label: int | None = None        # (no class: the shared pages read it)

    @property
    def url(self) -> str:
        return f"{self.split}:{self.index}" if self.kind == "sample" else self.kind


def test_map(lm: LoadedModel, index: int) -> MapInput | None:
    data, _ = split_of(lm, "test")
    if data is None or not 0 <= index < len(data.dataset):
        return None
    x, y = data.dataset[index]
    x = x.unsqueeze(0)
    return MapInput("sample", x, tensor_key(x), f"test map #{index}", map_of_input(x, lm.config),
                    np.asarray(y, dtype=np.float64).reshape(-1), "test", int(index))


def uploaded_map(lm: LoadedModel, data: bytes, name: str) -> MapInput:
    """Bytes of a .npy / FITS file -> a map input.  Raises sop.InputError."""
    kappa = read_map(data, tuple(lm.config.img_size), name=name, max_bytes=MAX_MAP_BYTES)
    x = map_input(kappa, lm.config)
    return MapInput("upload", x, tensor_key(x), f"upload: {name}", kappa)


def select_test_map(index: int) -> None:
    """Callback: show test map `index` (the Residuals page's buttons and chart clicks)."""
    st.session_state["map_source"] = SOURCES[0]
    st.session_state["map_index"] = int(index)


def _random_map(n: int) -> None:
    step = int(st.session_state.get("map_random_step", 0))
    st.session_state["map_random_step"] = step + 1
    st.session_state["map_index"] = random.Random(RANDOM_SEED * 1_000_003 + step).randrange(n)


def _apply_url() -> None:
    raw = urlstate.pending("url_input")
    if not raw:
        return
    if raw == "upload":
        st.session_state["map_source"] = SOURCES[1]
        return
    split, _, idx = raw.partition(":")
    if split == "test" and idx.isdigit():
        select_test_map(int(idx))


def input_picker(lm: LoadedModel) -> MapInput | None:
    """The sidebar map chooser; returns the current map (the last good one after an error)."""
    _apply_url()
    if st.session_state.get("map_source") not in SOURCES:
        st.session_state["map_source"] = SOURCES[0]
    source = st.segmented_control("Map", SOURCES, key="map_source", required=True, persist_state="session",
                                  help="A test map of the model's dataset, or your own map "
                                       "(.npy or FITS).") or SOURCES[0]
    current = _test_picker(lm) if source == SOURCES[0] else _upload_picker(lm)
    return last_good(current, fits_model(lm), "last_map", "map", lambda: test_map(lm, 0))


def _test_picker(lm: LoadedModel) -> MapInput | None:
    data, why = split_of(lm, "test")
    if data is None:
        st.info(f"No test maps: {why}. Upload a map instead.")
        return None
    index = index_picker("Test map", len(data.dataset), "map_index", _random_map,
                         random_help="The next map of a seeded random sequence.")
    return test_map(lm, index)


def _upload_picker(lm: LoadedModel) -> MapInput | None:
    h, w = lm.config.img_size
    uploaded = st.file_uploader(
        "Map file (.npy or FITS)", type=UPLOAD_TYPES, key="map_upload",
        help=f"One {h}x{w} map of the convergence κ in physical units (as the test maps): a .npy file "
             f"(numpy.save) or a FITS image, up to {MAX_MAP_BYTES // 2**20} MB. Finite values only.")
    if uploaded is None:
        st.caption("Uploaded maps stay in this browser session; they are not part of the shared link.")
        return None
    data = uploaded.getvalue()
    memo = st.session_state.setdefault("_map_upload_memo", {})
    key = (uploaded.file_id, len(data), lm.key)
    if key not in memo:
        memo.clear()
        try:
            memo[key] = uploaded_map(lm, data, uploaded.name)
        except sop.SOPError as err:
            memo[key] = err
    result = memo[key]
    if isinstance(result, Exception):
        st.error(f"Could not use this file: {plain(str(result))}", icon=":material/error:")
        return None
    return result
