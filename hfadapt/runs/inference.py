"""Using a finished run: open its folder, load its model, predict labels for new texts, evaluate it on a data set.

`hfadapt.Run` (runs/run.py) holds a run and calls these; the functions also take the run's folder,
as the command line gives it.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfadapt.data import in_memory, local_files, long_texts, splits, tokenization
from hfadapt.data.records import missing
from hfadapt.data.sampler import SortedEvaluation
from hfadapt.errors import HfadaptError
from hfadapt.model import metrics, pretrained
from hfadapt.recipe import Recipe, as_recipe, load_recipe
from hfadapt.runs import tagging

if TYPE_CHECKING:
    from hfadapt.runs.run import Run

logger = logging.getLogger(__name__)

# the data settings that find and read the run's own source; evaluating another source starts from their defaults
OWN_SOURCE_SETTINGS = ("files", "subset", "revision", "encoding", "delimiter", "header", "columns")


def check_run(run_dir: Path) -> Recipe:
    """The recipe of the finished run in `run_dir`, after checking that the folder holds a readable model
    (config.json) or LoRA adapter (adapter/)."""
    if not run_dir.is_dir():
        raise HfadaptError(f"{run_dir} does not exist; give the output folder of a finished hfadapt run")
    if not (run_dir / "recipe.yaml").exists():
        raise HfadaptError(
            f"{run_dir} is not a finished hfadapt run (it has no recipe.yaml); give the "
            "output.dir of a run that completed"
        )
    recipe = load_recipe(run_dir / "recipe.yaml")
    if not (run_dir / "config.json").exists() and not (run_dir / "adapter" / "adapter_config.json").exists():
        if (run_dir / "finetuned").is_dir():
            hint = f"it is a retraining run: give its fine-tuned stage, {run_dir / 'finetuned'}"
        elif (run_dir / "seeds.json").exists():
            hint = "it is a multi-seed run: give one of its seed-N folders"
        else:
            hint = "was the run finished?"
        raise HfadaptError(f"{run_dir} holds neither a model (config.json) nor a LoRA adapter (adapter/); {hint}")
    pretrained.check_readable(run_dir, "run")
    pretrained.check_readable(run_dir / "adapter", "run")
    return recipe


def load_model(run_dir: Path, recipe: Recipe, label_names: list[str] | None):
    """A checked run's model in eval mode (the merged or fully trained one, or the LoRA adapter on its base)
    and its tokenizer."""
    from transformers import AutoTokenizer

    task_class = pretrained.task_class(recipe.task)
    if (run_dir / "config.json").exists():
        model = task_class.from_pretrained(run_dir)
        tokenizer = AutoTokenizer.from_pretrained(run_dir)
    else:
        from peft import PeftModel

        adapter = run_dir / "adapter"
        config = json.loads((adapter / "adapter_config.json").read_text())
        base_config = pretrained.load_config(recipe.model)
        if label_names is not None:
            base_config.num_labels = len(label_names)
            base_config.id2label = dict(enumerate(label_names))
            base_config.label2id = {n: i for i, n in enumerate(label_names)}
        base = task_class.from_pretrained(config["base_model_name_or_path"], config=base_config)
        model = PeftModel.from_pretrained(base, adapter)
        tokenizer = AutoTokenizer.from_pretrained(adapter)
    model.eval()
    return model, tokenizer


def load_folder(run_dir: Path):
    """The recipe, model and tokenizer of the finished run in `run_dir`, loaded anew."""
    recipe = check_run(run_dir)
    saved = run_dir / "metrics.json"
    label_names = json.loads(saved.read_text()).get("label_names") if saved.exists() else None
    return (recipe, *load_model(run_dir, recipe, label_names))


def _pieces(run_dir: str | Path | Run):
    """The recipe, model and tokenizer of a `Run` (its own, loaded once) or of a run folder (loaded anew)."""
    if isinstance(run_dir, (str, os.PathLike)):
        return load_folder(Path(run_dir))
    return run_dir.recipe, run_dir.model, run_dir.tokenizer


@functools.lru_cache(maxsize=2)
def _loaded(run_dir: str, stamp: float):
    return _pieces(run_dir)


def resolve_device(name: str | None = None):
    """The `torch.device` to predict on: `name` ("cpu", "cuda", "cuda:1", "mps") once checked to exist
    here, or by default the GPU when there is one, else the CPU."""
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(name)
    except (RuntimeError, TypeError):
        raise HfadaptError(f"device {name!r}: not a device; use cpu, cuda, cuda:N or mps") from None
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise HfadaptError(f"device {name!r}: this machine has no CUDA GPU; use device='cpu' (or leave it unset)")
        if chosen.index is not None and chosen.index >= count:
            raise HfadaptError(f"device {name!r}: this machine has {count} CUDA GPU(s): cuda:0 to cuda:{count - 1}")
    elif chosen.type == "mps":
        if not torch.backends.mps.is_available():
            raise HfadaptError(f"device {name!r}: MPS (Apple GPU) is not available here; use device='cpu'")
    elif chosen.type != "cpu":
        raise HfadaptError(f"device {name!r}: use cpu, cuda, cuda:N or mps")
    return chosen


def predict(
    run_dir: str | Path | Run,
    texts: Iterable[str],
    batch_size: int = 64,
    progress: bool = True,
    *,
    device: str | None = None,
    all_scores: bool = False,
    precision: str = "auto",
) -> list[dict[str, Any]]:
    """Labels and scores for `texts` (for token classification: the entities found in each text).

    A run folder is loaded once and kept for the next calls (as long as its recipe.yaml is
    unchanged), so calling this inside `datasets.map` batch after batch costs no reloading; a `Run`
    uses its own model. Texts are batched longest first, so a batch pads little; the results come
    back in the order of `texts`.

    For token classification the words are the whitespace-separated words of a text, or for a text
    without spaces (Chinese) its characters, as the training data were split; each word takes the
    tag of its first piece, and an entity's `start` and `end` are character offsets into the text
    (`text[start:end] == entity["text"]`), without punctuation at either edge.

    Args:
        run_dir: the output folder of a finished run, or a `Run`.
        texts: the texts to label.
        batch_size: texts per forward pass.
        progress: show a progress bar.
        device: "cpu", "cuda", "cuda:N" or "mps"; by default the GPU when there is one, else the CPU.
            The model is moved there.
        all_scores: single-label classification: also give every label's probability as `scores`.
        precision: "auto" (bf16 autocast where the device runs bf16 fast: a GPU from Ampere on, a CPU
            with AVX512-BF16 or AMX; fp32 elsewhere), "bf16" or "fp32". bf16 labels a few texts in a
            thousand differently from fp32 at most on the shipped runs (docs/benchmarks/bench_predict.md).

    Returns:
        One dict per text, in the order of `texts`: `text` and `label` and `score` (single-label; with
        `all_scores`, `scores`: label -> probability), `labels` and `scores` (multi-label), `score`
        (regression), or `entities` (each with `type`, `text`, `start`, `end`, `score`) and `tags`
        (one per word) for token classification.

    Raises:
        HfadaptError: the run cannot be loaded, `batch_size` is not a whole number of 1 or more,
            `device` does not exist here, or `precision` is not auto, bf16 or fp32.
    """
    import torch
    from tqdm.auto import tqdm

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise HfadaptError(f"--batch-size: must be a whole number of 1 or more, got {batch_size!r}")
    where = resolve_device(device)
    bf16 = use_bf16(precision, where)
    if isinstance(run_dir, (str, os.PathLike)):
        recipe_file = Path(run_dir) / "recipe.yaml"
        stamp = recipe_file.stat().st_mtime if recipe_file.exists() else 0.0
        recipe, model, tokenizer = _loaded(str(Path(run_dir).resolve()), stamp)
    else:
        recipe, model, tokenizer = _pieces(run_dir)
    model.to(where)
    texts = list(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    results: list[dict[str, Any]] = [{} for _ in texts]
    for start in tqdm(range(0, len(texts), batch_size), desc="Predicting", unit="batch", disable=not progress):
        chosen = order[start : start + batch_size]
        batch = [texts[i] for i in chosen]
        with torch.autocast(where.type, dtype=torch.bfloat16, enabled=bf16):
            if recipe.task.type == "token_classification":
                stride = recipe.data.window_stride() if recipe.data.long_texts == "windows" else None
                done = tagging.tag(model, tokenizer, batch, recipe.data.max_length, where, stride)
            else:
                done = _classify(model, tokenizer, batch, recipe, where, all_scores)
        for i, result in zip(chosen, done, strict=True):
            results[i] = result
    return results


def use_bf16(precision: str, where) -> bool:
    """Whether to predict on `where` in bf16 autocast: `precision` "bf16", or "auto" on a device that runs
    bf16 fast (`arguments.fast_bf16`); "fp32" never."""
    from hfadapt.recipe.arguments import fast_bf16

    if precision not in ("auto", "bf16", "fp32"):
        raise HfadaptError(f"precision {precision!r}: use auto (bf16 where the device runs it fast), bf16 or fp32")
    if precision == "auto":
        return fast_bf16(where)[0]
    return precision == "bf16"


def _classify(model, tokenizer, batch: list[str], recipe: Recipe, where, all_scores: bool) -> list[dict[str, Any]]:
    """One batch of texts scored; data.long_texts as in training: a text's logits are the mean of its windows'."""
    import torch

    rows = long_texts.encode(tokenizer, batch, recipe.data)
    docs = rows.pop("doc", None)
    enc = tokenizer.pad(rows, return_tensors="pt").to(where)
    with torch.no_grad():
        logits = model(**enc).logits.float().cpu()
    if docs is not None:
        logits = torch.from_numpy(long_texts.pool_windows(logits.numpy(), docs)[0])
    id2label = model.config.id2label
    results = []
    for text, row in zip(batch, logits, strict=True):
        if recipe.task.problem_type == "regression":
            results.append({"text": text, "score": float(row[0])})
        elif recipe.task.problem_type == "multi_label_classification":
            probs = torch.sigmoid(row)
            results.append(
                {
                    "text": text,
                    "labels": [id2label[j] for j, p in enumerate(probs) if p > 0.5],
                    "scores": {id2label[j]: float(p) for j, p in enumerate(probs)},
                }
            )
        else:
            probs = torch.softmax(row, -1)
            best = int(probs.argmax())
            result = {"text": text, "label": id2label[best], "score": float(probs[best])}
            if all_scores:
                result["scores"] = {id2label[j]: float(p) for j, p in enumerate(probs)}
            results.append(result)
    return results


def read_texts(path: str | Path, column: str = "text", encoding: str = "utf-8") -> list[str]:
    """Texts from a .txt file (one a line), or a column of a CSV, TSV or JSON lines file.

    The file is checked as training data is (encoding, JSON lines, CSV fields); an empty file, a
    missing column or an empty text is refused with its place.

    Args:
        path: a .txt, .csv, .tsv, .jsonl or .json (an array of objects) file.
        column: the column of texts in a CSV, TSV or JSON file.
        encoding: the file's text encoding.

    Returns:
        The texts, in the file's order.

    Raises:
        HfadaptError: the file is missing, of another type, malformed, empty, or lacks the column or a text.
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise HfadaptError(f"--file: {path} does not exist; give a .txt, .csv, .tsv or .jsonl file of texts")
    if path.suffix.lower() not in (".txt", ".csv", ".tsv", ".jsonl", ".json"):
        raise HfadaptError(f"--file: {path}: unsupported file type {path.suffix!r}; use .txt, .csv, .tsv or .jsonl")
    checked = local_files.check_file(path, local_files.Layout(encoding=encoding), "--file")
    starts = checked.lines
    text = path.read_text(encoding=checked.encoding)  # a byte-order mark's encoding, which drops the mark
    if path.suffix.lower() == ".txt":
        return [line for line in text.splitlines() if line.strip()]
    if path.suffix.lower() in (".csv", ".tsv"):
        rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=checked.delimiter))
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


