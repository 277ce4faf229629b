"""The model card: README.md with Hub metadata and the adaptation's lineage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hfadapt.recipe import Recipe

PIPELINE_TAGS = {"sequence_classification": "text-classification", "token_classification": "token-classification"}


def render(recipe: Recipe, metrics: dict[str, Any], base_model: str, name: str) -> str:
    """The card's text: YAML metadata that `huggingface_hub.ModelCard` parses, then the lineage and results.

    Args:
        recipe: the run's resolved recipe.
        metrics: the run's metrics, as `finetune` returns them.
        base_model: the Hub id (or path) of the checkpoint it started from.
        name: the model's name (the run folder's).

    Returns:
        The whole README.md.
    """
    test = metrics.get("test", {})
    names = [
        k[len("test_") :]
        for k in test
        if k.startswith("test_") and isinstance(test[k], float) and not k.endswith(("_runtime", "_per_second", "_loss"))
    ]
    validation = metrics.get("validation", {})
    rows = "\n".join(
        f"| {k} | {validation.get('validation_' + k, float('nan')):.4f} | {test['test_' + k]:.4f} |" for k in names
    )
    params = metrics.get("parameters", {})
    training = recipe.training
    source = recipe.data.source
    body = f"""
# {name}

`{base_model}` adapted to {recipe.task.type.replace("_", " ")} on `{source}` with hfadapt.

## Lineage
| step | what |
|---|---|
| base checkpoint | `{base_model}` |
{_retraining_lineage(recipe.model.name_or_path)}| adaptation | {_adaptation(recipe)} |
| parameters trained | {params.get("trainable", 0):,} of {params.get("total", 0):,} \
({params.get("trainable_percent", 0)}%) |
| data | {_data(source, metrics.get("data", {}))} |
| labels | {", ".join(metrics.get("label_names") or ["(regression)"])} |
| training | {training.get("num_train_epochs")} epochs, learning rate {training.get("learning_rate", "default")}, \
batch {training.get("per_device_train_batch_size")}, seed {training.get("seed")}, max length {recipe.data.max_length} |
| compute | {_compute_seconds(metrics):.0f} s of training on {metrics.get("device", "unknown")} |
{_kept(metrics.get("kept"), metrics.get("class_weights"), metrics.get("label_names"))}

## Results
| metric | validation | test |
|---|---|---|
{rows}
{_baseline(metrics)}{_classes(metrics)}
## How to load
```python
{_loading(recipe)}```

The full recipe that produced this model is `recipe.yaml` beside this card; `training_curves.png` shows its loss \
and validation {metrics.get("main_metric", "")}.
"""
    metadata = _metadata(recipe, test, names, base_model, name)
    return "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True) + "---\n" + body


def _compute_seconds(metrics: dict[str, Any]) -> float:
    """The whole run's training time: a resumed run's includes the sessions before it."""
    return metrics.get("compute_seconds") or metrics.get("train", {}).get("train_runtime", 0)


def _kept(kept: dict[str, Any] | None, weights: list[float] | None, names: list[str] | None) -> str:
    """Lineage rows: the model kept (best by early stopping, or last) and the class weights of the loss."""
    rows = ""
    if kept:
        which = f"the best by validation, at step {kept['step']}" if kept["model"] == "best" else "the last"
        epoch = f" (epoch {kept['epoch']:.2f})" if kept.get("epoch") is not None else ""
        rows += f"| model kept | {which}{epoch}; training stopped {kept['stopped']} |\n"
    if weights:
        rows += (
            "| class weights | "
            + ", ".join(f"{n} {w:.3g}" for n, w in zip(names or [], weights, strict=False))
            + " |\n"
        )
    return rows


def _baseline(metrics: dict[str, Any]) -> str:
    """The TF-IDF baseline beside the model, on the same test split and metric (`hfadapt.model.baseline`)."""
    cheap = metrics.get("baseline")
    if not cheap:
        return ""
    if cheap["score"] is None:
        return f"\nNo TF-IDF baseline: {cheap['reason']}.\n"
    metric = cheap["metric"]
    ours = metrics.get("test", {}).get(f"test_{metric}")
    against = f"; this model: {ours:.4f} ({ours - cheap['score']:+.4f})" if ours is not None else ""
    return (
        f"\nBaseline: {cheap['method']}, trained on the same {cheap['train_size']:,} training texts in "
        f"{cheap['seconds']:.0f} s: test {metric} {cheap['score']:.4f}{against}.\n"
    )


def _classes(metrics: dict[str, Any]) -> str:
    """The test split's figures per class (per entity type), worst F1 first."""
    classes = ((metrics.get("per_class") or {}).get("test") or {}).get("classes")
    if not classes:
        return ""
    rows = "\n".join(
        f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |"
        for name, c in sorted(classes.items(), key=lambda item: item[1]["f1"])
    )
    picture = (
        " `confusion_matrix.png` shows where the errors go." if "confusion" in metrics["per_class"]["test"] else ""
    )
    return f"""
Per class on the test split, worst first.{picture}

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{rows}
"""


