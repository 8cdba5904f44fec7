"""The text pages' computations, cached per model, sentence and settings (explorer.compute's cache).

The library computes: `sop.text_explain.explain_sentence` (the SOP forward pass as data),
`sop.text_eval.explain_text` (token maps of SOP and the baselines) and
`sop.faithfulness.token_insertion_deletion` (curves over tokens); this module only keys and
stores the results (`compute.cached` / `compute.remember`) and runs one heavy job at a time."""
from __future__ import annotations

import time

import numpy as np
import torch

from sop.faithfulness import Curve, token_group_sizes, token_insertion_deletion
from sop import text_eval
from sop.text_eval import TEXT_METHODS, LABELS, explain_text
from sop.text_explain import SentenceExplanation, explain_sentence

from .compute import POST_HOC, _key, cached, remember
from .models import LoadedModel, compute_lock

METHODS = TEXT_METHODS
BASELINES_BY_COST = text_eval.BASELINES_BY_COST   # the order Compare runs them in: cheapest first
CURVE_MODES = ("token", "grouped")
MODE_LABELS = {"token": "One token per step", "grouped": "Grouped"}


def label(method: str) -> str:
    return LABELS.get(method, method)


def sentence(lm: LoadedModel, ids, key: str) -> SentenceExplanation:
    k = _key("text-sentence", lm.key, key)
    hit = cached(k)
    if hit is not None:
        return hit
    with compute_lock():
        sx = explain_sentence(lm.model, ids)
    return remember(k, sx)


def token_map(lm: LoadedModel, ids, key: str, method: str, *, compute: bool = True, progress=None):
    """(attribution (L,), target, seconds) of `method`: SOP explains the SOP model, the baselines the twin.
    `progress(share)` while a baseline runs (a Streamlit call there lets a rerun stop the work)."""
    model, model_key = lm.model_for(method if method == "sop" else POST_HOC)
    k = _key("text-map", model_key, method, key)
    hit = cached(k)
    if hit is not None or not compute:
        return hit
    with compute_lock():
        t0 = time.perf_counter()
        a, target = explain_text(model, ids, method, progress=progress)
        seconds = time.perf_counter() - t0
    return remember(k, (np.asarray(a, dtype=float), int(target), float(seconds)))


def curves(lm: LoadedModel, ids, key: str, method: str, mode: str, *, compute: bool = True
           ) -> dict[str, Curve] | None:
    """Insertion and deletion over tokens of `method`'s explanation on the model it explains.
    SOP grouped: its groups by score; a baseline grouped: chunks of SOP's step sizes on this sentence."""
    model, model_key = lm.model_for(method if method == "sop" else POST_HOC)
    k = _key("text-curves", model_key, method, key, mode)
    hit = cached(k)
    if hit is not None or not compute:
        return hit
    sx = sentence(lm, ids, key)
    if method == "sop" and mode == "grouped":
        kwargs = dict(groups=sx.masks, scores=sx.scores)
    else:
        a, target = token_map(lm, ids, key, method)[:2]
        kwargs = dict(attribution=a, target=target)
        if mode == "grouped":
            kwargs["group_sizes"] = token_group_sizes(sx.masks, sx.scores, torch.from_numpy(sx.content))
    with compute_lock():
        got = token_insertion_deletion(model, ids, mode=mode, **kwargs)
    return remember(k, got)

