"""One call for every attribution method: SOP's own groups and six post-hoc baselines.

    exp = explain(model, x, "kernelshap")      # x: (1, C, H, W), normalised
    exp.attribution                            # (H, W) float32, higher = more important

Methods (`sop.methods.list_methods()`; each is one function registered with
`sop.methods.register_method`, see there to add one) and what their (H, W) map is:
  * ``sop``        sum_g s_g * m_g: each pixel gets the scores of the SOP groups that
                   contain it (m_g = the group's pixel mask in [0, 1], s_g its score).
                   Also returns the groups and scores.  Needs an `SOPModel`.  With
                   class-agnostic scores (GroupSelect "shared") the map is the same
                   whatever `target` is; with per-class scores it uses the target's.
  * ``lime``       LIME (Ribeiro et al. 2016) with the model's patch grid as superpixels:
                   captum `Lime`, Bernoulli(0.5) patch masks, ridge regression (alpha 1),
                   weights sqrt(exp(-d^2 / 0.25^2)) with d the cosine distance of the
                   binary patch vector to all-ones -- the settings of `lime_image`.
  * ``kernelshap`` Kernel SHAP (Lundberg & Lee 2017) over the same patch superpixels:
                   captum `KernelShap` (Shapley kernel, linear regression).
  * ``ig``         Integrated Gradients (Sundararajan et al. 2017), captum, from the
                   all-zero input (the mean colour); the map sums the channels.
  * ``gradcam``    Grad-CAM (Selvaraju et al. 2017), gradients x activations, ReLU:
                   - timm ViT: on the patch tokens entering the last block's attention
                     (`blocks[-1].norm1`), reshaped to the patch grid.  With class-token
                     pooling the last block's *output* patch tokens never reach the
                     logits, so their gradients are zero; the tokens the class token
                     attends to in that block are the last place where patches matter
                     (the layer pytorch-grad-cam uses for ViTs).  Upsampled "nearest",
                     since each token is exactly one patch.
                   - `SOPModel`: on GroupGen's input tokens (the patch tokens the groups
                     are built from); they reach the logits only through the groups.
                   - any other model: Grad-CAM on its last `Conv2d` whose map is at least
                     4x4 on this input (a 1x1 map cannot localise), else its last `Conv2d`,
                     upsampled bilinearly.  Pass `layer=` (a module or its name) to choose another.
  * ``rise``       RISE (Petsiuk et al. 2018), written here, batched: random binary
                   cell grids (p = 0.5) upsampled bilinearly and randomly shifted;
                   the map is sum_i p(x * M_i) M_i / (N p).
  * ``occlusion``  captum `Occlusion` with one window per patch of the grid (window =
                   stride = patch), filled with 0: each pixel gets the drop in output
                   when its patch is hidden.

Which output: every method except Grad-CAM explains the softmax probability of the
target (what the insertion/deletion curves measure; LIME, SHAP and RISE explain
probabilities in their papers); Grad-CAM uses the target's logit as in its paper (the
gradient of a saturated probability vanishes).  Override with ``output="logit"|"prob"``.
Regression models (e.g. lensing): ``target`` is the index of a parameter and is required;
every method explains that parameter's standardised estimate (``output="logit"``).

"Removed" always means 0 in normalised space, i.e. the dataset's mean colour -- the
same as SOP's own masking and the faithfulness curves' default baseline.

The patch grid is the model's own (SOP adapter grid, or a timm ViT's patch grid; 8x8
otherwise, or pass ``grid=(gh, gw)``).  Random methods are seeded (``seed=0``) without
touching the global RNG, so an explanation is reproducible.
"""
from __future__ import annotations

import math
import operator
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ExplanationError, InputError
from .methods import MethodOutput, Progress, get_method, has_feature_layer, list_methods, register_method, sop_only
from .model import SOPModel

DEFAULT_GRID = (8, 8)
# Shared by every method that looks at the model's patches (None = the model's grid).
_COMMON = {"grid": None}


