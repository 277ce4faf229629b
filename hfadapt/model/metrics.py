"""Metrics computed locally (no network): classification, regression, and entity-level NER scores.

Every metric script of `evaluate` lives on the Hub, so the standard ones are written here; a
user can still add `evaluate` modules by local path (or by Hub name when online).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hfadapt.errors import HfadaptError
from hfadapt.model import decoding
from hfadapt.recipe import TaskConfig


def classification(labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> dict[str, float]:
    """Accuracy, macro and micro precision/recall/F1, and Matthews correlation."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    confusion = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    tp = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0).astype(float)
    actual = confusion.sum(axis=1).astype(float)
    precision = _divide(tp, predicted)
    recall = _divide(tp, actual)
    f1 = _divide(2 * precision * recall, precision + recall)
    present = (actual + predicted) > 0  # labels absent from both sides do not dilute the macro average
    micro = float(tp.sum() / max(len(labels), 1))  # single-label: micro P = micro R = micro F1 = accuracy
    return {
        "accuracy": micro,
        "precision_macro": float(precision[present].mean()) if present.any() else 0.0,
        "recall_macro": float(recall[present].mean()) if present.any() else 0.0,
        "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
        "precision_micro": micro,
        "recall_micro": micro,
        "f1_micro": micro,
        "matthews_correlation": _matthews(confusion),
    }


