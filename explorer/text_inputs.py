"""Choosing a sentence for a text model: a sample of its dataset, or a sentence typed into a box.

A typed sentence is tokenised as literal text (`sop.typed_text`: "[SEP]" typed stays words),
cut to the model's L tokens with a visible notice, and goes into the shared link (`?text=`,
at most `urlstate.MAX_TEXT_CHARS` characters).  Empty or whitespace-only text gets a clear
message and the previous sentence stays on screen.
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

import sop
from sop.text import decode_tokens
from sop.typed_text import encode_typed

from . import urlstate
from .compute import tensor_key
from .inputs import SPLITS, last_good, pick_sample, split_of
from .models import LoadedModel

SOURCES = ("Dataset sample", "Type a sentence")
DEFAULT_TEXT = "the film was not bad at all, but the delivery was slow"
MAX_TYPED_CHARS = 5000          # far beyond the model's 32 tokens; keeps a pasted book out of the tokenizer


@dataclass
class TextInput:
    kind: str                      # "sample" | "typed"
    ids: torch.Tensor              # (1, L) token ids
    key: str                       # content hash: the cache key of everything computed on it
    name: str                      # shown to the user (plain text)
    text: str                      # the sentence (typed, or the dataset's)
    label: int | None = None       # true class, when known
    split: str | None = None
    index: int | None = None
    truncated: bool = False        # the text needed more than L tokens and was cut
    total_tokens: int = 0

    @property
    def x(self) -> torch.Tensor:   # the name the shared page code uses for "the model input"
        return self.ids

    @property
    def url(self) -> str:
        """Its value in the shared link (`?input=`); typed text goes into `?text=`."""
        return f"{self.split}:{self.index}" if self.kind == "sample" else "typed"

    @property
    def url_text(self) -> str | None:
        return self.text[:urlstate.MAX_TEXT_CHARS] if self.kind == "typed" else None

    @property
    def url_text_cut(self) -> bool:
        return self.kind == "typed" and len(self.text) > urlstate.MAX_TEXT_CHARS


def length_of(lm: LoadedModel) -> int:
    return int(lm.config.img_size[-1])


def sample_text_input(lm: LoadedModel, split: str, index: int) -> TextInput | None:
    data, _ = split_of(lm, split)
    if data is None or not 0 <= index < len(data.dataset):
        return None
    ids, y = data.dataset[int(index)]
    ids = ids.unsqueeze(0).long()
    texts = data.info.extra.get("texts") or []
    text = texts[index] if index < len(texts) else " ".join(decode_tokens(ids[0]))
    return TextInput("sample", ids, tensor_key(ids), f"{split} sample #{index}", text, int(y), split, int(index))


@st.cache_data(show_spinner=False, max_entries=200)
def _encode(text: str, length: int):
    try:
        t = encode_typed(text, length)
    except sop.SOPError as err:
        return str(err)
    return t


def typed_input(lm: LoadedModel, text: str) -> TextInput:
    """A typed sentence as a model input; raises sop.InputError (empty text...)."""
    t = _encode(text, length_of(lm))
    if isinstance(t, str):
        raise sop.InputError(t)
    return TextInput("typed", t.ids, tensor_key(t.ids), "your sentence", text, truncated=t.truncated,
                     total_tokens=t.total_tokens)


def select_text_sample(split: str, index: int) -> None:
    """Callback: show sample `index` of `split` (the Mistakes page's buttons)."""
    st.session_state["text_source"] = SOURCES[0]
    st.session_state["sample_split"] = split
    st.session_state["sample_index"] = int(index)


def _apply_url() -> None:
    """Turn ?input=... and ?text=... (read once per session) into the picker's state."""
    raw, text = urlstate.pending("url_input"), urlstate.pending("url_text")
    if raw == "typed" or (text and not raw):
        st.session_state["text_source"] = SOURCES[1]
        if text:
            st.session_state["typed_text"] = text
        return
    if raw:
        split, _, idx = raw.partition(":")
        if split in SPLITS and idx.isdigit():
            select_text_sample(split, int(idx))


def input_picker(lm: LoadedModel) -> TextInput | None:
    """The sidebar chooser; returns the current sentence (the last good one after bad input)."""
    _apply_url()
    if st.session_state.get("text_source") not in SOURCES:
        st.session_state["text_source"] = SOURCES[0]
    source = st.segmented_control("Input", SOURCES, key="text_source", required=True, persist_state="session",
                                  help="A review from the model's dataset, or your own sentence.") or SOURCES[0]
    current = _sample_picker(lm) if source == SOURCES[0] else _typed_picker(lm)
    fits = lambda ti: isinstance(ti, TextInput) and ti.ids.shape[-1] == length_of(lm)  # noqa: E731
    return last_good(current, fits, "last_text_input", "sentence", lambda: sample_text_input(lm, "test", 0))


def _sample_picker(lm: LoadedModel) -> TextInput | None:
    picked = pick_sample(lm, "Type a sentence instead.",
                         "Reviews of the dataset the model was trained on (the same seeded splits).")
    return sample_text_input(lm, *picked) if picked else None


def _typed_picker(lm: LoadedModel) -> TextInput | None:
    if not isinstance(st.session_state.get("typed_text"), str):
        st.session_state["typed_text"] = DEFAULT_TEXT
    text = st.text_area("Sentence", key="typed_text", persist_state="session", height=110, max_chars=MAX_TYPED_CHARS,
                        help=f"Any English sentence. The model reads at most {length_of(lm)} tokens "
                             "([CLS] and [SEP] included); longer text is cut.")
    try:
        ti = typed_input(lm, text)
    except sop.SOPError as err:
        st.warning(f"{err}. The previous sentence stays on screen.", icon=":material/edit_off:")
        return None
    if ti.truncated:
        st.warning(f"Truncated: this text needs {ti.total_tokens} tokens; the model reads the first "
                   f"{length_of(lm)} ([CLS] and [SEP] included), the rest is ignored.", icon=":material/content_cut:")
    if ti.url_text_cut:
        st.caption(f"The shared link keeps the first {urlstate.MAX_TEXT_CHARS} characters of this text.")
    return ti
