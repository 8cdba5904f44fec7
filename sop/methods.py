"""The registry of attribution methods, in timm's manner: one decorated function per method.

    from sop.methods import register_method

    @register_method("edges", label="Edge map", cost="cheap")
    def edges(model, x, target, settings, progress, grid):
        '''Image gradient magnitude (ignores the model: a sanity-check baseline).'''
        gy, gx = torch.gradient(x[0].sum(0))
        return (gx ** 2 + gy ** 2).sqrt()

    list_methods()            # ["sop", "lime", ..., "occlusion", "edges"], registration order
    get_method("lime").label  # "LIME"

Once registered, a method is a choice of `sop.explainers.explain`, of
``python -m sop evaluate --methods`` and of the explorer's Compare page: nothing else
needs to change.

Every method function has ONE signature, `MethodFn`::

    fn(model, x, target, settings, progress, grid) -> torch.Tensor | MethodOutput

* ``model``: the `nn.Module` explained (an `SOPModel` or any classifier x -> logits),
  already in eval mode;
* ``x``: one input (1, C, H, W), normalised, checked finite;
* ``target``: the class to explain (``int``).  It is ``None`` only for methods
  registered with ``resolves_target=True`` when the caller asked for "the predicted
  class": they read it off their own forward pass and return it in `MethodOutput`;
* ``settings``: this call's settings, a fresh ``dict`` = the registered ``defaults``
  updated with the caller's overrides (``grid`` excluded);
* ``progress``: ``Callable[[float], None]`` or ``None``; a method that loops (samples,
  steps, windows) calls it with the fraction done so far, below 1, best before each
  forward pass as well as after (`explain` makes the first call, 0.0, and the last, 1.0);
* ``grid``: ``(gh, gw)``, the patch grid of the model (or the caller's ``grid=``).

It returns the (H, W) attribution map (higher = more important for ``target``) or a
`MethodOutput` that also carries the target it explained and SOP's groups and scores.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import torch
from torch import nn

from .errors import InputError

Grid = tuple[int, int]
Progress = Optional[Callable[[float], None]]
COSTS = ("cheap", "expensive")


@dataclass
class MethodOutput:
    """What a method function may return instead of the bare (H, W) map."""
    attribution: torch.Tensor              # (H, W), input resolution
    target: int | None = None              # the class explained, when the method resolved it itself
    groups: torch.Tensor | None = None     # (G, H, W) pixel masks (SOP)
    scores: torch.Tensor | None = None     # (G,) group scores (SOP)


MethodFn = Callable[[nn.Module, torch.Tensor, Optional[int], dict, Progress, Grid],
                    Union[torch.Tensor, MethodOutput]]


@dataclass(frozen=True)
class PassContext:
    """What a method's pass count may depend on besides its settings."""
    grid: Grid                      # the patch grid of the explained model
    image_size: tuple[int, int]     # (H, W) of the input
    num_groups: int                 # G of the SOP model (its own cost)


# passes(settings, context) -> (forward, backward) images through the explained model per
# explanation, *including* the forward pass `explain` makes to find the predicted class.
PassFn = Callable[[dict, PassContext], tuple[int, int]]
SAMPLING_PASSES = "budget + 1 forward"


# --------------------------------------------------------------------------- what a method supports

def any_model(model: nn.Module) -> bool:
    """any classifier x -> logits (an SOPModel's logits included)"""
    return True


def sop_only(model: nn.Module) -> bool:
    """an SOPModel (only a self-attributing model has groups and scores to show)"""
    from .model import SOPModel
    return isinstance(model, SOPModel)


def has_feature_layer(model: nn.Module) -> bool:
    """a model with a spatial feature layer: an SOPModel, a timm ViT, or any model with a Conv2d"""
    inner = getattr(model, "model", model)  # sop.explainers.ClassifierOutput wraps the model
    if sop_only(inner):
        return True
    if all(hasattr(inner, a) for a in ("blocks", "patch_embed", "num_prefix_tokens")):
        return True
    return any(isinstance(m, nn.Conv2d) for m in inner.modules())


# --------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class MethodInfo:
    """One registered method: its function and what a caller (CLI, app) needs to know about it."""
    name: str                         # the key: explain(model, x, name), --methods name
    fn: MethodFn
    label: str                        # human name ("Integrated Gradients")
    defaults: dict = field(default_factory=dict)   # documented default settings (copied on use)
    samples: bool = False             # random sampling: its budget setting is a sample count
    budget_setting: str | None = None  # the setting that sizes its work (n_samples, n_masks, n_steps)
    supports: Callable[[nn.Module], bool] = any_model  # models it can explain with its defaults
    requires: str = "any classifier"  # the same, in words (for error messages and help texts)
    cost: str = "expensive"           # "cheap": a few forward passes, fine to run live; "expensive": on request
    resolves_target: bool = False     # gets target None for "predicted class" and returns the one it used
    passes: PassFn | None = None      # its cost in model passes (sampling methods: budget + 1 forward)
    pass_rule: str | None = None      # the same, in words (the budget sweep's count rule)

    @property
    def cheap(self) -> bool:
        return self.cost == "cheap"

    @property
    def summary(self) -> str:
        """First line of the method function's docstring."""
        return (self.fn.__doc__ or "").strip().split("\n")[0]

    def settings(self) -> dict:
        """A fresh copy of the default settings."""
        return dict(self.defaults)

    def pass_count(self, settings: dict, context: PassContext) -> tuple[int, int] | None:
        """(forward, backward) passes of one explanation with `settings` (over the defaults);
        None for a method that declares no count."""
        s = {**self.defaults, **settings}
        if self.passes is not None:
            fwd, bwd = self.passes(s, context)
            return int(fwd), int(bwd)
        if self.samples:
            return int(s[self.budget_setting]) + 1, 0
        return None

    @property
    def count_rule(self) -> str | None:
        """How its passes are counted, in words."""
        return self.pass_rule or (SAMPLING_PASSES if self.samples and self.passes is None else None)

    def budgeted(self, budget: int | None) -> dict:
        """The default settings with a sample budget applied (sampling methods only; others unchanged)."""
        s = self.settings()
        if budget is not None and self.samples and self.budget_setting is not None:
            s[self.budget_setting] = int(budget)
        return s


