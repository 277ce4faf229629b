"""Retraining: tokenizer training, vocabulary rebuild, packing, whole-word masking, and the staged pipeline."""

import json

import pytest
import torch
import yaml
from conftest import CHINESE, chinese_retraining
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from hfadapt.errors import HfadaptError
from hfadapt.model import pretrained
from hfadapt.recipe import TokenizerConfig, load_recipe
from hfadapt.retraining import corpus, mlm, vocab
from hfadapt.retraining.tokenizer import han_words, tokenizer_fit, train_tokenizer


def test_wordpiece_is_trained_by_the_wordpiece_trainer_and_round_trips(tmp_path):
    tokenizer = train_tokenizer(
        CHINESE + ["hello world wonderful 12月31日"] * 10, TokenizerConfig(vocab_size=200, min_frequency=1)
    )
    assert type(tokenizer.backend_tokenizer.model).__name__ == "WordPiece"
    assert tokenizer.tokenize("中共") == ["中", "共"]  # one token per Han character
    assert tokenizer.tokenize("１２月") == tokenizer.tokenize("12月")  # NFKC: full-width digits are digits
    assert "[UNK]" not in tokenizer.tokenize("１２月")
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "今天北京 hello"
    assert again(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert again.mask_token == "[MASK]" and len(again) == len(tokenizer)


@pytest.mark.parametrize("algorithm", ["bpe", "unigram"])
def test_other_algorithms_train(algorithm):
    tokenizer = train_tokenizer(CHINESE, TokenizerConfig(algorithm=algorithm, vocab_size=100, min_frequency=1))
    assert tokenizer.unk_token_id is not None and len(tokenizer) <= 100


def test_bad_tokenizer_input_is_named():
    with pytest.raises(HfadaptError, match="tokenizer: the corpus has no text; give a corpus with non-empty texts"):
        train_tokenizer(["", "  "], TokenizerConfig(vocab_size=100))
    with pytest.raises(
        HfadaptError,
        match=r"tokenizer.vocab_size: 30 is smaller than the special tokens plus the corpus's "
        r"alphabet \(\d+ tokens\); raise it above \d+",
    ):
        train_tokenizer(CHINESE, TokenizerConfig(vocab_size=30, min_frequency=1))


SEGMENTED = [
    ["中共中央", "总书记", "发表", "新年", "讲话"],
    ["这", "本", "书", "的", "内容", "很", "好看"],
    ["我们", "的", "国家", "正在", "发展"],
    ["今天", "北京", "的", "天气", "很", "好"],
    ["酒店", "的", "服务", "非常", "好"],
] * 20


def test_words_keep_frequent_han_words_whole_and_need_no_segmenter_to_apply(tmp_path):
    from collections import Counter

    counts = Counter(w for words in SEGMENTED for w in han_words(words))
    assert counts["北京"] == 20 and "的" not in counts  # words of two Han characters or more
    tokenizer = train_tokenizer(
        CHINESE + ["hello world 12月"] * 10, TokenizerConfig(vocab_size=300, min_frequency=1, words=True), counts
    )
    # greedy longest match in a run of Han text: the words, then characters as continuations
    assert tokenizer.tokenize("今天北京的天气很好") == ["今天", "##北京", "##的", "##天气", "##很", "##好"]
    assert tokenizer.tokenize("北京今天") == ["北京", "##今天"]
    assert tokenizer.tokenize("hello北京") == ["hello", "北京"]  # a Han run stands apart from the Latin beside it
    # a character the vocabulary lacks is [UNK] alone; the rest of its run is read
    assert tokenizer.tokenize("今天鑫北京") == ["今天", "[UNK]", "北京"]
    assert len(tokenizer) <= 300
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)  # tokenizer.json alone: no segmenter
    assert again("我们的国家很好")["input_ids"] == tokenizer("我们的国家很好")["input_ids"]
    assert again.decode(again("我们的国家很好", add_special_tokens=False)["input_ids"]) == "我们的国家很好"
    # without the option the same corpus gives one token per character
    plain = train_tokenizer(CHINESE, TokenizerConfig(vocab_size=300, min_frequency=1))
    assert plain.tokenize("北京今天") == ["北", "京", "今", "天"]