def _metadata(recipe: Recipe, test: dict[str, Any], names: list[str], base_model: str, name: str) -> dict[str, Any]:
    """The card's YAML header: what the Hub indexes (base model, task, test metrics)."""
    source, kind = recipe.data.source, PIPELINE_TAGS[recipe.task.type]
    scores = [{"type": k, "value": round(test["test_" + k], 4), "name": f"test {k}"} for k in names]
    result = {
        "task": {"type": kind, "name": recipe.task.type.replace("_", " ")},
        "dataset": {"name": source, "type": source, "split": "test"},
        "metrics": scores,
    }
    metadata: dict[str, Any] = {
        "library_name": "transformers",
        "base_model": base_model,
        "pipeline_tag": kind,
        "tags": ["hfadapt", recipe.adapt.method] + (["lora", "peft"] if recipe.adapt.method == "lora" else []),
        "model-index": [{"name": name, "results": [result]}],
    }
    if not source.startswith(("builtin:", "/", ".", "in-memory:")):  # a Hub data set id
        metadata["datasets"] = [source]
    return metadata


def _adaptation(recipe: Recipe) -> str:
    adapt = recipe.adapt
    if adapt.method == "lora":
        settings = yaml.safe_dump(adapt.lora, default_flow_style=True).strip()
        return f"LoRA adapters (`{settings}`), the new task head trained in full"
    if adapt.method == "freeze":
        frozen = (["embeddings"] if adapt.freeze.embeddings else []) + (
            [f"encoder layers 0-{adapt.freeze.layers - 1}"] if adapt.freeze.layers else []
        )
        frozen += [f"parameters matching `{p}`" for p in adapt.freeze.patterns]
        return "frozen: " + ", ".join(frozen) + "; everything else trained"
    return "full fine-tuning: every weight trained"


def _data(source: str, report: dict[str, Any]) -> str:
    sizes, cut = report.get("sizes", {}), report.get("truncation")
    cuts = (
        f"; texts cut at {cut['max_length']} tokens: {100 * cut['train']['cut']:.1f}% of training "
        f"(keeping {100 * cut['train']['tokens_kept']:.1f}% of its tokens), {100 * cut['test']['cut']:.1f}% of test"
        if cut
        else ""
    )
    made = ", ".join(report.get("splits_made_by_hash", [])) or "none"
    return (
        f"`{source}`; split sizes train {sizes.get('train')}, validation {sizes.get('validation')}, "
        f"test {sizes.get('test')}; splits made by text hash: {made}; duplicates removed "
        f"{report.get('duplicates_removed', 0)}, conflicting texts removed {report.get('conflicting_texts_removed', 0)}"
        + "".join(
            f"; left out of {split} (data.drop_invalid): "
            + ", ".join(f"{count} with {reason}" for reason, count in reasons.items())
            for split, reasons in report.get("invalid_rows_dropped", {}).items()
        )
        + cuts
        + (
            f"; the given test split kept as given ({report['test_texts_removed_from_training']['count']} of its "
            "texts removed from training and validation)"
            if "test_texts_removed_from_training" in report
            else ""
        )
    )


def _loading(recipe: Recipe) -> str:
    if recipe.adapt.method != "lora" or recipe.adapt.merge_lora:
        kind = PIPELINE_TAGS[recipe.task.type]
        return f'from transformers import pipeline\n\nclassifier = pipeline("{kind}", model="PATH_OR_REPO_ID")\n'
    return (
        "from peft import AutoPeftModelForSequenceClassification\n\n"
        'model = AutoPeftModelForSequenceClassification.from_pretrained("PATH_OR_REPO_ID/adapter")\n'
    )


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
            f"| tokenizer | trained on the corpus: {new['vocab_size']:,} tokens; [UNK] rate "
            f"{100 * new['unk_rate']:.2f}%"
            f" (the checkpoint's: {100 * old.get('unk_rate', float('nan')):.2f}%), tokens per character "
            f"{new['tokens_per_char']:.3f}, coverage of the 1,000 most frequent characters "
            f"{100 * new['char_coverage']:.1f}% |\n"
        )
    vocab = report.get("vocabulary")
    if vocab:
        rows += (
            f"| vocabulary ({vocab['mode']}) | {vocab['vocab_size']:,} rows: {vocab['copied']:,} copied from the "
            f"checkpoint, {vocab['composed']:,} composed from old pieces, {vocab['drawn']:,} drawn |\n"
        )
    if "discriminator_accuracy" in report:
        stage = "replaced-token detection"
        scores = (
            f"held-out discriminator accuracy {100 * report['discriminator_accuracy_before']:.1f}% -> "
            f"{100 * report['discriminator_accuracy']:.1f}% (generator perplexity {report['generator_perplexity']:.1f})"
        )
    else:
        stage = "masked-LM pretraining"
        scores = f"held-out perplexity {report['perplexity_before']:.1f} -> {report['perplexity']:.1f}"
    rows += (
        f"| {stage} | {report['steps']:,} steps, {report['tokens_seen']:,} tokens, "
        f"{100 * report['packing']['non_padding_share']:.2f}% real tokens per block; {scores}; "
        f"{report['seconds'] / 60:.0f} min |\n"
    )
    return rows
