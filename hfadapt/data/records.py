"""Examples: each row of a split checked and encoded (text or words, and label), every unusable row named.

A row is unusable when its text is empty, its label is missing (empty cell, null, NaN, or a marker
of `data.missing_values`), or a value has the wrong type (a mapping as a label, a list where one
label is expected, fewer tags than words). Such rows are refused by default, all at once, with
their count and their first places (the file's line where hfadapt read the file itself, the index
of data given in memory);
`data.drop_invalid: true` leaves them out instead, and the counts go into the data report
(metrics.json, the model card).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

from hfadapt.errors import HfadaptError
from hfadapt.recipe import DataConfig, TaskConfig

EMPTY_TEXT = "empty text"
NO_LABEL = "no label"
BAD_TEXT = "text that is not text"
BAD_LABEL = "label of the wrong type"
TAG_COUNT = "words and tags that differ in number"
SHOWN = 5  # places named per reason


class Unusable(Exception):
    """A row that cannot be used, and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# what pandas reads as missing by default: a CSV label spelt so is ambiguous until data.missing_values says
MARKERS = ("NA", "N/A", "n/a", "NaN", "nan", "None", "null", "NULL", "<NA>", "#N/A")


def missing(value: Any, markers: Collection[str] = ()) -> bool:
    """None, NaN, an empty string, or one of `markers` (`data.missing_values`): what an empty cell reads as."""
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and (not value.strip() or value.strip() in markers))
    )


def label_key(value: Any) -> str:
    """The label's name: 1.0 (a CSV column of numbers with empty cells) reads as 1."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def label_names(train, data: DataConfig, task: TaskConfig) -> list[str] | None:
    """The label names, from the training split's ClassLabel feature or its distinct values."""
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
    markers = data.missing_values or ()
    if task.type == "token_classification" or task.problem_type == "multi_label_classification":
        values = [v for seq in values if isinstance(seq, list) for v in seq]
    # an Arrow column holds one type, so 1 and "1" cannot both be here (sources.py finds them in JSON lines)
    keys = {label_key(v) for v in values if not missing(v, markers) and isinstance(v, (str, int, float, bool))}
    if not keys:
        raise HfadaptError(f"data.label_column: column {data.label_column!r} of {data.source} holds no labels")
    distinct = sorted(keys, key=lambda k: (not k.lstrip("-").isdigit(), int(k) if k.lstrip("-").isdigit() else 0, k))
    return distinct


def encode_rows(
    ds,
    data: DataConfig,
    task: TaskConfig,
    names: list[str] | None,
    split: str,
    known: bool,
    unusable,
    place: Callable[[int], str] | None = None,
):
    """The split's usable rows, encoded; each unusable row's position goes to `unusable[reason]`.

    `place(i)` names row i in messages ("line 3 of FILE", "index 7 of the DataFrame"); by default
    "row i+1 of the SPLIT split".
    """
    from datasets import ClassLabel, Sequence

    feature = ds.features[data.label_column]
    inner = feature.feature if isinstance(feature, Sequence) else (feature[0] if isinstance(feature, list) else feature)
    class_label = inner if isinstance(inner, ClassLabel) else feature if isinstance(feature, ClassLabel) else None
    index = {name: i for i, name in enumerate(names or [])}
    markers = data.missing_values or ()

    def encode(value: Any, where: str) -> int:
        if missing(value, markers):
            raise Unusable(NO_LABEL)
        if not isinstance(value, (str, int, float, bool)):
            raise Unusable(BAD_LABEL)
        key = class_label.names[value] if class_label is not None and isinstance(value, int) else label_key(value)
        if key not in index:
            if known:
                raise HfadaptError(
                    f"data: {where} has the label {value!r}, which the model does not know; it knows {', '.join(names)}"
                )
            flat = [v for item in ds[data.label_column] for v in (item if isinstance(item, list) else [item])]
            unseen_labels(split, sorted({label_key(v) for v in flat if not missing(v, markers)} - set(index)))
        return index[key]

    out = []
    for i, example in enumerate(ds):
        where = place(i) if place is not None else f"row {i + 1} of the {split} split"
        try:
            if task.type == "token_classification":
                row = _token_row(example[data.text_column], example[data.label_column], where, encode)
            else:
                row = _text_row(example, where, encode, data, task, len(names or []), markers)
        except Unusable as e:
            unusable[e.reason].append(i)
            continue
        row["_row"] = i
        out.append(row)
    return out


def _token_row(words: Any, tags: Any, where: str, encode) -> dict[str, Any]:
    """A token-classification example: its words and one encoded tag per word."""
    if words is None or (isinstance(words, list) and not words):
        raise Unusable(EMPTY_TEXT)
    if not isinstance(words, list):
        raise Unusable(BAD_TEXT)
    if tags is None:
        raise Unusable(NO_LABEL)
    if not isinstance(tags, list):
        raise Unusable(BAD_LABEL)
    if len(tags) != len(words):
        raise Unusable(TAG_COUNT)
    return {"tokens": [str(t) for t in words], "label": [encode(t, where) for t in tags]}


