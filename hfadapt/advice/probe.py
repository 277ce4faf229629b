"""The tokenizer's fit and a linear probe: what the checkpoint's tokens let a model read, in seconds."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hfadapt.advice.compare import RESAMPLES, SEED, interval
from hfadapt.recipe import Recipe


def token_probe(old, new, task_data, recipe: Recipe) -> dict[str, Any] | None:
    """What each tokenizer's tokens let a model read, in seconds: the validation accuracy of a
    logistic regression on TF-IDF weights of the token ids and id bigrams (the texts cut at
    data.max_length tokens, as the model sees them; a text pair as one row of both texts' tokens), trained
    on the training split.

    [UNK] is one id, so whatever the checkpoint's vocabulary turns into it is lost to the linear
    model as it is to the network. The two are compared paired, on the same validation texts: the
    95% interval of the accuracy difference (new less checkpoint) over the same bootstrap resamples
    as the pilots' (compare.RESAMPLES, compare.SEED). None where the task is not single-label text
    classification.
    """
    if recipe.task.type != "sequence_classification" or recipe.task.problem_type not in (
        None,
        "single_label_classification",
    ):
        return None
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    splits = task_data.splits
    labels = {name: list(splits[name]["label"]) for name in ("train", "validation")}
    if len(set(labels["train"])) < 2:
        return None
    began = time.perf_counter()
    scores, right = {}, {}
    for side, tokenizer in (("checkpoint", old), ("new", new)):

        def ids(name, tokenizer=tokenizer):
            split = splits[name]
            pairs = list(split["text_pair"]) if "text_pair" in split.column_names else None
            encoded = tokenizer(
                list(split["text"]), pairs, add_special_tokens=False, truncation=True, max_length=recipe.data.max_length
            )
            return [[str(i) for i in row] for row in encoded["input_ids"]]

        vectorizer = TfidfVectorizer(
            analyzer=lambda row: row + [f"{a} {b}" for a, b in zip(row, row[1:], strict=False)], sublinear_tf=True
        )
        classifier = LogisticRegression(C=4.0, max_iter=2000).fit(
            vectorizer.fit_transform(ids("train")), labels["train"]
        )
        predicted = classifier.predict(vectorizer.transform(ids("validation")))
        right[side] = np.asarray(predicted) == np.asarray(labels["validation"])
        scores[side] = float(right[side].mean())
    size = len(labels["validation"])
    draws = np.random.default_rng(SEED).integers(0, size, size=(RESAMPLES, size))
    difference = right["new"][draws].mean(axis=1) - right["checkpoint"][draws].mean(axis=1)
    return {
        **scores,
        "validation_size": size,
        "difference_se": float(difference.std(ddof=1)),
        "difference_interval": interval(difference),
        "seconds": round(time.perf_counter() - began, 1),
    }
