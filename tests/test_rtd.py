"""Replaced-token detection: the discriminator learns from every real position, and is kept as a plain checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import CHINESE, chinese_retraining
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForMaskedLM, pipeline

from hfadapt import advise, load_recipe, retrain
from hfadapt.errors import HfadaptError
from hfadapt.retraining import rtd
from hfadapt.retraining.mlm import WholeWordMaskCollator


@pytest.fixture
def model_and_tokenizer(tiny_checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    return BertForMaskedLM(config), tokenizer


@pytest.mark.integration
def test_the_discriminator_is_scored_on_every_real_position_and_the_generator_shares_its_embeddings(
    model_and_tokenizer,
):
    masked_lm, tokenizer = model_and_tokenizer
    model = rtd.ReplacedTokenDetection(masked_lm, tokenizer.all_special_ids)
    assert model.generator.base_model.embeddings is model.discriminator.embeddings
    assert model.generator.get_output_embeddings().weight is model.discriminator.embeddings.word_embeddings.weight
    assert model.generator.config.num_hidden_layers == 1 and model.discriminator.config.num_hidden_layers == 3
    texts = ["the film was good and the cast was great", "a dull story"]
    encoded = tokenizer(texts, padding=True)
    words = [[-1 if t in tokenizer.all_special_ids else i for i, t in enumerate(ids)] for ids in encoded["input_ids"]]
    rows = [
        {"input_ids": ids, "attention_mask": mask, "word_ids": [w if m else -1 for w, m in zip(ws, mask, strict=True)]}
        for ids, mask, ws in zip(encoded["input_ids"], encoded["attention_mask"], words, strict=True)
    ]
    batch = WholeWordMaskCollator(tokenizer, probability=0.3)(rows)
    torch.manual_seed(1)
    out = model(**batch)
    original = torch.tensor(encoded["input_ids"])
    real = torch.tensor(encoded["attention_mask"]).bool()
    special = torch.isin(original, torch.tensor(tokenizer.all_special_ids))
    # every real token that is not [CLS]/[SEP]/[PAD] is scored, far more than the masked ones
    assert torch.equal(out["positions"], real & ~special)
    masked = batch["labels"] != -100
    assert int(out["positions"].sum()) > 2 * int(masked.sum()) > 0
    # only masked positions can hold a replacement
    assert not out["replaced"][~masked].any()
    # the loss is the generator's masked-LM loss plus 50 times the detection loss over those positions
    torch.manual_seed(1)
    generator_loss = model.generator(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss
    detection = torch.nn.functional.binary_cross_entropy_with_logits(
        out["logits"][out["positions"]], out["replaced"][out["positions"]]
    )
    torch.testing.assert_close(out["loss"], generator_loss + 50.0 * detection)


@pytest.mark.integration
def test_a_retraining_recipe_with_replaced_token_detection_keeps_a_plain_discriminator(tiny_checkpoint, tmp_path):
    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=3)
    raw["pretrain"]["objective"] = "rtd"
    raw["pretrain"]["training"]["eval_strategy"] = "steps"
    raw["pretrain"]["training"]["eval_steps"] = 3
    report = retrain(load_recipe(raw=raw)).stages["pretrained"]
    assert 0 <= report["discriminator_accuracy"] <= 1 and report["generator_perplexity"] > 1
    folder = tmp_path / "run" / "pretrained"
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]
    saved = load_file(folder / "model.safetensors")
    assert not any(k.startswith(("generator", "head", "discriminator")) for k in saved)
    classifier = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    for name, value in classifier.bert.state_dict().items():
        if name in saved:
            assert torch.equal(value, saved[name]), name
    assert "embeddings.word_embeddings.weight" in saved and "encoder.layer.0.attention.self.query.weight" in saved
    classify = pipeline("text-classification", model=str(tmp_path / "run" / "finetuned"))
    assert classify(CHINESE[0])[0]["label"] in ("pos", "neg")


def test_advise_keeps_its_retraining_pilot_on_masked_lm(tiny_checkpoint, sentiment_csv, tmp_path):

    with pytest.raises(HfadaptError) as caught:
        advise(str(tiny_checkpoint), str(sentiment_csv), tmp_path / "a", overrides=["pretrain.objective=rtd"])
    assert str(caught.value) == (
        "pretrain.objective=rtd: the retraining pilot pretrains with masked-LM, the objective it reports on"
    )
