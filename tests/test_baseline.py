"""The TF-IDF baseline: what it learns, how it reads Chinese, and where a run and an advice show it."""

import json
import random

import numpy as np
import pytest
from conftest import sentiment_rows

from hfadapt import finetune, load_recipe
from hfadapt.advice.compare import compare
from hfadapt.advice.report import render
from hfadapt.advice.verdict import against_baseline
from hfadapt.cli import _print_summary
from hfadapt.data.splits import TaskData
from hfadapt.model import baseline
from hfadapt.recipe import TaskConfig
from hfadapt.runs import card

SINGLE = TaskConfig()
FILLER = "the a of and to in is was it for on with as at by this that from or but".split()
HAN_FILLER = (  # common characters, without the two keywords
    "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能都然没"
    "日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理"
    "美点月明"
)


def keyword_texts(keywords, count, seed):
    """Texts of random filler with one keyword each; the label is the keyword's index."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(count):
        label = i % len(keywords)
        words = rng.sample(FILLER, 8) + [keywords[label]]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def han_texts(count, seed):
    """Chinese texts (no spaces) of random characters, with 好 (label 1) or 差 (label 0) somewhere in them."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(count):
        label = i % 2
        chars = rng.sample(HAN_FILLER, 12) + ["好" if label else "差"]
        rng.shuffle(chars)
        texts.append("".join(chars))
        labels.append(label)
    return texts, labels


def test_a_keyword_per_class_is_learnt_and_scored_with_the_runs_metrics():
    train, y_train = keyword_texts(["apple", "banana", "cherry"], 150, seed=0)
    test, y_test = keyword_texts(["apple", "banana", "cherry"], 60, seed=1)
    found = baseline.fit(SINGLE, train, y_train, test, y_test, ["apple", "banana", "cherry"])
    assert found.method == "TF-IDF word 1-2-grams + logistic regression"
    assert found.metric == "accuracy" and found.score == 1.0 and found.metrics["f1_macro"] == 1.0
    assert list(found.predictions) == y_test and (found.train_size, found.eval_size) == (150, 60)
    saved = found.to_dict()
    assert "predictions" not in saved and json.loads(json.dumps(saved)) == saved
    assert saved["score"] == 1.0 and saved["reason"] is None
    # the task's main metric heads it: macro F1 with class weights
    weighted = baseline.fit(TaskConfig(class_weights="auto"), train, y_train, test, y_test, ["a", "b", "c"])
    assert weighted.metric == "f1_macro"


def test_chinese_and_japanese_are_read_as_characters():
    assert baseline.is_cjk(["今天天气很好，我们去公园散步。"]) and baseline.is_cjk(["きょうはいいてんきですね"])
    assert not baseline.is_cjk(["The weather is fine today.", "我 is a single Han character in English text"])
    assert not baseline.is_cjk(["12345 !!!"])
    train, y_train = han_texts(200, seed=0)
    test, y_test = han_texts(100, seed=1)
    chars = baseline.fit(SINGLE, train, y_train, test, y_test, ["bad", "good"])
    assert chars.method == "TF-IDF character 1-3-grams + logistic regression" and chars.score >= 0.95
    # read as words, each text is one unseen token: the keyword is lost
    words = baseline.fit(SINGLE, train, y_train, test, y_test, ["bad", "good"], language="en")
    assert words.method.startswith("TF-IDF word") and words.score < 0.7
    assert baseline.fit(SINGLE, test, y_test, test, y_test, language="zh-CN").method.startswith("TF-IDF character")


def test_character_n_grams_are_counted_within_each_text_lowercased_with_runs_of_spaces_as_one():
    counts = baseline._char_counts(["ab", "cd", "A  b", ""])
    assert counts.shape == (4, baseline.CHAR_BUCKETS)
    # "ab": a, b, ab; no n-gram reaches from one text into the next; "a b": 3 + 2 + 1
    assert np.asarray(counts.sum(axis=1)).ravel().tolist() == [3, 3, 6, 0]
    assert (counts[0] != baseline._char_counts(["AB"])[0]).nnz == 0


def test_regression_uses_ridge_and_is_scored_by_pearson():
    rng = random.Random(0)

    def rows(count):
        texts, values = [], []
        for _ in range(count):
            ups = rng.randint(0, 4)
            texts.append(" ".join(rng.sample(FILLER, 6) + ["up"] * ups))
            values.append(float(ups))
        return texts, values

    (train, y_train), (test, y_test) = rows(200), rows(80)
    found = baseline.fit(TaskConfig(problem_type="regression"), train, y_train, test, y_test)
    assert found.method == "TF-IDF word 1-2-grams + ridge regression"
    assert found.metric == "pearson" and found.score > 0.9 and set(found.metrics) == {"pearson", "spearman", "mse"}


