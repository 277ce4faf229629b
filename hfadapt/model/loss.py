"""Class weights in the loss, for imbalanced labels: the weights from a recipe, and the weighted loss."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hfadapt.errors import HfadaptError
from hfadapt.recipe import TaskConfig


def class_weights(task: TaskConfig, label_names: list[str], train) -> list[float] | None:
    """One weight per label, from `task.class_weights` and the training split's labels.

    `auto` weighs each class inversely to its count, n / (k * count), so that the weights of the
    training examples average 1 (scikit-learn's "balanced"); for multi-label, each label's
    positives weigh (negatives / positives), `pos_weight` of `BCEWithLogitsLoss`.
    """
    setting = task.class_weights
    if setting is None:
        return None
    if setting == "auto":
        return _auto(task, label_names, train)
    if isinstance(setting, list):
        if len(setting) != len(label_names):
            raise HfadaptError(
                f"task.class_weights: {len(setting)} weights for {len(label_names)} labels "
                f"({', '.join(label_names)}); give one weight per label, in this order, or a mapping by name"
            )
        return [float(w) for w in setting]
    unknown = sorted(set(setting) - set(label_names))
    if unknown:
        raise HfadaptError(
            f"task.class_weights: {', '.join(map(repr, unknown))} is not a label; the labels "
            f"are {', '.join(label_names)}"
        )
    return [float(setting.get(name, 1.0)) for name in label_names]


def _auto(task: TaskConfig, label_names: list[str], train) -> list[float]:
    labels = train["label"]
    k = len(label_names)
    if task.type == "sequence_classification" and task.problem_type == "multi_label_classification":
        positives = [sum(row[i] for row in labels) for i in range(k)]
        return [(len(labels) - p) / p if 0 < p < len(labels) else 1.0 for p in positives]
    flat = [tag for row in labels for tag in row] if task.type == "token_classification" else list(labels)
    counts = Counter(flat)
    return [len(flat) / (k * counts[i]) if counts[i] else 1.0 for i in range(k)]


def weighted_loss(task: TaskConfig, weights: list[float]):
    """A `compute_loss_func` for `Trainer`: the task's loss with these class weights.

    The sum over the batch's labels is divided by `num_items_in_batch` (the labels of all the
    micro-batches of a step), as Trainer expects of such a function, so gradient accumulation and
    several devices scale as they do for the model's own loss.
    """
    import torch

    def loss(outputs: Any, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        weight = torch.tensor(weights, dtype=logits.dtype, device=logits.device)
        if task.type == "sequence_classification" and task.problem_type == "multi_label_classification":
            criterion = torch.nn.BCEWithLogitsLoss(pos_weight=weight, reduction="sum")
            total, count = criterion(logits, labels.to(logits.dtype)), labels.numel()
        else:
            criterion = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=-100, reduction="sum")
            flat = labels.reshape(-1)
            total, count = criterion(logits.reshape(-1, logits.shape[-1]), flat), (flat != -100).sum()
        return total / (num_items_in_batch if num_items_in_batch is not None else count)

    return loss
