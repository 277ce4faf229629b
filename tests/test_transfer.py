"""Static-embedding transfer: the rows the old tokenizer cannot spell start near the shared tokens they resemble."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import CHINESE, chinese_retraining
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from hfadapt import load_recipe, retrain
from hfadapt.errors import RecipeError
from hfadapt.recipe import TokenizerConfig
from hfadapt.retraining import transfer, vocab
from hfadapt.retraining.tokenizer import train_tokenizer


def test_a_new_row_is_the_softmax_weighted_combination_of_its_nearest_anchors():
    vectors = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6], [0.0, 0.0]], dtype=np.float32)
    old_rows = np.array([[1.0, 2.0], [3.0, 5.0], [-1.0, 0.0]])
    anchors = {0: 2, 1: 0, 2: 1}  # new id -> old id
    placed = transfer.combine(vectors, anchors, [3, 4], old_rows, nearest=2, temperature=0.5)
    # token 3's nearest anchors: 0 (cosine 0.8) and 1 (cosine 0.96)
    w1, w0 = math.exp(0.96 / 0.5), math.exp(0.8 / 0.5)
    expected = (w1 * old_rows[0] + w0 * old_rows[2]) / (w1 + w0)
    np.testing.assert_allclose(placed[3], expected, rtol=1e-5)
    assert 4 not in placed  # never seen in the corpus: no static embedding, left to the random draw


def test_static_embeddings_place_tokens_that_share_contexts_together():
    rng = np.random.default_rng(0)
    # two topics that never meet: ids 1-8 and ids 9-16, each text a shuffle of one topic's ids
    texts = [list(rng.permutation(range(1, 9))) for _ in range(200)] + [
        list(rng.permutation(range(9, 17))) for _ in range(200)
    ]
    vectors = transfer.static_embeddings(texts, vocab_size=17, dimensions=8)
    assert vectors.shape == (17, 8) and np.linalg.norm(vectors[0]) == 0  # id 0 never occurs
    same, other = vectors[1] @ vectors[2], vectors[1] @ vectors[10]
    assert same > 0.5 and abs(other) < 1e-6


@pytest.fixture
def source(tiny_checkpoint):
    old = AutoTokenizer.from_pretrained(tiny_checkpoint)
    config = BertConfig(
        vocab_size=len(old), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    return BertForMaskedLM(config), old


def test_rebuild_with_static_embeddings_copies_shared_rows_and_combines_the_unspelled(source):
    model, old = source
    before = model.get_input_embeddings().weight.detach().clone()
    corpus = [t + str(i % 7) for i, t in enumerate(CHINESE * 4)]
    new = train_tokenizer(corpus, TokenizerConfig(vocab_size=200, min_frequency=1))
    report = vocab.rebuild_vocabulary(model, old, new, new_rows="static", corpus=iter(corpus), seed=0)
    vectors = transfer.static_embeddings(transfer.corpus_ids(corpus, new), len(new))  # as it learnt them
    after = model.get_input_embeddings().weight.detach()
    old_vocab, specials = old.get_vocab(), set(new.all_special_tokens)
    anchors = {i: old_vocab[t] for t, i in new.get_vocab().items() if t in old_vocab and t not in specials}
    for index, source_row in anchors.items():
        assert torch.equal(after[index], before[source_row])  # shared rows copied exactly
    unspelled = [
        i
        for t, i in new.get_vocab().items()
        if t not in old_vocab
        and t not in specials
        and not [p for p in old(t.removeprefix("##"), add_special_tokens=False)["input_ids"] if p != old.unk_token_id]
    ]
    expected = transfer.combine(vectors, anchors, unspelled, before.numpy())
    assert report["transferred"] == len(expected) > 5
    for index, row in expected.items():
        torch.testing.assert_close(after[index], torch.from_numpy(row).to(after.dtype))
    assert report["drawn"] == len(unspelled) - len(expected) == report["drawn_unseen"]


def test_a_retraining_recipe_with_static_rows_pretrains(tiny_checkpoint, tmp_path):
    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=2)
    raw["pretrain"]["new_rows"] = "static"
    results = retrain(load_recipe(raw=raw), until="pretrained")
    assert results["pretrained"]["vocabulary"]["transferred"] > 0
    del raw["tokenizer"]
    with pytest.raises(RecipeError) as caught:
        load_recipe(raw=raw)
    assert caught.value.problems == [
        "pretrain.new_rows: static places the rows of a new tokenizer's tokens; add a tokenizer section or set "
        "pretrain.new_rows: draw"
    ]