@pytest.mark.integration
def test_words_from_a_segmenter_run_through_the_pipeline(tiny_checkpoint, tmp_path, one_torch_thread):
    from hfadapt.retraining.pipeline import retrain

    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=2)
    raw["corpus"]["segmenter"] = "jieba"
    raw["tokenizer"].update(words=True, vocab_size=400)
    results = retrain(load_recipe(raw=raw), until="pretrained")
    new = results["tokenizer"]["new"]
    assert new["tokens_per_char"] < 0.8 and new["unk_rate"] == 0.0  # whole words: fewer tokens than characters
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run" / "pretrained")
    assert tokenizer.tokenize("今天北京")[0] in ("今天", "今天北京")
    assert results["pretrained"]["vocabulary"]["vocab_size"] == len(tokenizer) <= 400


def test_words_without_room_or_segmentation_are_named(tiny_checkpoint, tmp_path):
    from collections import Counter

    with pytest.raises(
        HfadaptError,
        match=r"tokenizer.vocab_size: 60 cannot hold the \d+ Han characters as word starts and "
        r"continuations .* raise it above \d+",
    ):
        train_tokenizer(CHINESE, TokenizerConfig(vocab_size=60, min_frequency=1, words=True), Counter({"北京": 5}))
    with pytest.raises(
        HfadaptError, match="tokenizer.words: the corpus has no word segmentation; set corpus.segmenter: jieba"
    ):
        train_tokenizer(CHINESE, TokenizerConfig(vocab_size=300, min_frequency=1, words=True), Counter())
    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=1)
    raw["tokenizer"]["words"] = True
    raw["tokenizer"]["algorithm"] = "bpe"
    with pytest.raises(
        HfadaptError,
        match="tokenizer.words: keeps whole Han words inside a wordpiece tokenizer that splits Han characters",
    ):
        load_recipe(raw=raw)
    # through the pipeline: a corpus file has no words column, and no segmenter is set; nothing is written
    raw["tokenizer"]["algorithm"] = "wordpiece"
    from hfadapt.retraining.pipeline import retrain

    with pytest.raises(HfadaptError, match="tokenizer.words: the corpus has no word segmentation"):
        retrain(load_recipe(raw=raw), until="tokenizer")
    assert not (tmp_path / "run" / "tokenizer").exists()


def test_fit_report_sees_unknown_characters(tiny_checkpoint):
    old = AutoTokenizer.from_pretrained(tiny_checkpoint)  # trained on English reviews
    new = train_tokenizer(CHINESE, TokenizerConfig(vocab_size=200, min_frequency=1))
    old_fit, new_fit = tokenizer_fit(old, CHINESE[:5]), tokenizer_fit(new, CHINESE[:5])
    assert new_fit["unk_rate"] == 0.0 and new_fit["char_coverage"] == 1.0
    assert old_fit["unk_rate"] > 0.5 and old_fit["char_coverage"] < 0.5
    # Chinese words come from jieba, not from the odd space: a Han tokenizer cuts a word in ~2
    spaced = tokenizer_fit(new, ["这本书的内容 很好看", "今天北京的天气 很好"])
    assert 1.0 < spaced["tokens_per_word"] < 2.5 and spaced["split_3plus"] < 0.5


