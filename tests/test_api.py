"""The public API: every name documented (docstrings and docs/api.md), and each piece used without a recipe."""

from __future__ import annotations

import inspect
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import CHINESE, FILLER, NEGATIVE, POSITIVE
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertForSequenceClassification

import hfadapt
from hfadapt.errors import HfadaptError

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def public_objects() -> dict[str, object]:
    return {name: getattr(hfadapt, name) for name in hfadapt.__all__}


def undocumented(names: list[str], text: str) -> list[str]:
    """The names that `text` gives no section of their own: a heading that is the name in backticks,
    then, before the next heading, a line that names it and a Python example."""
    sections: list[list[str]] = [[]]
    fenced = False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        if line.startswith("#") and not fenced:  # a heading (a comment inside an example is not one)
            sections.append([])
        sections[-1].append(line)
    documented = set()
    for heading, *body in (s for s in sections if s):
        name = re.fullmatch(r"#+ `(\w+)`", heading)
        if name and "```python" in body and any(f"`{name.group(1)}" in line for line in body):
            documented.add(name.group(1))
    return sorted(set(names) - documented)


def docstring_gaps(name: str, obj: object) -> list[str]:
    """What the public object's docstring lacks: a class its Args (on the class or its own __init__), a
    function its Args and Returns."""
    if inspect.isclass(obj):
        init = obj.__dict__.get("__init__")
        doc = (obj.__doc__ or "") + ((init.__doc__ or "") if init is not None else "")
        return [] if "Args:" in doc else [f"{name}: Args:"]
    doc = inspect.getdoc(obj) or ""
    return [f"{name}: {section}" for section in ("Args:", "Returns:") if section not in doc]


@pytest.mark.integration
def test_every_public_name_says_what_it_takes_and_gives():
    gaps = [gap for name, obj in public_objects().items() for gap in docstring_gaps(name, obj)]
    assert gaps == []


def test_the_docstring_check_catches_a_missing_section():
    def half(x):
        """Args:
        x: a number.
        """

    class Bare:
        """No arguments named."""

    assert docstring_gaps("half", half) == ["half: Returns:"]
    assert docstring_gaps("Bare", Bare) == ["Bare: Args:"]


def test_docs_api_covers_every_public_name():
    text = API_DOC.read_text(encoding="utf-8")
    assert undocumented(hfadapt.__all__, text) == []
    headed = set(re.findall(r"^#{3,4} `(\w+)`", text, re.M))
    assert headed - set(hfadapt.__all__) == set(), "docs/api.md has a heading for a name that is not public"


def test_the_docs_check_fails_when_a_name_is_missing():
    text = API_DOC.read_text(encoding="utf-8")
    without_heading = text.replace("#### `pack_blocks`\n", "")
    assert undocumented(hfadapt.__all__, without_heading) == ["pack_blocks"]
    without_example = re.sub(r"(#### `pack_blocks`\n[^#]*?)```python.*?```\n", r"\1", text, flags=re.S)
    assert undocumented(hfadapt.__all__, without_example) == ["pack_blocks"]


def test_the_public_pieces_are_importable_without_torch():
    import subprocess
    import sys

    code = "import sys, hfadapt; hfadapt.__all__; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False"], done.stderr


# --- the pieces, on a tiny random BERT (2 layers, 32 wide) and the test WordPiece tokenizer ---


@pytest.fixture
def tokenizer(tiny_checkpoint):
    return AutoTokenizer.from_pretrained(tiny_checkpoint)


def tiny_config(tokenizer, **kwargs) -> BertConfig:
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **kwargs,
    )


@pytest.fixture
def classifier(tokenizer):
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_config(tokenizer, num_labels=2))


def training_step(model, tokenizer) -> dict[str, torch.Tensor]:
    """One AdamW step on every parameter that has a gradient; returns the weights from before it."""
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    batch = tokenizer(["good film", "dull boring plot"], padding=True, return_tensors="pt")
    model.train()
    model(**batch, labels=torch.tensor([1, 0])).loss.backward()
    torch.optim.AdamW(model.parameters(), lr=1e-2).step()
    return before


