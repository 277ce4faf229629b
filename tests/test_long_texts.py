"""Texts longer than data.max_length: head and tail, windows that carry the text's label, pooled per text."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from conftest import FILLER, NEGATIVE, POSITIVE, write_csv
from transformers import AutoTokenizer

from hfadapt import evaluate, finetune, load_recipe, predict
from hfadapt.data.long_texts import encode, pool_windows
from hfadapt.errors import RecipeError
from hfadapt.recipe import DataConfig

LONG = " ".join(f"{FILLER[i % len(FILLER)]} {i}" for i in range(60))  # 120 words, well over 32 tokens


def _content(tokenizer, ids: list[int]) -> list[int]:
    return [i for i in ids if i not in tokenizer.all_special_ids]


@pytest.mark.parametrize("stride", [0, 5, 16])
def test_windows_cover_every_token_of_a_long_text_once_with_the_stride_given(tiny_checkpoint, stride):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    data = DataConfig(source="x", max_length=32, long_texts="windows", stride=stride)
    whole = _content(tokenizer, tokenizer(LONG)["input_ids"])
    rows = encode(tokenizer, [LONG, "good film"], data)
    windows = [_content(tokenizer, ids) for ids, doc in zip(rows["input_ids"], rows["doc"], strict=True) if doc == 0]
    assert rows["doc"][-1] == 1 and rows["doc"].count(1) == 1  # a short text is one window
    assert all(len(ids) <= 32 for ids in rows["input_ids"])
    assert len(windows) > 2
    rebuilt = list(windows[0])
    for before, window in zip(windows, windows[1:], strict=False):
        assert window[:stride] == before[len(before) - stride :]  # each window repeats `stride` tokens
        rebuilt += window[stride:]  # and then reads only new ones
    assert rebuilt == whole  # every token, once, in order


def test_head_tail_keeps_the_first_quarter_of_the_room_and_the_end(tiny_checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    data = DataConfig(source="x", max_length=32, long_texts="head_tail")
    whole = _content(tokenizer, tokenizer(LONG)["input_ids"])
    rows = encode(tokenizer, [LONG, "good film"], data)
    ids = rows["input_ids"][0]
    assert len(ids) == 32 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    room, head = 30, 7  # 32 less [CLS] and [SEP]; a quarter of 30
    assert ids[1:-1] == whole[:head] + whole[-(room - head) :]
    # a text that fits is encoded as the tokenizer alone would
    assert rows["input_ids"][1] == tokenizer("good film")["input_ids"]
    assert set(rows) == set(tokenizer("good film"))


def test_pooling_averages_each_texts_window_logits():
    logits = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0], [2.0, 2.0], [4.0, 0.0]], dtype=np.float32)
    labels = np.array([1, 1, 0, 1, 1])
    pooled, first = pool_windows(logits, [0, 0, 1, 2, 2], labels)
    assert pooled.tolist() == [[2.0, 1.0], [0.0, 5.0], [3.0, 1.0]]
    assert first.tolist() == [1, 0, 1] and pooled.dtype == np.float32


def _long_reviews(path, n=300):
    """Long reviews whose sentiment words come last: truncation at 32 tokens cuts them off."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        label = rng.random() < 0.5
        words = [rng.choice(FILLER) for _ in range(40)] + rng.sample(POSITIVE if label else NEGATIVE, 2)
        rows.append({"text": " ".join(words) + f" {i}", "label": "positive" if label else "negative"})
    return write_csv(path, rows)


@pytest.mark.integration
def test_head_tail_and_windows_read_the_end_that_truncation_loses(tiny_checkpoint, tmp_path):
    source = _long_reviews(tmp_path / "long.csv")
    results = {}
    for strategy in ("truncate", "head_tail", "windows"):
        raw = {
            "model": {"name_or_path": str(tiny_checkpoint)},
            "data": {"source": str(source), "max_length": 32, "long_texts": strategy},
            "training": {"num_train_epochs": 3, "learning_rate": 5.0e-3, "per_device_train_batch_size": 16},
            "output": {"dir": str(tmp_path / strategy)},
        }
        results[strategy] = finetune(raw).metrics
    accuracy = {s: r["test"]["test_accuracy"] for s, r in results.items()}
    # windows learn the end from half their windows (the first window of a text has no cue), so on this
    # tiny model they lead truncation by a margin that moves with the thread count, not by a fixed level
    assert accuracy["truncate"] < 0.65 and accuracy["windows"] > accuracy["truncate"] + 0.1, accuracy
    assert accuracy["head_tail"] > 0.9, accuracy
    windows = results["windows"]
    # scored per text, not per window: the per-class supports add up to the test texts
    supports = sum(c["support"] for c in windows["per_class"]["test"]["classes"].values())
    assert supports == windows["data"]["sizes"]["test"]
    report = windows["data"]["truncation"]
    assert report["train"]["tokens_kept"] == 1.0 and report["long_texts"] == "windows"
    assert report["train"]["windows_per_text"] == pytest.approx(2.0)  # 43-44 words: two windows of 30
    # a reloaded run scores the test split as training did, and predict pools the same windows
    again = evaluate(tmp_path / "windows")
    assert again["test_accuracy"] == pytest.approx(accuracy["windows"])
    saved = json.loads((tmp_path / "windows" / "metrics.json").read_text())
    assert saved["test"]["test_accuracy"] == pytest.approx(accuracy["windows"])
    [one] = predict(tmp_path / "windows", [LONG + " good great"], progress=False)
    assert one["label"] in ("positive", "negative") and 0.5 <= one["score"] <= 1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["task.type=token_classification", "data.long_texts=head_tail"],
            "data.long_texts: head_tail drops the middle of a text, and token classification tags every word; "
            "use windows (long sentences read in overlapping windows) or truncate",
        ),
        (
            ["data.text_pair_column=title", "data.long_texts=head_tail"],
            "data.long_texts: head_tail reads single texts; text pairs are cut by truncation (set "
            "data.long_texts: truncate)",
        ),
        (
            ["data.stride=8"],
            "data.stride: only used with data.long_texts: windows (it is truncate); remove it or set "
            "data.long_texts: windows",
        ),
        (
            ["data.long_texts=windows", "data.stride=100"],
            "data.stride: must be 0 or more and at most half of data.max_length (64), got 100",
        ),
    ],
)
def test_long_text_settings_that_cannot_work_are_refused(overrides, message):
    raw = {"model": {"name_or_path": "m"}, "data": {"source": "d.csv"}, "output": {"dir": "o"}}
    with pytest.raises(RecipeError) as caught:
        load_recipe(raw=raw, overrides=overrides)
    assert caught.value.problems == [message]


