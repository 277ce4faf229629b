"""Constrained tag decoding: Viterbi keeps each sentence to the sequences its tagging scheme allows, finds the best
of them, and is what entity scoring and predict use; labels that fit no scheme keep their argmax."""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from hfadapt.model import decoding, metrics

BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
BIOES = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
BMES = ["O", "B-LOC", "M-LOC", "E-LOC", "S-LOC"]


def decoded(probs: list[dict[str, float]], names: list[str]) -> tuple[list[str], list[str]]:
    """The greedy and the constrained tags of one sentence, given each word's tag probabilities
    (tags left out share what is left)."""
    rows = []
    for word in probs:
        rest = (1 - sum(word.values())) / (len(names) - len(word))
        rows.append([word.get(name, rest) for name in names])
    logits = np.log(np.array(rows))[None]
    tags = decoding.decode(logits, np.ones(logits.shape[:2], dtype=bool), names)[0]
    return [names[i] for i in logits[0].argmax(-1)], [names[i] for i in tags]


@pytest.mark.parametrize(
    ("names", "probs", "greedy", "expected"),
    [
        # BIO: I-PER right after O becomes B-PER
        (
            BIO,
            [{"O": 0.9}, {"O": 0.1, "B-PER": 0.35, "I-PER": 0.5}, {"I-PER": 0.7}],
            ["O", "I-PER", "I-PER"],
            ["O", "B-PER", "I-PER"],
        ),
        # BIO: I-LOC after B-PER, a change of type, becomes one LOC
        (BIO, [{"B-PER": 0.5, "B-LOC": 0.4}, {"I-LOC": 0.9}], ["B-PER", "I-LOC"], ["B-LOC", "I-LOC"]),
        # BMES: an end with no begin becomes a two-character entity
        (
            BMES,
            [{"O": 0.55, "B-LOC": 0.35}, {"E-LOC": 0.6, "S-LOC": 0.3}],
            ["O", "E-LOC"],
            ["B-LOC", "E-LOC"],
        ),
        # BIOES: an entity left open before O is closed
        (
            BIOES,
            [{"B-PER": 0.7, "O": 0.2}, {"I-PER": 0.6, "E-PER": 0.2, "O": 0.1}, {"O": 0.5, "E-PER": 0.3}],
            ["B-PER", "I-PER", "O"],
            ["B-PER", "I-PER", "E-PER"],
        ),
    ],
)
def test_greedy_tags_a_scheme_forbids_are_decoded_into_allowed_ones(names, probs, greedy, expected):
    assert decoded(probs, names) == (greedy, expected)


@pytest.mark.parametrize(
    ("names", "probs", "greedy", "expected"),
    [
        (BIO, [{"I-PER": 0.6, "B-PER": 0.3}], ["I-PER"], ["B-PER"]),  # a sentence does not open inside
        (BMES, [{"E-LOC": 0.6, "S-LOC": 0.3}, {"O": 0.9}], ["E-LOC", "O"], ["S-LOC", "O"]),
        (BMES, [{"M-LOC": 0.6, "B-LOC": 0.3}, {"E-LOC": 0.9}], ["M-LOC", "E-LOC"], ["B-LOC", "E-LOC"]),
        (BMES, [{"O": 0.9}, {"B-LOC": 0.6, "S-LOC": 0.3}], ["O", "B-LOC"], ["O", "S-LOC"]),  # nor end inside
        (BIOES, [{"B-PER": 0.9}, {"I-PER": 0.6, "E-PER": 0.3}], ["B-PER", "I-PER"], ["B-PER", "E-PER"]),
        (BIO, [{"B-PER": 0.9}, {"I-PER": 0.9}], ["B-PER", "I-PER"], ["B-PER", "I-PER"]),  # BIO ends anywhere
    ],
)
def test_sentences_start_and_end_outside_an_entity(names, probs, greedy, expected):
    assert decoded(probs, names) == (greedy, expected)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["O", "I-PER"], "IO"),
        (BIO, "BIO"),
        (["O", "B-PER"], "BIO"),
        (BIOES, "BIOES"),
        (["O", "b-loc", "e-loc", "s-loc"], "BIOES"),  # prefixes in either case, as entity scoring reads them
        (["O", "B-PER", "I-PER", "L-PER", "U-PER"], "BILOU"),
        (BMES, "BMES"),
        (["positive", "negative"], None),
        (["O", "PER", "LOC"], None),
        (["O", "B_PER", "I_PER"], None),  # entity scoring splits at a hyphen only
        (["O", "B-PER", "I-PER", "M-PER", "E-PER"], None),  # I and M: two schemes at once
        (["O", "B-PER", "S-PER"], None),  # an entity opened by B could never close
        (["O"], None),
    ],
)
def test_the_scheme_is_told_from_the_label_names(names, expected):
    assert decoding.scheme(names) == expected