def test_freeze_keeps_frozen_weights_bit_identical_through_a_step(classifier, tokenizer):
    frozen = hfadapt.freeze(classifier, embeddings=True, layers=1, patterns=[r"pooler\."], keep=["classifier"])
    assert "bert.embeddings.word_embeddings.weight" in frozen and "bert.pooler.dense.weight" in frozen
    assert not any(name.startswith(("bert.encoder.layer.1.", "classifier.")) for name in frozen)
    before = training_step(classifier, tokenizer)
    for name, p in classifier.named_parameters():
        if name in frozen:
            assert torch.equal(p, before[name]), name
        else:
            assert not torch.equal(p, before[name]), name
    summary = hfadapt.parameter_summary(classifier)
    assert summary["trainable"] == sum(p.numel() for n, p in classifier.named_parameters() if n not in frozen)
    assert 0 < summary["trainable_percent"] < 100 and summary["total"] == sum(before[n].numel() for n in before)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"layers": 3}, "adapt.freeze.layers: 3 layers asked, but the model has 2 (bert.encoder.layer); use at most 2"),
        ({"layers": -1}, "freeze: layers must be a whole number, 0 or more; got -1"),
        ({"patterns": "pooler"}, "freeze: patterns is the string 'pooler'; give a list, e.g. ['pooler']"),
        (
            {"patterns": ["("]},
            "freeze: patterns[0] '(' is not a regular expression (missing ), unterminated subpattern at position 0)",
        ),
    ],
)
def test_freeze_refuses_bad_arguments(classifier, kwargs, expected):
    with pytest.raises(HfadaptError) as caught:
        hfadapt.freeze(classifier, **kwargs)
    assert str(caught.value) == expected


@pytest.mark.integration
def test_lora_leaves_the_base_untouched_and_trains_the_adapters_and_head(classifier, tokenizer):
    model = hfadapt.add_lora(classifier, r=4, lora_alpha=8, target_modules=["query", "value"])
    before = training_step(model, tokenizer)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all("lora_" in name or ".modules_to_save." in name for name in changed)
    assert any("lora_B" in name for name in changed)
    assert any("classifier.modules_to_save" in name for name in changed)  # the head trains (task type from class)
    base = [name for name in before if "base_layer" in name or "word_embeddings" in name]
    assert base and not changed & set(base)
    summary = hfadapt.parameter_summary(model)
    assert summary["trainable"] < summary["total"] / 10


def test_lora_takes_a_peft_config_and_keeps_named_modules(tokenizer):
    from peft import LoraConfig

    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_config(tokenizer))
    wrapped = hfadapt.add_lora(model, LoraConfig(r=2), keep=["cls"])  # bert's default targets: query, value
    names = [name for name, p in wrapped.named_parameters() if p.requires_grad]
    assert any("query.lora_A" in n for n in names) and any("value.lora_A" in n for n in names)
    assert any("cls.modules_to_save" in n for n in names)


@pytest.mark.parametrize(
    "args, kwargs, expected",
    [
        (
            (),
            {"target_modules": ["q_proj"]},
            "adapt.lora.target_modules: the model has no module named 'q_proj'; its linear layers are: classifier, "
            "dense, key, query, value",
        ),
        ("config", {"r": 4}, "add_lora: give a LoraConfig or its fields as keywords, not both (got ['r'])"),
        ((), {"keep": "classifier"}, "add_lora: keep is the string 'classifier'; give a list, e.g. ['classifier']"),
    ],
)
def test_lora_refuses_bad_arguments(classifier, args, kwargs, expected):
    from peft import LoraConfig

    with pytest.raises(HfadaptError) as caught:
        hfadapt.add_lora(classifier, *([LoraConfig(r=2)] if args == "config" else []), **kwargs)
    assert str(caught.value) == expected


def test_train_tokenizer_on_a_list_of_texts():
    texts = CHINESE + ["the film was good", "a dull boring plot"] * 10
    tokenizer = hfadapt.train_tokenizer(texts, vocab_size=120, min_frequency=1)
    assert 40 < len(tokenizer) <= 120
    ids = tokenizer("北京 good")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.unk_token_id not in ids and tokenizer.tokenize("北京") == ["北", "京"]
    with pytest.raises(HfadaptError) as caught:
        hfadapt.train_tokenizer(texts, vocab_sise=120)
    assert str(caught.value) == (
        "train_tokenizer: 'vocab_sise' is not a tokenizer setting; the settings are algorithm, vocab_size, "
        "min_frequency, lowercase, strip_accents, split_han, words"
    )
    with pytest.raises(HfadaptError, match=r"train_tokenizer: algorithm 'wordpeice' is not one of wordpiece, bpe"):
        hfadapt.train_tokenizer(texts, algorithm="wordpeice")