def _long_sentences(n: int) -> list[dict]:
    """Sentences of 40 words with a city near the start and one near the end: a cut at 16 tokens loses the second."""
    rng = random.Random(1)
    rows = []
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(40)]
        tags = ["O"] * 40
        for place in (2, 36):
            words[place], tags[place] = rng.choice(["paris", "london", "berlin"]), "S-LOC"
        rows.append({"tokens": words + [str(i)], "tags": tags + ["O"]})
    return rows


def test_word_windows_hold_every_word_first_piece_and_pool_back_to_the_sentence(tiny_checkpoint):
    from hfadapt.data.long_texts import encode_word_windows, pool_word_windows

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    sentences = [row["tokens"] for row in _long_sentences(3)] + [["paris", "today"]]
    rows = encode_word_windows(tokenizer, sentences, max_length=16, stride=4)
    assert rows["doc"].count(3) == 1 and rows["doc"].count(0) > 2  # a short sentence: one window
    for d, words in enumerate(sentences):
        held = {w for doc, row in zip(rows["doc"], rows["word"], strict=True) if doc == d for w in row if w >= 0}
        assert held == set(range(len(words)))
    assert all(len(ids) <= 16 for ids in rows["input_ids"])
    # a "model" whose logits at a word's first piece are its word index: pooling gives every word back
    width = max(len(ids) for ids in rows["input_ids"])
    logits = np.zeros((len(rows["input_ids"]), width, 64), dtype=np.float32)
    for r, row in enumerate(rows["word"]):
        for position, word in enumerate(row):
            if word >= 0:
                logits[r, position, word] = 1.0
    pooled, _ = pool_word_windows(logits, rows["doc"], rows["word"])
    for d, words in enumerate(sentences):
        assert pooled[d, : len(words)].argmax(-1).tolist() == list(range(len(words)))
    # truncation: one row per sentence, the words past the cut held by none
    cut = encode_word_windows(tokenizer, sentences, max_length=16)
    assert cut["doc"] == [0, 1, 2, 3] and max(cut["word"][0]) < 40


@pytest.mark.integration
def test_windows_tag_the_words_of_long_sentences_that_truncation_loses(tiny_checkpoint, tmp_path):
    source = tmp_path / "ner.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in _long_sentences(150)))
    runs = {}
    for strategy in ("truncate", "windows"):
        raw = {
            "model": {"name_or_path": str(tiny_checkpoint)},
            "task": {"type": "token_classification"},
            "data": {
                "source": str(source),
                "text_column": "tokens",
                "label_column": "tags",
                "max_length": 16,
                "long_texts": strategy,
            },
            "training": {"num_train_epochs": 4, "learning_rate": 5.0e-3, "per_device_train_batch_size": 16},
            "output": {"dir": str(tmp_path / strategy)},
        }
        runs[strategy] = finetune(raw)
    support = {
        s: sum(c["support"] for c in run.metrics["per_class"]["test"]["classes"].values()) for s, run in runs.items()
    }
    sentences = runs["windows"].metrics["data"]["sizes"]["test"]
    # truncation scores the words it kept: the second city of every sentence is lost without a trace;
    # windows score every word of whole sentences, and find both
    assert support == {"truncate": sentences, "windows": 2 * sentences}
    assert runs["windows"].metrics["test"]["test_f1"] > 0.9, runs["windows"].metrics["test"]
    row = _long_sentences(1)[0]["tokens"]
    sentence = " ".join(row)
    starts = [m.start() for m in re.finditer(r"\S+", sentence)]
    [tagged] = predict(tmp_path / "windows", [sentence], progress=False)
    assert len(tagged["tags"]) == 41
    assert [(e["text"], e["start"]) for e in tagged["entities"]] == [(row[2], starts[2]), (row[36], starts[36])]
    [cut] = predict(tmp_path / "truncate", [sentence], progress=False)
    assert len(cut["tags"]) == 41 and cut["tags"][36] == "O"  # past the cut: never read
    assert evaluate(tmp_path / "windows")["test_f1"] == pytest.approx(runs["windows"].metrics["test"]["test_f1"])
    pytest.importorskip("onnxruntime")
    from hfadapt import export_onnx

    exported = export_onnx(tmp_path / "windows", tmp_path / "onnx", quantize="int8")["int8"]
    assert exported["examples"] == sentences  # the export's check pools windows back to sentences
    assert exported["fp32"] == pytest.approx(runs["windows"].metrics["test"]["test_f1"], abs=0.05)