@pytest.fixture
def source(tiny_checkpoint):
    """A tiny masked-LM checkpoint with its English tokenizer."""
    old = AutoTokenizer.from_pretrained(tiny_checkpoint)
    config = BertConfig(
        vocab_size=len(old),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    return BertForMaskedLM(config), old


def test_rebuilt_rows_are_copied_composed_or_drawn(source):
    model, old = source
    before = model.get_input_embeddings().weight.detach().clone()
    new = train_tokenizer(
        CHINESE + ["the film was good", "wonderful acting", "goodness"] * 5,
        TokenizerConfig(vocab_size=300, min_frequency=1),
    )
    report = vocab.rebuild_vocabulary(model, old, new, seed=0)
    after = model.get_input_embeddings().weight
    assert after.shape[0] == len(new) == report["vocab_size"]
    assert report["copied"] + report["composed"] + report["drawn"] == len(new)
    assert report["copied"] > 5 and report["drawn"] > 5
    old_vocab = old.get_vocab()
    composed = 0
    for token, index in new.get_vocab().items():
        if token in old_vocab:
            assert torch.equal(after[index], before[old_vocab[token]]), token  # shared rows copied exactly
        elif token not in new.all_special_tokens:
            bare = token[2:] if token.startswith("##") else token
            pieces = [i for i in old(bare, add_special_tokens=False)["input_ids"] if i != old.unk_token_id]
            if pieces:
                # composed rows: the mean of their pieces
                torch.testing.assert_close(after[index], before[pieces].mean(0))
                composed += 1
    assert composed == report["composed"] > 0
    # the masked-LM output layer is tied to the new embeddings and its bias has the new size
    out = model.get_output_embeddings()
    assert out.weight.data_ptr() == after.data_ptr() and model.cls.predictions.bias.shape[0] == len(new)
    assert model(**new(["中共 good"], return_tensors="pt")).logits.shape[-1] == len(new)


def test_extend_keeps_old_ids_and_adds_new_tokens(source):
    model, old = source
    new = train_tokenizer(CHINESE, TokenizerConfig(vocab_size=200, min_frequency=1))
    extended = vocab.extend_tokenizer(old, new)
    assert all(extended.get_vocab()[t] == i for t, i in old.get_vocab().items())
    assert "中" in extended.get_vocab() and extended.tokenize("中共") == ["中", "共"]
    before = model.get_input_embeddings().weight.detach().clone()
    vocab.rebuild_vocabulary(model, old, extended)
    assert torch.equal(model.get_input_embeddings().weight[: len(old)], before)


def test_mismatched_tokenizer_and_model_are_caught(source):
    model, old = source
    model.resize_token_embeddings(50)  # a model saved for another, smaller vocabulary
    with pytest.raises(
        HfadaptError,
        match=rf"the tokenizer has {len(old)} tokens but the model's embedding matrix has 50 "
        r"rows; rebuild the vocabulary",
    ):
        pretrained.check_sizes(model, old)


def test_packing_drops_nothing_and_pads_only_the_last_block():
    tokenizer = train_tokenizer(CHINESE, TokenizerConfig(vocab_size=200, min_frequency=1))
    documents = [(t, None) for t in CHINESE]
    stats = {}
    packed = list(mlm.blocks(tokenizer, documents, 32, stats))
    expected = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in CHINESE)
    inner = [
        i
        for b in packed
        for i, m, w in zip(b["input_ids"], b["attention_mask"], b["word_ids"], strict=True)
        if m and w >= 0
    ]
    assert len(inner) == expected == stats["tokens"]
    assert all(all(b["attention_mask"]) for b in packed[:-1])
    assert len(packed) == stats["blocks"] >= 10  # enough blocks that the padding share below means something
    assert stats["padding"] < 30, "only the last block is padded, by less than one block's 30 inner positions"


def test_whole_word_masking_never_masks_part_of_a_word():
    tokenizer = train_tokenizer(CHINESE, TokenizerConfig(vocab_size=200, min_frequency=1))
    words = [["中共中央", "总书记", "发表", "新年", "讲话"], ["这", "本", "书", "的", "内容", "很", "好看"]] * 10
    documents = [("".join(w), w) for w in words]
    packed = list(mlm.blocks(tokenizer, documents, 24, {}))
    collate = mlm.WholeWordMaskCollator(tokenizer, 0.15)
    torch.manual_seed(0)
    masked_tokens = 0
    for _ in range(20):
        batch = collate(packed)
        for row, example in enumerate(packed):
            labels = batch["labels"][row]
            for word in set(example["word_ids"]) - {-1}:
                span = torch.tensor(example["word_ids"]) == word
                chosen = labels[span] != -100
                assert chosen.all() or not chosen.any(), "a word was partly masked"
            masked_tokens += int((labels != -100).sum())
    real = sum(sum(1 for w in e["word_ids"] if w >= 0) for e in packed) * 20
    assert 0.12 < masked_tokens / real < 0.25