def default_settings(method: str) -> dict:
    """The documented defaults of `method` (sample counts, batch sizes, seeds...), a copy.

    lime: 1000 samples (lime_image's default); kernelshap: 1000 samples;
    ig: 50 steps; rise: 1000 masks over the patch grid (4000 was for 224 px ImageNet;
    1000 masks is ~16x the 64 cells here); occlusion: one window per patch;
    gradcam: automatic layer.  ``batch_size`` = perturbed inputs per forward pass.
    """
    return get_method(method).settings()


@dataclass
class Explanation:
    method: str
    attribution: torch.Tensor        # (H, W) float32, input resolution, higher = more important for target
    target: int
    seconds: float
    groups: torch.Tensor | None = None   # (G, H, W) pixel masks in [0, 1] (SOP only)
    scores: torch.Tensor | None = None   # (G,) group scores (SOP only)
    settings: dict = field(default_factory=dict)  # the settings actually used


# --------------------------------------------------------------------------- helpers

class ClassifierOutput(nn.Module):
    """model(x) as a plain tensor: SOP's logits (or any classifier's), optionally softmaxed.

    Counts the samples it sees so slow methods can report progress: the share of the `expected`
    samples seen so far, before each batch and after it (capped at 0.99: `explain` reports 1.0
    when the method returns).  The call before a batch matters to the app: its progress callback
    is where a Cancel stops the work, so a Cancel is seen before the next batch's forward pass
    starts rather than after it.
    """

    def __init__(self, model: nn.Module, output: str = "logit", expected: int = 0,
                 progress: Callable[[float], None] | None = None):
        super().__init__()
        if output not in ("logit", "prob"):
            raise InputError(f"output must be 'logit' or 'prob', not {output!r}")
        self.model, self.output = model, output
        self.expected, self.progress, self.seen = expected, progress, 0

    def report(self) -> None:
        """Report the share of the expected samples seen so far (nothing without a callback)."""
        if self.progress is not None and self.expected > 0:
            self.progress(min(self.seen / self.expected, 0.99))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.report()
        out = self.model(x)
        logits = out.logits if hasattr(out, "logits") else out
        self.seen += x.shape[0]
        self.report()
        return logits.softmax(-1) if self.output == "prob" else logits


def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits of an SOPModel or of any classifier."""
    out = model(x)
    return out.logits if hasattr(out, "logits") else out


def model_grid(model: nn.Module, default: tuple[int, int] | None = DEFAULT_GRID) -> tuple[int, int] | None:
    """The patch grid the model sees its input on (SOP adapter grid, ViT patch grid)."""
    if isinstance(model, ClassifierOutput):
        model = model.model
    if isinstance(model, SOPModel):
        return tuple(int(g) for g in model.adapter.grid)
    pe = getattr(model, "patch_embed", None)
    if pe is not None and getattr(pe, "grid_size", None) is not None:
        return tuple(int(g) for g in pe.grid_size)
    cfg = getattr(model, "config", None)
    grid = getattr(cfg, "adapter_kwargs", {}).get("grid") if cfg is not None else None
    return tuple(int(g) for g in grid) if grid else default


def patch_ids(grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """(H, W) long: the index (row-major) of the grid patch each pixel belongs to."""
    (gh, gw), (h, w) = grid, size
    rows = torch.arange(h) * gh // h
    cols = torch.arange(w) * gw // w
    return rows[:, None] * gw + cols[None, :]


def _check(model: nn.Module, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"explain() takes one input of shape (1, C, H, W), got {shape}")
    if not x.is_floating_point() or not torch.isfinite(x).all():
        raise InputError("explain() needs a finite floating-point input")
    if isinstance(model, SOPModel):
        model.check_input(x)


class eval_mode:
    """Context manager: the model in eval mode (dropout off) inside, its previous mode restored after.

    Used by `explain` and by `sop.faithfulness.insertion_deletion`."""

    def __init__(self, model: nn.Module):
        self.model, self.was = model, model.training
        # Toggling walks every submodule (~2 ms on the digits CNN, half of SOP's own
        # explanation), so skip it for a model that is already wholly in eval mode.
        self.toggle = any(m.training for m in model.modules())

    def __enter__(self):
        if self.toggle:
            self.model.eval()
        return self.model

    def __exit__(self, *exc):
        if self.toggle:
            self.model.train(self.was)


# --------------------------------------------------------------------------- methods
# One function per method, all with the signature of `sop.methods.MethodFn`:
#     fn(model, x, target, settings, progress, grid)
# registered in this order (the order of `list_methods()`, of the evaluation table and of the app).

@register_method("sop", label="SOP", defaults={}, supports=sop_only,
                 requires="an SOPModel (a plain classifier has no groups); load the *_sop.safetensors checkpoint",
                 cost="cheap", resolves_target=True, passes=lambda s, c: (c.num_groups + 1, 0),
                 pass_rule="G + 1 backbone forward passes (GroupGen's features + one per group; an upper bound "
                           "for ViT adapters)")
def sop_groups(model, x, target, settings, progress, grid):
    """SOP's own explanation: sum_g s_g * m_g over its groups (one forward pass)."""
    if not isinstance(model, SOPModel):
        raise InputError("method 'sop' needs an SOPModel (a plain classifier has no groups); "
                         "load the *_sop.safetensors checkpoint")
    with torch.inference_mode():  # lighter than no_grad: SOP's explanation is this one pass
        out = model(x)
    pred = int(out.logits[0].argmax())
    target = pred if target is None else target
    # Per-class selection: the map is made of the groups and scores of the explained class.
    masks, scores = out.pixel_masks[0].float(), out.scores_for(target)[0].float()
    attribution = torch.einsum("g,ghw->hw", scores, masks)
    return MethodOutput(attribution, target=target, groups=masks, scores=scores)


