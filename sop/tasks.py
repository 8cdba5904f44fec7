"""Tasks: what a model's output means, how it is trained, scored and shown.

One registry, timm-style: a task is a class registered once under its name.

    from sop.tasks import get_task, list_tasks, register_task
    list_tasks()                          # ["classification", "regression"]
    task = get_task("classification")     # the Task object (stateless)
    loss = task.loss(logits, labels)

``SOPConfig.task`` names a checkpoint's task ("classification" for checkpoints written
before the field existed); a dataset's registry entry (`sop.data.get_dataset`) names
the task its labels serve.  Every task answers the same questions about an output
tensor (B, K): the SOP model's ``logits`` (= sum_g s_g * group outputs, whatever the
task) or a plain backbone's output:

* ``loss(outputs, targets)``  -- the training loss (a scalar tensor);
* ``score(outputs, target)``  -- (B,) how strongly each output supports ``target``:
  what an insertion / deletion curve plots (higher = more of the target);
* ``predict(outputs)``        -- what the model predicts;
* ``headline(output, names)`` -- one input's output as (text, value), what the app shows;
* ``describe(output, names)`` -- the same as one line of text.

and what training and the reports need (small dispatches, so `sop.train`,
`sop.evaluation` and `sop.faithfulness` name no task):

* ``default_target(output)``   -- what a curve scores by default, from the output on x;
* ``batch_metric(outputs, targets)`` -- summed over a batch, shown as ``train_<metric>``;
* ``validation_score(model, split, device)`` -- higher is better, picks the best epoch
  (recorded as ``<val_metric>``);
* ``config_fields(train)`` / ``training_split(split, fields)`` -- what the checkpoint
  must remember about the targets, and the targets training sees;
* ``test_report(model, split, config, device)`` -- the twin's test figures;
* ``statistics(model, split, backbone)`` -- the SOP model's test statistics
  (``recorded``: the ones a checkpoint keeps);

and, as attributes, what `sop evaluate`'s report shows (``report_keys``) and what
`sop verify` recomputes (``compared_keys``, ``compared_twin_metrics``) and to which
relative tolerance (``verify_tolerance``), so that neither module switches on a task name.

"classification": cross-entropy, accuracy.  "regression" (e.g. weak-lensing Omega_m and
sigma_8, `sop.regression`): MSE on standardised targets, R^2 and RMSE per parameter in
physical units; its curve score is minus the distance to the full-input prediction.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .errors import ConfigError

_TASKS: dict[str, "Task"] = {}


class Task(ABC):
    """The interface of a task; subclasses are registered with `register_task`."""
    name: str = "base"
    label: str = "base"
    output: str = ""                   # what an output (B, K) is, in words
    trainable: bool = False            # whether sop.train supports it today
    capabilities: frozenset[str] = frozenset()

    @abstractmethod
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ...

    @abstractmethod
    def score(self, outputs: torch.Tensor, target) -> torch.Tensor:
        ...

    @abstractmethod
    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        ...

    @abstractmethod
    def headline(self, output: torch.Tensor, names: Sequence[str]) -> tuple[str, float]:
        ...

    metric: str = "acc"                # training: train_<metric> (a mean over the epoch)
    val_metric: str = "val_acc"        # training: the validation score's name
    recorded: tuple[str, ...] = ()     # the test statistics a trained checkpoint records
    report_keys: tuple[str, ...] = ()  # the statistics `sop evaluate`'s report shows, in this order
    compared_keys: tuple[str, ...] = ()   # the recorded test statistics `sop verify` recomputes
    # `sop verify`: the twin's test figures (keys of `test_report`) it recomputes; the SOP checkpoint
    # records them as "backbone_<key>", rounded (`sop.train.recorded_value`).
    compared_twin_metrics: tuple[str, ...] = ()
    # `sop verify`'s relative tolerance between a recorded and a recomputed statistic.
    verify_tolerance: float = 0.0

    @abstractmethod
    def default_target(self, output: torch.Tensor):
        """What a curve scores when no target is given, from the output (K,) on the whole input."""

    @abstractmethod
    def batch_metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        """The training metric summed over a batch (divided by the count for the epoch's mean)."""

    @abstractmethod
    def validation_score(self, model, split, device="cpu") -> float:
        """Higher is better: what picks the best epoch."""

    @abstractmethod
    def test_report(self, model, split, config, device="cpu") -> dict:
        """A plain model's test figures (the backbone twin's), keyed for its checkpoint."""

    @abstractmethod
    def statistics(self, model, split, backbone=None, batch_size: int = 128) -> dict:
        """An SOP model's statistics over a split (and its twin's, with `backbone`)."""

    def config_fields(self, train) -> dict:
        """SOPConfig fields learned from the training split (none for classification)."""
        return {}

    def training_split(self, split, fields: dict):
        """The split as training sees it, given `fields` = `config_fields(train)` (regression:
        targets standardised by the training split's statistics)."""
        return split

    def describe(self, output: torch.Tensor, names: Sequence[str]) -> str:
        text, value = self.headline(output, names)
        return f"{text} ({value:.3f})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, label={self.label!r}, trainable={self.trainable})"


def register_task(name: str, *, label: str, trainable: bool = True,
                  capabilities: Sequence[str] = ()) -> Callable[[type], type]:
    """Class decorator: register a `Task` subclass under `name` (one shared instance)."""
    def deco(cls: type) -> type:
        cls.name, cls.label, cls.trainable = name, label, trainable
        cls.capabilities = frozenset(capabilities)
        _TASKS[name] = cls()
        return cls
    return deco


def list_tasks(trainable: bool | None = None) -> list[str]:
    """Registered task names (sorted); `trainable=True` keeps those sop.train supports."""
    return sorted(n for n, t in _TASKS.items() if trainable is None or t.trainable == trainable)


def get_task(name: str) -> Task:
    """The task registered as `name`; a ConfigError naming the `task` field otherwise."""
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown task {name!r}; known: {', '.join(list_tasks())}",
                          field="task") from None


