"""Evaluation and prediction read texts longest first, and give their outputs back in input order."""

import random

import numpy as np
import pytest
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

from hfadapt import predict
from hfadapt.data.long_texts import WindowPooling
from hfadapt.data.sampler import SortedEvaluation


class Sorted(SortedEvaluation, Trainer):
    pass


class SortedWindows(WindowPooling, SortedEvaluation, Trainer):
    pass


def texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = "good bad movie film plot great awful story acting fine".split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) for _ in range(n)]


@pytest.fixture
def tiny(tiny_checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_checkpoint, num_labels=3).eval()
    return model, tokenizer


def test_outputs_come_back_in_input_order_and_batches_are_read_longest_first(tiny, tmp_path):
    model, tokenizer = tiny
    data = Dataset.from_dict({"text": texts(50), "labels": [i % 3 for i in range(50)]})
    data = data.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
    args = TrainingArguments(str(tmp_path), per_device_eval_batch_size=8, report_to="none")
    plain = Trainer(model=model, args=args, processing_class=tokenizer).predict(data)
    trainer = Sorted(model=model, args=args, processing_class=tokenizer)
    sorted_ = trainer.predict(data)
    np.testing.assert_allclose(sorted_.predictions, plain.predictions, rtol=1e-4, atol=1e-5)
    assert sorted_.label_ids.tolist() == plain.label_ids.tolist() == data["labels"]
    assert sorted_.metrics["test_loss"] == pytest.approx(plain.metrics["test_loss"], rel=1e-5)
    lengths = [len(data[i]["input_ids"]) for i in trainer._get_eval_sampler(data)]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] > lengths[-1]


def test_windows_of_long_texts_are_pooled_per_text_after_sorting(tiny, tmp_path):
    from hfadapt.data.long_texts import encode_windows

    model, tokenizer = tiny
    rows = encode_windows(tokenizer, texts(12, seed=1), max_length=16, stride=4)
    docs = rows["doc"]
    labels = [d % 3 for d in docs]
    data = Dataset.from_dict({**rows, "labels": labels})
    args = TrainingArguments(str(tmp_path), per_device_eval_batch_size=4, report_to="none")

    class PlainWindows(WindowPooling, Trainer):
        pass

    plain = PlainWindows(model=model, args=args, processing_class=tokenizer).predict(data)
    sorted_ = SortedWindows(model=model, args=args, processing_class=tokenizer).predict(data)
    assert len(set(docs)) == 12 and sorted_.predictions.shape[0] == 12
    np.testing.assert_allclose(sorted_.predictions, plain.predictions, rtol=1e-4, atol=1e-5)
    assert sorted_.label_ids.tolist() == plain.label_ids.tolist()


def test_predict_returns_results_in_input_order(tiny_recipe):
    from hfadapt import finetune, load_recipe

    run = finetune(load_recipe(raw=tiny_recipe(training={"max_steps": 2})))
    given = texts(30, seed=2)
    together = predict(run, given, batch_size=7, progress=False)
    one_by_one = [predict(run, [t], batch_size=1, progress=False)[0] for t in given]
    assert [r["text"] for r in together] == given
    for a, b in zip(together, one_by_one, strict=True):
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-5)
