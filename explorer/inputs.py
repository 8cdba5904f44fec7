"""Choosing an input: a sample of the model's dataset, an uploaded image, or a drawing.

Every input becomes a normalised (1, C, H, W) tensor exactly as the checkpoint says
(sop.image_io.model_input: the config's img_size, mean, std, in_chans; sop.data.split_sample).
Uploads are read from their bytes (`uploaded.getvalue()`), never from their file name;
a bad upload shows its error and the previous input stays on screen.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
from torch.utils.data import TensorDataset

import sop
from sop.data import SAMPLE_SEED, PartsScenes, find_dataset, load_split, split_sample
from sop.data.parts import PART_COLOURS, PART_NAMES
from sop.image_io import DEFAULT_MAX_BYTES, model_input, tensor_to_image

from . import urlstate
from .compute import tensor_key
from .models import LoadedModel

SOURCES = ("Dataset sample", "Upload", "Draw")
SPLITS = ("test", "val", "train")
UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"]
MAX_UPLOAD_BYTES = DEFAULT_MAX_BYTES  # = server.maxUploadSize in .streamlit/config.toml
PART_HEX = ["#%02x%02x%02x" % tuple(int(255 * c) for c in rgb) for rgb in PART_COLOURS]


@dataclass
class ModelInput:
    kind: str                      # "sample" | "upload" | "draw"
    x: torch.Tensor                # (1, C, H, W), normalised as the checkpoint says
    key: str                       # content hash: the cache key of everything computed on it
    name: str                      # shown to the user (plain text)
    label: int | None = None       # true class, when known
    split: str | None = None
    index: int | None = None
    part_masks: np.ndarray | None = None   # (4, H, W) bool: true parts (parts scenes)
    present: np.ndarray | None = None      # (4,) bool

    @property
    def url(self) -> str:
        """Its value in the shared link."""
        return f"{self.split}:{self.index}" if self.kind == "sample" else self.kind

    def image(self, lm: LoadedModel) -> np.ndarray:
        """(H, W, 3) uint8: what the model sees, de-normalised."""
        return tensor_to_image(self.x, lm.config.mean, lm.config.std)


# --------------------------------------------------------------------------- datasets

@st.cache_resource(show_spinner=False, max_entries=8)
def dataset_split(name: str, split: str, img_size: tuple[int, int]):
    """sop.data.load_split, once per server (read-only tensors)."""
    return load_split(name, split, img_size=tuple(img_size), seed=SAMPLE_SEED)


@st.cache_resource(show_spinner=False, max_entries=3)
def parts_scenes(split: str) -> PartsScenes:
    return PartsScenes.generate(split)


def split_of(lm: LoadedModel, split: str):
    """The model's dataset split, or None (with the reason) when it cannot be loaded."""
    name = lm.config.dataset
    if not name:
        return None, "this checkpoint does not name its dataset"
    try:
        return dataset_split(name, split, tuple(lm.config.img_size)), None
    except (ValueError, OSError, sop.SOPError) as err:
        return None, f"dataset {name!r} is not available here ({err})"


def split_tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    """All (x, y) of a split as two tensors."""
    ds = data.dataset
    if isinstance(ds, TensorDataset):
        return ds.tensors[0], ds.tensors[1]
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(xs), torch.as_tensor(ys)


def prepares_like_digits(lm: LoadedModel) -> bool:
    """Whether uploads and drawings are prepared like the model's dataset's digit scans."""
    spec = find_dataset(lm.config.dataset)
    return spec is not None and "digit_like" in spec.capabilities


def sample_input(lm: LoadedModel, split: str, index: int) -> ModelInput | None:
    data, _ = split_of(lm, split)
    if data is None or not 0 <= index < len(data.dataset):
        return None
    x, y = split_sample(data, index)
    if tuple(x.shape[1:]) != (lm.config.in_chans, *lm.config.img_size):
        return None
    masks = present = None
    spec = find_dataset(lm.config.dataset)
    if spec is not None and spec.ground_truth == "part_masks":  # per-part masks and colours: a parts scene
        scenes = parts_scenes(split)
        masks, present = scenes.part_masks[index], scenes.present[index]
    return ModelInput("sample", x, tensor_key(x), f"{split} sample #{index}", int(y), split, int(index),
                      masks, present)