def target_value(target) -> int | list[float]:
    """A target as plain Python (for reports and JSON): a class index as an int, a regression
    target (real values, physical units) as a list."""
    t = torch.as_tensor(target)
    return int(t) if t.numel() == 1 and not t.is_floating_point() else t.reshape(-1).tolist()


def _per_input(target, outputs: torch.Tensor) -> torch.Tensor:
    """An int or (B,) class index -> (B, 1) long index on the outputs' device."""
    t = torch.as_tensor(target, device=outputs.device).long()
    return t.expand(outputs.shape[0]).reshape(-1, 1)


# "explorer": the app's pages can show its models (regression: explorer/regression_pages.py).
@register_task("classification", label="Classification", capabilities=("accuracy", "class_scores", "explorer"))
class ClassificationTask(Task):
    """K classes: an output is K class logits; the prediction is the arg-max class."""
    output = "class logits (B, K)"

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def score(self, outputs: torch.Tensor, target) -> torch.Tensor:
        """Softmax probability of the target class (an int or (B,) classes)."""
        probs = outputs.float().softmax(-1)
        return probs.gather(1, _per_input(target, probs)).squeeze(1)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(-1)

    def headline(self, output: torch.Tensor, names: Sequence[str]) -> tuple[str, float]:
        """(predicted class name, its probability) of one output (K,)."""
        probs = output.detach().float().reshape(-1).softmax(-1)
        k = int(probs.argmax())
        return (names[k] if k < len(names) else str(k)), float(probs[k])

    def describe(self, output: torch.Tensor, names: Sequence[str]) -> str:
        text, p = self.headline(output, names)
        return f"{text} (p = {p:.3f})"

    recorded = ("accuracy", "groups_used", "patches_per_group", "num_patches", "fidelity")
    report_keys = ("samples", "accuracy", "groups_used", "num_groups", "pixels_per_group", "image_pixels",
                   "selected_fraction", "grid", "backbone_accuracy", "fidelity")
    # Counts over the same split: the same weights and data give exactly the same figures.
    compared_keys = ("accuracy", "fidelity", "groups_used", "patches_per_group")
    compared_twin_metrics = ("test_accuracy",)
    verify_tolerance = 0.0

    def default_target(self, output: torch.Tensor) -> int:
        return int(output.argmax())

    def batch_metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return int((outputs.argmax(-1) == targets).sum())

    def validation_score(self, model, split, device="cpu") -> float:
        from .train import evaluate_accuracy
        return evaluate_accuracy(model, split, device=device)

    def test_report(self, model, split, config, device="cpu") -> dict:
        from .train import evaluate_accuracy
        return dict(test_accuracy=evaluate_accuracy(model, split, device=device))

    def statistics(self, model, split, backbone=None, batch_size: int = 128) -> dict:
        from .evaluation import classification_statistics
        return classification_statistics(model, split, backbone, batch_size)


