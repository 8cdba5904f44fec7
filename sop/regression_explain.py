"""One regression input explained (e.g. a lensing map): prediction, groups, errors, curves.

What the explorer's regression pages show, computed here (no streamlit):

* `explain_map(model, x)`: the prediction per parameter in physical units, and per group its
  pixel mask, its score and what the group *alone* predicts per parameter (physical units).
  The prediction is the score-weighted sum of the group predictions (`sop.regression`).
* `largest_errors(pred, true, config)`: the test maps the model gets most wrong.
* `regression_curves(model, x, explanation)`: insertion / deletion curves **per parameter**.

**Regression curves.**  The steps are exactly those of `sop.faithfulness.insertion_deletion`
(pixel-wise or grouped, the same removal baselines: a removed pixel is set to the baseline),
which computes the model's output at every step.  For parameter p, the curve's value at a
step is `sop.regression.closeness`, the one definition `sop evaluate` uses too:

    c_p(step) = 1 - |pred_p(step) - pred_p(full map)| / std_p

with std_p the parameter's training-set standard deviation (the model's standardised units).
c_p = 1 where the partial map predicts what the whole map predicts; it drops by 1 for every
standard deviation of the prior the prediction moves (it can go below 0).  The summary over
parameters (`sop evaluate`'s AUCs, `RegressionTask.score`) is the mean of c_p.  So, as for
classification, a faithful explanation makes **insertion rise** fast towards 1 (high AUC) and
**deletion fall** fast (low AUC).  AUC: trapezoid rule over the fraction of pixels, as in
`sop.faithfulness`.  The prediction itself at each step (physical units) comes with the curve.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .errors import InputError
from .explainers import Explanation, eval_mode
from .faithfulness import Curve, Removal, auc, insertion_deletion
from .regression import closeness, to_physical


def parameter_names(config) -> list[str]:
    return list(config.target_names or config.class_names)


def _check_regression(model: nn.Module) -> None:
    if getattr(getattr(model, "config", None), "task", None) != "regression":
        raise InputError("this needs a regression model (config.task == 'regression'), e.g. the lensing model")


@dataclass
class MapExplanation:
    """An SOP regression model's forward pass on one input, in physical units."""
    names: list[str]
    prediction: np.ndarray          # (P,) physical units
    scores: np.ndarray              # (G,) group scores (>= 0, sum 1)
    masks: np.ndarray               # (G, H, W) pixel masks in [0, 1]
    group_predictions: np.ndarray   # (G, P) what each group alone predicts, physical units: the model's
                                    # output were that group the only one selected (score 1), so
                                    # prediction = sum_g scores[g] * group_predictions[g] exactly

    @property
    def order(self) -> list[int]:
        """Groups by decreasing score (ties: lower index first)."""
        return [int(g) for g in np.argsort(-self.scores, kind="stable")]

    @property
    def used(self) -> list[int]:
        """The groups that enter the prediction (score > 0), by decreasing score."""
        return [g for g in self.order if self.scores[g] > 0]

    def group(self, g: int) -> dict:
        """One group as plain data: score, pixels, what it alone predicts per parameter."""
        return dict(group=int(g), score=float(self.scores[g]), pixels=int((self.masks[g] > 0).sum()),
                    alone={n: float(v) for n, v in zip(self.names, self.group_predictions[g])})

    def as_dict(self) -> dict:
        return dict(prediction={n: float(v) for n, v in zip(self.names, self.prediction)},
                    groups=[self.group(g) for g in self.order])


@torch.inference_mode()
def explain_map(model: nn.Module, x: torch.Tensor) -> MapExplanation:
    """The SOP regression model's prediction and groups on one input x (1, C, H, W)."""
    _check_regression(model)
    if not hasattr(model, "check_input"):
        raise InputError("explain_map() needs an SOP model (a plain twin has no groups)")
    model.check_input(x)
    if x.shape[0] != 1:
        raise InputError(f"explain_map() takes one input (1, C, H, W), got {tuple(x.shape)}")
    with eval_mode(model):
        out = model(x)
    cfg = model.config
    alone = out.group_logits[0].double()
    if out.group_gates is not None:  # the authors' GroupGen: a group enters as gate * its output
        alone = alone * out.group_gates[0].double()[:, None]
    return MapExplanation(names=parameter_names(cfg), prediction=to_physical(out.logits[0], cfg).numpy(),
                          scores=out.group_scores[0].double().numpy(), masks=out.pixel_masks[0].float().numpy(),
                          group_predictions=to_physical(alone, cfg).numpy())


def standardised_errors(pred: np.ndarray, true: np.ndarray, config) -> np.ndarray:
    """(N,) root-mean-square over parameters of |pred - true| / std_p (training-set stds)."""
    std = np.asarray(config.target_std, dtype=np.float64)
    return np.sqrt((((np.asarray(pred) - np.asarray(true)) / std) ** 2).mean(1))


