"""The pilots compared, paired: a bootstrap over the validation examples that every pilot predicted.

Every pilot predicts the same validation examples. Each resample draws those examples with
replacement, the same draw for every pilot, for the majority-class baseline and for the TF-IDF
baseline (`hfadapt.model.baseline`), and scores each on it. The spread of a pilot's scores gives its
interval; the spread of the differences between two pilots on the same resamples gives the interval
of their difference, where the examples both get right (or both get wrong) cancel. Two pilots whose
accuracy is 99% and 97% differ on a few examples, and the paired interval of their difference is far
narrower than either accuracy's own.

One rule decides everything here: two scores differ when the 95% interval of their paired
difference (2.5th to 97.5th percentile of the resampled differences) does not contain 0.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from hfadapt.model import metrics
from hfadapt.recipe import TaskConfig

RESAMPLES = 1000  # resamples of the validation examples; the interval ends move by about 2% of the SE from seed to seed
SEED = 0  # the same resamples in every run: the same predictions give the same verdict
LEVEL = 0.95
MAJORITY_SHARE = 0.99  # a pilot that gives this share of its predictions the majority class has not left it
FINE_TUNING = ("freeze", "lora", "full")
# Metrics computed here from predictions, by task. Others (evaluate modules, mse, where lower is better)
# fall back to the task's default.
TOKEN_METRICS = ("f1", "precision", "recall", "accuracy")
REGRESSION_METRICS = ("pearson", "spearman")
CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "f1_micro", "matthews_correlation")
MULTILABEL_METRICS = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "f1_micro")


def comparison_metric(task: TaskConfig) -> str:
    """The metric the pilots are compared on: the task's main metric where it is computed here, else its default.

    Args:
        task: the recipe's task section.

    Returns:
        A metric name: for token classification one of TOKEN_METRICS, for regression one of
        REGRESSION_METRICS, otherwise a classification metric.
    """
    wanted = task.metric()
    if task.type == "token_classification":
        return wanted if wanted in TOKEN_METRICS else "f1"
    if task.problem_type == "regression":
        return wanted if wanted in REGRESSION_METRICS else "pearson"
    known = MULTILABEL_METRICS if task.problem_type == "multi_label_classification" else CLASSIFICATION_METRICS
    return wanted if wanted in known else ("f1_macro" if task.class_weights is not None else "accuracy")


def imbalanced(class_counts: dict[str, int]) -> bool:
    """Whether the training classes are far apart in size: the largest at least 4 times the smallest present one."""
    present = [n for n in class_counts.values() if n]
    return bool(present) and max(present) >= 4 * min(present)


def gold(task: TaskConfig, label_names: list[str] | None, split) -> Any:
    """A split's true labels, one per example: label ids, vectors, numbers, or for token tasks each word's tag name."""
    labels = list(split["label"])
    if task.type == "token_classification":
        return [[label_names[t] for t in row] for row in labels]
    return np.asarray(labels, dtype=float if task.problem_type == "regression" else np.int64)


def majority(task: TaskConfig, label_names: list[str] | None, train, examples: Any) -> tuple[str, Any] | None:
    """The most frequent training label, and the predictions that give it to every example of `examples`.

    None where a task has no single majority label (multi-label classification, regression).
    """
    if task.type == "token_classification":
        tag = label_names[Counter(t for row in train["label"] for t in row).most_common(1)[0][0]]
        return tag, [[tag] * len(row) for row in examples]
    if task.problem_type != "single_label_classification":
        return None
    label = Counter(train["label"]).most_common(1)[0][0]
    return label_names[label], np.full(len(examples), label, dtype=np.int64)


def majority_share(task: TaskConfig, label_names: list[str] | None, predicted: Any, label: str) -> float:
    """The share of predictions (for token tasks: of word tags) that are the majority `label`."""
    if task.type == "token_classification":
        tags = [t for row in predicted for t in row]
        return sum(t == label for t in tags) / max(len(tags), 1)
    return float(np.mean(np.asarray(predicted) == label_names.index(label)))


def compare(
    task: TaskConfig,
    metric: str,
    label_names: list[str] | None,
    truth: Any,
    predictions: dict[str, Any],
    baseline: tuple[str, Any] | None = None,
    tfidf: Any = None,
) -> dict[str, Any]:
    """Each pilot's metric with its interval, its paired difference to the best fine-tuning pilot, whether it
    has left the majority-class baseline, and its paired difference to the TF-IDF baseline.

    The reference is the fine-tuning pilot (freeze, lora, full) with the highest metric among those
    that left the baseline (among all of them when none did). A pilot is tied with it when the 95%
    interval of their paired difference contains 0; it has not left the baseline when it gives at
    least MAJORITY_SHARE of its predictions the majority class or the 95% interval of its paired
    difference to the baseline reaches 0 or below.

    Args:
        task: the recipe's task section.
        metric: the metric to compare on (`comparison_metric`).
        label_names: the label names (None for regression).
        truth: the validation labels (`gold`).
        predictions: each pilot's predictions on the same examples, in the same order.
        baseline: the majority label and its predictions (`majority`), or None.
        tfidf: the TF-IDF baseline's predictions on the same examples (`hfadapt.model.baseline`), or None.

    Returns:
        `pilots`: per pilot, `validation_metric`, `interval`, `difference`, `difference_se`,
        `difference_interval`, `tied`, `majority_share`, `baseline_difference_interval`, `stuck`, and
        `tfidf_difference`, `tfidf_difference_se`, `tfidf_difference_interval` (pilot less TF-IDF baseline;
        None without it); `reference`, `baseline` (its label, metric and interval, or None), `tfidf` (its
        metric and interval, or None) and the settings used.
    """
    size = len(truth)
    draws = np.random.default_rng(SEED).integers(0, size, size=(RESAMPLES, size))
    whole = np.arange(size)[None, :]
    point = {name: float(_scores(task, metric, label_names, truth, p, whole)[0]) for name, p in predictions.items()}
    resampled = {name: _scores(task, metric, label_names, truth, p, draws) for name, p in predictions.items()}
    result: dict[str, Any] = {"pilots": {}, "baseline": None, "tfidf": None}
    stuck = dict.fromkeys(predictions, False)
    if baseline is not None:
        label, guess = baseline
        base = _scores(task, metric, label_names, truth, guess, draws)
        base_point = float(_scores(task, metric, label_names, truth, guess, whole)[0])
        result["baseline"] = {"label": label, "validation_metric": base_point, "interval": interval(base)}
        for name, p in predictions.items():
            share = majority_share(task, label_names, p, label)
            above = interval(resampled[name] - base)
            result["pilots"][name] = {"majority_share": share, "baseline_difference_interval": above}
            stuck[name] = share >= MAJORITY_SHARE or above[0] <= 0
    tuned = [name for name in predictions if name in FINE_TUNING]
    moving = [name for name in tuned if not stuck[name]]
    reference = max(moving or tuned, key=lambda name: point[name]) if tuned else None
    for name in predictions:
        entry = result["pilots"].setdefault(name, {"majority_share": None, "baseline_difference_interval": None})
        entry.update(validation_metric=point[name], interval=interval(resampled[name]), stuck=stuck[name])
        if reference is None:
            continue
        difference = resampled[name] - resampled[reference]
        low, high = interval(difference)
        entry.update(
            difference=point[name] - point[reference],
            difference_se=float(difference.std(ddof=1)),
            difference_interval=[low, high],
            tied=name == reference or low <= 0 <= high,
        )
    for name in predictions:
        result["pilots"][name].update(tfidf_difference=None, tfidf_difference_se=None, tfidf_difference_interval=None)
    if tfidf is not None:  # on the same resamples: the examples both get right (or wrong) cancel here too
        cheap = _scores(task, metric, label_names, truth, tfidf, draws)
        cheap_point = float(_scores(task, metric, label_names, truth, tfidf, whole)[0])
        result["tfidf"] = {"validation_metric": cheap_point, "interval": interval(cheap)}
        for name in predictions:
            difference = resampled[name] - cheap
            result["pilots"][name].update(
                tfidf_difference=point[name] - cheap_point,
                tfidf_difference_se=float(difference.std(ddof=1)),
                tfidf_difference_interval=interval(difference),
            )
    result.update(reference=reference, metric=metric, resamples=RESAMPLES, seed=SEED, level=LEVEL)
    return result


def interval(values: np.ndarray) -> list[float]:
    """The central LEVEL interval of resampled values (their 2.5th and 97.5th percentiles).

    Args:
        values: one value per resample.

    Returns:
        `[low, high]`.
    """
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def _scores(task: TaskConfig, metric: str, label_names, truth, predicted, draws: np.ndarray) -> np.ndarray:
    """`metric` on each row of `draws` (example indices), computed as hfadapt.metrics computes it."""
    if task.type == "token_classification":
        return _entity_scores(metric, truth, predicted, draws)
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if task.problem_type == "regression":
        return np.array([metrics.regression(truth[rows], predicted[rows])[metric] for rows in draws])
    if task.problem_type == "multi_label_classification":
        return np.array([metrics.multilabel(truth[rows], predicted[rows])[metric] for rows in draws])
    if metric == "accuracy":  # a mean over examples: no per-resample confusion matrix needed
        return (truth == predicted)[draws].mean(axis=1)
    count = len(label_names)
    return np.array([metrics.classification(truth[rows], predicted[rows], count)[metric] for rows in draws])


def _entity_scores(metric: str, truth: list[list[str]], predicted: list[list[str]], draws: np.ndarray) -> np.ndarray:
    """metrics.entity_scores on each resample of sentences, from each sentence's counts (it sums them)."""
    counts = np.zeros((len(truth), 5))  # entities found right, predicted, true; tokens right, tokens
    for i, (gold_tags, guess) in enumerate(zip(truth, predicted, strict=True)):
        g, p = metrics.entities(gold_tags), metrics.entities(guess)
        right = sum(a == b for a, b in zip(gold_tags, guess, strict=False))
        counts[i] = (len(g & p), len(p), len(g), right, len(gold_tags))
    tp, found, actual, right, tokens = counts[draws].sum(axis=1).T
    precision = np.divide(tp, found, out=np.zeros_like(tp), where=found > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": right / np.maximum(tokens, 1)}[metric]
