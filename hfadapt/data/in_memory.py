"""Data given in memory: a `datasets.Dataset` or `DatasetDict`, a `pandas.DataFrame` or a list of dicts to
fine-tune or evaluate on, an iterable of texts as a retraining corpus.

Each is read into the splits a file gives (a DataFrame through `datasets.Dataset.from_pandas`, as
`datasets` reads a CSV file, so the same rows make the same examples; a DatasetDict keeps its splits),
checked before any compute, and named by a fingerprint of its content, `in-memory:sha256:<16 hex>`:
the `data.source` (or `corpus.sources`) of the run's recipe, manifest and card. The data itself is
not saved; a recipe that names it runs again only when it is given again.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfadapt.data import sources
from hfadapt.errors import HfadaptError, RecipeError
from hfadapt.recipe import Recipe, as_recipe

ACCEPTED = "a datasets.Dataset or DatasetDict, a pandas.DataFrame, or a list of dicts"
TEXTS = "an iterable of texts (a list or a generator of str, a pandas Series)"


@dataclass
class Given:
    """Data given in memory to fine-tune or evaluate on, read into splits."""

    source: sources.Source  # its splits, each row's index and what it was, for messages
    name: str  # in-memory:sha256:<16 hex>: its data.source in the run's recipe


@dataclass
class Texts:
    """A retraining corpus given in memory."""

    texts: list[str]
    name: str  # in-memory:sha256:<16 hex>: its corpus source in the run's recipe
    digest: str  # the whole sha256 of the texts: what the packed corpus is keyed on


def load(data: Any, where: str = "data") -> Given:
    """Data given in memory, read into splits and checked: its type, its rows, the type of each column.

    Args:
        data: a `datasets.Dataset` (read as the train split), a `datasets.DatasetDict` (its splits kept:
            those the recipe names train, validation and test are used as given, the missing ones made
            by text hash), a `pandas.DataFrame` or a list of dicts (read as the train split).
        where: how messages name the argument, e.g. `data` or `source`.

    Returns:
        The `Given` data: its splits, and its name `in-memory:sha256:<16 hex>`.

    Raises:
        HfadaptError: another type, no rows, a row that is not a dict, or a column mixing types (named
            with the index of a row of each type).
    """
    import datasets

    if isinstance(data, Given):
        return data
    if isinstance(data, datasets.DatasetDict):
        if not data:
            raise HfadaptError(f"{where}: the DatasetDict has no splits; give at least a train split")
        for name, split in data.items():
            if len(split) == 0:
                raise HfadaptError(
                    f"{where}: the {name} split of the DatasetDict has no rows; give examples, or leave the "
                    "split out (a missing validation or test split is made by text hash)"
                )
        source = sources.Source(data, given="the DatasetDict", index={k: range(len(v)) for k, v in data.items()})
    elif isinstance(data, datasets.Dataset):
        if len(data) == 0:
            raise HfadaptError(f"{where}: the Dataset has no rows; give examples")
        source = sources.Source(
            datasets.DatasetDict({"train": data}), given="the Dataset", index={"train": range(len(data))}
        )
    elif _is_dataframe(data):
        source = _from_dataframe(data, where)
    elif isinstance(data, list):
        source = _from_list(data, where)
    else:
        hint = ""
        if isinstance(data, (str, Path)):
            hint = "; a file or folder goes in data.source"
        elif isinstance(data, dict):
            hint = "; a dict of columns: pandas.DataFrame(data); a dict of splits: datasets.DatasetDict(data)"
        raise HfadaptError(f"{where}: got {_type_name(data)}; give {ACCEPTED}{hint}")
    return Given(source, sources.IN_MEMORY + "sha256:" + _digest(source.splits)[:16])


def load_texts(corpus: Iterable[str], where: str = "corpus") -> Texts:
    """A retraining corpus given in memory, read once (a generator is used up) and checked.

    Args:
        corpus: the texts, any iterable of str; empty texts, None and NaN are left out, as a file's
            empty lines are.
        where: how messages name the argument.

    Returns:
        The `Texts`: the texts, and their name `in-memory:sha256:<16 hex>`.

    Raises:
        HfadaptError: not an iterable of texts (a str, a table), an item that is not a text (named by
            its position), or no text at all.
    """
    if isinstance(corpus, Texts):
        return corpus
    if isinstance(corpus, (str, bytes, dict)) or _is_table(corpus) or not isinstance(corpus, Iterable):
        hint = "; for a table, give its column of texts: corpus=df['text']" if _is_table(corpus) else ""
        if isinstance(corpus, (str, Path)):
            hint = "; files and folders go in corpus.sources"
        raise HfadaptError(f"{where}: got {_type_name(corpus)}; give {TEXTS}{hint}")
    texts = []
    for i, text in enumerate(corpus):
        if _missing(text):
            continue
        if not isinstance(text, str):
            raise HfadaptError(f"{where}: item {i} is {_type_name(text)}, not a text; give {TEXTS}")
        texts.append(text)
    if not any(text.strip() for text in texts):
        raise HfadaptError(f"{where}: the texts given are all empty; give a corpus with non-empty texts")
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\x1e")
    return Texts(texts, sources.IN_MEMORY + "sha256:" + digest.hexdigest()[:16], digest.hexdigest())


def recipe_with(
    recipe: Recipe | dict | str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    given: Given | None = None,
    texts: Texts | None = None,
    needs_data: bool = True,
) -> Recipe:
    """The checked recipe, its data.source naming the data `given` and its corpus.sources the `texts`.

    `given` replaces data.source, and a corpus source that named the old data.source (whose training
    split is then read) names the given data instead; `texts` replace corpus.sources. A recipe that
    still names data given in memory (one saved by such a run), which is not given again, is refused.

    Args:
        recipe: a `Recipe`, its dict form, or the path of a YAML recipe.
        overrides: `key=value` strings applied to the recipe.
        given: the fine-tuning data given in memory (`load`).
        texts: the retraining corpus given in memory (`load_texts`).
        needs_data: whether the run reads the fine-tuning data (`retrain` up to its tokenizer does not).

    Returns:
        The checked `Recipe`.

    Raises:
        RecipeError: the recipe's own problems.
        HfadaptError: data given in memory beside data.files, data.subset or data.revision (which locate
            a source), or a recipe naming data given in memory that is not given.
    """
    named = list(overrides)
    if given is not None:
        named.append(f"data.source={json.dumps(given.name)}")
    if texts is not None:
        named.append(f"corpus.sources={json.dumps([texts.name])}")
    checked = as_recipe(recipe, named)
    if given is not None:
        for field in ("files", "subset", "revision"):
            if getattr(checked.data, field) is not None:
                raise HfadaptError(
                    f"data.{field}: locates data in data.source, which the data given in memory replaces; "
                    f"remove it (overrides=['data.{field}=null'])"
                )
        if texts is None and checked.corpus is not None:
            try:
                old = as_recipe(recipe, overrides).data.source
            except RecipeError:  # the recipe names no data.source of its own
                old = None
            sources_named = [given.name if source == old else source for source in checked.corpus.sources]
            checked = checked.updated({"corpus": {"sources": sources_named}})
    names = {g.name for g in (given, texts) if g is not None}
    for source in checked.corpus.sources if checked.corpus is not None else []:
        if source.startswith(sources.IN_MEMORY) and source not in names:
            raise sources.not_saved(source, "corpus.sources")
    if needs_data and given is None and checked.data.source.startswith(sources.IN_MEMORY):
        raise sources.not_saved(checked.data.source, "data.source")
    return checked


def _from_dataframe(frame, where: str) -> sources.Source:
    import datasets

    if len(frame) == 0:
        raise HfadaptError(f"{where}: the DataFrame has no rows; give examples")
    index = list(frame.index)
    for position, column in enumerate(frame.columns):
        values = frame.iloc[:, position]
        if values.dtype == object:  # a column of Python values: pyarrow needs them of one type
            _check_types(column, values.tolist(), index, "the DataFrame", where)
    table = _table(lambda: datasets.Dataset.from_pandas(frame, preserve_index=False), "the DataFrame", where)
    return sources.Source(datasets.DatasetDict({"train": table}), given="the DataFrame", index={"train": index})


def _from_list(rows: list, where: str) -> sources.Source:
    import datasets

    if not rows:
        raise HfadaptError(f"{where}: the list has no rows; give one dict per example")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise HfadaptError(
                f"{where}: index {i} of the list is {_type_name(row)}, not a dict; give one dict per example, "
                "e.g. {'text': ..., 'label': ...}"
            )
    names = list(dict.fromkeys(key for row in rows for key in row))  # every row's columns, in order of appearance
    columns = {name: [row.get(name) for row in rows] for name in names}
    for name, values in columns.items():
        _check_types(name, values, range(len(rows)), "the list", where)
    table = _table(lambda: datasets.Dataset.from_dict(columns), "the list", where)
    return sources.Source(datasets.DatasetDict({"train": table}), given="the list", index={"train": range(len(rows))})


def _table(make, what: str, where: str):
    try:
        return make()
    except Exception as e:  # pyarrow raises many kinds; all mean "these values make no table"
        text = str(e).splitlines()[0] if str(e) else ""
        raise HfadaptError(f"{where}: {what} cannot be read as a table: {type(e).__name__}: {text}") from None


def _check_types(column: Any, values: list, index: Sequence, what: str, where: str) -> None:
    """A column holds one type of value (missing values aside): its first row of each type is named."""
    first: dict[str, int] = {}
    for i, value in enumerate(values):
        kind = _kind(value)
        if kind is not None and kind not in first:
            first[kind] = i
    if len(first) > 1:
        found = " and ".join(f"{kind} (index {index[i]})" for kind, i in first.items())
        raise HfadaptError(
            f"{where}: column {column!r} of {what} holds {found}; give every value of a column the same type"
        )


def _kind(value: Any) -> str | None:
    if _missing(value):
        return None
    if type(value).__name__ in ("bool", "bool_"):
        return "a truth value"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)) or hasattr(value, "__array__"):
        return "a list"
    return f"a {type(value).__name__}"


def _missing(value: Any) -> bool:
    """None, NaN, or pandas' NA and NaT: a missing value, which any column may hold."""
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or type(value).__name__ in ("NAType", "NaTType")
    )


def _digest(splits) -> str:
    """A sha256 of the values of every split, in order: the same rows give the same digest, whatever held them."""
    digest = hashlib.sha256()
    for name, split in splits.items():
        digest.update(f"{name}\x1e".encode())
        for batch in split.iter(batch_size=1000):
            digest.update(json.dumps(batch, sort_keys=True, ensure_ascii=False, default=repr).encode("utf-8"))
    return digest.hexdigest()


def _is_dataframe(value: Any) -> bool:
    pandas = sys.modules.get("pandas")  # a DataFrame comes with pandas already imported
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _is_table(value: Any) -> bool:
    datasets = sys.modules.get("datasets")
    tables = (datasets.Dataset, datasets.DatasetDict) if datasets is not None else ()
    return _is_dataframe(value) or isinstance(value, tables)


def _type_name(value: Any) -> str:
    kind = type(value)
    package = kind.__module__.split(".")[0]
    return kind.__name__ if package == "builtins" else f"{package}.{kind.__name__}"