@register_method("lime", label="LIME", samples=True, budget_setting="n_samples",
                 defaults=dict(n_samples=1000, batch_size=100, kernel_width=0.25, ridge_alpha=1.0, output="prob",
                               seed=0))
def lime(model, x, target, settings, progress, grid):
    """LIME over the patch grid: Bernoulli(0.5) patch masks, ridge regression, lime_image's kernel."""
    from captum.attr import Lime
    return _superpixel_method(Lime, model, x, target, settings, progress, grid)


@register_method("kernelshap", label="KernelSHAP", samples=True, budget_setting="n_samples",
                 defaults=dict(n_samples=1000, batch_size=100, output="prob", seed=0))
def kernelshap(model, x, target, settings, progress, grid):
    """Kernel SHAP over the patch grid (Shapley kernel, linear regression)."""
    from captum.attr import KernelShap
    return _superpixel_method(KernelShap, model, x, target, settings, progress, grid)


def _superpixel_method(cls, model, x, target, s, progress, grid):
    from captum.attr import Lime
    fwd = ClassifierOutput(model, s["output"], s["n_samples"], progress)  # progress per batch of samples
    mask = patch_ids(grid, x.shape[-2:]).reshape(1, 1, *x.shape[-2:])
    if cls is Lime:
        from captum._utils.models.linear_model import SkLearnRidge
        explainer = Lime(fwd, interpretable_model=SkLearnRidge(alpha=s["ridge_alpha"]),
                         similarity_func=_lime_kernel(s["kernel_width"]))
    else:
        explainer = cls(fwd)
    _report_before(explainer.interpretable_model, "fit", fwd.report)
    with torch.random.fork_rng(devices=[]):  # seeded, without moving the caller's RNG
        torch.manual_seed(s["seed"])
        attr = explainer.attribute(x, baselines=0.0, target=target, feature_mask=mask,
                                   n_samples=s["n_samples"], perturbations_per_eval=s["batch_size"])
    return attr[0, 0]  # every channel of a pixel carries its superpixel's coefficient: take it once


def _report_before(obj, name: str, report: Callable[[], None]) -> None:
    """Make `obj.name(...)` call `report()` first (on this object only).

    Used on the surrogate fit of LIME / KernelSHAP, their last step after the last forward pass:
    KernelSHAP's linear regression on 2000 samples of the digits model takes ~0.5 s, LIME's ridge
    ~0.01 s but ~1 s on a process's first call (sklearn's import), so a Cancel (seen at a progress
    call) should be seen before it starts."""
    step = getattr(obj, name)

    def reported(*args, **kwargs):
        report()
        return step(*args, **kwargs)
    setattr(obj, name, reported)