def test_masked_only_head_gives_the_models_own_loss_and_gradients(tmp_path):
    from transformers import TrainingArguments

    tokenizer = train_tokenizer(CHINESE * 4, TokenizerConfig(vocab_size=200, min_frequency=1))
    model = mlm.scratch_model(tokenizer, "tiny", 32)
    documents = [(t, None) for t in CHINESE * 4]
    torch.manual_seed(0)
    batch = mlm.WholeWordMaskCollator(tokenizer, 0.15)(list(mlm.blocks(tokenizer, documents, 32, {}))[:4])
    masked = int((batch["labels"] != -100).sum())
    assert 0 < masked < batch["labels"].numel() // 4
    model.train()
    torch.manual_seed(1)  # the same dropout in both passes
    full = model(**batch)
    full.loss.backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    args = TrainingArguments(str(tmp_path), report_to="none", use_cpu=True)
    trainer = mlm.MaskedLMTrainer(model=model, args=args)
    torch.manual_seed(1)
    loss, outputs = trainer.compute_loss(model, batch, return_outputs=True)
    assert outputs.logits.shape == (masked, len(tokenizer))  # the vocabulary projection at masked positions only
    assert full.logits.shape[:2] == batch["input_ids"].shape
    torch.testing.assert_close(loss, full.loss)
    loss.backward()
    assert expected.keys() == {name for name, p in model.named_parameters() if p.grad is not None}
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, expected[name], msg=name)
    assert model(**batch).logits.shape[:2] == batch["input_ids"].shape  # outside the trainer's loss the model is whole


@pytest.mark.integration
def test_held_out_loss_is_measured_under_the_same_masks_each_time(tmp_path):
    from transformers import TrainingArguments

    tokenizer = train_tokenizer(CHINESE * 4, TokenizerConfig(vocab_size=200, min_frequency=1))
    model = mlm.scratch_model(tokenizer, "tiny", 32)
    held_out = list(mlm.blocks(tokenizer, [(t, None) for t in CHINESE * 4], 32, {}))
    collator = mlm.WholeWordMaskCollator(tokenizer, 0.15)
    args = TrainingArguments(
        str(tmp_path), report_to="none", use_cpu=True, remove_unused_columns=False, per_device_eval_batch_size=2
    )
    trainer = mlm.MaskedLMTrainer(model=model, args=args, eval_dataset=held_out, data_collator=collator)
    first = trainer.evaluate()["eval_loss"]
    torch.manual_seed(123)  # another global random state: the evaluation masks do not follow it
    assert trainer.evaluate()["eval_loss"] == first
    assert collator.generator is None  # training batches are drawn afresh, as before
    draws = {tuple(collator(held_out[:2])["labels"].flatten().tolist()) for _ in range(5)}
    assert len(draws) > 1


@pytest.mark.integration
def test_pretrained_stage_follows_the_pretraining_seed_alone(tiny_checkpoint, tmp_path):
    """The stage is keyed on pretrain settings, not fine-tuning ones: the fine-tuning seed must not change it."""
    import shutil

    from safetensors.torch import load_file

    from hfadapt.retraining.pipeline import retrain

    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=2)
    retrain(load_recipe(raw=raw), until="pretrained")
    other = {**raw, "training": {**raw["training"], "seed": 7}, "output": {"dir": str(tmp_path / "other")}}
    # tokenizer training breaks ties by hash order
    shutil.copytree(tmp_path / "run" / "tokenizer", tmp_path / "other" / "tokenizer")
    assert retrain(load_recipe(raw=other), until="pretrained")["pretrained"]["vocabulary"]["drawn"] > 0
    first, second = (load_file(tmp_path / d / "pretrained" / "model.safetensors") for d in ("run", "other"))
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], msg=name)


