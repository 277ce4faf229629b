"""Tokenizing the splits for training: token ids, aligned labels, the padding collator, and the
report of how much `data.max_length` cuts."""

from __future__ import annotations

import logging
from typing import Any

from hfadapt.data import long_texts
from hfadapt.data.splits import SPLITS, TaskData
from hfadapt.recipe import DataConfig, TaskConfig

logger = logging.getLogger(__name__)


TRUNCATION_SAMPLE = 2000  # texts per split whose full length is measured for the truncation report
TRUNCATION_WARNING = 0.1  # share of a split's texts cut by max_length above which the run warns
# Texts per datasets.map batch, and rows per write to Arrow: only so many texts' token ids (a batch's
# windows, for data.long_texts: windows) are held at once; long_texts.encode bounds the tokenizer's own memory.
MAP_BATCH = 256


def truncation(task_data: TaskData, tokenizer, data: DataConfig, task: TaskConfig) -> dict[str, Any]:
    """How much `data.max_length` cuts: per split, the share of texts longer than it and the share of
    their tokens it keeps, measured on the first TRUNCATION_SAMPLE texts of each split.

    A warning names the split and the fix when more than TRUNCATION_WARNING of its texts are cut.
    """
    report: dict[str, Any] = {"max_length": data.max_length, "long_texts": data.long_texts}
    for split in SPLITS:
        ds = task_data.splits[split]
        rows = ds.select(range(min(len(ds), TRUNCATION_SAMPLE)))
        lengths = _lengths(rows, tokenizer, task)
        cut = [n for n in lengths if n > data.max_length]
        windows = data.long_texts == "windows"
        kept = 1.0 if windows else sum(min(n, data.max_length) for n in lengths) / max(sum(lengths), 1)
        report[split] = {"texts": len(lengths), "cut": len(cut) / max(len(lengths), 1), "tokens_kept": kept}
        if windows:  # nothing is cut: the long texts are read as several windows
            report[split]["windows_per_text"] = _windows(lengths, tokenizer, data) / max(len(lengths), 1)
        elif split == "train" and len(cut) > TRUNCATION_WARNING * len(lengths):
            logger.warning(
                "data %s: %.0f%% of the training texts are longer than data.max_length=%d tokens and are cut "
                "(%s; %.0f%% of all tokens are kept; the median text has %d); raise data.max_length, or set "
                "data.long_texts: windows to read them whole",
                data.source,
                100 * len(cut) / len(lengths),
                data.max_length,
                "their beginning and end are kept" if data.long_texts == "head_tail" else "their end is lost",
                100 * kept,
                sorted(lengths)[len(lengths) // 2],
            )
    return report


def _lengths(rows, tokenizer, task: TaskConfig) -> list[int]:
    """Each row's length in tokens, special tokens included, encoded a batch at a time (`long_texts.batches`)."""
    words = task.type == "token_classification"
    texts = list(rows["tokens" if words else "text"])
    pairs = list(rows["text_pair"]) if "text_pair" in rows.column_names else None
    lengths: list[int] = []
    for start, stop in long_texts.batches([" ".join(t) for t in texts] if words else texts):
        part = pairs[start:stop] if pairs is not None else None
        enc = tokenizer(
            texts[start:stop],
            part,
            is_split_into_words=words,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        lengths += [len(ids) for ids in enc["input_ids"]]
    return lengths


def _windows(lengths: list[int], tokenizer, data: DataConfig) -> int:
    """How many windows texts of these lengths (special tokens included) make under data.long_texts: windows."""
    special = tokenizer.num_special_tokens_to_add(pair=False)
    room, step = data.max_length - special, data.max_length - special - data.window_stride()
    return sum(1 + max(0, -(-(n - special - room) // step)) for n in lengths)


def tokenize(task_data: TaskData, tokenizer, data: DataConfig, task: TaskConfig):
    """Token ids for every split; labels aligned to the first sub-token of each word for token tasks."""
    if task.type == "token_classification":

        def encode(batch, indices):  # indices: the sentences' own, for windows
            if data.long_texts == "windows":  # a row per window: the tags of the words whose first piece it holds
                enc = long_texts.encode_word_windows(tokenizer, batch["tokens"], data.max_length, data.window_stride())
                enc["labels"] = [
                    [-100 if w < 0 else batch["label"][d][w] for w in row]
                    for d, row in zip(enc["doc"], enc["word"], strict=True)
                ]
                enc["doc"] = [indices[d] for d in enc["doc"]]
                return enc
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

        def encode(batch, indices):
            pairs = batch["text_pair"] if "text_pair" in batch else None
            enc = long_texts.encode(tokenizer, batch["text"], data, pairs)
            if "doc" in enc:  # windows: a row per window, with its text's label and index
                enc["labels"] = [batch["label"][d] for d in enc["doc"]]
                enc["doc"] = [indices[d] for d in enc["doc"]]
            else:
                enc["labels"] = batch["label"]
            return enc

        columns = task_data.splits["train"].column_names
    return task_data.splits.map(
        encode,
        batched=True,
        batch_size=MAP_BATCH,
        writer_batch_size=MAP_BATCH,
        with_indices=True,
        remove_columns=columns,
        desc="Tokenizing",
    )


def collator(tokenizer, task: TaskConfig):
    """Dynamic padding for a batch: labels padded with -100 for token tasks."""
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    return (
        DataCollatorForTokenClassification(tokenizer)
        if task.type == "token_classification"
        else DataCollatorWithPadding(tokenizer)
    )