def _lime_kernel(width: float):
    """lime_image's weighting: sqrt(exp(-d^2 / w^2)), d = cosine distance of z to all-ones."""
    def similarity(_original, _perturbed, z, **_):
        z = z.float().flatten()
        on = float(z.sum())
        if on == 0:
            return 0.0
        d = 1.0 - on / (math.sqrt(on) * math.sqrt(z.numel()))
        return math.sqrt(math.exp(-(d ** 2) / width ** 2))
    return similarity


@register_method("ig", label="Integrated Gradients", budget_setting="n_steps",
                 defaults=dict(n_steps=50, batch_size=50, output="prob"),
                 passes=lambda s, c: (int(s["n_steps"]) + 1, int(s["n_steps"])),
                 pass_rule="n_steps + 1 forward, n_steps backward (n_steps = budget, capped at ig_max_steps)")
def integrated_gradients(model, x, target, settings, progress, grid):
    """Integrated Gradients from the all-zero input (the mean colour), channels summed."""
    from captum.attr import IntegratedGradients
    s = settings
    fwd = ClassifierOutput(model, s["output"], s["n_steps"], progress)  # progress per batch of steps
    attr = IntegratedGradients(fwd).attribute(x, baselines=torch.zeros_like(x), target=target,
                                              n_steps=s["n_steps"], internal_batch_size=s["batch_size"])
    return attr[0].sum(0)


def _vit(model: nn.Module):
    """The timm VisionTransformer inside `model`, if that is what it is."""
    inner = model.model if isinstance(model, ClassifierOutput) else model
    if hasattr(inner, "blocks") and hasattr(inner, "patch_embed") and hasattr(inner, "num_prefix_tokens"):
        return inner
    return None


def _conv_for_gradcam(maps: dict[nn.Module, torch.Tensor], min_side: int = 4) -> nn.Module:
    """Of the Conv2d outputs of one forward pass (in forward order), the last at least `min_side`
    wide and high, else the last.

    Grad-CAM's map has the layer's resolution: a small CNN on a 32x32 input ends at 1x1, a
    constant map that says nothing about where (and that the ReLU can zero entirely).
    On ImageNet-sized inputs the last conv is 7x7 and is chosen as usual."""
    wide = [m for m, out in maps.items() if min(out.shape[-2:]) >= min_side]
    return wide[-1] if wide else list(maps)[-1]


@register_method("gradcam", label="Grad-CAM", defaults=dict(layer=None, output="logit"),
                 supports=has_feature_layer, cost="cheap", passes=lambda s, c: (2, 1),
                 pass_rule="2 forward + 1 backward")