def test_missing_segmenter_is_named(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "jieba", None)
    with pytest.raises(
        HfadaptError,
        match="corpus.segmenter: jieba is asked for but not installed; pip install jieba, or "
        "set corpus.segmenter: null",
    ):
        corpus.segment_with("jieba")


@pytest.mark.integration
def test_staged_pipeline_reuses_finished_stages(tiny_checkpoint, tmp_path):
    from hfadapt.retraining.pipeline import retrain

    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=3)
    finished = retrain(load_recipe(raw=raw))
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"tokenizer", "pretrained", "finetuned", "recipe.yaml", "results.json"}
    # the fine-tuned stage's Run, with every stage's report, as results.json holds them
    results = finished.stages
    assert finished.run_dir == run / "finetuned" and results == json.loads((run / "results.json").read_text())
    assert results["tokenizer"]["new"]["unk_rate"] < results["tokenizer"]["old"]["unk_rate"]
    assert results["pretrained"]["vocabulary"]["vocab_size"] == len(AutoTokenizer.from_pretrained(run / "tokenizer"))
    assert results["pretrained"]["packing"]["non_padding_share"] > 0.9
    assert "test_accuracy" in results["finetuned"]["test"] and finished.metrics == results["finetuned"]
    # the fine-tuned stage reports the TF-IDF baseline too, on Chinese characters
    assert results["finetuned"]["baseline"]["method"] == "TF-IDF character 1-3-grams + logistic regression"
    card = (run / "finetuned" / "README.md").read_text()
    assert (
        "| vocabulary (replace) |" in card
        and "copied from the checkpoint" in card
        and "| masked-LM pretraining |" in card
    )
    # the pretrained stage is a plain masked-LM checkpoint: it fills masks without hfadapt
    from test_pretrained import pipeline_without_hfadapt

    filled = pipeline_without_hfadapt("fill-mask", run / "pretrained", "今天[MASK]京的天气很好")
    assert len(filled) == 5 and all(isinstance(f["token_str"], str) for f in filled)
    # a rerun reuses every stage: nothing is trained again
    stamp = (run / "pretrained" / "model.safetensors").stat().st_mtime_ns
    again = retrain(load_recipe(raw=raw))
    assert (run / "pretrained" / "model.safetensors").stat().st_mtime_ns == stamp
    assert again.metrics == finished.metrics and again.stages == results
    # new fine-tuning settings: refused without overwrite; with it, only the fine-tuning is redone
    raw["training"]["learning_rate"] = 1.0e-3
    with pytest.raises(
        HfadaptError,
        match=r"finetuned was made with other settings \(training\); choose another output.dir, "
        r"or set output.overwrite=true",
    ):
        retrain(load_recipe(raw=raw))
    retrain(load_recipe(raw=raw, overrides=["output.overwrite=true"]))
    assert (run / "pretrained" / "model.safetensors").stat().st_mtime_ns == stamp
    # a new tokenizer invalidates everything after it
    raw["tokenizer"]["vocab_size"] = 250
    with pytest.raises(HfadaptError, match=r"tokenizer was made with other settings \(tokenizer\)"):
        retrain(load_recipe(raw=raw))