_REGISTRY: dict[str, MethodInfo] = {}


def register_method(name: str, *, label: str, defaults: dict | None = None, samples: bool = False,
                    budget_setting: str | None = None, supports: Callable[[nn.Module], bool] = any_model,
                    requires: str | None = None, cost: str = "expensive", resolves_target: bool = False,
                    passes: PassFn | None = None, pass_rule: str | None = None,
                    replace: bool = False) -> Callable[[MethodFn], MethodFn]:
    """Decorator: register `fn` as attribution method `name` (see the module docstring for `fn`'s signature).

    `defaults`: every setting the method takes, with its default (callers may override
    only these, plus ``grid``).  `samples`: the method draws random samples and
    `budget_setting` (a key of `defaults`) is their count -- the Compare page's "Samples"
    control sets it.  A method with a step count (IG's ``n_steps``) names it as
    `budget_setting` with ``samples=False``.  `supports(model)`: whether the method can
    explain that model with its defaults (`requires` says it in words).  `cost`:
    ``"cheap"`` methods run live in the app, ``"expensive"`` ones on request.
    `passes(settings, context)`: (forward, backward) model passes of one explanation, counting
    the forward pass `explain` makes for the predicted class (`PassContext`: grid, image size,
    G); sampling methods default to budget + 1 forward.  `pass_rule`: the same in words.  The
    budget sweep (`sop.budget`) counts cost with these; a method declaring none gets no cost.
    `replace`: allow re-registering an existing name.  Returns `fn` unchanged.
    """
    defaults = dict(defaults or {})
    if not isinstance(name, str) or not name or "," in name or name != name.strip() or name == "all":
        raise InputError(f"method name must be a non-empty string without commas or spaces (and not 'all'), "
                         f"got {name!r}")
    if name in _REGISTRY and not replace:
        raise InputError(f"method {name!r} is already registered; pass replace=True to override it")
    if cost not in COSTS:
        raise InputError(f"cost must be one of {COSTS}, not {cost!r}")
    if budget_setting is not None and budget_setting not in defaults:
        raise InputError(f"budget_setting {budget_setting!r} is not one of {name!r}'s defaults {sorted(defaults)}")
    if samples and budget_setting is None:
        raise InputError(f"a sampling method names its sample count: pass budget_setting= for {name!r}")
    if "grid" in defaults:
        raise InputError("'grid' is a setting of every method (the patch grid); leave it out of defaults")
    if requires is None:
        requires = (supports.__doc__ or "").strip().split("\n")[0] or "a supported model"

    def decorator(fn: MethodFn) -> MethodFn:
        _REGISTRY[name] = MethodInfo(name=name, fn=fn, label=label, defaults=defaults, samples=bool(samples),
                                     budget_setting=budget_setting, supports=supports, requires=requires,
                                     cost=cost, resolves_target=bool(resolves_target), passes=passes,
                                     pass_rule=pass_rule)
        return fn

    return decorator


def unregister_method(name: str) -> None:
    """Remove a registered method (e.g. a test's toy method); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def _load_builtins() -> None:
    from . import explainers  # noqa: F401  (registers the built-in methods on import)


def list_methods(*, cheap: bool | None = None, samples: bool | None = None) -> list[str]:
    """Registered method names in registration order (the built-ins first), optionally filtered."""
    _load_builtins()
    return [n for n, info in _REGISTRY.items()
            if (cheap is None or info.cheap == cheap) and (samples is None or info.samples == samples)]


def is_method(name: str) -> bool:
    _load_builtins()
    return name in _REGISTRY


def get_method(name: str) -> MethodInfo:
    """The `MethodInfo` of `name`; an unknown name raises InputError listing the known ones."""
    _load_builtins()
    info = _REGISTRY.get(name) if isinstance(name, str) else None
    if info is None:
        raise InputError(f"unknown method {name!r}; known: {', '.join(_REGISTRY)}")
    return info


def method_label(name: str) -> str:
    """The method's label, or the name itself for an unknown method (display only)."""
    return get_method(name).label if is_method(name) else str(name)


__all__ = ["MethodInfo", "MethodOutput", "MethodFn", "PassContext", "PassFn", "Grid", "Progress", "COSTS",
           "register_method",
           "unregister_method", "list_methods", "is_method", "get_method", "method_label", "any_model",
           "sop_only", "has_feature_layer"]