def _text_row(
    example: dict, where: str, encode, data: DataConfig, task: TaskConfig, classes: int, markers: Collection[str]
) -> dict[str, Any]:
    """A sequence-classification example: its text (and pair), and its label encoded for the problem type."""
    text, label = example[data.text_column], example[data.label_column]
    if missing(text, markers):
        raise Unusable(EMPTY_TEXT)
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise Unusable(BAD_TEXT)
    row: dict[str, Any] = {"text": str(text)}
    if data.text_pair_column:
        pair = example[data.text_pair_column]
        row["text_pair"] = "" if missing(pair, markers) else str(pair)
    if task.problem_type == "regression":
        if missing(label, markers):
            raise Unusable(NO_LABEL)
        try:
            row["label"] = float(label)
        except (TypeError, ValueError):
            raise Unusable("label that is not a number (regression)") from None
        if not math.isfinite(row["label"]):  # the text "nan" or "inf": no target to learn
            raise Unusable(NO_LABEL if math.isnan(row["label"]) else "label that is not a number (regression)")
    elif task.problem_type == "multi_label_classification":
        if label is None:
            raise Unusable(NO_LABEL)
        if isinstance(label, dict):
            raise Unusable(BAD_LABEL)
        vector = [0.0] * classes
        for value in label if isinstance(label, list) else [label]:
            vector[encode(value, where)] = 1.0
        row["label"] = vector
    else:
        if isinstance(label, (list, dict)):
            raise Unusable(BAD_LABEL)
        row["label"] = encode(label, where)
    return row


def refuse_or_count(unusable: dict[str, dict[str, list[int]]], data: DataConfig, source, read: dict[str, int]) -> dict:
    """Refuse the data when rows are unusable (unless data.drop_invalid); else the counts dropped per reason."""
    counts = {
        split: {reason: len(rows) for reason, rows in reasons.items() if rows} for split, reasons in unusable.items()
    }
    counts = {split: c for split, c in counts.items() if c}
    if not counts or data.drop_invalid:
        return counts
    total = sum(sum(c.values()) for c in counts.values())
    lines = []
    for split, reasons in unusable.items():
        for reason, rows in reasons.items():
            if not rows:
                continue
            starts = source.lines.get(split)
            places = [f"line {starts[i]}" if starts else f"row {i + 1}" for i in rows[:SHOWN]]
            more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
            where = (source.split_files.get(split) or source.file) if starts else f"the {split} split"
            if source.given is not None:  # data given in memory: its rows by index (a DataFrame's own)
                index = source.index.get(split)
                places = [f"index {i if index is None else index[i]}" for i in rows[:SHOWN]]
                where = source.given if len(source.splits) == 1 else f"the {split} split of {source.given}"
            lines.append(
                f"  {reason}: {len(rows)} row{'s' if len(rows) > 1 else ''} ({', '.join(places)}{more} of {where})"
            )
    rows_read = sum(read.values())
    named = source.given or data.source
    raise HfadaptError(
        f"data: {total} of {rows_read} rows of {named} cannot be used:\n" + "\n".join(lines) + "\n"
        "fix them, or set data.drop_invalid=true to leave such rows out (their count goes into metrics.json)"
    )


def unseen_labels(split: str, labels: list[str]):
    shown = ", ".join(repr(label) for label in labels)
    raise HfadaptError(
        f"data: the {split} split has labels that training never saw: {shown}; add "
        f"training examples of them, or remove them from the {split} split"
    )


def check_markers(names: list[str], data: DataConfig, source: str) -> None:
    """Refuse a CSV or TSV label spelt like a missing-value marker ("NA", "None") until `data.missing_values`
    says whether it is a class or a missing label: pandas and R write such markers for empty cells."""
    found = [name for name in names if name.strip() in MARKERS]
    if data.missing_values is not None or not found:
        return
    one = len(found) == 1
    written = [name if _plain_in_yaml(name) else repr(name) for name in found]  # 'null', '#N/A' need quotes
    raise HfadaptError(
        f"data.missing_values: the labels of {source} include {', '.join(map(repr, found))}, which files written "
        f"by R or pandas use for a missing value; set data.missing_values=[] to train {'it' if one else 'them'} as "
        f"{'a class' if one else 'classes'}, or data.missing_values=[{', '.join(written)}] to read "
        f"{'it as a missing label' if one else 'them as missing labels'}"
    )


def _plain_in_yaml(text: str) -> bool:
    import yaml

    try:
        return yaml.safe_load(f"[{text}]") == [text]
    except yaml.YAMLError:
        return False
