"""Texts longer than `data.max_length`, read one of three ways (`data.long_texts`).

- `truncate`: the tokenizer keeps the first `max_length` tokens.
- `head_tail`: the first quarter of the room and the end of the text. Sun et al. (2019, "How to
  Fine-Tune BERT for Text Classification") found head and tail together better than either alone on
  long reviews: a review's verdict is often in its last sentences.
- `windows`: the whole text, as windows of `max_length` tokens that overlap by `data.stride`. Each
  window trains with its text's label; in evaluation and `predict` a text's logits are the mean of
  its windows', so every figure is per text, as with the other two.

`encode` makes the token ids (for `data.tokenize` and `predict`); `WindowPooling` is the Trainer hook
that turns per-window predictions back into per-text ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hfadapt.recipe import DataConfig

HEAD_SHARE = 0.25  # head_tail: the share of the room given to the text's beginning


def encode(tokenizer, texts: list[str], data: DataConfig, pairs: list[str] | None = None) -> dict[str, list]:
    """Token ids of `texts` under `data.long_texts`. With windows a long text gives several rows, and
    `doc` says which text (its index in `texts`) each row reads."""
    if data.long_texts == "windows":
        enc = tokenizer(
            texts,
            truncation=True,
            max_length=data.max_length,
            stride=data.window_stride(),
            return_overflowing_tokens=True,
        )
        rows = dict(enc)
        rows["doc"] = rows.pop("overflow_to_sample_mapping")
        return rows
    if data.long_texts == "head_tail":
        return _head_tail(tokenizer, texts, data.max_length)
    return dict(tokenizer(texts, pairs, truncation=True, max_length=data.max_length))


def _head_tail(tokenizer, texts: list[str], max_length: int) -> dict[str, list]:
    """The first HEAD_SHARE of the room and the last tokens of each text longer than `max_length`."""
    from tokenizers import Encoding

    backend = tokenizer.backend_tokenizer
    backend.no_truncation()  # as transformers does for a call without truncation
    backend.no_padding()
    room = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    head = int(room * HEAD_SHARE)
    names = tokenizer.model_input_names
    rows: dict[str, list] = {name: [] for name in names}
    for text, whole in zip(texts, backend.encode_batch(texts, add_special_tokens=False), strict=True):
        if len(whole.ids) > room:
            tail = backend.encode(text, add_special_tokens=False)
            whole.truncate(head, direction="right")
            tail.truncate(room - head, direction="left")
            whole = Encoding.merge([whole, tail])
        done = backend.post_process(whole, None, add_special_tokens=True)
        values = {"input_ids": done.ids, "token_type_ids": done.type_ids, "attention_mask": done.attention_mask}
        for name in names:
            rows[name].append(values[name])
    return rows


def pool(predictions, labels, docs) -> tuple[Any, Any]:
    """Per-text predictions (the mean of each text's window logits) and labels (its first window's)."""
    if isinstance(predictions, tuple):
        predictions = predictions[0]
    docs = np.asarray(docs)
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
    """A `Trainer` mixin: evaluating or predicting a data set of windows (one with a `doc` column)
    scores and returns one row per text. Other data sets pass through unchanged."""

    _docs = None

    def get_eval_dataloader(self, eval_dataset=None):
        self._docs = _docs(eval_dataset if eval_dataset is not None else self.eval_dataset)
        return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        self._docs = _docs(test_dataset)
        return super().get_test_dataloader(test_dataset)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, **kwargs):
        docs, self._docs = self._docs, None
        if docs is None:
            return super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, **kwargs)
        from transformers.trainer_utils import EvalLoopOutput, EvalPrediction

        prefix = kwargs.get("metric_key_prefix", "eval")
        compute, self.compute_metrics = self.compute_metrics, None  # scored below, per text
        try:
            out = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, **kwargs)
        finally:
            self.compute_metrics = compute
        predictions, labels = pool(out.predictions, out.label_ids, docs)
        scores = dict(out.metrics)  # the loss stays the windows' mean loss
        if compute is not None and labels is not None:
            for key, value in compute(EvalPrediction(predictions=predictions, label_ids=labels)).items():
                scores[key if key.startswith(f"{prefix}_") else f"{prefix}_{key}"] = value
        return EvalLoopOutput(predictions=predictions, label_ids=labels, metrics=scores, num_samples=len(predictions))


def _docs(dataset):
    names = getattr(dataset, "column_names", None)
    return list(dataset["doc"]) if names and "doc" in names else None