@pytest.mark.parametrize("names", [["PER", "LOC", "O"], ["O", "B-PER", "I-PER", "M-PER", "E-PER"]])
def test_labels_that_fit_no_scheme_keep_their_argmax(names):
    logits = np.random.default_rng(0).normal(size=(3, 6, len(names)))
    mask = np.ones((3, 6), dtype=bool)
    assert decoding.transitions(names) is None
    assert (decoding.decode(logits, mask, names) == logits.argmax(-1)).all()


def test_a_sentence_no_sequence_fits_keeps_its_argmax():
    names = ["B-PER", "E-PER"]  # one word can be neither: B never closes, E never opens
    logits = np.array([[[2.0, 1.0], [0.0, 0.0]], [[2.0, 1.0], [0.0, 3.0]]])
    tags = decoding.decode(logits, np.array([[True, False], [True, True]]), names)
    assert tags.tolist() == [[0, 0], [0, 1]]


def test_bilou_tags_read_as_bioes_tags():
    assert metrics.entities(["B-PER", "I-PER", "L-PER", "U-LOC", "O"]) == {("PER", 0, 3), ("LOC", 3, 4)}


def canonical(tags: tuple[str, ...], scheme: str) -> list[str]:
    """The tags that write the entities `metrics.entities` reads from `tags`, in the scheme's own way."""
    begin, inside, end, single = {"IO": "IIII", "BIO": "BIBB", "BIOES": "BIES", "BILOU": "BILU", "BMES": "BMES"}[scheme]
    out = ["O"] * len(tags)
    for kind, start, stop in metrics.entities(list(tags)):
        out[start:stop] = [f"{inside}-{kind}"] * (stop - start)
        out[start] = f"{begin}-{kind}"
        if stop - start == 1:
            out[start] = f"{single}-{kind}"
        else:
            out[stop - 1] = f"{end if scheme in ('BIOES', 'BILOU', 'BMES') else inside}-{kind}"
    return out


@pytest.mark.parametrize("scheme", ["IO", "BIO", "BIOES", "BILOU", "BMES"])
def test_viterbi_finds_the_best_sequence_that_writes_whole_entities(scheme):
    """Brute force: a sequence is allowed when it is the scheme's own writing of the entities it holds."""
    prefixes = {"IO": "I", "BIO": "BI", "BIOES": "BIES", "BILOU": "BILU", "BMES": "BMES"}[scheme]
    names = ["O"] + [f"{p}-{kind}" for kind in ("A", "B") for p in prefixes]
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 2, size=(12, 7, len(names)))
    mask = rng.random((12, 7)) < 0.6  # gaps, as the later pieces of a word leave
    mask[0] = False
    tags = decoding.decode(logits, mask, names)
    assert (tags[~mask] == logits.argmax(-1)[~mask]).all()
    allowed = {
        n: np.array(
            [
                seq
                for seq in itertools.product(range(len(names)), repeat=n)
                if canonical(tuple(names[i] for i in seq), scheme) == [names[i] for i in seq]
            ]
        )
        for n in range(1, 5)
    }
    checked = 0
    for row in range(12):
        n = int(mask[row].sum())
        if n not in allowed:
            continue
        scores = logits[row, mask[row]] - np.log(np.exp(logits[row, mask[row]]).sum(-1, keepdims=True))
        got = tags[row, mask[row]]
        assert (allowed[n] == got).all(axis=1).any(), [names[i] for i in got]
        assert scores[np.arange(n), got].sum() == pytest.approx(scores[np.arange(n), allowed[n]].sum(1).max())
        checked += 1
    assert checked >= 6


