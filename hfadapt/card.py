"""The model card: README.md with Hub metadata and the adaptation's lineage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hfadapt.recipe import Recipe

PIPELINE_TAGS = {"sequence_classification": "text-classification", "token_classification": "token-classification"}


def render(recipe: Recipe, metrics: dict[str, Any], base_model: str, name: str) -> str:
    """The card's text: YAML metadata that `huggingface_hub.ModelCard` parses, then the lineage."""
    task = recipe.task
    test = metrics.get("test", {})
    metric_names = [k for k in test if k.startswith("test_") and isinstance(test[k], float) and not k.endswith(("_runtime", "_per_second", "_loss"))]
    source = recipe.data.source
    metadata: dict[str, Any] = {
        "library_name": "transformers",
        "base_model": base_model,
        "pipeline_tag": PIPELINE_TAGS[task.type],
        "tags": ["hfadapt", recipe.adapt.method] + (["lora", "peft"] if recipe.adapt.method == "lora" else []),
        "model-index": [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": PIPELINE_TAGS[task.type], "name": task.type.replace("_", " ")},
                        "dataset": {"name": source, "type": source, "split": "test"},
                        "metrics": [{"type": k[len("test_") :], "value": round(test[k], 4), "name": f"test {k[len('test_'):]}"} for k in metric_names],
                    }
                ],
            }
        ],
    }
    if not source.startswith(("builtin:", "/", ".")):
        metadata["datasets"] = [source]
    params = metrics.get("parameters", {})
    adapt = recipe.adapt
    if adapt.method == "lora":
        how = f"LoRA adapters (`{yaml.safe_dump(adapt.lora, default_flow_style=True).strip()}`), the new task head trained in full"
    elif adapt.method == "freeze":
        parts = (["embeddings"] if adapt.freeze.embeddings else []) + ([f"encoder layers 0-{adapt.freeze.layers - 1}"] if adapt.freeze.layers else [])
        parts += [f"parameters matching `{p}`" for p in adapt.freeze.patterns]
        how = "frozen: " + ", ".join(parts) + "; everything else trained"
    else:
        how = "full fine-tuning: every weight trained"
    report = metrics.get("data", {})
    sizes = report.get("sizes", {})
    lineage = _retraining_lineage(recipe.model.name_or_path)
    rows = "\n".join(f"| {k[len('test_'):]} | {metrics.get('validation', {}).get('validation_' + k[len('test_'):], float('nan')):.4f} | {test[k]:.4f} |" for k in metric_names)
    training = recipe.training
    load = (
        f'from transformers import pipeline\n\nclassifier = pipeline("{PIPELINE_TAGS[task.type]}", model="PATH_OR_REPO_ID")\n'
        if (adapt.method != "lora" or adapt.merge_lora)
        else "from peft import AutoPeftModelForSequenceClassification\n\nmodel = AutoPeftModelForSequenceClassification.from_pretrained(\"PATH_OR_REPO_ID/adapter\")\n"
    )
    body = f"""
# {name}

`{base_model}` adapted to {task.type.replace('_', ' ')} on `{source}` with hfadapt.

## Lineage
| step | what |
|---|---|
| base checkpoint | `{base_model}` |
{lineage}| adaptation | {how} |
| parameters trained | {params.get('trainable', 0):,} of {params.get('total', 0):,} ({params.get('trainable_percent', 0)}%) |
| data | `{source}`; split sizes train {sizes.get('train')}, validation {sizes.get('validation')}, test {sizes.get('test')}; splits made by text hash: {', '.join(report.get('splits_made_by_hash', [])) or 'none'}; duplicates removed {report.get('duplicates_removed', 0)}, conflicting texts removed {report.get('conflicting_texts_removed', 0)} |
| labels | {', '.join(metrics.get('label_names') or ['(regression)'])} |
| training | {training.get('num_train_epochs')} epochs, learning rate {training.get('learning_rate', 'default')}, batch {training.get('per_device_train_batch_size')}, seed {training.get('seed')}, max length {recipe.data.max_length} |
| compute | {metrics.get('train', {}).get('train_runtime', 0):.0f} s of training on {metrics.get('device', 'unknown')} |

## Results
| metric | validation | test |
|---|---|---|
{rows}

## How to load
```python
{load}```

The full recipe that produced this model is `recipe.yaml` beside this card; `training_curves.png` shows its loss and validation {metrics.get('main_metric', '')}.
"""
    return "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True) + "---\n" + body


def _retraining_lineage(model_path: str) -> str:
    """Table rows for a model that came out of hfadapt's retraining stages (tokenizer, vocabulary, pretraining)."""
    pretrained = Path(model_path)
    report_path = pretrained / "pretrain.json"
    if not report_path.exists():
        return ""
    report = json.loads(report_path.read_text())
    rows = ""
    fit_path = pretrained.parent / "tokenizer" / "fit.json"
    if fit_path.exists():
        fit = json.loads(fit_path.read_text())
        new, old = fit["new"], fit.get("old") or {}
        rows += (
            f"| tokenizer | trained on the corpus: {new['vocab_size']:,} tokens; [UNK] rate {100 * new['unk_rate']:.2f}%"
            f" (the checkpoint's: {100 * old.get('unk_rate', float('nan')):.2f}%), tokens per character {new['tokens_per_char']:.3f},"
            f" coverage of the 1,000 most frequent characters {100 * new['char_coverage']:.1f}% |\n"
        )
    vocab = report.get("vocabulary")
    if vocab:
        rows += f"| vocabulary ({vocab['mode']}) | {vocab['vocab_size']:,} rows: {vocab['copied']:,} copied from the checkpoint, {vocab['composed']:,} composed from old pieces, {vocab['drawn']:,} drawn |\n"
    rows += (
        f"| masked-LM pretraining | {report['steps']:,} steps, {report['tokens_seen']:,} tokens, {100 * report['packing']['non_padding_share']:.2f}% real tokens per block;"
        f" held-out perplexity {report['perplexity_before']:.1f} -> {report['perplexity']:.1f}; {report['seconds'] / 60:.0f} min |\n"
    )
    return rows
