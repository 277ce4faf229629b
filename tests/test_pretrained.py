"""Finding embeddings and encoder layers, and LoRA defaults, across BERT-style families."""

import subprocess
import sys

import pytest
from conftest import ner_rows
from transformers import (
    AlbertConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    DistilBertConfig,
    ElectraConfig,
    RobertaConfig,
    XLMRobertaConfig,
)

from hfadapt import finetune, predict
from hfadapt.errors import HfadaptError
from hfadapt.model import adapt, pretrained
from hfadapt.recipe import load_recipe

SMALL = dict(vocab_size=100, hidden_size=16, num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
FAMILIES = {
    "bert": (BertConfig(num_hidden_layers=3, **SMALL), "bert.encoder.layer", "bert.embeddings"),
    "roberta": (RobertaConfig(num_hidden_layers=3, **SMALL), "roberta.encoder.layer", "roberta.embeddings"),
    "xlm-roberta": (XLMRobertaConfig(num_hidden_layers=3, **SMALL), "roberta.encoder.layer", "roberta.embeddings"),
    "electra": (
        ElectraConfig(num_hidden_layers=3, embedding_size=16, **SMALL),
        "electra.encoder.layer",
        "electra.embeddings",
    ),
    "distilbert": (
        DistilBertConfig(vocab_size=100, dim=16, n_layers=3, n_heads=2, hidden_dim=32, max_position_embeddings=64),
        "distilbert.transformer.layer",
        "distilbert.embeddings",
    ),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_layers_and_embeddings_are_found_from_the_model(family):
    config, layers_name, embeddings_name = FAMILIES[family]
    model = AutoModelForSequenceClassification.from_config(config)
    name, layers = pretrained.encoder_layers(model)
    assert name == layers_name and len(layers) == 3
    assert pretrained.embeddings_module(model)[0] == embeddings_name
    frozen = adapt.freeze(model, embeddings=True, layers=2)
    assert frozen and all(n.startswith((embeddings_name, f"{layers_name}.0.", f"{layers_name}.1.")) for n in frozen)
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith(f"{layers_name}.2."))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_lora_uses_the_family_default_targets(family):
    config, _, _ = FAMILIES[family]
    model = AutoModelForSequenceClassification.from_config(config)
    wrapped = adapt.add_lora(model, r=2, keep=["classifier"])  # no target_modules: the family's defaults
    lora = [n for n, p in wrapped.named_parameters() if "lora_" in n]
    assert lora and all(p.requires_grad for n, p in wrapped.named_parameters() if "lora_" in n)
    assert all(not p.requires_grad for n, p in wrapped.named_parameters() if "word_embeddings" in n)


def test_albert_shared_layers_are_refused_with_a_way_out():
    model = AutoModelForSequenceClassification.from_config(
        AlbertConfig(num_hidden_layers=3, embedding_size=16, **SMALL)
    )
    with pytest.raises(
        HfadaptError, match="ALBERT shares one layer across depths\\); freeze by adapt.freeze.patterns instead"
    ):
        adapt.freeze(model, layers=1)


def test_fresh_modules_climb_to_the_whole_new_module():
    model = AutoModelForSequenceClassification.from_config(BertConfig(num_hidden_layers=1, **SMALL))
    missing = {"classifier.weight", "classifier.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias"}
    assert pretrained.fresh_modules(model, missing) == ["bert.pooler", "classifier"]


def pipeline_without_hfadapt(task: str, path, inputs) -> list:
    """Run a transformers pipeline in a fresh process where importing hfadapt or peft fails."""
    import json

    script = f"""
import json, sys
sys.modules["peft"] = None      # importing either now fails
sys.modules["hfadapt"] = None
from transformers import pipeline
run = pipeline({task!r}, model={str(path)!r})
print(json.dumps(run({inputs!r}), default=float))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_merged_model_loads_in_a_pipeline_without_peft_or_hfadapt(tiny_recipe):

    raw = tiny_recipe(adapt={"method": "lora", "lora": {"r": 4, "lora_alpha": 8}})
    raw["training"]["learning_rate"] = 2.0e-2
    finetune(load_recipe(raw=raw))
    run = load_recipe(raw=raw).output_path()
    texts = ["good great film", "awful dull film", "the plot was flat"]
    ours = [r["label"] for r in predict(run, texts, progress=False)]
    assert [r["label"] for r in pipeline_without_hfadapt("text-classification", run, texts)] == ours


@pytest.mark.integration
def test_token_classifier_loads_in_a_pipeline_with_its_tag_names(tiny_checkpoint, tmp_path):
    import json

    rows = ner_rows(90)
    (tmp_path / "ner.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "task": {"type": "token_classification"},
        "data": {"source": str(tmp_path / "ner.jsonl"), "text_column": "tokens", "label_column": "tags"},
        "training": {"num_train_epochs": 4, "learning_rate": 1.0e-2, "disable_tqdm": True},
        "output": {"dir": str(tmp_path / "ner")},
    }
    finetune(load_recipe(raw=raw))
    found = pipeline_without_hfadapt("token-classification", tmp_path / "ner", "we went to paris today")
    assert {entity["entity"] for entity in found} <= {"O", "S-LOC"}
    # the tag lands on the first piece of "paris", the piece the model was trained to tag
    assert any(entity["entity"] == "S-LOC" and entity["start"] == "we went to ".__len__() for entity in found)