@pytest.mark.integration
def test_seeds_pretrain_once_and_fine_tune_once_per_seed(tiny_checkpoint, tmp_path):
    from hfadapt.cli import main
    from hfadapt.retraining.pipeline import retrain

    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=3)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["retrain", str(tmp_path / "recipe.yaml"), "--seeds", "1,2"]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "finetuned" / "seeds.json").read_text())
    assert summary["seeds"] == [1, 2] and len(summary["test"]["test_accuracy"]["values"]) == 2
    seed_runs = [json.loads((run / "finetuned" / f"seed-{s}" / "metrics.json").read_text()) for s in (1, 2)]
    assert [r["test"]["test_accuracy"] for r in seed_runs] == summary["test"]["test_accuracy"]["values"]
    # every seed fine-tunes the one pretrained stage
    assert {load_recipe(run / "finetuned" / f"seed-{s}" / "recipe.yaml").model.name_or_path for s in (1, 2)} == {
        str(run / "pretrained")
    }
    stamp = (run / "pretrained" / "model.safetensors").stat().st_mtime_ns
    assert retrain(load_recipe(raw=raw), seeds=[1, 2])["finetuned"] == summary  # reused whole
    with pytest.raises(HfadaptError, match=r"finetuned was made with other settings \(seeds\)"):
        retrain(load_recipe(raw=raw), seeds=[1, 3])
    retrain(load_recipe(raw=raw, overrides=["output.overwrite=true"]), seeds=[1, 3])
    assert (run / "pretrained" / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((run / "finetuned" / "seeds.json").read_text())["seeds"] == [1, 3]
    with pytest.raises(HfadaptError, match="at least two seeds"):
        retrain(load_recipe(raw=raw), seeds=[1])
    # a hub section is refused before any stage runs, naming a seed's folder to push instead
    elsewhere = {**raw, "hub": {"repo_id": "someone/zh"}, "output": {"dir": str(tmp_path / "with_hub")}}
    with pytest.raises(HfadaptError, match=r"pushes nothing to the Hub.*hfadapt push OUTPUT_DIR/finetuned/seed-N"):
        retrain(load_recipe(raw=elsewhere), seeds=[1, 2])
    assert not (tmp_path / "with_hub").exists()


def test_a_corpus_of_the_fine_tuning_data_alone_has_a_held_out_share(tiny_checkpoint, tmp_path):
    from hfadapt.retraining.corpus import corpus_documents

    rows = [{"text": f"{t}{i}", "label": "pos" if "好" in t else "neg"} for i, t in enumerate(CHINESE * 20)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "data": {"source": str(tmp_path / "data.jsonl")},
        "corpus": {"sources": [str(tmp_path / "data.jsonl")], "validation_fraction": 0.1},
        "tokenizer": {"vocab_size": 200, "min_frequency": 1},
        "output": {"dir": str(tmp_path / "run")},
    }
    recipe = load_recipe(raw=raw)
    train = [t for t, _ in corpus_documents(recipe, "train")]
    held_out = [t for t, _ in corpus_documents(recipe, "validation")]
    assert held_out and train and not set(held_out) & set(train)
    assert len(held_out) + len(train) == len(data_prepare_train(recipe))


def test_a_corpus_source_of_word_lists_is_read_as_its_sentences(tiny_checkpoint, tmp_path):
    from hfadapt.retraining.corpus import corpus_documents

    ner = [{"tokens": list(t) + ["good", "film"], "tags": ["O"] * (len(t) + 2)} for t in CHINESE[:5]]
    (tmp_path / "ner.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ner))
    rows = [{"text": t, "label": "pos"} for t in CHINESE[:5]]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "data": {"source": str(tmp_path / "data.jsonl")},
        "corpus": {"sources": [str(tmp_path / "ner.jsonl")], "validation_fraction": 0.001},
        "tokenizer": {"vocab_size": 200, "min_frequency": 1},
        "output": {"dir": str(tmp_path / "run")},
    }
    recipe = load_recipe(raw=raw)
    read = [t for split in ("train", "validation") for t, _ in corpus_documents(recipe, split)]
    # Han characters joined without spaces, other words with one, as splits.join_words does
    assert sorted(read) == sorted(f"{t}good film" for t in CHINESE[:5])


def data_prepare_train(recipe):
    from hfadapt.data import splits

    return splits.load_splits(recipe.data, recipe.task).splits["train"]["text"]


@pytest.mark.slow  # about 2 minutes on 2 cores: python -m pytest tests/test_retrain.py -m slow
def test_repeat_weights_a_source_in_pretraining_alone(tiny_checkpoint, tmp_path):
    from transformers import AutoTokenizer

    from hfadapt.retraining.corpus import corpus_documents, pretraining_data

    rows = [{"text": f"{t}{i}", "label": "pos" if "好" in t else "neg"} for i, t in enumerate(CHINESE * 20)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    other = tmp_path / "other.txt"
    other.write_text("".join(f"第{i}段其他的文字。\n" for i in range(50)))
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "data": {"source": str(tmp_path / "data.jsonl")},
        "corpus": {"sources": [str(other), str(tmp_path / "data.jsonl")], "validation_fraction": 0.1},
        "pretrain": {"init": "continue", "block_size": 32},
        "output": {"dir": str(tmp_path / "run")},
    }
    once = load_recipe(raw=raw)
    thrice = load_recipe(raw=raw, overrides=[f"pretrain.repeat={{{tmp_path / 'data.jsonl'}: 3}}"])
    train_once = list(corpus_documents(once, "train"))
    reviews = [d for d in train_once if d[0] in set(data_prepare_train(once))]
    assert reviews and len(reviews) < len(train_once)
    # pretraining reads the fine-tuning texts three times and the other source once ...
    assert (
        list(corpus_documents(thrice, "train", repeated=True))
        == [d for d in train_once if d not in reviews] + reviews * 3
    )
    # ... while the tokenizer's stream and the held-out share are unchanged
    assert list(corpus_documents(thrice, "train")) == train_once
    assert list(corpus_documents(thrice, "validation", repeated=True)) == list(corpus_documents(once, "validation"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    packed_once, packed_thrice = pretraining_data(once, tokenizer), pretraining_data(thrice, tokenizer)
    packing_once, packing_thrice = packed_once.info["packing"], packed_thrice.info["packing"]
    assert packing_thrice["train"]["documents"] == packing_once["train"]["documents"] + 2 * len(reviews)
    assert packing_thrice["train"]["blocks"] > packing_once["train"]["blocks"]
    assert packing_thrice["validation"] == packing_once["validation"]


def test_repeat_segments_a_repeated_source_once(tiny_checkpoint, tmp_path, monkeypatch):
    from hfadapt.retraining.corpus import corpus_documents

    rows = [{"text": f"{t}{i}", "label": "pos" if "好" in t else "neg"} for i, t in enumerate(CHINESE * 20)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "data": {"source": str(tmp_path / "data.jsonl")},
        "corpus": {"sources": [str(tmp_path / "data.jsonl")], "segmenter": "jieba", "validation_fraction": 0.1},
        "pretrain": {"init": "continue", "block_size": 32, "repeat": {str(tmp_path / "data.jsonl"): 3}},
        "output": {"dir": str(tmp_path / "run")},
    }
    segmented = []
    jieba_words = corpus.segment_with("jieba")
    monkeypatch.setattr(corpus, "segment_with", lambda name: lambda text: segmented.append(text) or jieba_words(text))
    documents = list(corpus_documents(load_recipe(raw=raw), "train", repeated=True))
    once = documents[: len(segmented)]
    assert once and documents == once * 3  # three passes, with jieba's words
    assert sorted(segmented) == sorted(text for text, _ in once)  # each text segmented once, not three times
    assert all(words == jieba_words(text) for text, words in once)


def test_repeat_must_name_a_corpus_source_and_a_whole_number(tiny_checkpoint, tmp_path):
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "data": {"source": "x.csv"},
        "corpus": {"sources": ["a.txt"]},
        "pretrain": {"repeat": {"b.txt": 2}},
        "output": {"dir": str(tmp_path / "run")},
    }
    with pytest.raises(
        HfadaptError,
        match=r"pretrain.repeat: b.txt is not one of corpus.sources \(a.txt\); name a source "
        r"exactly as corpus.sources does",
    ):
        load_recipe(raw=raw)
    raw["pretrain"]["repeat"] = {"a.txt": 0}
    with pytest.raises(HfadaptError, match=r"pretrain.repeat: a.txt: 0 is not a whole number of 1 or more"):
        load_recipe(raw=raw)