def test_rebuild_vocabulary_has_the_new_size_and_copies_shared_rows(tokenizer):
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_config(tokenizer))
    before = model.get_input_embeddings().weight.detach().clone()
    new = hfadapt.train_tokenizer(
        CHINESE + ["the film was good", "wonderful acting"] * 5, vocab_size=200, min_frequency=1
    )
    report = hfadapt.rebuild_vocabulary(model, tokenizer, new)
    after = model.get_input_embeddings().weight
    assert after.shape[0] == len(new) == report["vocab_size"] != len(tokenizer)
    assert report["copied"] + report["composed"] + report["drawn"] == len(new)
    old_vocab = tokenizer.get_vocab()
    shared = [(i, old_vocab[t]) for t, i in new.get_vocab().items() if t in old_vocab]
    assert len(shared) > 5
    for new_id, old_id in shared:
        assert torch.equal(after[new_id], before[old_id])
    assert model(**new(["北京 good"], return_tensors="pt")).logits.shape[-1] == len(new)
    with pytest.raises(HfadaptError) as caught:
        hfadapt.rebuild_vocabulary(model, tokenizer, new, new_rows="static")
    assert str(caught.value) == (
        "rebuild_vocabulary: new_rows='static' learns static embeddings on the corpus; pass corpus=texts "
        "(an iterable of texts), or use new_rows='draw'"
    )


@pytest.mark.integration
def test_extend_tokenizer_keeps_old_ids_and_a_static_rebuild_places_the_new_rows(tokenizer):
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_config(tokenizer))
    before = model.get_input_embeddings().weight.detach().clone()
    corpus = [t + str(i % 7) for i, t in enumerate(CHINESE * 4)]
    extended = hfadapt.extend_tokenizer(tokenizer, hfadapt.train_tokenizer(corpus, vocab_size=200, min_frequency=1))
    assert all(extended.get_vocab()[t] == i for t, i in tokenizer.get_vocab().items())
    report = hfadapt.rebuild_vocabulary(model, tokenizer, extended, new_rows="static", corpus=corpus)
    assert torch.equal(model.get_input_embeddings().weight[: len(tokenizer)], before)
    assert report["vocab_size"] == len(extended) > len(tokenizer) and report["transferred"] > 5


def test_pack_blocks_gives_full_blocks_of_block_size():
    tokenizer = hfadapt.train_tokenizer(CHINESE, vocab_size=200, min_frequency=1)
    blocks = hfadapt.pack_blocks(CHINESE, tokenizer, 16)
    assert blocks.column_names == ["input_ids", "word_ids", "attention_mask"]
    assert len(blocks) > 5 and all(len(row["input_ids"]) == 16 == len(row["word_ids"]) for row in blocks)
    assert all(all(row["attention_mask"]) for row in blocks.select(range(len(blocks) - 1)))  # only the last is padded
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in CHINESE)
    assert sum(sum(row["attention_mask"]) - 2 for row in blocks) == tokens  # nothing dropped
    with pytest.raises(HfadaptError, match=r"^pack_blocks: block_size must be a whole number, 3 or more; got 2$"):
        hfadapt.pack_blocks(CHINESE, tokenizer, 2)
    with pytest.raises(HfadaptError, match=r"^pack_blocks: the texts hold no token"):
        hfadapt.pack_blocks(["", " "], tokenizer, 16)


def test_the_collator_masks_whole_words():
    tokenizer = hfadapt.train_tokenizer(CHINESE, vocab_size=200, min_frequency=1)
    words = [["中共中央", "总书记", "发表", "新年", "讲话"], ["这", "本", "书", "的", "内容", "很", "好看"]] * 10
    blocks = hfadapt.pack_blocks([("".join(w), w) for w in words], tokenizer, 24)
    collate = hfadapt.WholeWordMaskCollator(tokenizer, probability=0.3)
    torch.manual_seed(0)
    masked = 0
    for _ in range(10):
        batch = collate(list(blocks))
        for row, example in enumerate(blocks):
            ids = torch.tensor(example["word_ids"])
            for word in set(example["word_ids"]) - {-1}:
                chosen = batch["labels"][row][ids == word] != -100
                assert chosen.all() or not chosen.any(), "a word was partly masked"
            masked += int((batch["labels"][row] != -100).sum())
    assert masked > 0
    with pytest.raises(HfadaptError, match=r"probability must be above 0 and below 1; got 1.5$"):
        hfadapt.WholeWordMaskCollator(tokenizer, probability=1.5)


@pytest.mark.integration
def test_the_masked_lm_trainer_trains_on_packed_blocks(tmp_path, one_torch_thread):
    from transformers import TrainingArguments

    tokenizer = hfadapt.train_tokenizer(CHINESE, vocab_size=200, min_frequency=1)
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_config(tokenizer))
    before = model.get_input_embeddings().weight.detach().clone()
    args = TrainingArguments(
        str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        remove_unused_columns=False,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
    )
    trainer = hfadapt.MaskedLMTrainer(
        model=model,
        args=args,
        train_dataset=hfadapt.pack_blocks(CHINESE, tokenizer, 16),
        data_collator=hfadapt.WholeWordMaskCollator(tokenizer),
    )
    assert trainer.train().training_loss > 0
    assert not torch.equal(model.get_input_embeddings().weight, before)


