"""Fine-tuning end to end on a tiny random BERT: what trains, what stays, what is saved, what reloads."""

import json

import pytest
import torch
from conftest import ner_rows
from safetensors.torch import load_file

from hfadapt import evaluate, finetune, load_recipe, predict
from hfadapt.errors import HfadaptError


def checkpoint_weights(folder):
    return load_file(str(folder / "model.safetensors"))


def saved_weights(run):
    return load_file(str(run / "model.safetensors"))


@pytest.mark.integration
def test_full_finetuning_learns_and_saves_everything(tiny_recipe, tiny_checkpoint):
    raw = tiny_recipe()
    results = finetune(load_recipe(raw=raw)).metrics
    run = load_recipe(raw=raw).output_path()
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "recipe.yaml",
        "metrics.json",
        "training_curves.png",
        "README.md",
        "log_history.json",
    ):
        assert (run / name).exists(), name
    assert not (run / "checkpoints").exists() and not run.with_name("run.incomplete").exists()
    assert (run / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"]["test_accuracy"] == results["test"]["test_accuracy"] > 0.8  # the task is learnable
    config = json.loads((run / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert load_recipe(run / "recipe.yaml") == load_recipe(raw=raw)
    # per class: the test split's figures add up to its size, the confusion matrix to its counts
    per = saved["per_class"]["test"]
    assert (
        sum(c["support"] for c in per["classes"].values())
        == saved["data"]["sizes"]["test"]
        == sum(map(sum, per["confusion"]))
    )
    recall = per["confusion"][1][1] / sum(per["confusion"][1])
    assert per["classes"]["positive"]["recall"] == pytest.approx(recall)
    assert (run / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| class | precision | recall | F1 | support |" in (run / "README.md").read_text()
    # every weight trained
    before, after = checkpoint_weights(tiny_checkpoint), saved_weights(run)
    for name, tensor in before.items():
        if not name.startswith("pooler"):
            assert not torch.equal(after["bert." + name], tensor), name


@pytest.mark.integration
def test_frozen_weights_stay_bit_identical(tiny_recipe, tiny_checkpoint):
    raw = tiny_recipe(adapt={"method": "freeze", "freeze": {"embeddings": True, "layers": 1}})
    results = finetune(load_recipe(raw=raw)).metrics
    before, after = checkpoint_weights(tiny_checkpoint), saved_weights(load_recipe(raw=raw).output_path())
    frozen = [n for n in before if n.startswith(("embeddings.", "encoder.layer.0."))]
    trained = [n for n in before if n.startswith("encoder.layer.1.")]
    assert frozen and trained
    for name in frozen:
        assert torch.equal(after["bert." + name], before[name]), name
    for name in trained:
        assert not torch.equal(after["bert." + name], before[name]), name
    total = sum(t.numel() for t in before.values())
    assert results["parameters"]["trainable"] < total


@pytest.mark.integration
def test_lora_trains_adapters_and_head_and_leaves_the_base(tiny_recipe, tiny_checkpoint):
    raw = tiny_recipe(adapt={"method": "lora", "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]}})
    raw["training"]["learning_rate"] = 2.0e-2
    results = finetune(load_recipe(raw=raw)).metrics
    run = load_recipe(raw=raw).output_path()
    before, merged = checkpoint_weights(tiny_checkpoint), saved_weights(run)
    adapter = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert any("classifier" in k for k in adapter), "the fresh head is saved with the adapter"
    assert all(not torch.equal(v, torch.zeros_like(v)) for k, v in adapter.items() if "lora_B" in k), (
        "every LoRA B moved from its zero start"
    )
    scale = 8 / 4
    for name, tensor in before.items():
        merged_tensor = merged["bert." + name]
        module = name.rsplit(".", 1)[0]
        if module.endswith(("query", "value")) and name.endswith("weight"):
            a = adapter[f"base_model.model.bert.{module}.lora_A.weight"]
            b = adapter[f"base_model.model.bert.{module}.lora_B.weight"]
            # the merged weight is exactly the untouched base plus the low-rank update
            torch.testing.assert_close(merged_tensor - scale * (b @ a), tensor, rtol=0, atol=1e-6)
            assert not torch.equal(merged_tensor, tensor)
        else:
            assert torch.equal(merged_tensor, tensor), name
    assert results["parameters"]["trainable"] < results["parameters"]["total"] / 2


@pytest.mark.integration
def test_saved_lora_and_merged_models_reproduce_the_test_metrics(tiny_recipe, tmp_path):
    raw = tiny_recipe(adapt={"method": "lora", "lora": {"r": 4, "lora_alpha": 8}, "merge_lora": False})
    raw["training"]["learning_rate"] = 2.0e-2
    results = finetune(load_recipe(raw=raw)).metrics
    run = load_recipe(raw=raw).output_path()
    assert not (run / "config.json").exists(), "merge_lora: false saves the adapter only"
    reloaded = evaluate(run)
    assert reloaded["test_accuracy"] == results["test"]["test_accuracy"]
    # the loss to bf16 autocast's rounding (on by default where the CPU runs it fast): 1.7e-5 apart was seen
    assert reloaded["test_loss"] == pytest.approx(results["test"]["test_loss"], abs=1e-4)

    raw_merged = tiny_recipe(
        adapt={"method": "lora", "lora": {"r": 4, "lora_alpha": 8}}, output={"dir": str(tmp_path / "merged")}
    )
    raw_merged["training"]["learning_rate"] = 2.0e-2
    results = finetune(load_recipe(raw=raw_merged)).metrics
    merged = evaluate(tmp_path / "merged")
    assert merged["test_accuracy"] == results["test"]["test_accuracy"]
    assert merged["test_f1_macro"] == results["test"]["test_f1_macro"]
    labels = predict(tmp_path / "merged", ["good great film", "awful dull film"], progress=False)
    assert {r["label"] for r in labels} <= {"positive", "negative"} and all(0.5 <= r["score"] <= 1 for r in labels)


@pytest.mark.integration
def test_model_card_metadata_parses(tiny_recipe):
    from huggingface_hub import ModelCard

    raw = tiny_recipe(training={"num_train_epochs": 1})
    finetune(load_recipe(raw=raw))
    card = ModelCard.load(load_recipe(raw=raw).output_path() / "README.md")
    assert card.data.pipeline_tag == "text-classification"
    results = card.data.eval_results
    assert results and {r.metric_type for r in results} >= {"accuracy", "f1_macro"}
    assert "## Lineage" in card.text


@pytest.mark.integration
def test_non_empty_output_is_never_overwritten_unless_asked(tiny_recipe):
    raw = tiny_recipe(training={"num_train_epochs": 1})
    finetune(load_recipe(raw=raw))
    run = load_recipe(raw=raw).output_path()
    first = (run / "model.safetensors").read_bytes()
    with pytest.raises(HfadaptError, match="is not empty; choose another output.dir, or set output.overwrite=true"):
        finetune(load_recipe(raw=raw))
    assert (run / "model.safetensors").read_bytes() == first
    raw["training"]["seed"] = 7
    finetune(load_recipe(raw=raw, overrides=["output.overwrite=true"]))
    assert (run / "model.safetensors").read_bytes() != first


@pytest.mark.integration
def test_token_classification_end_to_end(tiny_checkpoint, tmp_path):
    rows = ner_rows(120)
    (tmp_path / "ner.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "task": {"type": "token_classification"},
        "data": {"source": str(tmp_path / "ner.jsonl"), "text_column": "tokens", "label_column": "tags"},
        "training": {"num_train_epochs": 3, "learning_rate": 1.0e-2, "disable_tqdm": True},
        "output": {"dir": str(tmp_path / "ner")},
    }
    results = finetune(load_recipe(raw=raw)).metrics
    assert {"test_f1", "test_precision", "test_recall"} <= set(results["test"])
    assert results["main_metric"] == "f1"


EXACT_METRIC = """
import datasets
import evaluate


class Exact(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="share of exact matches", citation="", inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        return {"exact": sum(int(p == r) for p, r in zip(predictions, references)) / len(predictions)}
"""


@pytest.mark.integration
def test_a_local_evaluate_module_adds_its_metric(tiny_recipe, tmp_path):
    script = tmp_path / "exact" / "exact.py"
    script.parent.mkdir()
    script.write_text(EXACT_METRIC)
    raw = tiny_recipe(task={"evaluate_modules": [str(script)]}, training={"num_train_epochs": 1})
    results = finetune(load_recipe(raw=raw)).metrics
    assert results["test"]["test_exact"] == results["test"]["test_accuracy"]  # the same thing, computed by evaluate


def test_length_grouping_in_finetuning_uses_the_label_keeping_sampler(tiny_checkpoint, tmp_path):
    from datasets import Dataset
    from transformers import BertForSequenceClassification, TrainingArguments
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from hfadapt.data.sampler import LengthGroupedByLabelSampler
    from hfadapt.training.finetuning import _Trainer

    model = BertForSequenceClassification.from_pretrained(tiny_checkpoint, num_labels=2)
    args = TrainingArguments(
        output_dir=str(tmp_path), train_sampling_strategy="group_by_length", report_to="none", use_cpu=True
    )
    classes = Dataset.from_dict({"input_ids": [[2, 5, 3], [2, 3]], "labels": [0, 1]})
    assert isinstance(
        _Trainer(model=model, args=args, train_dataset=classes)._get_train_sampler(), LengthGroupedByLabelSampler
    )
    # regression: transformers' own
    scores = Dataset.from_dict({"input_ids": [[2, 5, 3], [2, 3]], "labels": [0.5, 1.5]})
    assert isinstance(_Trainer(model=model, args=args, train_dataset=scores)._get_train_sampler(), LengthGroupedSampler)
