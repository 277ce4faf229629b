"""Using a finished run: load it, predict labels for new texts, evaluate it on a data set."""

from __future__ import annotations

import functools
import io
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hfadapt.data import long_texts, sources, splits, tokenization
from hfadapt.model import metrics, pretrained
from hfadapt.errors import HfadaptError
from hfadapt.data.records import missing
from hfadapt.recipe import load_recipe

logger = logging.getLogger(__name__)


def load_run(run_dir: str | Path):
    """A finished run's recipe, model and tokenizer (the merged or fully trained model, or LoRA on its base)."""
    from transformers import AutoTokenizer

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HfadaptError(f"{run_dir} does not exist; give the output folder of a finished hfadapt run")
    if not (run_dir / "recipe.yaml").exists():
        raise HfadaptError(
            f"{run_dir} is not a finished hfadapt run (it has no recipe.yaml); give the "
            "output.dir of a run that completed"
        )
    recipe = load_recipe(run_dir / "recipe.yaml")
    pretrained.check_readable(run_dir, "run")
    pretrained.check_readable(run_dir / "adapter", "run")
    task_class = pretrained.task_class(recipe.task)
    if (run_dir / "config.json").exists():
        model = task_class.from_pretrained(run_dir)
        tokenizer = AutoTokenizer.from_pretrained(run_dir)
    elif (run_dir / "adapter" / "adapter_config.json").exists():
        from peft import PeftModel

        adapter = run_dir / "adapter"
        config = json.loads((adapter / "adapter_config.json").read_text())
        base_config = pretrained.load_config(recipe.model)
        saved = json.loads((run_dir / "metrics.json").read_text())
        names = saved.get("label_names")
        if names is not None:
            base_config.num_labels = len(names)
            base_config.id2label = dict(enumerate(names))
            base_config.label2id = {n: i for i, n in enumerate(names)}
        base = task_class.from_pretrained(config["base_model_name_or_path"], config=base_config)
        model = PeftModel.from_pretrained(base, adapter)
        tokenizer = AutoTokenizer.from_pretrained(adapter)
    else:
        raise HfadaptError(
            f"{run_dir} holds neither a model (config.json) nor a LoRA adapter (adapter/); was the run finished?"
        )
    model.eval()
    return recipe, model, tokenizer


@functools.lru_cache(maxsize=2)
def _loaded(run_dir: str, stamp: float):
    return load_run(run_dir)


