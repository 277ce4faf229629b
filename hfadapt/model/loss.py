"""Class weights in the loss, for imbalanced labels: weights from the training labels, and the weighted loss.

`class_weights` and `weighted_loss` take plain arguments; `weights_for_task` is the recipe's adapter
(`task.class_weights`: auto, a list, or a mapping by label name).
"""

from __future__ import annotations

import numbers
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from hfadapt.errors import HfadaptError
from hfadapt.recipe import TaskConfig

IGNORE = -100  # the label of positions the loss skips (special tokens, a word's later pieces)


def class_weights(labels: Sequence[Any], num_labels: int, multi_label: bool = False) -> list[float]:
    """One weight per class, inverse to its count in `labels` (scikit-learn's "balanced").

    Each class weighs n / (k * count), so the training examples' weights average 1; a class with no
    example weighs 1. For multi-label data, each label's positives weigh (negatives / positives),
    `pos_weight` of `BCEWithLogitsLoss`.

    Args:
        labels: the training labels: class ids (`[0, 2, 1, ...]`), rows of class ids for token
            classification (`[[0, 0, 3], [1, 0]]`; -100 is skipped), or with `multi_label` rows of
            0/1 per label (`[[1, 0, 1], ...]`).
        num_labels: the number of classes, k.
        multi_label: `labels` are multi-hot rows (multi-label classification).

    Returns:
        `num_labels` weights, in class-id order: what `weighted_loss` takes.

    Raises:
        HfadaptError: no labels, `num_labels` below 1, a label that is not a class id below `num_labels`,
            or a multi-label row of another length.
    """
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise HfadaptError(f"class_weights: num_labels must be a whole number, 1 or more; got {num_labels!r}")
    labels = [] if isinstance(labels, (str, bytes)) else list(labels)
    if not labels:
        raise HfadaptError("class_weights: labels is empty; give the training labels, one per example")
    k = num_labels
    if multi_label:
        for i, row in enumerate(labels):
            if isinstance(row, (str, bytes)) or not hasattr(row, "__len__") or len(row) != k:
                raise HfadaptError(f"class_weights: labels[{i}] is {row!r}, not a row of {k} 0/1 values (multi_label)")
        positives = [sum(row[i] for row in labels) for i in range(k)]
        return [(len(labels) - p) / p if 0 < p < len(labels) else 1.0 for p in positives]
    rows = not isinstance(labels[0], (str, bytes)) and hasattr(labels[0], "__len__")
    flat: list[int] = []
    for r, row in enumerate(labels):
        for j, tag in enumerate(row if rows else [row]):
            if not _is_class_id(tag, k) and not (rows and tag == IGNORE):
                where = f"labels[{r}][{j}]" if rows else f"labels[{r}]"
                raise HfadaptError(
                    f"class_weights: {where} is {tag!r}, not a class id from 0 to {k - 1}; give ids "
                    "(label names encoded, e.g. by the model config's label2id)"
                )
            if tag != IGNORE:
                flat.append(int(tag))
    counts = Counter(flat)
    return [len(flat) / (k * counts[i]) if counts[i] else 1.0 for i in range(k)]


def weights_for_task(task: TaskConfig, label_names: list[str], train) -> list[float] | None:
    """One weight per label, from `task.class_weights` and the training split's labels (None: unweighted)."""
    setting = task.class_weights
    if setting is None:
        return None
    if setting == "auto":
        return class_weights(train["label"], len(label_names), multi_label=is_multi_label(task))
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


def _is_class_id(tag: Any, k: int) -> bool:
    return not isinstance(tag, bool) and isinstance(tag, numbers.Integral) and 0 <= tag < k


def is_multi_label(task: TaskConfig) -> bool:
    """Whether the task's labels are multi-hot rows (multi-label sequence classification)."""
    return task.type == "sequence_classification" and task.problem_type == "multi_label_classification"


def weighted_loss(weights: Sequence[float], multi_label: bool = False) -> Callable[..., Any]:
    """A loss with class weights, for `Trainer(compute_loss_func=weighted_loss(weights))`.

    Cross-entropy with `weight` (sequence or token classification; labels of -100 are skipped), or
    for multi-label `BCEWithLogitsLoss` with `pos_weight`. The sum over the batch's labels is divided
    by `num_items_in_batch` (the labels of all the micro-batches of a step), as Trainer expects of
    such a function, so gradient accumulation and several devices scale as the model's own loss does.

    Args:
        weights: one weight per class, above 0 (e.g. from `class_weights`).
        multi_label: the model is multi-label (`problem_type="multi_label_classification"`).

    Returns:
        A function `loss(outputs, labels, num_items_in_batch=None)` giving the loss tensor.

    Raises:
        HfadaptError: no weights, or a weight that is not a number above 0.
    """
    import torch

    weights = list(weights) if not isinstance(weights, (str, bytes)) else []
    if not weights:
        raise HfadaptError("weighted_loss: weights is empty; give one weight per class")
    bad = [w for w in weights if isinstance(w, bool) or not isinstance(w, numbers.Real) or not w > 0]
    if bad:
        raise HfadaptError(f"weighted_loss: every weight must be a number above 0; got {bad[0]!r}")

    def loss(outputs: Any, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        weight = torch.tensor(weights, dtype=logits.dtype, device=logits.device)
        if multi_label:
            criterion = torch.nn.BCEWithLogitsLoss(pos_weight=weight, reduction="sum")
            total, count = criterion(logits, labels.to(logits.dtype)), labels.numel()
        else:
            criterion = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE, reduction="sum")
            flat = labels.reshape(-1)
            total, count = criterion(logits.reshape(-1, logits.shape[-1]), flat), (flat != IGNORE).sum()
        return total / (num_items_in_batch if num_items_in_batch is not None else count)

    return loss
