"""Local metrics agree with scikit-learn and scipy; entity spans follow BIO, BIOES and BMES."""

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_score, recall_score

from hfadapt import metrics


@pytest.mark.parametrize("num_labels, seed", [(2, 0), (3, 1), (5, 2)])
def test_classification_matches_sklearn(num_labels, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_labels, 300)
    predictions = np.where(rng.random(300) < 0.7, labels, rng.integers(0, num_labels, 300))
    got = metrics.classification(labels, predictions, num_labels)
    assert got["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    assert got["f1_macro"] == pytest.approx(f1_score(labels, predictions, average="macro"))
    assert got["precision_macro"] == pytest.approx(precision_score(labels, predictions, average="macro"))
    assert got["recall_macro"] == pytest.approx(recall_score(labels, predictions, average="macro"))
    assert got["f1_micro"] == pytest.approx(f1_score(labels, predictions, average="micro"))
    assert got["matthews_correlation"] == pytest.approx(matthews_corrcoef(labels, predictions))


def test_multilabel_matches_sklearn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, (200, 4))
    predictions = np.where(rng.random((200, 4)) < 0.8, labels, 1 - labels)
    got = metrics.multilabel(labels, predictions)
    assert got["f1_micro"] == pytest.approx(f1_score(labels, predictions, average="micro"))
    assert got["f1_macro"] == pytest.approx(f1_score(labels, predictions, average="macro"))
    assert got["accuracy"] == pytest.approx(accuracy_score(labels, predictions))


def test_regression_matches_scipy_with_ties():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 5, 100).astype(float)  # many ties
    predictions = labels + rng.normal(0, 1, 100)
    got = metrics.regression(labels, predictions)
    assert got["pearson"] == pytest.approx(pearsonr(labels, predictions)[0])
    assert got["spearman"] == pytest.approx(spearmanr(labels, predictions)[0])


@pytest.mark.parametrize(
    "tags, spans",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], {("PER", 0, 2), ("LOC", 3, 4)}),
        (["B-ORG", "M-ORG", "E-ORG", "S-LOC", "O"], {("ORG", 0, 3), ("LOC", 3, 4)}),
        (["S-PER", "S-PER"], {("PER", 0, 1), ("PER", 1, 2)}),
        (["I-PER", "I-PER", "B-PER"], {("PER", 0, 2), ("PER", 2, 3)}),  # conlleval: I after O opens a span
        (["B-PER", "I-LOC"], {("PER", 0, 1), ("LOC", 1, 2)}),  # a change of type closes the span
        (["O", "O"], set()),
    ],
)
def test_entity_spans(tags, spans):
    assert metrics.entities(tags) == spans


def test_entity_scores_count_whole_entities_only():
    gold = [["B-PER", "E-PER", "O", "S-LOC"]]
    guess = [["B-PER", "E-PER", "O", "O"]]
    scores = metrics.entity_scores(gold, guess)
    assert scores["precision"] == 1.0 and scores["recall"] == 0.5 and scores["f1"] == pytest.approx(2 / 3)
    partial = metrics.entity_scores([["B-PER", "M-PER", "E-PER"]], [["B-PER", "E-PER", "O"]])
    assert partial["f1"] == 0.0  # a span with the wrong end is wrong


def test_unknown_evaluate_module_is_a_clear_error():
    from hfadapt.errors import HfadaptError

    with pytest.raises(HfadaptError, match="task.evaluate_modules: cannot load 'no_such_metric_xyz'"):
        metrics.load_evaluate_module("no_such_metric_xyz")