def predict(
    run_dir: str | Path, texts: Iterable[str], batch_size: int = 64, progress: bool = True
) -> list[dict[str, Any]]:
    """Labels and scores for `texts` (for token classification: the entities found in each text).

    The run is loaded once and kept for the next calls (as long as its recipe.yaml is unchanged),
    so calling this inside `datasets.map` batch after batch costs no reloading.

    Args:
        run_dir: the output folder of a finished run.
        texts: the texts to label.
        batch_size: texts per forward pass.
        progress: show a progress bar.

    Returns:
        One dict per text: `text` and `label` and `score` (single-label), `labels` and `scores`
        (multi-label), `score` (regression), or `entities` and `tags` (token classification).
    """
    import torch
    from tqdm.auto import tqdm

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise HfadaptError(f"--batch-size: must be a whole number of 1 or more, got {batch_size!r}")
    recipe_file = Path(run_dir) / "recipe.yaml"
    recipe, model, tokenizer = _loaded(
        str(Path(run_dir).resolve()), recipe_file.stat().st_mtime if recipe_file.exists() else 0.0
    )
    texts = list(texts)
    id2label = model.config.id2label
    results = []
    for start in tqdm(range(0, len(texts), batch_size), desc="Predicting", unit="batch", disable=not progress):
        batch = texts[start : start + batch_size]
        docs = None
        if recipe.task.type == "token_classification":
            words = [list(t) if " " not in t.strip() else t.split() for t in batch]
            enc = tokenizer(
                words,
                is_split_into_words=True,
                truncation=True,
                max_length=recipe.data.max_length,
                padding=True,
                return_tensors="pt",
            )
        else:  # data.long_texts as in training: windows are scored per text, as the mean of their logits
            rows = long_texts.encode(tokenizer, batch, recipe.data)
            docs = rows.pop("doc", None)
            enc = tokenizer.pad(rows, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits
        if docs is not None:
            logits = torch.from_numpy(long_texts.pool(logits.numpy(), None, docs)[0])
        for i, text in enumerate(batch):
            if recipe.task.type == "token_classification":
                results.append(_entities(text, words[i], logits[i].argmax(-1).tolist(), enc.word_ids(i), id2label))
            elif recipe.task.problem_type == "regression":
                results.append({"text": text, "score": float(logits[i, 0])})
            elif recipe.task.problem_type == "multi_label_classification":
                probs = torch.sigmoid(logits[i])
                results.append(
                    {
                        "text": text,
                        "labels": [id2label[j] for j, p in enumerate(probs) if p > 0.5],
                        "scores": {id2label[j]: float(p) for j, p in enumerate(probs)},
                    }
                )
            else:
                probs = torch.softmax(logits[i], -1)
                best = int(probs.argmax())
                results.append({"text": text, "label": id2label[best], "score": float(probs[best])})
    return results


def _entities(text: str, words: list[str], ids: list[int], word_ids: list[int | None], id2label) -> dict[str, Any]:
    """One text's tags (from the first piece of each word) and the entity spans they make."""
    tags, previous = ["O"] * len(words), None
    for position, word in enumerate(word_ids):
        if word is not None and word != previous:
            tags[word] = id2label[ids[position]]
        previous = word
    joiner = "" if " " not in text.strip() else " "
    found = [
        {"type": kind, "text": joiner.join(words[s:e]), "start": s, "end": e}
        for kind, s, e in sorted(metrics.entities(tags), key=lambda x: x[1])
    ]
    return {"text": text, "entities": found, "tags": tags}


def read_texts(path: str | Path, column: str = "text", encoding: str = "utf-8") -> list[str]:
    """Texts from a .txt file (one a line), or a column of a CSV, TSV or JSON lines file.

    The file is checked as training data is (encoding, JSON lines, CSV fields); an empty file, a
    missing column or an empty text is refused with its place.
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise HfadaptError(f"--file: {path} does not exist; give a .txt, .csv, .tsv or .jsonl file of texts")
    if path.suffix.lower() not in (".txt", ".csv", ".tsv", ".jsonl", ".json"):
        raise HfadaptError(f"--file: {path}: unsupported file type {path.suffix!r}; use .txt, .csv, .tsv or .jsonl")
    starts = sources.check_file(path, encoding, "--file")
    text = path.read_text(encoding=encoding)
    if path.suffix.lower() == ".txt":
        return [line for line in text.splitlines() if line.strip()]
    if path.suffix.lower() in (".csv", ".tsv"):
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))
    elif starts:  # JSON lines
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:  # one JSON document: it must be an array of objects
        rows = json.loads(text)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise HfadaptError(
                f'--file: {path} is one JSON value but not an array of objects; give [{{"{column}": ...}}, ...] '
                "or JSON lines, one object a line"
            )
    if not rows:
        raise HfadaptError(f"--file: {path} has no rows; give a file with examples")
    if column not in rows[0]:
        raise HfadaptError(f"--column: {path} has no column {column!r}; its columns are {', '.join(rows[0])}")
    empty = [f"line {starts[i]}" if starts else f"row {i + 1}" for i, r in enumerate(rows) if missing(r.get(column))]
    if empty:
        raise HfadaptError(
            f"--file: {path} has {len(empty)} empty text{'s' * (len(empty) > 1)} ({', '.join(empty[:5])}); "
            f"remove {'them' if len(empty) > 1 else 'it'}"
        )
    return [str(r[column]) for r in rows]


def evaluate(run_dir: str | Path, source: str | None = None, split: str = "test") -> dict[str, float]:
    """Metrics of a finished run on a split of a data source, made as in training.

    Args:
        run_dir: the output folder of a finished run.
        source: a data source (file, folder, Hub id, builtin:NAME); by default the run's own.
        split: `train`, `validation` or `test`.

    Returns:
        The split's metrics, keyed `SPLIT_METRIC` (e.g. `test_accuracy`), as `Trainer.evaluate` gives them,
        and for classification `SPLIT_per_class`: each class's precision, recall, F1 and support.
    """
    import tempfile

    from transformers import Trainer, TrainingArguments

    class _Trainer(long_texts.WindowPooling, Trainer):
        """Windows of long texts scored per text, as in training."""

    recipe, model, tokenizer = load_run(run_dir)
    if source is not None:
        recipe.data.source = source
    if split not in splits.SPLITS:
        raise HfadaptError(f"split {split!r}: choose one of {', '.join(splits.SPLITS)}")
    trained_labels = (
        [model.config.id2label[i] for i in range(model.config.num_labels)]
        if recipe.task.problem_type != "regression"
        else None
    )
    task_data = splits.load_splits(recipe.data, recipe.task, label_names=trained_labels)
    tokenized = tokenization.tokenize(task_data, tokenizer, recipe.data, recipe.task)
    collator = tokenization.collator(tokenizer, recipe.task)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            report_to="none",
            per_device_eval_batch_size=recipe.training.get("per_device_eval_batch_size", 64),
        )
        trainer = _Trainer(
            model=model,
            args=args,
            processing_class=tokenizer,
            data_collator=collator,
            compute_metrics=metrics.compute_fn(recipe.task, trained_labels),
        )
        out = trainer.predict(tokenized[split], metric_key_prefix=split)
    scores: dict[str, Any] = dict(out.metrics)
    per = metrics.per_class(recipe.task, trained_labels, out.predictions, out.label_ids)
    if per is not None:
        scores[f"{split}_per_class"] = per
    return scores