def test_several_labels_are_learnt_one_vs_rest():
    rng = random.Random(0)

    def rows(count):
        texts, labels = [], []
        for _ in range(count):
            has = [rng.random() < 0.5, rng.random() < 0.5]
            words = rng.sample(FILLER, 6) + ["apple"] * has[0] + ["banana"] * has[1]
            texts.append(" ".join(words))
            labels.append([float(h) for h in has])
        return texts, labels

    (train, y_train), (test, y_test) = rows(200), rows(80)
    found = baseline.fit(TaskConfig(problem_type="multi_label_classification"), train, y_train, test, y_test)
    assert found.method == "TF-IDF word 1-2-grams + one-vs-rest logistic regression"
    assert found.score == found.metrics["accuracy"] >= 0.95 and found.predictions.shape == (80, 2)


def test_no_baseline_for_token_classification_or_one_class_and_the_reason_is_given():
    tagging = baseline.fit(TaskConfig(type="token_classification"), ["a b"], [[0, 0]], ["a b"], [[0, 0]], ["O"])
    assert tagging.metrics is None and tagging.score is None and tagging.predictions is None
    assert tagging.reason == baseline.NO_TOKEN_BASELINE and tagging.to_dict()["reason"] == baseline.NO_TOKEN_BASELINE
    assert baseline.fit(SINGLE, ["a b", "c d"], [1, 1], ["a b"], [1]).reason == "the training texts have one class"
    assert baseline.fit(SINGLE, ["a", "b"], [0, 1], ["a"], [0]).reason == (
        "the training texts have no word of two letters or more"
    )


def test_splits_with_text_pairs_read_as_one_text():
    import datasets

    def split(rows):
        return datasets.Dataset.from_list(
            [{"text": "the question", "text_pair": f"it is {word} here", "label": label} for word, label in rows]
        )

    train = split([("apple", 0), ("banana", 1)] * 20)
    data = TaskData({"train": train, "test": split([("banana", 1), ("apple", 0)])}, ["a", "b"])
    found = baseline.fit_splits(SINGLE, data, "test")
    assert found.score == 1.0 and found.scored_on == "test" and found.to_dict()["scored_on"] == "test"


def test_pilots_are_compared_with_the_baseline_paired():
    truth = np.arange(200) % 2
    tfidf = np.where(np.arange(200) < 160, truth, 1 - truth)  # right on 160 of 200
    better = np.where(np.arange(200) < 190, truth, 1 - truth)  # right on those, and 30 more
    result = compare(SINGLE, "accuracy", ["a", "b"], truth, {"full": better, "lora": tfidf}, None, tfidf)
    assert result["tfidf"]["validation_metric"] == 0.8
    full, lora = result["pilots"]["full"], result["pilots"]["lora"]
    assert full["tfidf_difference"] == pytest.approx(0.15) and full["tfidf_difference_interval"][0] > 0.1
    assert lora["tfidf_difference"] == 0.0 and lora["tfidf_difference_interval"] == [0.0, 0.0]
    without = compare(SINGLE, "accuracy", ["a", "b"], truth, {"full": better})
    assert without["tfidf"] is None and without["pilots"]["full"]["tfidf_difference"] is None


TFIDF = {
    "method": "TF-IDF word 1-2-grams + logistic regression",
    "metric": "accuracy",
    "score": 0.8,
    "scored_on": "validation",
    "metrics": {"accuracy": 0.8},
    "train_size": 300,
    "eval_size": 100,
    "seconds": 1.2,
    "reason": None,
}


def pilot(difference, interval):
    return {
        "name": "lora",
        "steps": 40,
        "main_metric": "accuracy",
        "validation_metric": 0.8 + difference,
        "tfidf_difference": difference,
        "tfidf_difference_se": 0.01,
        "tfidf_difference_interval": interval,
        "mlm_steps": 0,
    }


def test_the_verdict_says_whether_the_recommended_run_should_beat_the_baseline():
    assert against_baseline("full", [], TFIDF) == (
        "Not known without pilots; the TF-IDF baseline reaches a validation accuracy of 0.8000"
    )
    assert against_baseline("lora", [pilot(0.05, [0.02, 0.08])], TFIDF) == (
        "Expected to beat it: after 40 steps the lora pilot's validation accuracy is 0.8500 against the baseline's "
        "0.8000 (+0.0500; paired 95% interval +0.0200 to +0.0800); the pilot is already above it, and the full run "
        "trains longer"
    )
    below = against_baseline("lora", [pilot(-0.05, [-0.08, -0.02])], TFIDF)
    assert below.startswith("Not shown by the pilot: ") and below.endswith(
        "must gain at least 0.0200 over it to beat it"
    )
    assert against_baseline("lora", [pilot(0.01, [-0.02, 0.04])], TFIDF).endswith("an interval that holds 0")
    assert against_baseline("full", [pilot(0.05, [0.02, 0.08])], TFIDF).startswith("Not known: no full pilot ran")
    none = {**TFIDF, "score": None, "metrics": None, "method": None, "reason": baseline.NO_TOKEN_BASELINE}
    assert (
        against_baseline("full", [], none) == f"Not known: there is no TF-IDF baseline ({baseline.NO_TOKEN_BASELINE})"
    )