def test_class_weights_and_the_weighted_loss_on_plain_arguments():
    assert hfadapt.class_weights([0, 0, 0, 1], 2) == pytest.approx([4 / 6, 4 / 2])
    assert hfadapt.class_weights([0, 1, 1], 3) == pytest.approx([1.0, 0.5, 1.0])  # an unseen class weighs 1
    # token classification: rows of tags, -100 skipped
    assert hfadapt.class_weights([[0, 0, -100], [0, 1]], 2) == pytest.approx([4 / 6, 4 / 2])
    assert hfadapt.class_weights([[1, 0], [1, 1], [1, 0], [1, 0]], 2, multi_label=True) == pytest.approx([1.0, 3.0])
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    plain = torch.nn.functional.cross_entropy(logits, labels)
    assert hfadapt.weighted_loss([1.0, 1.0])({"logits": logits}, labels).item() == pytest.approx(plain.item())
    with pytest.raises(HfadaptError) as caught:
        hfadapt.class_weights(["pos", "neg"], 2)
    assert str(caught.value) == (
        "class_weights: labels[0] is 'pos', not a class id from 0 to 1; give ids (label names encoded, e.g. by "
        "the model config's label2id)"
    )
    with pytest.raises(HfadaptError, match=r"^class_weights: labels\[1\] is 2, not a class id from 0 to 1"):
        hfadapt.class_weights([0, 2], 2)
    with pytest.raises(HfadaptError, match=r"^weighted_loss: every weight must be a number above 0; got -1.0$"):
        hfadapt.weighted_loss([1.0, -1.0])


def test_the_sampler_gives_every_index_once_and_keeps_the_label_mix():
    # length predicts the label: the positives are the longer texts
    labels = [i % 2 for i in range(400)]
    lengths = [(40 if label else 10) + i % 7 for i, label in enumerate(labels)]
    torch.manual_seed(0)
    order = list(hfadapt.LengthGroupedByLabelSampler(lengths, labels, batch_size=8))
    assert sorted(order) == list(range(400))
    batches = [order[k : k + 8] for k in range(0, 400, 8)]
    assert all(3 <= sum(labels[i] for i in batch) <= 5 for batch in batches)
    within = [max(lengths[i] for i in b if labels[i]) - min(lengths[i] for i in b if labels[i]) for b in batches]
    assert sum(within) / len(within) < 3  # each label's examples in a batch are of similar length
    with pytest.raises(HfadaptError, match=r"^LengthGroupedByLabelSampler: 3 lengths but 2 labels"):
        hfadapt.LengthGroupedByLabelSampler([1, 2, 3], [0, 1], 2)


def test_windows_are_pooled_per_text(classifier, tokenizer, tmp_path, one_torch_thread):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    long = " ".join(FILLER + POSITIVE + NEGATIVE)  # far more than 16 tokens
    rows = hfadapt.encode_windows(tokenizer, [long, "good film", long + " again"], max_length=16, stride=4)
    docs = rows["doc"]
    assert Counter(docs)[0] > 2 and Counter(docs)[1] == 1 and sorted(set(docs)) == [0, 1, 2]
    assert all(len(ids) <= 16 for ids in rows["input_ids"])
    logits = torch.arange(len(docs) * 2, dtype=torch.float32).reshape(-1, 2).numpy()
    pooled, _ = hfadapt.pool_windows(logits, docs)
    first = [i for i, d in enumerate(docs) if d == 0]
    assert pooled.shape == (3, 2) and pooled[0].tolist() == logits[first].mean(0).tolist()

    class WindowTrainer(hfadapt.WindowPooling, Trainer):
        pass

    args = TrainingArguments(str(tmp_path), report_to="none", use_cpu=True, disable_tqdm=True)
    trainer = WindowTrainer(model=classifier, args=args, processing_class=tokenizer)  # pads the windows
    data = Dataset.from_dict({**rows, "labels": [[1, 0, 1][d] for d in docs]})
    out = trainer.predict(data)
    assert out.predictions.shape == (3, 2) and out.label_ids.tolist() == [1, 0, 1]
    with pytest.raises(HfadaptError, match=r"^encode_windows: stride must be 0 or more and below the 14 text tokens"):
        hfadapt.encode_windows(tokenizer, [long], max_length=16, stride=14)