def evaluate(
    run_dir: str | Path | Run, source: Any = None, split: str = "test", *, overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Metrics of a finished run on a split of a data source, made as in training.

    Args:
        run_dir: the output folder of a finished run, or a `Run` (its own model is used).
        source: a data source (file, folder, Hub id, builtin:NAME), or the data itself as `finetune`
            takes it (a `pandas.DataFrame`, a `datasets.Dataset` or `DatasetDict`, a list of dicts); by
            default the run's own (data the run was given in memory must be given again). Another source
            keeps the run's columns and missing-value markers, but is read with the default encoding,
            delimiter and header (give its own in `overrides`).
        split: `train`, `validation` or `test`.
        overrides: `key=value` strings for the data section of the run's recipe, e.g. `data.encoding=latin-1`,
            `data.drop_invalid=true`.

    Returns:
        The split's metrics, keyed `SPLIT_METRIC` (e.g. `test_accuracy`), as `Trainer.evaluate` gives them,
        and for classification `SPLIT_per_class`: each class's precision, recall, F1 and support.
    """
    import tempfile

    from transformers import Trainer, TrainingArguments

    class _Trainer(long_texts.WindowPooling, SortedEvaluation, Trainer):
        """Windows of long texts scored per text, as in training."""

    outside = [item for item in overrides if not item.startswith("data.")]
    if outside:
        raise HfadaptError(
            f"{outside[0]}: evaluate takes overrides of the data section only (data.KEY=VALUE), e.g. "
            "data.encoding=latin-1 or data.drop_invalid=true; the model and its task are the run's"
        )
    given = None if source is None or isinstance(source, (str, os.PathLike)) else in_memory.load(source, "source")
    recipe, model, tokenizer = _pieces(run_dir)
    if given is not None or source is not None:  # a copy: a Run's own recipe stays as saved
        # another source: what found and read the run's own (its files, encoding, header...) does not apply
        fresh = {f.name: f.default for f in dataclasses.fields(recipe.data) if f.name in OWN_SOURCE_SETTINGS}
        fresh["source"] = given.name if given is not None else str(source)
        recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, **fresh))
    if overrides:
        recipe = as_recipe(recipe, overrides)
    if split not in splits.SPLITS:
        raise HfadaptError(f"split {split!r}: choose one of {', '.join(splits.SPLITS)}")
    trained_labels = (
        [model.config.id2label[i] for i in range(model.config.num_labels)]
        if recipe.task.problem_type != "regression"
        else None
    )
    task_data = splits.load_splits(recipe.data, recipe.task, label_names=trained_labels, given=given)
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