def test_entity_scores_are_computed_on_the_decoded_tags():
    from hfadapt.recipe import TaskConfig

    names = BIO
    probs = np.full((2, 7, len(names)), 0.1)
    probs[0, 1:6] = [
        [0.9, 0.02, 0.02, 0.03, 0.03],  # word 0: O
        [0.02, 0.5, 0.02, 0.4, 0.06],  # word 1, first piece: B-PER, then B-LOC
        [0.02, 0.02, 0.9, 0.02, 0.04],  # word 1, second piece (unscored): I-PER
        [0.02, 0.02, 0.05, 0.01, 0.9],  # word 2: I-LOC
        [0.9, 0.02, 0.02, 0.03, 0.03],  # word 3: O
    ]
    probs[1, 1:3] = [[0.02, 0.9, 0.04, 0.02, 0.02], [0.02, 0.04, 0.9, 0.02, 0.02]]  # B-PER I-PER
    labels = np.full((2, 7), -100)
    labels[0, [1, 2, 4, 5]] = [0, 3, 4, 0]  # O B-LOC I-LOC O
    labels[1, [1, 2]] = [1, 2]
    logits = np.log(probs)
    scores = metrics.compute_fn(TaskConfig(type="token_classification"), names)(
        SimpleNamespace(predictions=logits, label_ids=labels)
    )
    keep = labels != -100
    greedy = [[names[i] for i in row[k]] for row, k in zip(logits.argmax(-1), keep, strict=True)]
    gold = [[names[i] for i in row[k]] for row, k in zip(labels, keep, strict=True)]
    assert greedy[0] == ["O", "B-PER", "I-LOC", "O"]  # a PER and a LOC, both wrong
    assert metrics.entity_scores(gold, greedy)["f1"] == pytest.approx(0.4)  # P 1/3, R 1/2
    assert scores["f1"] == 1.0 and scores["accuracy"] == 1.0


def test_predict_tags_words_with_the_decoded_sequence(tiny_checkpoint):
    import torch
    from transformers import AutoTokenizer

    from hfadapt.runs import tagging

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    assert tokenizer.tokenize("the film paris cast") == ["the", "film", "p", "##ar", "##i", "##s", "cast"]
    names = BIO
    table = torch.log(torch.tensor([0.01, 0.01, 0.96, 0.01, 0.01])).repeat(len(tokenizer), 1)  # I-PER elsewhere
    rows = {
        "the": [0.9, 0.02, 0.02, 0.03, 0.03],
        "film": [0.02, 0.5, 0.02, 0.4, 0.06],
        "p": [0.02, 0.02, 0.05, 0.01, 0.9],
    }
    rows["cast"] = rows["the"]
    for token, row in rows.items():
        table[tokenizer.convert_tokens_to_ids(token)] = torch.log(torch.tensor(row))

    def model(input_ids, **_):
        return SimpleNamespace(logits=table[input_ids])

    model.config = SimpleNamespace(id2label=dict(enumerate(names)))
    [result] = tagging.tag(model, tokenizer, ["the film paris cast"], 32, "cpu")
    assert result["tags"] == ["O", "B-LOC", "I-LOC", "O"]  # greedy: O B-PER I-LOC O
    [entity] = result["entities"]
    assert (entity["type"], entity["text"], entity["start"], entity["end"]) == ("LOC", "film paris", 4, 14)
    assert entity["score"] == pytest.approx((0.4 + 0.9) / 2)  # each word's probability of its chosen tag
