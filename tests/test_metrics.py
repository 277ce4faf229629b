"""Local metrics agree with scikit-learn and scipy; entity spans follow BIO, BIOES and BMES."""

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_score, recall_score

from hfadapt.model import metrics


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


@pytest.mark.integration
def test_unknown_evaluate_module_is_a_clear_error():
    from hfadapt.errors import HfadaptError

    with pytest.raises(HfadaptError, match="task.evaluate_modules: cannot load 'no_such_metric_xyz'"):
        metrics.load_evaluate_module("no_such_metric_xyz")


def test_per_class_figures_equal_scikit_learns_on_the_same_predictions():
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    from hfadapt.recipe import TaskConfig

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=300)
    logits = rng.normal(size=(300, 4))
    logits[np.arange(300), labels] += rng.normal(1.0, 1.0, size=300)  # right more often than not
    names = ["a", "b", "c", "d"]
    per = metrics.per_class(TaskConfig(), names, logits, labels)
    p, r, f, s = precision_recall_fscore_support(labels, logits.argmax(-1), labels=range(4), zero_division=0)
    for i, name in enumerate(names):
        got = per["classes"][name]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert per["confusion"] == confusion_matrix(labels, logits.argmax(-1), labels=range(4)).tolist()
    assert metrics.worst_class(per) == (names[int(np.argmin(f))], pytest.approx(f.min()))


def test_per_entity_type_figures_count_whole_entities():
    gold = [["B-PER", "I-PER", "O", "S-LOC"], ["B-ORG", "E-ORG", "O", "O"]]
    guess = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "E-ORG", "S-LOC", "O"]]
    types = metrics.entity_types(gold, guess)
    assert types["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert types["ORG"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    # one LOC in the gold, one (elsewhere) in the guess: neither matches
    assert types["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_per_label_figures_for_multi_label():
    from sklearn.metrics import precision_recall_fscore_support

    from hfadapt.recipe import TaskConfig

    labels = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=float)
    logits = np.array([[2.0, -1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, -1]])
    per = metrics.per_class(TaskConfig(problem_type="multi_label_classification"), ["x", "y", "z"], logits, labels)
    p, r, f, s = precision_recall_fscore_support(labels, logits > 0, zero_division=0)
    assert [per["classes"][n]["f1"] for n in "xyz"] == pytest.approx(list(f))
    assert [per["classes"][n]["support"] for n in "xyz"] == list(s)
    assert "confusion" not in per