# --------------------------------------------------------------------------- uploads and drawings

def image_input(lm: LoadedModel, data: bytes, *, kind: str, name: str, invert: bool = False,
                digit_like: bool = False) -> ModelInput:
    """Bytes of an image file -> a model input (`sop.image_io.model_input`).  Raises sop.ImageError /
    sop.InputError."""
    x = model_input(data, lm.config, invert=invert, digit_like=digit_like, max_bytes=MAX_UPLOAD_BYTES)
    return ModelInput(kind, x, tensor_key(x), name)


# --------------------------------------------------------------------------- the picker

def _apply_url(lm: LoadedModel) -> None:
    """Turn ?input=... (read once per session) into the picker's state."""
    raw = urlstate.pending("url_input")
    if not raw:
        return
    if raw in ("upload", "draw"):
        st.session_state["input_source"] = "Upload" if raw == "upload" else "Draw"
        return
    split, _, idx = raw.partition(":")
    if split in SPLITS and idx.isdigit():
        st.session_state["input_source"] = "Dataset sample"
        st.session_state["sample_split"] = split
        st.session_state["sample_index"] = int(idx)


def select_sample(split: str, index: int) -> None:
    """Callback: show sample `index` of `split` (used by other pages' buttons)."""
    st.session_state["input_source"] = "Dataset sample"
    st.session_state["sample_split"] = split
    st.session_state["sample_index"] = int(index)


def _random_sample(n: int) -> None:
    st.session_state["sample_index"] = random.randrange(n)


def input_picker(lm: LoadedModel) -> ModelInput | None:
    """The sidebar input chooser; returns the current input (the last good one after an error)."""
    _apply_url(lm)
    sources = list(SOURCES if lm.config.in_chans == 1 else SOURCES[:2])
    if st.session_state.get("input_source") not in sources:
        st.session_state["input_source"] = sources[0]
    source = st.segmented_control("Input", sources, key="input_source", required=True,
                                  persist_state="session",
                                  help="A sample of the model's dataset, your own image, or (digits) a drawing.") or sources[0]
    current: ModelInput | None = None
    if source == "Dataset sample":
        current = _sample_picker(lm)
    elif source == "Upload":
        current = _upload_picker(lm)
    else:
        current = _draw_picker(lm)
    return last_good(current, fits_model(lm), "last_input", "input", lambda: sample_input(lm, "test", 0))


def last_good(current, fits, state_key: str, noun: str, fallback):
    """`current` if it fits the model (remembered under `state_key`); after bad input the last one
    that did (with a note), else `fallback()`: bad input never leaves the pages without an input."""
    if fits(current):
        st.session_state[state_key] = current
        return current
    previous = st.session_state.get(state_key)
    if fits(previous):
        st.caption(f"Still showing the previous {noun} ({previous.name}).")
        return previous
    return fallback()


def _sample_picker(lm: LoadedModel) -> ModelInput | None:
    picked = pick_sample(lm, "Upload an image instead.", "Samples of the dataset the model was trained on.")
    return sample_input(lm, *picked) if picked else None


def pick_sample(lm: LoadedModel, otherwise: str, split_help: str) -> tuple[str, int] | None:
    """The sidebar's split + sample number (+ Random) widgets: (split, index), or None with a note
    (`otherwise` says what to do instead) when the model's dataset has no samples to offer."""
    data, why = split_of(lm, "test")
    if data is None:
        st.info(f"No dataset samples: {why}. {otherwise}")
        return None
    if st.session_state.get("sample_split") not in SPLITS:
        st.session_state["sample_split"] = "test"
    split = st.selectbox("Split", SPLITS, key="sample_split", persist_state="session", help=split_help)
    data, why = split_of(lm, split)
    if data is None:
        st.info(why)
        return None
    return split, index_picker("Sample", len(data.dataset), "sample_index", _random_sample)


