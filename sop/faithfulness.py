"""Insertion and deletion curves (Petsiuk et al. 2018), pixel-wise and grouped.

Definitions (identical for every method; `insertion_deletion` computes both curves):

* **Score**: the evaluated model's task scores each output against the *target*
  (`Task.score`).  Classification: softmax probability of the target class, by default
  the class the model predicts on the untouched input.  Regression: the *closeness* to the
  target, by default the prediction on the untouched input, averaged over the parameters:
  mean_p (1 - |output_p - target_p|) in standardised units (`sop.regression.closeness`, the one
  definition the explorer's per-parameter curves use too; `Curve.outputs` keeps the raw
  outputs, so each parameter's curve is read from the same pass).  1 = the full-input
  prediction, 0 = one training-set standard deviation away; insertion rises to 1 and
  deletion falls from 1, as a class probability does.
* **Insertion**: start from the fully removed image (every pixel = the removal
  baseline) and put pixels of x back, most important first.  **Deletion**: start from
  x and remove pixels, most important first.  Good explanations have high insertion
  AUC and low deletion AUC.
* **x axis**: the fraction of pixels inserted / deleted, from 0 to 1; **AUC** is the
  trapezoid rule over it, so it lies in [0, 1] (the RISE convention, not Quantus's
  unnormalised sum).
* **Pixel-wise** (``mode="pixel"``): the attribution is summed over each patch of the
  model's patch grid (8x8 patches of 4x4 pixels for the embedded models; as the
  authors do with ViT patches -- SOP's groups live on those patches too), patches are
  sorted by that sum (descending; ties keep row-major order), and the sorted patches
  are inserted / deleted in ``steps`` equal steps of round(k/steps * H*W) pixels.
* **Grouped** (``mode="grouped"``): whole groups are inserted / deleted, one per step.
  - SOP: its groups with a non-zero score, in decreasing score order (a group's
    pixels = its mask > 0; pixels already taken by an earlier group are not counted
    twice), then, as the last step, every remaining (unscored) pixel.
  - per-pixel methods: consecutive chunks of the patch ranking above.  With
    ``group_sizes`` (pixel counts, e.g. `group_sizes_of(sop_explanation)`) the chunks
    have exactly those sizes and the rest of the image is the last step, so the
    curve has the same x positions as SOP's on that input and differs only in *which*
    pixels each step adds -- the evaluation report always does this.  Without it, the
    ranking is cut into ``num_groups`` equal chunks (the model's G, else 8).
* **Removal baselines** (`BASELINES`, default ``"zero"`` everywhere):
  - ``zero``: 0 after normalisation = the dataset's mean colour (what SOP's own
    masking and the authors' curves use);
  - ``blur``: a Gaussian blur of x (RISE's insertion start), sigma = one patch edge
    in pixels (``blur_sigma`` to override), reflect padding;
  - ``noisy_linear``: ROAD's noisy linear imputation (Rong et al. 2022): each removed
    pixel equals the weighted mean of its 8 neighbours (weights 1/6 for the 4 direct
    neighbours, 1/12 for diagonals), solved jointly as one sparse linear system
    (scipy.sparse) per perturbed input and channel, plus N(0, 0.01^2) noise in
    normalised units (seeded).  With nothing left to interpolate from (all pixels
    removed) it falls back to the mean colour plus the noise.
* **Cost**: the perturbed inputs of both curves go through the model together, in
  inference mode, in batches of ``batch_size`` (default `default_batch_size`: by model
  size); the target is read from the deletion curve's first input (x itself).  Inputs
  that are equal are evaluated once: with the ``zero`` and ``blur`` baselines the
  insertion curve ends where deletion starts (x) and starts where deletion ends (nothing
  kept), so a call costs 2 * S forward samples (2 * (S + 1) with ROAD, whose noise differs
  per row).  A ``memo`` dict, kept by the caller for one model and input, remembers every
  evaluated input's raw outputs by its kept-pixel mask, so a curve refined after a coarse
  one (or the other curve kind) runs only the inputs it has not seen.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError
from .explainers import Explanation, eval_mode, logits_of, model_grid, patch_ids
from .tasks import get_task, target_value
from .text import content_mask, drop_tokens

BASELINES = ("zero", "blur", "noisy_linear")
DEFAULT_BASELINE = "zero"
DEFAULT_STEPS = 16
NOISE_STD = 0.01
# ROAD's neighbour weights: direct neighbours count twice as much as diagonal ones.
_NEIGHBOURS = [(-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
               (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12)]


@dataclass(frozen=True)
class Removal:
    """How a curve built its perturbed inputs: enough to rebuild any one of them.

    The step masks are bit-packed (1 bit a pixel): a curve remembers what the model saw
    at every step for 1/32 (one channel) to 1/96 (RGB) of the memory of the float inputs.
    """
    kept_bits: np.ndarray          # np.packbits of the (S+1, H, W) bool masks: pixels of x kept
    size: tuple[int, int]
    baseline: str
    grid: tuple[int, int] | None
    blur_sigma: float | None
    seed: int
    first_row: int                 # row of step 0 among the perturbed inputs (seeds ROAD's noise)

    @classmethod
    def of(cls, kept: torch.Tensor, first_row: int, **settings) -> "Removal":
        return cls(kept_bits=np.packbits(kept.cpu().numpy().astype(bool).reshape(-1)),
                   size=tuple(int(s) for s in kept.shape[-2:]), first_row=first_row, **settings)

    def kept(self, step: int) -> torch.Tensor:
        """(H, W) bool: the pixels of x present at `step`."""
        n = self.size[0] * self.size[1]
        bits = np.unpackbits(self.kept_bits, count=(step + 1) * n)[step * n:]
        return torch.from_numpy(bits.astype(bool)).view(*self.size)


@dataclass
class Curve:
    kind: str                 # "insertion" | "deletion"
    mode: str                 # "pixel" | "grouped"
    fractions: np.ndarray     # (S+1,) x positions in [0, 1]
    scores: np.ndarray        # (S+1,) probability of the target class
    auc: float                # trapezoid rule over fractions, in [0, 1]
    inputs: torch.Tensor | None = None   # (S+1, C, H, W) perturbed inputs, when keep_inputs=True
    target: int = -1          # the class whose probability `scores` holds (-1: a regression target)
    removal: Removal | None = None       # rebuilds any step's input: `input_at(x, step)`
    outputs: np.ndarray | None = None    # (S+1, K) raw outputs at each step (per-parameter regression curves)

    def input_at(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """(C, H, W): the input the model saw at `step`, rebuilt from x bit for bit."""
        if not 0 <= step < len(self.fractions):
            raise InputError(f"step must be in [0, {len(self.fractions) - 1}], got {step}")
        if self.inputs is not None:
            return self.inputs[step]
        r = self.removal
        return perturb(x, r.kept(step)[None], r.baseline, grid=r.grid, blur_sigma=r.blur_sigma, seed=r.seed,
                       first_row=r.first_row + step)[0]


def auc(fractions: np.ndarray, scores: np.ndarray) -> float:
    """Trapezoid rule: sum of (x[i+1] - x[i]) * (y[i] + y[i+1]) / 2."""
    fractions, scores = np.asarray(fractions, float), np.asarray(scores, float)
    return float(np.sum(np.diff(fractions) * (scores[1:] + scores[:-1]) / 2))


# --------------------------------------------------------------------------- orders and steps

def pixel_order(attribution: torch.Tensor, grid: tuple[int, int] | None) -> torch.Tensor:
    """Pixel indices (H*W,), most important first: patches by summed attribution, then row-major.

    `grid` None ranks single pixels.
    """
    h, w = attribution.shape
    a = attribution.detach().double().flatten()
    if grid is None:
        return torch.sort(-a, stable=True).indices
    ids = patch_ids(grid, (h, w)).flatten()
    patch_score = torch.zeros(grid[0] * grid[1], dtype=torch.float64).index_add_(0, ids, a)
    rank = torch.empty(len(patch_score), dtype=torch.long)
    rank[torch.sort(-patch_score, stable=True).indices] = torch.arange(len(patch_score))
    # Sort pixels by (rank of their patch, pixel index): a stable sort on the rank does it.
    return torch.sort(rank[ids], stable=True).indices


def sets_from_order(order: torch.Tensor, counts: Sequence[int], size: tuple[int, int]) -> torch.Tensor:
    """(len(counts), H, W) bool: the first counts[k] pixels of `order`."""
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    counts_t = torch.as_tensor(list(counts)).view(-1, 1)
    return (position.view(1, -1) < counts_t).view(len(counts), *size)


def group_sizes_of(explanation: Explanation) -> list[int]:
    """Pixels each grouped step of an SOP explanation adds (its scored groups only)."""
    counts = [0] + [int(u.sum()) for u in _scored_unions(explanation)]
    return [b - a for a, b in zip(counts[:-1], counts[1:])]


def _scored_unions(explanation: Explanation) -> list[torch.Tensor]:
    """Cumulative unions of the scored groups (mask > 0), in decreasing score order."""
    groups, scores = explanation.groups, explanation.scores.detach().double()
    order = [int(g) for g in torch.sort(-scores, stable=True).indices if scores[g] > 0]
    unions: list[torch.Tensor] = []
    covered = torch.zeros(groups.shape[-2:], dtype=torch.bool)
    for g in order:
        nxt = covered | (groups[g].detach().cpu() > 0)
        if nxt.sum() > covered.sum():  # a group adding no new pixel adds no step
            unions.append(nxt)
            covered = nxt
    return unions


def _sop_sets(explanation: Explanation) -> torch.Tensor:
    """(S+1, H, W): nothing, the cumulative scored groups, then everything."""
    size = explanation.groups.shape[-2:]
    sets = [torch.zeros(size, dtype=torch.bool)] + _scored_unions(explanation)
    if not bool(sets[-1].all()):
        sets.append(torch.ones(size, dtype=torch.bool))
    return torch.stack(sets)


def cumulative_sets(explanation: Explanation, mode: str, steps: int, grid: tuple[int, int] | None,
                    group_sizes: Sequence[int] | None = None, num_groups: int = 8) -> torch.Tensor:
    """(S+1, H, W) bool: the pixels inserted (or deleted) after each step; first none, last all."""
    size = tuple(explanation.attribution.shape)
    n = size[0] * size[1]
    if mode == "pixel":
        if steps < 1:
            raise InputError(f"steps must be >= 1, got {steps}")
        counts = [round(k * n / steps) for k in range(steps + 1)]
        return sets_from_order(pixel_order(explanation.attribution, grid), counts, size)
    if mode != "grouped":
        raise InputError(f"mode must be 'pixel' or 'grouped', not {mode!r}")
    if explanation.groups is not None and explanation.scores is not None:
        return _sop_sets(explanation)
    if group_sizes is None:
        group_sizes = [round((k + 1) * n / num_groups) - round(k * n / num_groups) for k in range(num_groups)]
    counts = [0]
    for s in group_sizes:
        if s > 0 and counts[-1] < n:
            counts.append(min(n, counts[-1] + int(s)))
    if counts[-1] < n:
        counts.append(n)
    return sets_from_order(pixel_order(explanation.attribution, grid), counts, size)


# --------------------------------------------------------------------------- removal

def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W), kernel radius ceil(3 sigma), reflect padding."""
    if sigma <= 0:
        return x.clone()
    h, w = x.shape[-2:]
    radius = max(1, min(int(np.ceil(3 * sigma)), h - 1, w - 1))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    out = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def noisy_linear_impute(x: torch.Tensor, removed: torch.Tensor, noise_std: float = NOISE_STD,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """ROAD's noisy linear imputation of one image x (C, H, W) where `removed` (H, W) is True.

    Each removed pixel p satisfies  sum_q w_pq (v_p - v_q) = 0  over its in-image
    neighbours q (kept neighbours are known values), i.e. v_p = weighted mean of its
    neighbours; the sparse system is solved once per channel, then N(0, noise_std^2)
    is added to the removed pixels.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import splu
    c, h, w = x.shape
    removed = removed.bool()
    out = x.detach().clone()
    unknown = removed.flatten().nonzero().flatten().numpy()
    if len(unknown) == 0:
        return out
    noise = torch.randn((c, len(unknown)), generator=generator, dtype=x.dtype) * noise_std
    flat = out.reshape(c, -1)
    if len(unknown) == h * w:  # nothing to interpolate from: the mean colour
        flat[:, unknown] = noise
        return out
    index = -np.ones(h * w, dtype=np.int64)
    index[unknown] = np.arange(len(unknown))
    ys, xs = np.divmod(unknown, w)
    known = x.detach().double().reshape(c, -1).numpy()
    rows, cols, vals = [], [], []
    diag = np.zeros(len(unknown))
    rhs = np.zeros((len(unknown), c))
    for dy, dx, wt in _NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        p = np.flatnonzero(inside)
        q = ny[p] * w + nx[p]
        diag[p] += wt
        is_unknown = index[q] >= 0
        rows.append(p[is_unknown])
        cols.append(index[q[is_unknown]])
        vals.append(np.full(int(is_unknown.sum()), -wt))
        rhs[p[~is_unknown]] += wt * known[:, q[~is_unknown]].T
    n = len(unknown)
    a = coo_matrix((np.concatenate(vals + [diag]),
                    (np.concatenate(rows + [np.arange(n)]), np.concatenate(cols + [np.arange(n)]))),
                   shape=(n, n)).tocsc()
    solution = splu(a).solve(rhs)  # (n, C): every connected hole touches a kept pixel, so A is regular
    flat[:, unknown] = torch.from_numpy(solution.T).to(x.dtype) + noise
    return out


def perturb(x: torch.Tensor, keep: torch.Tensor, baseline: str = DEFAULT_BASELINE, *,
            grid: tuple[int, int] | None = None, blur_sigma: float | None = None, seed: int = 0,
            first_row: int = 0) -> torch.Tensor:
    """Inputs (S, C, H, W): x where `keep` (S, H, W) is True, the removal baseline elsewhere.

    ROAD's noise for row i is drawn from its own generator, seeded by (seed, first_row + i),
    so one row can be rebuilt alone (`Curve.input_at`) exactly as it was in the batch."""
    if baseline not in BASELINES:
        raise InputError(f"unknown removal baseline {baseline!r}; known: {', '.join(BASELINES)}")
    keep = keep.to(x.device)
    x0 = x[0]
    if baseline == "zero":
        return torch.where(keep.unsqueeze(1), x0, torch.zeros((), dtype=x.dtype, device=x.device))
    if baseline == "blur":
        if blur_sigma is None:
            blur_sigma = x.shape[-2] / grid[0] if grid is not None else 1.0
        fill = gaussian_blur(x, blur_sigma)[0]
        return torch.where(keep.unsqueeze(1), x0, fill)
    return torch.stack([noisy_linear_impute(x0.cpu(), ~k.cpu(), generator=_row_generator(seed, first_row + i))
                        .to(x.device) for i, k in enumerate(keep)])


def _row_generator(seed: int, row: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + row) % (2 ** 63))


# --------------------------------------------------------------------------- curves

# A batch of perturbed inputs should hold about this many parameter uses (parameters x
# passes per input): 64 inputs of the embedded models, 8 of an SOP ViT-S/16 with G = 20.
_BATCH_WORK = 4e9


def default_batch_size(model: nn.Module) -> int:
    """Perturbed inputs per batch for `model`: a power of two in [1, 64], smaller for larger
    models (parameters x the G group passes of an SOP model), so a batch stays about a second
    of CPU work at 224 pixels and progress comes often, while small models batch 64."""
    params = sum(p.numel() for p in model.parameters())
    passes = getattr(getattr(model, "config", None), "num_groups", None) or 1
    fit = max(1, int(_BATCH_WORK // max(1, params * passes)))
    return int(min(64, 2 ** (fit.bit_length() - 1)))


def memo_key(kept: torch.Tensor, baseline: str, blur_sigma: float | None = None,
             grid: tuple[int, int] | None = None) -> tuple:
    """The key of one perturbed input in a `memo`: its kept-pixel mask (H, W) and the removal
    (baseline; for ``blur`` its sigma, which defaults to one patch of `grid`).

    Only meaningful for one model and one input x: keep one memo per (model, x)."""
    bits = np.packbits(kept.cpu().numpy().astype(bool).reshape(-1))
    extra = (blur_sigma, tuple(grid) if grid else None) if baseline == "blur" else ()
    return (baseline, *extra, tuple(kept.shape[-2:]), hashlib.sha1(bits.tobytes()).hexdigest())


def target_probabilities(model: nn.Module, inputs: torch.Tensor, batch_size: int = 64,
                         progress: Callable[[float], None] | None = None) -> torch.Tensor:
    """Softmax probabilities (S, K) of `inputs`, `batch_size` at a time (see `model_outputs`)."""
    return model_outputs(model, inputs, batch_size, progress).softmax(-1)


@torch.inference_mode()
def model_outputs(model: nn.Module, inputs: torch.Tensor, batch_size: int = 64,
                  progress: Callable[[float], None] | None = None) -> torch.Tensor:
    """Raw outputs (S, K) (logits, or standardised regression estimates), `batch_size` at a time."""
    out = []
    for i in range(0, len(inputs), batch_size):
        out.append(logits_of(model, inputs[i:i + batch_size]).float())
        if progress is not None:
            progress(min(1.0, (i + batch_size) / len(inputs)))
    return torch.cat(out)


def _class_target(target) -> int:
    """`Curve.target`: the class index (`sop.tasks.target_value`), -1 for a regression target."""
    value = target_value(target)
    return value if isinstance(value, int) else -1


def _curve_outputs(model: nn.Module, x: torch.Tensor, kept: torch.Tensor, settings: dict, batch_size: int,
                   progress, memo: dict | None) -> torch.Tensor:
    """(R, K) raw outputs (logits, or standardised estimates) of the R perturbed inputs `kept`
    (R, H, W) describes, each distinct input evaluated once (and not at all when `memo` has it)."""
    if settings["baseline"] == "noisy_linear":  # every row has its own noise: no two rows are equal
        return model_outputs(model, perturb(x, kept, **settings), batch_size, progress)
    memo = {} if memo is None else memo
    keys = [memo_key(k, settings["baseline"], settings["blur_sigma"], settings["grid"]) for k in kept]
    first: dict[tuple, int] = {}
    for i, k in enumerate(keys):
        if k not in memo:
            first.setdefault(k, i)
    todo = list(first.items())
    if todo:
        rows = torch.tensor([i for _, i in todo])
        outs = model_outputs(model, perturb(x, kept[rows], **settings), batch_size, progress)
        for (key, _), p in zip(todo, outs):
            memo[key] = p.clone()
    elif progress is not None:
        progress(1.0)
    return torch.stack([memo[k] for k in keys])


def insertion_deletion(model: nn.Module, x: torch.Tensor, explanation: Explanation, *, target: int | None = None,
                       mode: str = "pixel", steps: int = DEFAULT_STEPS, baseline: str = DEFAULT_BASELINE,
                       keep_inputs: bool = False, batch_size: int | None = None,
                       group_sizes: Sequence[int] | None = None, num_groups: int | None = None,
                       grid: tuple[int, int] | None = None, blur_sigma: float | None = None, seed: int = 0,
                       progress: Callable[[float], None] | None = None, memo: dict | None = None
                       ) -> dict[str, Curve]:
    """Insertion and deletion curves of `explanation` on `model` at input x (1, C, H, W).

    Returns {"insertion": Curve, "deletion": Curve}.  See the module docstring for the
    definitions.  `target` None = the model's predicted class on x.  `grid` overrides
    the patch grid of the ranking (default: the model's; None for a model without one
    means 8x8).  `group_sizes`, `num_groups`: grouped mode of per-pixel methods.
    `batch_size` None = `default_batch_size(model)`.
    `progress`, if given, is called with the share of forward samples done after each batch
    of `batch_size` (it may raise to stop the work: nothing is returned then).
    `memo`: a dict kept by the caller for this model and this x (see the module docstring).
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise InputError(f"insertion_deletion() takes one input of shape (1, C, H, W), got {tuple(x.shape)}")
    if tuple(explanation.attribution.shape) != tuple(x.shape[-2:]):
        raise InputError(f"attribution shape {tuple(explanation.attribution.shape)} does not match the input's "
                         f"{tuple(x.shape[-2:])}")
    grid = tuple(grid) if grid is not None else model_grid(model)
    if num_groups is None:
        num_groups = getattr(getattr(model, "config", None), "num_groups", None) or 8
    sets = cumulative_sets(explanation, mode, steps, grid, group_sizes, num_groups)
    fractions = sets.flatten(1).double().mean(1).numpy()
    n = len(sets)
    kept = torch.cat([sets, ~sets])
    settings = dict(baseline=baseline, grid=grid, blur_sigma=blur_sigma, seed=seed)
    task = get_task(getattr(getattr(model, "config", None), "task", "classification"))
    with eval_mode(model):
        outputs = _curve_outputs(model, x, kept, settings, batch_size or default_batch_size(model), progress, memo)
    inputs = perturb(x, kept, **settings) if keep_inputs else None
    if target is None:
        target = task.default_target(outputs[n])  # deletion's first input is x itself
    curves = {}
    for i, kind in enumerate(("insertion", "deletion")):
        scores = task.score(outputs[i * n:(i + 1) * n], target).double().numpy()
        removal = Removal.of(kept[i * n:(i + 1) * n], i * n, **settings)
        curves[kind] = Curve(kind=kind, mode=mode, fractions=fractions.copy(), scores=scores,
                             auc=auc(fractions, scores), target=_class_target(target), removal=removal,
                             outputs=outputs[i * n:(i + 1) * n].double().cpu().numpy(),
                             inputs=inputs[i * n:(i + 1) * n].clone() if keep_inputs else None)
    return curves


# --------------------------------------------------------------------------- text: curves over tokens
#
# The same curves over a sentence (1, L) of token ids (sop.text).  What changes:
# * a removed token is *dropped*: its id becomes [PAD] = 0, which the text models mask out of
#   attention (the removal `sop.text_eval` uses for LIME, KernelSHAP, IG and occlusion);
# * only content tokens move: [CLS], [SEP] and padding are in every perturbed input;
# * the x axis is the fraction of the sentence's T content tokens inserted / deleted;
# * ``mode="token"`` moves one token per step (T steps), ranked by the attribution (descending,
#   ties in sentence order); ``mode="grouped"`` moves SOP's scored groups one per step by
#   decreasing score (tokens already moved not counted twice), then the rest; a per-token
#   method in grouped mode moves chunks of its ranking of `group_sizes` tokens (SOP's step
#   sizes on this sentence, `token_group_sizes`) so the x positions match SOP's.
# The AUC is the same trapezoid rule (`auc`), in [0, 1] for class probabilities.

TOKEN_MODES = ("token", "grouped")


def token_order(attribution, content: torch.Tensor) -> torch.Tensor:
    """Positions (L,), content tokens first by decreasing attribution (ties: sentence order)."""
    a = torch.as_tensor(np.asarray(attribution, dtype=np.float64)).reshape(-1).clone()
    a[~content] = -np.inf
    return pixel_order(a.view(1, -1), None)


def _text_explanation(attribution, groups, scores, content: torch.Tensor) -> Explanation:
    """An `Explanation` over the (1, L) token row, so the image code's group unions apply as they are."""
    attr = torch.as_tensor(np.asarray(attribution, dtype=np.float32)).reshape(1, -1)
    g = s = None
    if groups is not None and scores is not None:
        g = torch.as_tensor(np.asarray(groups, dtype=np.float32)).unsqueeze(1) * content.view(1, 1, -1)
        s = torch.as_tensor(np.asarray(scores, dtype=np.float64))
    return Explanation(method="text", attribution=attr, target=-1, seconds=0.0, groups=g, scores=s)


def token_group_sizes(groups, scores, content: torch.Tensor) -> list[int]:
    """Content tokens each grouped step of SOP's explanation adds (its scored groups only)."""
    return group_sizes_of(_text_explanation(np.zeros(len(content)), groups, scores, content))


def token_sets(content: torch.Tensor, mode: str, attribution=None, groups=None, scores=None,
               group_sizes: Sequence[int] | None = None) -> torch.Tensor:
    """(S+1, L) bool: the content tokens inserted (or deleted) after each step; first none, last all."""
    t = int(content.sum())
    size = (1, len(content))
    if mode == "grouped" and groups is not None and scores is not None:
        exp = _text_explanation(np.zeros(len(content)), groups, scores, content)
        sets = [torch.zeros(size, dtype=torch.bool)] + _scored_unions(exp)
        if int(sets[-1].sum()) < t:
            sets.append(content.view(size))
        return torch.stack(sets).view(len(sets), -1)
    if attribution is None:
        raise InputError("a token curve needs an attribution (or, grouped, SOP's groups and scores)")
    if mode == "token":
        counts = list(range(t + 1))
    elif mode == "grouped":
        counts = [0]
        for s in group_sizes or [t]:
            if s > 0 and counts[-1] < t:
                counts.append(min(t, counts[-1] + int(s)))
        if counts[-1] < t:
            counts.append(t)
    else:
        raise InputError(f"mode must be one of {', '.join(TOKEN_MODES)}, not {mode!r}")
    return sets_from_order(token_order(attribution, content), counts, size).view(len(counts), -1)


def token_insertion_deletion(model: nn.Module, ids: torch.Tensor, *, attribution=None, groups=None, scores=None,
                             mode: str = "token", group_sizes: Sequence[int] | None = None,
                             target: int | None = None, batch_size: int = 64) -> dict[str, Curve]:
    """Insertion and deletion curves of a token attribution (L,) -- or, grouped, of SOP's groups
    (G, L) with their scores (G,) -- on `model` at one sentence `ids` (1, L).  See the text notes
    above.  Each Curve keeps its perturbed token ids in `inputs` ((S+1, L): `Curve.input_at(step)`)."""
    if ids.ndim != 2 or ids.shape[0] != 1:
        raise InputError(f"token curves take one sentence of shape (1, L), got {tuple(ids.shape)}")
    content = content_mask(ids)[0]
    length = ids.shape[1]
    if attribution is not None and np.asarray(attribution).size != length:
        raise InputError(f"the attribution has {np.asarray(attribution).size} values; the sentence has {length} "
                         "token positions (one value per position, [CLS], [SEP] and padding included)")
    if groups is not None and np.asarray(groups).shape[-1:] != (length,):
        raise InputError(f"the groups have shape {np.asarray(groups).shape}; expected (G, {length}) token masks")
    if not bool(content.any()):
        raise InputError("the sentence has no content token to insert or delete")
    sets = token_sets(content, mode, attribution, groups, scores, group_sizes)
    n = len(sets)
    fractions = sets.double().sum(1).numpy() / float(content.sum())
    inserted = sets | ~content                       # insertion: specials and padding always there
    deleted = ~(sets & content)                      # deletion: the moved content tokens are gone
    kept = torch.cat([inserted, deleted])
    inputs = drop_tokens(ids[0], ~kept)
    unique, inverse = torch.unique(inputs, dim=0, return_inverse=True)   # shared ends evaluated once
    with eval_mode(model):
        outputs = model_outputs(model, unique, batch_size)[inverse]
    task = get_task(getattr(getattr(model, "config", None), "task", "classification"))
    if target is None:
        target = task.default_target(outputs[n])     # deletion's first input is the sentence itself
    curves = {}
    for i, kind in enumerate(("insertion", "deletion")):
        s = task.score(outputs[i * n:(i + 1) * n], target).double().numpy()
        curves[kind] = Curve(kind=kind, mode=mode, fractions=fractions.copy(), scores=s, auc=auc(fractions, s),
                             inputs=inputs[i * n:(i + 1) * n].clone(), target=_class_target(target))
    return curves
