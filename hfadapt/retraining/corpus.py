"""The corpus: its sources read (once per pipeline), split into training and held-out shares by
text hash, segmented into words, and packed into blocks for masked-LM pretraining."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterator
from typing import Any

from hfadapt.data import in_memory, sources, splits
from hfadapt.errors import HfadaptError
from hfadapt.recipe import Recipe
from hfadapt.retraining import mlm


def segment_with(segmenter: str | None):
    """A function text -> words, or None to use the tokenizer's own words."""
    if segmenter is None:
        return None
    if segmenter == "jieba":
        try:
            import jieba
        except ImportError:
            raise HfadaptError(
                "corpus.segmenter: jieba is asked for but not installed; pip install jieba, or "
                "set corpus.segmenter: null"
            ) from None
        jieba.setLogLevel(logging.WARNING)
        return lambda text: jieba.lcut(text)
    raise HfadaptError(f"corpus.segmenter: unknown segmenter {segmenter!r}; use jieba, or null")


# The corpus sources and fine-tuning data, read once inside `reading_once()`: the tokenizer
# stage, the name of the packed corpus and the packing itself all read them. Outside it, each
# read goes to the source.
_loaded: dict[str, Any] | None = None
# Data and texts given in memory to the pipeline running inside `reading_once(...)`, by the name the
# recipe gives them (their `in-memory:` source).
_given: dict[str, in_memory.Given | in_memory.Texts] = {}


@contextlib.contextmanager
def reading_once(*given: in_memory.Given | in_memory.Texts | None):
    """Read each corpus source and the fine-tuning data once inside this block; `given`: the data and
    texts given in memory to the pipeline, found by their `in-memory:` names in its recipe."""
    global _loaded, _given
    outer, outer_given = _loaded, _given
    _loaded = {} if outer is None else outer
    _given = {**outer_given, **{g.name: g for g in given if g is not None}}
    try:
        yield
    finally:
        _loaded, _given = outer, outer_given


def _once(key: str, read):
    if _loaded is None:
        return read()
    if key not in _loaded:
        _loaded[key] = read()
    return _loaded[key]


def _task_data(recipe: Recipe) -> splits.TaskData:
    key = json.dumps([dataclasses.asdict(recipe.data), dataclasses.asdict(recipe.task)], sort_keys=True, default=str)
    given = _given.get(recipe.data.source)
    return _once("data\x1e" + key, lambda: splits.load_splits(recipe.data, recipe.task, given=given))


def _source(source: str):
    return _once(
        "source\x1e" + source, lambda: _corpus_part(sources.load_source(source, where="corpus.sources").splits)
    )


def corpus_documents(recipe: Recipe, split: str, repeated: bool = False) -> Iterator[tuple[str, list[str] | None]]:
    """The corpus as `(text, words or None)`, in the `train` or held-out `validation` share (by text hash).

    `repeated`: the training share as masked-LM pretraining reads it, each source `pretrain.repeat`
    times. A repeated source is read and segmented once and held in memory for its further passes
    (repeat is for small in-domain sources); every other source streams.
    """
    segment = segment_with(recipe.corpus.segmenter)
    repeat = recipe.pretrain.repeat if repeated and split == "train" and recipe.pretrain is not None else {}
    for source in recipe.corpus.sources:
        documents = _source_documents(recipe, source, split, segment)
        times = repeat.get(source, 1)
        if times > 1:
            documents = list(documents)
        for _ in range(times):
            yield from documents


def _source_documents(recipe: Recipe, source: str, split: str, segment) -> Iterator[tuple[str, list[str] | None]]:
    """One corpus source's `(text, words or None)` in the `split` share."""
    corpus = recipe.corpus
    if source == recipe.data.source:
        # the fine-tuning data: its training split only, so no test text is ever pretrained on
        rows = ((t, None) for t in splits.texts(_task_data(recipe).splits["train"]))
    elif source in _given:  # texts given in memory (retrain(corpus=...))
        rows = ((t, None) for t in _given[source].texts)
    else:
        part = _source(source)
        words_only = corpus.text_column not in part.column_names and "tokens" in part.column_names
        if words_only:  # a data set of word lists (token classification, e.g. builtin:msra_ner): its sentences
            part = part.map(
                lambda batch: {corpus.text_column: [splits.join_words(words) for words in batch["tokens"]]},
                batched=True,
                desc="Joining words",
            )
        if corpus.text_column not in part.column_names:
            raise HfadaptError(
                f"corpus.text_column: {source} has no column {corpus.text_column!r}; its columns "
                f"are {', '.join(part.column_names)}"
            )
        has_words = corpus.words_column in part.column_names
        columns = [corpus.text_column] + ([corpus.words_column] if has_words else [])
        rows = (
            (r[corpus.text_column], r[corpus.words_column] if has_words else None) for r in part.select_columns(columns)
        )
    count = 0
    for text, words in rows:
        if corpus.max_texts is not None and count >= corpus.max_texts:
            break
        if not text or not text.strip():
            continue
        count += 1
        # salted: unsalted, this hash is the one that made the data's splits, and the fine-tuning
        # texts left in training would never fall in the held-out share
        held_out = (
            int(hashlib.sha1(("corpus\x1e" + text).encode("utf-8")).hexdigest(), 16) % 1_000_000
        ) / 1_000_000 < corpus.validation_fraction
        if held_out != (split == "validation"):
            continue
        if words is None and segment is not None:
            words = segment(text)
        yield text, words
    if count == 0:
        raise HfadaptError(f"corpus.sources: {source} has no text; give a corpus with non-empty texts")


def _corpus_part(loaded):
    """The split of a corpus source that pretraining reads: its `train` split, or its only one."""
    return loaded["train"] if "train" in loaded else loaded[next(iter(loaded))]


def corpus_key(recipe: Recipe) -> dict:
    """What names the corpus for prepared data: its settings, and what each source holds.

    A source's content is named by the fingerprint `datasets` gives it (a hash of the data, or of
    the files and their modification times); the fine-tuning data by its own fingerprint, and texts
    given in memory by a hash of them.
    """
    sources = []
    for source in recipe.corpus.sources:
        if source == recipe.data.source:
            sources.append(_task_data(recipe).report["fingerprint"])
        elif source in _given:
            sources.append(_given[source].digest)
        else:
            sources.append(_source(source)._fingerprint)
    return {"settings": dataclasses.asdict(recipe.corpus), "sources": sources}


def pretraining_data(recipe: Recipe, tokenizer) -> Any:
    """The corpus packed into blocks for `tokenizer`: prepared once (by the main process), then loaded."""
    key = corpus_key(recipe)
    if recipe.pretrain.repeat:
        key["repeat"] = recipe.pretrain.repeat
    return mlm.packed(
        key, tokenizer, recipe.pretrain.block_size, lambda split: corpus_documents(recipe, split, repeated=True)
    )
