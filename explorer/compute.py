"""Every computation the app shows, cached per model, input and settings.

The library computes (sop.SOPModel.forward, sop.explainers.explain,
sop.faithfulness.insertion_deletion); this module only caches the results and reports
progress.  Results live in st.cache_data (shared by all sessions of the server) under a
key made of the model's checkpoint version, a hash of the input tensor and the settings.

Long computations report progress through a callback that updates an `st.progress`
bar.  Streamlit cannot replay elements drawn inside a cached function on a bar created
outside it, so the work runs outside the cached function and its result is then put into
the cache (`_store`): a lookup with no value is a miss, which st.cache_data does not
remember, and a store is a call with the value.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import streamlit as st
import torch

from sop.errors import InputError
from sop.evaluation import localisation_study
from sop.explainers import Explanation, explain
from sop.faithfulness import BASELINES, DEFAULT_STEPS, Curve, group_sizes_of, insertion_deletion, memo_key
from sop.localisation import ground_truth_masks
from sop.methods import MethodInfo, get_method, list_methods, method_label

from .models import LoadedModel, compute_lock

# Every method, its label, cost (cheap ones run without asking; expensive ones, hundreds to
# thousands of forward passes, on request with a progress bar) and sample budget come from
# the registry, sop.methods: a method registered there appears here with no other change.
MODES = ("pixel", "grouped")
# lm.model_for / key_for / describe_for answer for "the model a post-hoc method explains"
# (the backbone twin, or the SOP model without one) given any name but SOP's own.
POST_HOC = "post-hoc"


def methods_for(lm: LoadedModel) -> list[str]:
    """The registered methods that can explain the model each would explain here, in registry order."""
    return [m for m in list_methods() if get_method(m).supports(lm.model_for(m)[0])]


def label(method: str) -> str:
    return method_label(method)


def is_cheap(method: str) -> bool:
    return get_method(method).cheap


def sampled_methods() -> list[MethodInfo]:
    """Methods whose work is a number of random samples (the Compare page's budget applies to them)."""
    return [get_method(m) for m in list_methods(samples=True)]


Progress = Callable[[float], None] | None


class _Miss(Exception):
    """Raised by a cache lookup that has no value to store."""


@st.cache_data(show_spinner=False, max_entries=2000)
def _store(key: str, _value=None):
    if _value is None:
        raise _Miss(key)
    return _value


def cached(key: str):
    """The cached value under `key`, or None."""
    try:
        return _store(key)
    except _Miss:
        return None


def remember(key: str, value):
    _store(key, _value=value)
    return value


def tensor_key(x: torch.Tensor) -> str:
    """A short content hash of a tensor (the cache key of an input)."""
    t = x.detach().cpu().contiguous().float()
    h = hashlib.sha1(str(tuple(t.shape)).encode())
    h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def _key(*parts) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


def signature(*parts) -> str:
    """A string that changes whenever one of `parts` (JSON-able, or shown by str) does: what a page
    compares to tell whether work it requested still belongs to the view on screen."""
    return _key(*parts)


# --------------------------------------------------------------------------- SOP forward pass

@dataclass
class Forward:
    """One SOP forward pass, as NumPy arrays (batch dimension removed)."""
    probs: np.ndarray          # (K,)
    logits: np.ndarray         # (K,)
    scores: np.ndarray         # (G,)
    group_logits: np.ndarray   # (G, K)
    pixel_masks: np.ndarray    # (G, H, W)
    group_masks: np.ndarray    # (G, N)
    class_scores: np.ndarray | None = None   # (G, K) per-class GroupSelect only
    gates: np.ndarray | None = None          # (G,) the authors' gated GroupGen only

    @property
    def prediction(self) -> int:
        return int(self.logits.argmax())

    def contributions(self, k: int) -> np.ndarray:
        """(G,) what each group adds to the logit of class k; they sum to logits[k]."""
        scores = self.scores if self.class_scores is None else self.class_scores[:, k]
        gates = 1.0 if self.gates is None else self.gates
        return scores * gates * self.group_logits[:, k]

    @property
    def order(self) -> list[int]:
        """Groups by decreasing score (ties: lower index first)."""
        return [int(g) for g in np.argsort(-self.scores, kind="stable")]

    def alone_probs(self, g: int) -> np.ndarray:
        """What group g alone predicts: softmax of its own logits."""
        z = self.group_logits[g] - self.group_logits[g].max()
        e = np.exp(z)
        return e / e.sum()


def sop_forward(lm: LoadedModel, x: torch.Tensor, x_key: str | None = None) -> Forward:
    key = _key("forward", lm.key, x_key or tensor_key(x))
    hit = cached(key)
    if hit is not None:
        return hit
    with torch.no_grad():
        out = lm.model(x)
    f = Forward(probs=out.probs[0].float().numpy(), logits=out.logits[0].float().numpy(),
                scores=out.group_scores[0].float().numpy(), group_logits=out.group_logits[0].float().numpy(),
                pixel_masks=out.pixel_masks[0].float().numpy(), group_masks=out.group_masks[0].float().numpy(),
                class_scores=None if out.class_scores is None else out.class_scores[0].float().numpy(),
                gates=None if out.group_gates is None else out.group_gates[0].float().numpy())
    return remember(key, f)


def backbone_prediction(lm: LoadedModel, x: torch.Tensor, x_key: str | None = None) -> np.ndarray:
    """Softmax probabilities (K,) of the model the baselines explain."""
    key = _key("backbone-probs", lm.key_for(POST_HOC), x_key or tensor_key(x))
    hit = cached(key)
    if hit is not None:
        return hit
    model, _ = lm.model_for(POST_HOC)
    with torch.no_grad():
        out = model(x)
    logits = out.logits if hasattr(out, "logits") else out
    return remember(key, logits[0].float().softmax(-1).numpy())


# --------------------------------------------------------------------------- explanations

def method_settings(method: str, budget: int | None = None) -> dict:
    """The settings an explanation runs with: the library defaults, with the sample budget applied
    (to sampling methods only: `MethodInfo.budget_setting`)."""
    return get_method(method).budgeted(budget)


def explanation_key(lm: LoadedModel, method: str, x_key: str, settings: dict) -> str:
    return _key("explain", lm.key_for(method), method, x_key, dict(settings))


def get_explanation(lm: LoadedModel, x: torch.Tensor, method: str, settings: dict | None = None, *,
                    x_key: str | None = None, progress: Progress = None, compute: bool = True
                    ) -> Explanation | None:
    """The explanation of `method` for input x (None if not cached and compute=False)."""
    get_method(method)  # an unknown name raises InputError listing the registered methods
    settings = dict(settings if settings is not None else method_settings(method))
    x_key = x_key or tensor_key(x)
    key = explanation_key(lm, method, x_key, settings)
    hit = cached(key)
    if hit is not None or not compute:
        return hit
    model, _ = lm.model_for(method)
    with compute_lock():
        hit = cached(key)  # another session may have computed it while we waited
        if hit is not None:
            return hit
        exp = explain(model, x, method, progress=progress, **settings)
    return remember(key, exp)


def is_cached(lm: LoadedModel, x_key: str, method: str, settings: dict) -> bool:
    return cached(explanation_key(lm, method, x_key, settings)) is not None


# --------------------------------------------------------------------------- curves

# Progressive curves (Explain): a pixel-wise curve of more than COARSE_STEPS steps is drawn at
# COARSE_STEPS first, then refined; grids of more than LARGE_GRID patches default to the step
# slider's schedule and offer one-patch resolution on request.
COARSE_STEPS = 4
LARGE_GRID = 64


def curve_schedule(mode: str, steps: int) -> list[int]:
    """The step counts a progressive curve is computed at, coarse to fine (the last is `steps`)."""
    steps = int(steps)
    return [COARSE_STEPS, steps] if mode == "pixel" and steps > COARSE_STEPS else [steps]


def curve_batch_size(model: torch.nn.Module) -> int:
    """Inputs per batch of a curve: the library's choice by model size (`default_batch_size`),
    at most 8 on large grids, so progress (and cancelling) comes often."""
    from sop.explainers import model_grid
    from sop.faithfulness import default_batch_size
    grid = model_grid(model) or (8, 8)
    size = default_batch_size(model)
    return size if grid[0] * grid[1] <= LARGE_GRID else min(8, size)


@st.cache_resource(show_spinner=False, max_entries=16)
def curve_memo(model_key: str, x_key: str) -> dict:
    """The perturbed inputs already evaluated on one model and input (`insertion_deletion`'s memo):
    shared by the coarse and the refined curve, both curve kinds, every method and session."""
    return {}


def get_curves(lm: LoadedModel, x: torch.Tensor, exp: Explanation, *, mode: str = "pixel",
               baseline: str = "zero", steps: int = DEFAULT_STEPS, x_key: str | None = None,
               group_sizes: list[int] | None = None, progress: Progress = None,
               compute: bool = True) -> dict[str, Curve] | None:
    """Insertion and deletion curves of `exp` on the model it explains (`Curve.input_at` shows a step).

    None if not cached and compute=False.  `progress` gets the share done after each batch; a
    Streamlit call in it is where a rerun (a new input or setting) stops the work in flight."""
    if mode not in MODES:
        raise InputError(f"curve mode must be one of {', '.join(MODES)}, not {mode!r}")
    if baseline not in BASELINES:
        raise InputError(f"removal baseline must be one of {', '.join(BASELINES)}, not {baseline!r} "
                         "(see sop.faithfulness.BASELINES)")
    x_key = x_key or tensor_key(x)
    settings_key = _key(exp.settings)
    key = _key("curves", lm.key_for(exp.method), exp.method, settings_key, x_key, mode, baseline,
               int(steps) if mode == "pixel" else None, group_sizes if mode == "grouped" else None)
    hit = cached(key)
    if hit is not None or not compute:
        return hit
    # No keep_inputs: a curve rebuilds the one input on show from its bit-packed step masks, so a
    # cached curve costs kilobytes, not (S+1) float images (78 MB at 224x224 RGB, 64 steps).
    model, _ = lm.model_for(exp.method)
    memo = curve_memo(lm.key_for(exp.method), x_key)
    fwd = cached(_key("forward", lm.key, x_key)) if model is lm.model else None
    if fwd is not None and baseline != "noisy_linear":  # the untouched input: the page's SOP forward pass
        from sop.explainers import model_grid
        every = torch.ones(x.shape[-2:], dtype=torch.bool)
        memo.setdefault(memo_key(every, baseline, None, model_grid(model)), torch.from_numpy(fwd.logits).float())
    kwargs = dict(mode=mode, steps=int(steps), baseline=baseline, progress=progress,
                  batch_size=curve_batch_size(model), memo=memo)
    if mode == "grouped" and exp.groups is None and group_sizes:
        kwargs["group_sizes"] = list(group_sizes)
    with compute_lock():
        curves = insertion_deletion(model, x, exp, **kwargs)
    return remember(key, curves)


def sop_group_sizes(exp_sop: Explanation) -> list[int]:
    """Pixels per grouped step of SOP on this input (so every method's grouped curve shares x)."""
    return group_sizes_of(exp_sop)


# --------------------------------------------------------------------------- ground truth

@st.cache_resource(show_spinner=False, max_entries=4)
def _ground_truth(dataset: str, split: str) -> np.ndarray | None:
    # seed 0, as explorer.inputs loads its splits: mask i belongs to sample i
    return ground_truth_masks(dataset, split)


def ground_truth_mask(dataset: str | None, split: str | None, index: int | None) -> np.ndarray | None:
    """(H, W) bool ground-truth mask of sample `index` of a split, or None (no mask, or an empty one)."""
    if not dataset or split is None or index is None:
        return None
    masks = _ground_truth(dataset, split)
    if masks is None or not 0 <= index < len(masks) or not masks[index].any():
        return None
    return masks[index]


def has_ground_truth(dataset: str | None) -> bool:
    return bool(dataset) and _ground_truth(dataset, "test") is not None


def localisation_mean(lm: LoadedModel, test_split, method: str, settings: dict, samples: int, *,
                      progress: Progress = None, compute: bool = True) -> dict | None:
    """sop.evaluation.localisation_study of `method` on `samples` test inputs with ground truth (cached)."""
    dataset = lm.config.dataset
    key = _key("localisation", lm.key_for(method), method, dict(settings), dataset, "test", int(samples))
    hit = cached(key)
    if hit is not None or not compute:
        return hit
    model, _ = lm.model_for(method)
    with compute_lock():
        study = localisation_study(model, test_split, _ground_truth(dataset, "test"), method, samples=int(samples),
                                   settings=settings, progress=progress)
    return remember(key, study)


# --------------------------------------------------------------------------- whole split

@dataclass
class SplitPredictions:
    labels: np.ndarray       # (N,)
    preds: np.ndarray        # (N,)
    probs: np.ndarray        # (N, K)
    seconds: float

    @property
    def accuracy(self) -> float:
        return float((self.labels == self.preds).mean()) if len(self.labels) else float("nan")

    def confusion(self, k: int) -> np.ndarray:
        cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(cm, (self.labels, self.preds), 1)
        return cm

    @property
    def mistakes(self) -> np.ndarray:
        return np.flatnonzero(self.labels != self.preds)


def split_predictions(lm: LoadedModel, dataset: str, split: str, images: torch.Tensor, labels: torch.Tensor,
                      *, progress: Progress = None, batch_size: int = 64) -> SplitPredictions:
    """SOP predictions for a whole split (cached per model and split)."""
    key = _key("split", lm.key, dataset, split, len(labels))
    hit = cached(key)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    probs = []
    with compute_lock(), torch.no_grad():
        for i in range(0, len(images), batch_size):
            probs.append(lm.model(images[i:i + batch_size]).probs.float())
            if progress is not None:
                progress(min(1.0, (i + batch_size) / len(images)))
    p = torch.cat(probs).numpy() if probs else np.zeros((0, len(lm.class_names)), np.float32)
    result = SplitPredictions(labels=labels.numpy().astype(np.int64), preds=p.argmax(1).astype(np.int64),
                              probs=p, seconds=time.perf_counter() - t0)
    return remember(key, result)


@st.cache_data(show_spinner=False, ttl=30, max_entries=50)
def stored_sweep(sop_path) -> dict | None:
    """The checkpoint's stored budget sweep (sop.budget.find_sweep), read at most every 30 s:
    the Compare page asks on every rerun, and a sweep written meanwhile still shows up soon."""
    from sop.budget import find_sweep
    return find_sweep(sop_path)