def multilabel(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Subset accuracy and micro/macro precision, recall and F1 over label columns."""
    labels = np.asarray(labels) > 0.5
    predictions = np.asarray(predictions) > 0.5
    tp = (labels & predictions).sum(axis=0).astype(float)
    predicted = predictions.sum(axis=0).astype(float)
    actual = labels.sum(axis=0).astype(float)
    precision, recall = _divide(tp, predicted), _divide(tp, actual)
    f1 = _divide(2 * precision * recall, precision + recall)
    micro_p = _divide(tp.sum(), predicted.sum())
    micro_r = _divide(tp.sum(), actual.sum())
    return {
        "accuracy": float((labels == predictions).all(axis=1).mean()),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "precision_micro": float(micro_p),
        "recall_micro": float(micro_r),
        "f1_micro": float(_divide(2 * micro_p * micro_r, micro_p + micro_r)),
    }


def regression(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation, and mean squared error."""
    labels = np.asarray(labels, dtype=float).ravel()
    predictions = np.asarray(predictions, dtype=float).ravel()
    return {
        "pearson": _pearson(labels, predictions),
        "spearman": _pearson(_ranks(labels), _ranks(predictions)),
        "mse": float(np.mean((labels - predictions) ** 2)),
    }


def entities(tags: list[str]) -> set[tuple[str, int, int]]:
    """Entity spans `(type, start, end)` from BIO, BIOES, BILOU or BMES tags (`B-PER`, `M-PER`, `E-PER`,
    `S-PER`, `O`).

    A span opens at B or S (or at I/M/E of another type, as conlleval does) and closes at E, S,
    O, or a tag of another type. BILOU's L and U are read as E and S.
    """
    spans = set()
    start, kind = None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, name = tag.partition("-") if "-" in tag else (tag, "", "")
        prefix = {"L": "E", "U": "S"}.get(prefix.upper(), prefix.upper())
        continues = kind is not None and name == kind and prefix in ("I", "M", "E")
        if not continues:
            if kind is not None:
                spans.add((kind, start, i))
            start, kind = (i, name) if prefix in ("B", "I", "M", "E", "S") and name else (None, None)
        if kind is not None and prefix in ("E", "S"):
            spans.add((kind, start, i + 1))
            start, kind = None, None
    return spans


def entity_scores(true_tags: list[list[str]], predicted_tags: list[list[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 (micro over all entities), and token accuracy."""
    tp = predicted = actual = 0
    correct_tokens = total_tokens = 0
    for gold, guess in zip(true_tags, predicted_tags, strict=False):
        g, p = entities(gold), entities(guess)
        tp += len(g & p)
        predicted += len(p)
        actual += len(g)
        correct_tokens += sum(a == b for a, b in zip(gold, guess, strict=False))
        total_tokens += len(gold)
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": correct_tokens / max(total_tokens, 1)}


def main_metric(task: TaskConfig) -> str:
    """The metric that heads the curves and names the best model."""
    return task.metric()


def compute_fn(task: TaskConfig, label_names: list[str] | None) -> Callable[[Any], dict[str, float]]:
    """The `compute_metrics` function the Trainer calls with `(logits, labels)`."""
    extra = [load_evaluate_module(name) for name in task.evaluate_modules]

    def compute(eval_pred) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        if task.type == "token_classification":
            gold, guess = _tags(logits, labels, label_names)
            scores = entity_scores(gold, guess)
            flat_pred = (
                np.concatenate([[label_names.index(t) for t in row] for row in guess]) if guess else np.array([])
            )
            flat_gold = np.concatenate([[label_names.index(t) for t in row] for row in gold]) if gold else np.array([])
        elif task.problem_type == "regression":
            flat_pred, flat_gold = logits.squeeze(-1), labels
            scores = regression(labels, flat_pred)
        elif task.problem_type == "multi_label_classification":
            flat_pred, flat_gold = (logits > 0).astype(int), labels
            scores = multilabel(labels, flat_pred)
        else:
            flat_pred, flat_gold = logits.argmax(-1), labels
            scores = classification(labels, flat_pred, len(label_names))
        for module in extra:
            result = module.compute(predictions=flat_pred, references=flat_gold)
            scores.update(
                {f"{module.name}_{k}" if k in scores else k: float(v) for k, v in result.items() if np.isscalar(v)}
            )
        return scores

    return compute


def _tags(logits, labels, label_names: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted tags of each sentence, at the scored positions (the first piece of each word);
    the predicted ones decoded as a sequence the tagging scheme allows (`decoding.decode`)."""
    gold, guess = [], []
    predicted = decoding.decode(logits, np.asarray(labels) != -100, label_names)
    for pred_row, label_row in zip(predicted, labels, strict=True):
        keep = label_row != -100
        gold.append([label_names[i] for i in label_row[keep]])
        guess.append([label_names[i] for i in pred_row[keep]])
    return gold, guess


def per_class(task: TaskConfig, label_names: list[str] | None, logits, labels) -> dict[str, Any] | None:
    """Precision, recall, F1 and support of each class (each entity type for token classification),
    and for single-label classification the confusion matrix (rows: true labels, columns: predicted).
    None for regression."""
    if label_names is None:
        return None
    if isinstance(logits, tuple):
        logits = logits[0]
    if task.type == "token_classification":
        return {"classes": entity_types(*_tags(logits, labels, label_names))}
    if task.problem_type == "multi_label_classification":
        gold, guess = np.asarray(labels) > 0.5, np.asarray(logits) > 0
        tp = (gold & guess).sum(axis=0)
        return {"classes": _table(label_names, tp, guess.sum(axis=0), gold.sum(axis=0))}
    gold, guess = np.asarray(labels, dtype=np.int64), np.asarray(logits).argmax(-1)
    confusion = np.zeros((len(label_names), len(label_names)), dtype=np.int64)
    np.add.at(confusion, (gold, guess), 1)
    classes = _table(label_names, np.diag(confusion), confusion.sum(axis=0), confusion.sum(axis=1))
    return {"classes": classes, "confusion": confusion.tolist()}


def entity_types(true_tags: list[list[str]], predicted_tags: list[list[str]]) -> dict[str, dict[str, float]]:
    """Entity-level precision, recall, F1 and support of each entity type (BIO, BIOES, BILOU or BMES tags)."""
    counts: dict[str, list[int]] = {}  # type -> [true positives, predicted, actual]
    for gold, guess in zip(true_tags, predicted_tags, strict=False):
        g, p = entities(gold), entities(guess)
        for kind, *_ in g | p:
            counts.setdefault(kind, [0, 0, 0])
        for kind, *_ in g & p:
            counts[kind][0] += 1
        for kind, *_ in p:
            counts[kind][1] += 1
        for kind, *_ in g:
            counts[kind][2] += 1
    kinds = sorted(counts)
    columns = np.array([counts[k] for k in kinds]).reshape(-1, 3).T if kinds else np.zeros((3, 0))
    return _table(kinds, *columns)


def _table(names: list[str], tp, predicted, actual) -> dict[str, dict[str, float]]:
    tp, predicted, actual = (np.asarray(x, dtype=float) for x in (tp, predicted, actual))
    precision, recall = _divide(tp, predicted), _divide(tp, actual)
    f1 = _divide(2 * precision * recall, precision + recall)
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(actual[i]),
        }
        for i, name in enumerate(names)
    }


def worst_class(per: dict[str, Any] | None) -> tuple[str, float] | None:
    """The class (with examples) of lowest F1, for the summary line."""
    classes = {k: v for k, v in ((per or {}).get("classes") or {}).items() if v["support"] > 0}
    if not classes:
        return None
    name = min(classes, key=lambda k: classes[k]["f1"])
    return name, classes[name]["f1"]


def load_evaluate_module(name: str):
    """An `evaluate` metric from a local path, or from the Hub when online."""
    import evaluate

    try:
        return evaluate.load(name)
    except Exception as e:  # evaluate raises FileNotFoundError offline, others for broken scripts
        raise HfadaptError(
            f"task.evaluate_modules: cannot load {name!r} ({type(e).__name__}); offline, give "
            "the path of a local metric script"
        ) from None


def _divide(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def _matthews(confusion: np.ndarray) -> float:
    t = confusion.sum(axis=1).astype(float)
    p = confusion.sum(axis=0).astype(float)
    c = float(np.trace(confusion))
    s = float(confusion.sum())
    denominator = np.sqrt((s * s - (p * p).sum()) * (s * s - (t * t).sum()))
    return float((c * s - (t * p).sum()) / denominator) if denominator else 0.0


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks, ties sharing the mean of their positions."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = np.arange(len(x), dtype=float)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]
