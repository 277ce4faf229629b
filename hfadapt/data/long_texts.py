"""Texts longer than `data.max_length`, read one of three ways (`data.long_texts`).

- `truncate`: the tokenizer keeps the first `max_length` tokens.
- `head_tail`: the first quarter of the room and the end of the text. Sun et al. (2019, "How to
  Fine-Tune BERT for Text Classification") found head and tail together better than either alone on
  long reviews: a review's verdict is often in its last sentences.
- `windows`: the whole text, as windows of `max_length` tokens that overlap by `data.stride`. Each
  window trains with its text's label; in evaluation and `predict` a text's logits are the mean of
  its windows', so every figure is per text, as with the other two. For token classification
  (`encode_word_windows`) each window trains with the tags of the words it holds, and a word's
  logits are the mean over the windows that hold its first piece (`pool_word_windows`), so every
  figure is per sentence and per word.

`encode_windows`, `pool_windows` and the `WindowPooling` Trainer mixin take plain arguments; `encode`
makes the token ids under a recipe's `data` section (for `data.tokenize` and `predict`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hfadapt.errors import HfadaptError
from hfadapt.recipe import DataConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

HEAD_SHARE = 0.25  # head_tail: the share of the room given to the text's beginning
# Texts the tokenizer encodes at once: its encodings of a whole text take about 100 bytes a token,
# so a batch holds at most ~100 MB of them (1M characters), however many texts there are; and
# batches of 256 encode as fast as one call over every text (measured in benchmarks/bench_long_texts.py).
BATCH_TEXTS = 256
BATCH_CHARACTERS = 1_000_000


def encode(tokenizer, texts: list[str], data: DataConfig, pairs: list[str] | None = None) -> dict[str, list]:
    """Token ids of `texts` under `data.long_texts`. With windows a long text gives several rows, and
    `doc` says which text (its index in `texts`) each row reads.

    The tokenizer sees a few texts at a time (`batches`): its encodings of the whole texts, many
    times the size of the rows kept, never pile up, whatever the number of texts."""
    if data.long_texts == "windows":
        return encode_windows(tokenizer, texts, data.max_length, data.window_stride())
    if data.long_texts == "head_tail":
        return _head_tail(tokenizer, texts, data.max_length)
    rows: dict[str, list] = {}
    for start, stop in batches(texts):
        part = pairs[start:stop] if pairs is not None else None
        for name, values in tokenizer(texts[start:stop], part, truncation=True, max_length=data.max_length).items():
            rows.setdefault(name, []).extend(values)
    return rows


def batches(texts: Sequence[str]) -> Iterator[tuple[int, int]]:
    """`(start, stop)` of consecutive texts to encode at once: at most BATCH_TEXTS of them, and no more
    than BATCH_CHARACTERS characters unless one text alone has more."""
    start, characters = 0, 0
    for stop, text in enumerate(texts):
        if stop > start and (stop - start == BATCH_TEXTS or characters + len(text) > BATCH_CHARACTERS):
            yield start, stop
            start, characters = stop, 0
        characters += len(text)
    if start < len(texts):
        yield start, len(texts)


def encode_windows(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, stride: int
) -> dict[str, list]:
    """Token ids of whole texts as windows of `max_length` tokens, each overlapping the one before by `stride`.

    A text that fits gives one window; a longer one several, each with the special tokens. Train each
    window with its text's label; score or predict per text with `pool_windows` (or `WindowPooling`).

    Args:
        tokenizer: a fast tokenizer (it gives the overflowing windows).
        texts: the texts.
        max_length: tokens per window, special tokens included.
        stride: tokens each window shares with the one before (a quarter of `max_length` is hfadapt's default).

    Returns:
        The tokenizer's columns (`input_ids`, `attention_mask`, ...), one row per window, and `doc`: the
        index in `texts` of the text each window reads.

    Raises:
        HfadaptError: a slow tokenizer, a single string for `texts`, or a stride that leaves no new token.
    """
    if isinstance(texts, str):
        raise HfadaptError(f"encode_windows: texts is one string; give a list of texts, e.g. [{texts[:20]!r}]")
    if not getattr(tokenizer, "is_fast", False):
        raise HfadaptError(
            "encode_windows: windows need a fast tokenizer (AutoTokenizer.from_pretrained(..., use_fast=True))"
        )
    room = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if not 0 <= stride < room:
        raise HfadaptError(
            f"encode_windows: stride must be 0 or more and below the {room} text tokens of a window of "
            f"max_length={max_length}; got {stride}"
        )
    texts = list(texts)
    rows: dict[str, list] = {}
    for start, stop in batches(texts):
        enc = tokenizer(
            texts[start:stop], truncation=True, max_length=max_length, stride=stride, return_overflowing_tokens=True
        )
        enc["overflow_to_sample_mapping"] = [start + i for i in enc["overflow_to_sample_mapping"]]
        for name, values in enc.items():
            rows.setdefault("doc" if name == "overflow_to_sample_mapping" else name, []).extend(values)
    return rows


def encode_word_windows(
    tokenizer, sentences: Sequence[Sequence[str]], max_length: int, stride: int | None = None, pieces: bool = False
) -> dict[str, list]:
    """Token ids of sentences given as words (token classification), each row holding one window.

    Args:
        tokenizer: a fast tokenizer (it gives the word of each piece).
        sentences: each a list of words.
        max_length: tokens per row, special tokens included.
        stride: tokens each window shares with the one before; None cuts each sentence at `max_length`
            (one row per sentence, as `data.long_texts: truncate`).
        pieces: also give `offset_mapping` (each piece's characters within its word) and `piece_word`
            (each position's word, -1 for special tokens), as `predict` needs for character spans.

    Returns:
        The tokenizer's columns, one row per window; `doc`: the sentence each row reads; `word`: per
        position, the index of the word whose first piece is there, or -1 (special tokens, later
        pieces, and a word's pieces in a window that begins after its first piece).
    """
    windows = stride is not None
    rows: dict[str, list] = {}
    sentences = [list(words) for words in sentences]
    for start, stop in batches([" ".join(words) for words in sentences]):
        enc = tokenizer(
            sentences[start:stop],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
            return_overflowing_tokens=windows,
            return_offsets_mapping=True,
            **({"stride": stride} if windows else {}),
        )
        docs = enc.pop("overflow_to_sample_mapping") if windows else list(range(stop - start))
        firsts, every = [], []
        for j in range(len(enc["input_ids"])):
            seen, first = set(), []
            ids = [-1 if word is None else word for word in enc.word_ids(j)]
            for word, (piece_start, _) in zip(ids, enc["offset_mapping"][j], strict=True):
                first.append(word if word >= 0 and piece_start == 0 and word not in seen else -1)
                seen.add(word)
            firsts.append(first)
            every.append(ids)
        if pieces:
            rows.setdefault("piece_word", []).extend(every)
        else:
            enc.pop("offset_mapping")
        for name, values in enc.items():
            rows.setdefault(name, []).extend(values)
        rows.setdefault("doc", []).extend(start + d for d in docs)
        rows.setdefault("word", []).extend(firsts)
    return rows


def pool_word_windows(
    predictions: np.ndarray | tuple, docs: Sequence[int], words: Sequence[Sequence[int]], labels=None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-word predictions of whole sentences from per-window ones: a word's logits are the mean over the
    windows that hold its first piece.

    Args:
        predictions: the windows' logits, `(rows, positions, labels)` (a tuple's first item is taken).
        docs: each row's sentence index (`encode_word_windows`'s `doc`).
        words: each row's word index per position, -1 where no word begins (`encode_word_windows`'s `word`).
        labels: the rows' labels per position (-100 where not scored), or None.

    Returns:
        `(sentences, most words, labels)` logits, zero past a sentence's last word, and the words'
        labels, -100 past the last word (None without `labels`), in sentence-index order.
    """
    if isinstance(predictions, tuple):
        predictions = predictions[0]
    predictions = np.asarray(predictions)
    docs = np.asarray(docs, dtype=np.int64)
    count = int(docs.max()) + 1 if len(docs) else 0
    width = max((max(row) for row in words if len(row)), default=-1) + 1
    sums = np.zeros((count, width, predictions.shape[-1]), dtype=np.float64)
    seen = np.zeros((count, width), dtype=np.int64)
    gold = np.full((count, width), -100, dtype=np.int64)
    for r, (doc, row) in enumerate(zip(docs, words, strict=True)):
        row = np.asarray(row, dtype=np.int64)
        positions = np.flatnonzero(row >= 0)
        sums[doc, row[positions]] += predictions[r, positions]
        seen[doc, row[positions]] += 1
        if labels is not None:
            gold[doc, row[positions]] = np.asarray(labels[r])[positions]
    pooled = (sums / np.maximum(seen, 1)[..., None]).astype(predictions.dtype)
    return pooled, gold if labels is not None else None


def _head_tail(tokenizer, texts: list[str], max_length: int) -> dict[str, list]:
    """The first HEAD_SHARE of the room and the last tokens of each text longer than `max_length`.

    Each text is encoded once, whole and with its special tokens, and its columns sliced: the
    special tokens sit before and after the text's own, so a long text keeps its first `before`
    + head entries and its last tail + `after`. (Cutting and merging `tokenizers.Encoding`s, as
    hfadapt once did, multiplies their overflowing pieces: 95 encodings of 21,746 tokens for one
    text of 1,000, so time and memory grew with the square of a text's length.)"""
    room = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    head = int(room * HEAD_SHARE)
    before, after = _special_sides(tokenizer)
    rows: dict[str, list] = {}
    for start, stop in batches(texts):
        for name, values in tokenizer(texts[start:stop], verbose=False).items():
            column = rows.setdefault(name, [])
            for row in values:
                if len(row) > max_length:  # the text's own tokens overflow the room
                    row = row[: before + head] + row[len(row) - (room - head) - after :]
                column.append(row)
    return rows


def _special_sides(tokenizer) -> tuple[int, int]:
    """How many special tokens the tokenizer puts before a single text's tokens, and how many after."""
    bare = tokenizer("a b", add_special_tokens=False)["input_ids"]
    full = tokenizer("a b")["input_ids"]
    for before in range(len(full) - len(bare) + 1):
        if full[before : before + len(bare)] == bare:
            return before, len(full) - len(bare) - before
    raise HfadaptError(
        f"data.long_texts: head_tail cannot find the text between {type(tokenizer).__name__}'s special tokens; "
        "set data.long_texts: truncate or windows"
    )


def pool_windows(
    predictions: np.ndarray | tuple, docs: Sequence[int], labels: Sequence[Any] | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-text predictions from per-window ones: the mean of each text's window logits.

    Args:
        predictions: the windows' logits, one row per window (a tuple's first item is taken, as
            `Trainer.predict` may give one).
        docs: each window's text index, as `encode_windows` gives it (`rows["doc"]`).
        labels: the windows' labels, or None.

    Returns:
        The per-text logits, in text-index order, and the per-text labels (each text's first window's;
        None without `labels`).

    Raises:
        HfadaptError: `docs` and `predictions` of different lengths.
    """
    if isinstance(predictions, tuple):
        predictions = predictions[0]
    predictions = np.asarray(predictions)
    docs = np.asarray(docs, dtype=np.int64)
    if len(docs) != len(predictions):
        raise HfadaptError(
            f"pool_windows: {len(predictions)} rows of predictions but {len(docs)} docs; give one doc per window"
        )
    count = int(docs.max()) + 1 if len(docs) else 0
    sums = np.zeros((count,) + predictions.shape[1:], dtype=np.float64)
    np.add.at(sums, docs, predictions)
    pooled = (sums / np.bincount(docs, minlength=count).reshape((-1,) + (1,) * (predictions.ndim - 1))).astype(
        predictions.dtype
    )
    if labels is None:
        return pooled, None
    first = np.unique(docs, return_index=True)[1]
    return pooled, np.asarray(labels)[first]


class WindowPooling:
    """A `Trainer` mixin: evaluating or predicting a data set of windows (one with a `doc` column, as
    `encode_windows` makes) scores and returns one row per text, with `pool_windows`. Other data sets
    pass through unchanged.

    Mix it in before `Trainer`: `class MyTrainer(WindowPooling, Trainer): ...`. The metrics are the
    text-level ones; the loss stays the windows' mean.

    Args:
        *args: `transformers.Trainer`'s own arguments (the mixin adds none).
        **kwargs: `transformers.Trainer`'s own keyword arguments.

    Returns:
        A Trainer whose `evaluate` and `predict` give one row per text.
    """

    _docs = None
    _words = None

    def get_eval_dataloader(self, eval_dataset=None):
        self._docs, self._words = _docs(eval_dataset if eval_dataset is not None else self.eval_dataset)
        return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        self._docs, self._words = _docs(test_dataset)
        return super().get_test_dataloader(test_dataset)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, **kwargs):
        docs, words, self._docs, self._words = self._docs, self._words, None, None
        if docs is None:
            return super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, **kwargs)
        from transformers.trainer_utils import EvalLoopOutput, EvalPrediction

        prefix = kwargs.get("metric_key_prefix", "eval")
        compute, self.compute_metrics = self.compute_metrics, None  # scored below, per text
        try:
            out = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, **kwargs)
        finally:
            self.compute_metrics = compute
        if words is not None:  # token classification: per word of each whole sentence
            predictions, labels = pool_word_windows(out.predictions, docs, words, out.label_ids)
        else:
            predictions, labels = pool_windows(out.predictions, docs, out.label_ids)
        scores = dict(out.metrics)  # the loss stays the windows' mean loss
        if compute is not None and labels is not None:
            for key, value in compute(EvalPrediction(predictions=predictions, label_ids=labels)).items():
                scores[key if key.startswith(f"{prefix}_") else f"{prefix}_{key}"] = value
        return EvalLoopOutput(predictions=predictions, label_ids=labels, metrics=scores, num_samples=len(predictions))


def window_columns(dataset) -> tuple[list[int], list[list[int]] | None] | None:
    """A tokenized data set's `doc` column and, for windows of sentences, its `word` column; None for a
    data set without windows."""
    names = getattr(dataset, "column_names", None) or []
    if "doc" not in names:
        return None
    return list(dataset["doc"]), list(dataset["word"]) if "word" in names else None


def _docs(dataset) -> tuple[list[int] | None, list[list[int]] | None]:
    found = window_columns(dataset)
    return found if found is not None else (None, None)