def gradcam(model, x, target, settings, progress, grid):
    """Grad-CAM on the last spatial feature layer (ViT patch tokens, SOP's GroupGen input, or a Conv2d)."""
    s = settings
    fwd = ClassifierOutput(model, s["output"])
    layer, tokens = s["layer"], True
    if isinstance(layer, str):  # a submodule name, e.g. "blocks.2.norm1" (handy from the CLI)
        try:
            layer = model.get_submodule(layer)
        except AttributeError as err:
            raise InputError(f"gradcam: the model has no submodule {layer!r}") from err
    if layer is None:
        vit = _vit(model)
        if isinstance(model, SOPModel):
            layer = model.group_gen.norm
        elif vit is not None:
            layer = vit.blocks[-1].norm1
        else:  # a CNN: record every conv map in the one pass, pick the layer after it
            tokens = False
    candidates = [layer] if layer is not None else [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not candidates:
        raise InputError("gradcam: no ViT blocks or Conv2d layer found; pass layer=<module>")
    acts: dict[nn.Module, torch.Tensor] = {}

    def record(module, _inputs, out) -> None:  # returns None: a hook's return value would replace the output
        acts.setdefault(module, out)

    hooks = [m.register_forward_hook(record) for m in candidates]
    try:
        with torch.enable_grad():
            xg = x.detach().clone().requires_grad_(True)
            score = fwd(xg)[0, target]
            a = acts[layer] if layer is not None else acts[_conv_for_gradcam(acts)]
            (g,) = torch.autograd.grad(score, a, allow_unused=True)
    finally:
        for h in hooks:
            h.remove()
    g = torch.zeros_like(a) if g is None else g
    h, w = x.shape[-2:]
    if a.ndim == 3:  # tokens (1, T, D): keep the last N = patch tokens, put them on the grid
        n = grid[0] * grid[1]
        a, g = a[:, -n:], g[:, -n:]
        cam = F.relu((a * g.mean(1, keepdim=True)).sum(-1)).reshape(1, 1, *grid)
        mode = "nearest"
    else:            # conv maps (1, C, h, w)
        cam = F.relu((a * g.mean((2, 3), keepdim=True)).sum(1, keepdim=True))
        mode = "nearest" if tokens else "bilinear"
    return F.interpolate(cam.detach(), size=(h, w), mode=mode)[0, 0]


def rise_masks(n: int, size: tuple[int, int], cells: tuple[int, int], p: float,
               generator: torch.Generator) -> torch.Tensor:
    """(n, 1, H, W) RISE masks in [0, 1]: binary cell grids, bilinear upsampling, random shift."""
    (h, w), (ch, cw) = size, cells
    cell_h, cell_w = math.ceil(h / ch), math.ceil(w / cw)
    grid = (torch.rand(n, 1, ch, cw, generator=generator) < p).float()
    up = F.interpolate(grid, size=((ch + 1) * cell_h, (cw + 1) * cell_w), mode="bilinear", align_corners=False)
    dy = torch.randint(0, cell_h, (n,), generator=generator)
    dx = torch.randint(0, cell_w, (n,), generator=generator)
    return torch.stack([up[i, :, int(a):int(a) + h, int(b):int(b) + w] for i, (a, b) in enumerate(zip(dy, dx))])


@register_method("rise", label="RISE", samples=True, budget_setting="n_masks",
                 defaults=dict(n_masks=1000, batch_size=100, p=0.5, cells=None, output="prob", seed=0))
def rise(model, x, target, settings, progress, grid):
    """RISE: random cell masks (p = 0.5), map = sum_i p(x * M_i) M_i / (N p)."""
    s = settings
    n, bs, p = s["n_masks"], s["batch_size"], s["p"]
    cells = tuple(s["cells"]) if s["cells"] is not None else grid
    fwd = ClassifierOutput(model, s["output"], n, progress)  # progress per batch of masks
    gen = torch.Generator().manual_seed(s["seed"])
    sal = torch.zeros(x.shape[-2:], dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, n, bs):
            m = rise_masks(min(bs, n - start), x.shape[-2:], cells, p, gen)
            out = fwd(x * m)[:, target].double()
            sal += torch.einsum("b,bhw->hw", out, m[:, 0].double())
    return (sal / (n * p)).float()


def _occlusion_passes(settings: dict, context) -> tuple[int, int]:
    """One forward per window (one per patch), the unoccluded input and the prediction."""
    (h, w), (gh, gw) = context.image_size, context.grid
    wh, ww = math.ceil(h / gh), math.ceil(w / gw)
    return math.ceil(h / wh) * math.ceil(w / ww) + 2, 0


@register_method("occlusion", label="Occlusion", defaults=dict(batch_size=100, output="prob"), cost="cheap",
                 passes=_occlusion_passes,
                 pass_rule="windows + 2 forward (one per window, the unoccluded input, the prediction)")
def occlusion(model, x, target, settings, progress, grid):
    """Occlusion: each patch of the grid hidden in turn (filled with 0); the drop in output."""
    from captum.attr import Occlusion
    c, h, w = x.shape[1:]
    window = (c, math.ceil(h / grid[0]), math.ceil(w / grid[1]))
    fwd = ClassifierOutput(model, settings["output"], grid[0] * grid[1] + 1, progress)  # progress per batch
    attr = Occlusion(fwd).attribute(x, sliding_window_shapes=window, strides=window, baselines=0.0,
                                    target=target, perturbations_per_eval=settings["batch_size"])
    return attr[0, 0]  # windows span all channels, so every channel holds the same value


# The built-in methods, in registration order.  Methods registered later (register_method) are
# in `list_methods()` but not here.
METHODS = tuple(list_methods())


# --------------------------------------------------------------------------- entry point

def _is_regression(model: nn.Module) -> bool:
    return getattr(getattr(model, "config", None), "task", None) == "regression"


def _regression_target(model: nn.Module, target) -> int:
    """A regression model's target is the index of the parameter to explain; there is no default
    (no "predicted class" to fall back on)."""
    cfg = model.config
    names = list(getattr(cfg, "target_names", None) or cfg.class_names)
    try:
        index = None if isinstance(target, bool) else operator.index(target)
    except TypeError:
        index = None
    if index is None or not 0 <= index < len(names):
        choices = ", ".join(f"{i} = {n}" for i, n in enumerate(names))
        raise InputError(f"a regression model needs target = the index of the parameter to explain ({choices}); "
                         f"got {target!r}")
    return int(index)


def explain(model: nn.Module, x: torch.Tensor, method: str = "sop", target: int | None = None, *,
            progress: Progress = None, **method_kwargs) -> Explanation:
    """Explain `model`'s output on one input `x` (1, C, H, W) with `method` (see `list_methods()`).

    `model`: an SOPModel (required for "sop"; baselines then explain its logits) or any
    classifier x -> logits.  `target`: class to explain, None = the predicted class.
    Regression models (``model.config.task == "regression"``, e.g. the lensing SOP model and its
    twin): `target` = the index of the parameter to explain, required (an InputError otherwise)
    except for "sop", whose groups and scores are shared by every parameter; every method then
    explains that parameter's (standardised) estimate, never a softmax.
    `progress(fraction)` is called as the work advances: 0.0 before any work, fractions below 1
    (never decreasing) as it goes -- for the sampling methods before and after each batch of
    perturbed inputs and before LIME's / KernelSHAP's surrogate fit -- and 1.0 once it is done.
    `method_kwargs` override `default_settings(method)` (plus ``grid=(gh, gw)``).
    """
    info = get_method(method)
    settings = info.settings()
    allowed = set(settings) | set(_COMMON)
    unknown = set(method_kwargs) - allowed
    if unknown:
        raise InputError(f"unknown setting(s) {sorted(unknown)} for {method!r}; known: {sorted(allowed)}")
    settings.update(method_kwargs)
    _check(model, x)
    if _is_regression(model):
        # SOP's own groups need no parameter (one GroupSelect: the same groups and scores for all)
        if target is not None or not info.resolves_target:
            target = _regression_target(model, target)
        if settings.get("output") == "prob":  # a softmax over parameter estimates means nothing
            if method_kwargs.get("output") == "prob":
                raise InputError("a regression model's output is explained as the estimate itself: "
                                 "output='prob' does not apply")
            settings["output"] = "logit"
    grid = tuple(settings.pop("grid", None) or model_grid(model))
    if progress is not None:  # a first progress point before any forward pass (the app's Cancel checks here)
        progress(0.0)
    with eval_mode(model):
        t0 = time.perf_counter()
        if target is None and not info.resolves_target:
            with torch.no_grad():
                target = int(logits_of(model, x)[0].argmax())
        target = None if target is None else int(target)
        out = info.fn(model, x, target, settings, progress, grid)
        seconds = time.perf_counter() - t0
    if progress is not None:
        progress(1.0)
    if not isinstance(out, MethodOutput):
        out = MethodOutput(out)
    target = out.target if out.target is not None else target
    attribution = out.attribution
    if not isinstance(attribution, torch.Tensor) or tuple(attribution.shape) != tuple(x.shape[-2:]) \
            or target is None:
        got = tuple(attribution.shape) if isinstance(attribution, torch.Tensor) else type(attribution).__name__
        raise ExplanationError(f"method {method!r} returned a map of shape {got} (and target {target}); "
                               f"it must return an (H, W) = {tuple(x.shape[-2:])} tensor, or a MethodOutput "
                               "with the target it explained")
    attribution = torch.nan_to_num(attribution.detach().float(), nan=0.0, posinf=0.0, neginf=0.0)
    settings = {k: (v if not isinstance(v, nn.Module) else type(v).__name__) for k, v in settings.items()}
    settings["grid"] = list(grid)
    return Explanation(method=method, attribution=attribution, target=int(target), seconds=seconds,
                       settings=settings, groups=out.groups, scores=out.scores)