def largest_errors(pred: np.ndarray, true: np.ndarray, config, k: int = 10) -> list[dict]:
    """The k inputs with the largest `standardised_errors`, largest first: index, error, values."""
    err = standardised_errors(pred, true, config)
    names = parameter_names(config)
    top = np.argsort(-err, kind="stable")[:k]
    return [dict(index=int(i), error=float(err[i]),
                 predicted={n: float(v) for n, v in zip(names, pred[i])},
                 true={n: float(v) for n, v in zip(names, true[i])}) for i in top]


@dataclass
class RegressionCurve:
    """One parameter's insertion or deletion curve (see the module docstring)."""
    kind: str                   # "insertion" | "deletion"
    mode: str                   # "pixel" | "grouped"
    parameter: int
    name: str
    fractions: np.ndarray       # (S+1,) fraction of pixels inserted / deleted
    closeness: np.ndarray       # (S+1,) 1 - |pred(step) - pred(full)| / std
    predictions: np.ndarray     # (S+1,) the parameter's prediction at each step, physical units
    full_prediction: float      # on the whole input, physical units
    auc: float
    removal: Removal            # rebuilds any step's input

    def input_at(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """(C, H, W): the partially removed input at `step`."""
        return Curve(self.kind, self.mode, self.fractions, self.closeness, self.auc, removal=self.removal) \
            .input_at(x, step)


def regression_curves(model: nn.Module, x: torch.Tensor, explanation: Explanation, *, mode: str = "pixel",
                      parameters: Sequence[int] | None = None, **kwargs) -> dict[int, dict[str, RegressionCurve]]:
    """{parameter index: {"insertion": RegressionCurve, "deletion": ...}} of `explanation` on x.

    One `insertion_deletion` call (its steps, baselines, batching and `memo`; `kwargs` are passed
    on) gives the model's outputs at every step; each parameter's curve is read from them."""
    _check_regression(model)
    cfg = model.config
    names = parameter_names(cfg)
    parameters = list(range(len(names))) if parameters is None else [int(p) for p in parameters]
    for p in parameters:
        if not 0 <= p < len(names):
            raise InputError(f"parameter index {p} out of range; the model predicts {', '.join(names)}")
    curves = insertion_deletion(model, x, explanation, mode=mode, **kwargs)
    full = curves["deletion"].outputs[0]               # deletion's first input is x itself
    full_phys = to_physical(torch.from_numpy(full), cfg).numpy()
    out: dict[int, dict[str, RegressionCurve]] = {p: {} for p in parameters}
    for kind, c in curves.items():
        close = closeness(torch.from_numpy(c.outputs), torch.from_numpy(full)).numpy()
        phys = to_physical(torch.from_numpy(c.outputs), cfg).numpy()
        for p in parameters:
            out[p][kind] = RegressionCurve(kind=kind, mode=mode, parameter=p, name=names[p],
                                           fractions=c.fractions.copy(), closeness=close[:, p],
                                           predictions=phys[:, p], full_prediction=float(full_phys[p]),
                                           auc=auc(c.fractions, close[:, p]), removal=c.removal)
    return out


def sop_explanation(model: nn.Module, x: torch.Tensor, parameter: int = 0) -> Explanation:
    """SOP's own explanation of a regression model (its groups are shared by every parameter)."""
    from .explainers import explain
    return explain(model, x, "sop", target=parameter)


EXPORT_FORMAT = "sop-explorer/regression-explanation@1"
CURVE_DEFINITION = "1 - |prediction(step) - prediction(full map)| / training std (sop.regression.closeness)"


def export_record(e: MapExplanation, pair: dict[str, RegressionCurve], *, mode: str, baseline: str,
                  truth: np.ndarray | None = None, **about) -> dict:
    """One map's explanation as plain JSON-able data: prediction, true values, groups (score, pixels,
    what each alone predicts) and one parameter's curve pair (`about`: e.g. model and input names)."""
    def _r(v) -> list[float]:
        return [round(float(t), 6) for t in v]
    ins = pair["insertion"]
    return dict(format=EXPORT_FORMAT, **about, parameters=e.names, **e.as_dict(),
                truth=None if truth is None else {n: float(v) for n, v in zip(e.names, truth)},
                curves=dict(mode=mode, baseline=baseline, parameter=ins.name,
                            definition=CURVE_DEFINITION,
                            **{k: dict(fractions=_r(c.fractions), closeness=_r(c.closeness),
                                       predictions=_r(c.predictions), auc=round(float(c.auc), 6))
                               for k, c in pair.items()}))
