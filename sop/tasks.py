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

"classification" is what training, evaluation and the app use today.  "regression"
(e.g. weak-lensing cosmological parameters) is registered as the documented shape of
the next task: its loss and score are defined, but it is not ``trainable`` yet, so
`sop.train` refuses it rather than training it as a classifier.
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


def _per_input(target, outputs: torch.Tensor) -> torch.Tensor:
    """An int or (B,) class index -> (B, 1) long index on the outputs' device."""
    t = torch.as_tensor(target, device=outputs.device).long()
    return t.expand(outputs.shape[0]).reshape(-1, 1)


@register_task("classification", label="Classification", capabilities=("accuracy", "class_scores"))
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


@register_task("regression", label="Regression", trainable=False, capabilities=("parameters",))
class RegressionTask(Task):
    """P real parameters (e.g. weak-lensing Omega_m, sigma_8): an output is P estimates.

    SOP's sum of score-weighted group outputs is then a weighted average of what each
    group alone estimates.  Not trainable yet: the shape of the next task.
    """
    output = "parameter estimates (B, P)"

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs, targets.to(outputs.dtype))

    def score(self, outputs: torch.Tensor, target) -> torch.Tensor:
        """Negative squared error to the target parameters ((P,) or (B, P)): higher is closer."""
        t = torch.as_tensor(target, dtype=outputs.dtype, device=outputs.device)
        return -((outputs.float() - t.float()) ** 2).sum(-1)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs

    def headline(self, output: torch.Tensor, names: Sequence[str]) -> tuple[str, float]:
        """("name = value, ...", first estimate) of one output (P,)."""
        vals = output.detach().float().reshape(-1).tolist()
        text = ", ".join(f"{names[i] if i < len(names) else i} = {v:.3g}" for i, v in enumerate(vals))
        return text, float(vals[0]) if vals else float("nan")

    def describe(self, output: torch.Tensor, names: Sequence[str]) -> str:
        return self.headline(output, names)[0]