def advice_without_pilots(tfidf):
    side = {"unk_rate": 0.0, "tokens_per_char": 0.2, "tokens_per_word": 1.1, "split_3plus": 0.0}
    side.update(char_coverage=1.0, vocab_size=300)
    recipe = load_recipe(raw={"model": {"name_or_path": "m"}, "data": {"source": "d.csv"}, "output": {"dir": "o"}})
    return {
        "model": "m",
        "data": "d.csv",
        "data_report": {"sizes": {"train": 300, "validation": 100, "test": 100}},
        "main_metric": "accuracy",
        "budget": {"steps": None, "minutes": None, "steps_per_pilot": None},
        "fit": {"texts": 300, "checkpoint": side, "new": side, "truncation": None, "length": None},
        "probe": None,
        "tfidf_baseline": tfidf,
        "skipped": ["retrain"],
        "comparison": None,
        "pilots": [],
        "verdict": {
            "strategy": "full",
            "reasons": ["no pilots"],
            "tfidf_baseline": against_baseline("full", [], tfidf),
        },
        "estimate": None,
        "recommended": recipe.to_dict(),
    }


def test_the_advice_report_shows_the_baseline_and_the_verdict_on_it():
    report = render(advice_without_pilots(TFIDF))
    assert "**Against the TF-IDF baseline:** Not known without pilots; the TF-IDF baseline reaches" in report
    assert "## TF-IDF baseline" in report
    assert (
        "TF-IDF word 1-2-grams + logistic regression, trained on the 300 training texts and scored on the 100 "
        "validation texts the pilots predict, in 1 s: validation accuracy 0.8000." in report
    )
    none = {**TFIDF, "score": None, "metrics": None, "method": None, "reason": baseline.NO_TOKEN_BASELINE}
    assert f"None: {baseline.NO_TOKEN_BASELINE}." in render(advice_without_pilots(none))


def run_metrics(cheap):
    return {
        "test": {"test_accuracy": 0.9},
        "validation": {"validation_accuracy": 0.91},
        "main_metric": "accuracy",
        "baseline": cheap,
    }


def test_the_card_and_the_summary_show_the_baseline(capsys):
    recipe = load_recipe(raw={"model": {"name_or_path": "m"}, "data": {"source": "d.csv"}, "output": {"dir": "o"}})
    cheap = {**TFIDF, "scored_on": "test"}
    text = card.render(recipe, run_metrics(cheap), "m", "run")
    assert (
        "Baseline: TF-IDF word 1-2-grams + logistic regression, trained on the same 300 training texts in 1 s: "
        "test accuracy 0.8000; this model: 0.9000 (+0.1000)." in text
    )
    none = {**cheap, "score": None, "metrics": None, "method": None, "reason": baseline.NO_TOKEN_BASELINE}
    assert f"No TF-IDF baseline: {baseline.NO_TOKEN_BASELINE}." in card.render(recipe, run_metrics(none), "m", "run")
    assert "Baseline" not in card.render(recipe, run_metrics(None), "m", "run")  # a run from before the baseline
    _print_summary(run_metrics(cheap))
    assert capsys.readouterr().out.splitlines() == [
        "baseline, TF-IDF word 1-2-grams + logistic regression: test accuracy 0.8000 (1 s)",
        "test accuracy: 0.9000",  # the run's own line stays the last
    ]


@pytest.mark.integration
@pytest.mark.usefixtures("one_torch_thread")
def test_a_run_reports_the_baseline_on_its_test_split(tiny_recipe):
    raw = tiny_recipe(training={"max_steps": 2})
    results = finetune(load_recipe(raw=raw)).metrics
    run = load_recipe(raw=raw).output_path()
    saved = json.loads((run / "metrics.json").read_text())
    cheap = saved["baseline"]
    assert cheap == results["baseline"] and cheap["scored_on"] == "test" and cheap["metric"] == "accuracy"
    # the sentiment words give the label away: the baseline learns them
    assert cheap["score"] > 0.9 and cheap["eval_size"] == saved["data"]["sizes"]["test"]
    assert (
        cheap["train_size"]
        == saved["data"]["sizes"]["train"]
        == len(sentiment_rows(400)) - cheap["eval_size"] - (saved["data"]["sizes"]["validation"])
    )
    assert "Baseline: TF-IDF word 1-2-grams + logistic regression" in (run / "README.md").read_text()