def index_picker(noun: str, n: int, key: str, on_random, random_help: str | None = None) -> int:
    """An index 0..n-1 (kept in range in `st.session_state[key]`) with a *Random* button beside it
    (`on_random(n)` sets the new index); the sample and test-map pickers share it."""
    idx = st.session_state.get(key, 0)
    if not isinstance(idx, int) or not 0 <= idx < n:
        st.session_state[key] = 0
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    with c1:
        index = st.number_input(f"{noun} (0-{n - 1})", 0, n - 1, step=1, key=key, persist_state="session")
    with c2:
        st.button("Random", icon=":material/casino:", on_click=on_random, args=(n,), key=key.removesuffix("_index") + "_random",
                  width="stretch", help=random_help)
    return int(index)


def fits_model(lm: LoadedModel):
    """Whether an input (anything with a tensor `x`) has the model's channels and size: the image and
    map pickers keep the last input that does."""
    def fits(mi) -> bool:
        return getattr(mi, "x", None) is not None and tuple(mi.x.shape[1:]) == (lm.config.in_chans,
                                                                                 *lm.config.img_size)
    return fits


def _upload_picker(lm: LoadedModel) -> ModelInput | None:
    cfg = lm.config
    h, w = cfg.img_size
    uploaded = st.file_uploader(
        "Image file", type=UPLOAD_TYPES, key="upload_file",
        help=f"PNG, JPEG, GIF, BMP, WebP or TIFF up to 20 MB. It is scaled to fit {h}x{w} pixels "
             f"(padded, aspect kept), {'converted to greyscale, ' if cfg.in_chans == 1 else ''}"
             "and normalised as the checkpoint says.")
    invert = False
    if cfg.in_chans == 1:
        invert = st.checkbox("Invert colours (dark ink on a light background)", key="upload_invert", persist_state="session",
                             help="The digits model was trained on white ink on black.")
    if uploaded is None:
        st.caption("Uploaded images stay in this browser session; they are not part of the shared link.")
        return None
    data = uploaded.getvalue()
    memo = st.session_state.setdefault("_upload_memo", {})
    memo_key = (uploaded.file_id, len(data), lm.key, invert)
    if memo_key not in memo:
        try:
            memo.clear()
            memo[memo_key] = image_input(lm, data, kind="upload", name=f"upload: {uploaded.name}", invert=invert)
        except sop.SOPError as err:
            memo[memo_key] = err
    result = memo[memo_key]
    if isinstance(result, Exception):
        st.error(f"Could not use this file: {result}", icon=":material/error:")
        return None
    return result


def _draw_picker(lm: LoadedModel) -> ModelInput | None:
    try:
        from streamlit_drawable_canvas import st_canvas
    except Exception as err:  # the component could not register (old Streamlit, missing assets)
        st.warning(f"The drawing canvas is unavailable here ({type(err).__name__}); upload an image instead.")
        return None
    st.caption("Draw a digit with the mouse (white ink on black, like the training data). The toolbar above the "
               "canvas undoes strokes or clears it.")
    st.space("small")
    result = st_canvas(stroke_width=18, stroke_color="#FFFFFF", background_color="#000000", height=224, width=224,
                       drawing_mode="freedraw", return_image_data=True, key="canvas", )
    objects = (result.json_data or {}).get("objects", []) if result is not None else []
    if not objects:
        return None
    data = result.image_bytes
    if not data:
        return None
    try:
        return image_input(lm, data, kind="draw", name="your drawing",
                           digit_like=prepares_like_digits(lm))
    except sop.SOPError as err:
        st.error(str(err))
        return None


def part_legend(mi: ModelInput) -> list[tuple[str, str]]:
    """(name, colour) of the parts present in a parts scene."""
    if mi.present is None:
        return []
    return [(PART_NAMES[p], PART_HEX[p]) for p in range(len(PART_NAMES)) if mi.present[p]]