@register_task("regression", label="Regression", capabilities=("parameters", "explorer"))
class RegressionTask(Task):
    """P real parameters (e.g. weak-lensing Omega_m, sigma_8): an output is P estimates.

    SOP's sum of score-weighted group outputs is then a weighted average of what each
    group alone estimates.  Outputs are in standardised units (`sop.regression`).
    """
    output = "parameter estimates (B, P), standardised"
    metric, val_metric = "mse", "val_r2"
    recorded = ("r2", "rmse", "r2_mean", "backbone_r2", "backbone_rmse", "fidelity_r2", "fidelity", "groups_used",
                "patches_per_group", "num_patches", "selected_fraction")
    # R2 and RMSE per parameter in physical units, for SOP and the twin; fidelity = mean over
    # parameters of the R2 of SOP's predictions against the twin's.
    report_keys = ("samples", "r2", "rmse", "r2_mean", "backbone_r2", "backbone_rmse", "backbone_r2_mean",
                   "fidelity_r2", "groups_used", "num_groups", "pixels_per_group", "image_pixels",
                   "selected_fraction", "grid", "fidelity")
    compared_keys = ("r2", "rmse", "backbone_r2", "backbone_rmse", "fidelity", "groups_used", "patches_per_group")
    # R2 and RMSE are float sums over the split, which move in the 8th digit with the CPU kernels and
    # thread count (pinned training vs an unpinned check).
    verify_tolerance = 1e-6

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs, targets.to(outputs.dtype))

    def score(self, outputs: torch.Tensor, target) -> torch.Tensor:
        """The mean over the P parameters of `sop.regression.closeness` to the target ((P,) or (B, P)):
        1 - |output_p - target_p| in the outputs' (standardised) units, so 1 at the target and 0 one
        training-set standard deviation away.  The curves' target is the prediction on the whole input."""
        from .regression import closeness
        return closeness(outputs.float(), target).mean(-1)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs

    def headline(self, output: torch.Tensor, names: Sequence[str]) -> tuple[str, float]:
        """("name = value, ...", first estimate) of one output (P,)."""
        vals = output.detach().float().reshape(-1).tolist()
        text = ", ".join(f"{names[i] if i < len(names) else i} = {v:.3g}" for i, v in enumerate(vals))
        return text, float(vals[0]) if vals else float("nan")

    def describe(self, output: torch.Tensor, names: Sequence[str]) -> str:
        return self.headline(output, names)[0]

    def default_target(self, output: torch.Tensor) -> torch.Tensor:
        return output.detach().float().reshape(-1)

    def batch_metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return float(((outputs.detach().float() - targets.float()) ** 2).mean(-1).sum())

    def validation_score(self, model, split, device="cpu") -> float:
        from .regression import validation_r2
        return validation_r2(model, split, device)

    def test_report(self, model, split, config, device="cpu") -> dict:
        from .regression import regression_report
        return regression_report(model, split, config, prefix="test_", device=device)

    def statistics(self, model, split, backbone=None, batch_size: int = 128) -> dict:
        from .regression import regression_statistics
        return regression_statistics(model, split, backbone, batch_size)

    def config_fields(self, train) -> dict:
        from .regression import target_fields
        return target_fields(train)

    def training_split(self, split, fields: dict):
        """The split with its targets standardised by `fields`' target_mean and target_std (what the
        model is trained to output; `sop.regression.standardise` does the same from a config)."""
        from torch.utils.data import TensorDataset
        from .data import Split
        x, y = split.dataset.tensors
        mean = torch.tensor(fields["target_mean"], dtype=torch.float64)
        std = torch.tensor(fields["target_std"], dtype=torch.float64)
        return Split(TensorDataset(x, ((y.double() - mean) / std).to(torch.float32)), split.info)
