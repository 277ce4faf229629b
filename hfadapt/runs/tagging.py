"""Token classification at predict time: a text's words with their character spans, a tag for each word
(its first piece's), and the entities those tags make, as character offsets into the text."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from hfadapt.data import long_texts
from hfadapt.model import decoding, metrics


def words(text: str) -> list[tuple[int, int]]:
    """The character spans of a text's words, as token-classification data split them: whitespace-separated
    words, or for a text without spaces (Chinese, as MSRA is) each character."""
    if re.search(r"\s", text.strip()):
        return [m.span() for m in re.finditer(r"\S+", text)]
    return [(i, i + 1) for i, c in enumerate(text) if not c.isspace()]


def tag(model, tokenizer, batch: list[str], max_length: int, where, stride: int | None = None) -> list[dict[str, Any]]:
    """One batch of texts tagged word by word (the tag of each word's first piece, decoded as a sequence the
    tagging scheme allows), and their entities. A word's confidence is its tag's probability.

    With `stride` (`data.long_texts: windows`) a text longer than `max_length` is read in windows that
    overlap by `stride` tokens, and a word's logits are the mean over the windows holding its first
    piece; without, the text is cut at `max_length` and the words past the cut are tagged O."""
    import numpy as np
    import torch

    spans = [words(text) for text in batch]
    rows = long_texts.encode_word_windows(
        tokenizer,
        [[text[s:e] for s, e in row] for text, row in zip(batch, spans, strict=True)],
        max_length,
        stride,
        pieces=True,
    )
    offsets, every = rows.pop("offset_mapping"), rows.pop("piece_word")  # each piece's characters, within its word
    docs, firsts = rows.pop("doc"), rows.pop("word")
    enc = tokenizer.pad(rows, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc.to(where)).logits.float().cpu().numpy()
    pooled, _ = long_texts.pool_word_windows(logits, docs, firsts)
    scored = np.zeros(pooled.shape[:2], dtype=bool)  # the words whose first piece some window holds
    ends: list[dict[int, int]] = [{} for _ in batch]  # where each word's last piece seen ends, within the word
    for doc, first, ids, pieces in zip(docs, firsts, every, offsets, strict=True):
        for word in first:
            if word >= 0:
                scored[doc, word] = True
        for word, (_, piece_end) in zip(ids, pieces, strict=True):
            if word >= 0:
                ends[doc][word] = max(ends[doc].get(word, 0), piece_end)
    probs = np.exp(pooled - pooled.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    id2label = model.config.id2label
    chosen = decoding.decode(pooled, scored, [id2label[j] for j in range(len(id2label))])
    results = []
    for i, (text, row) in enumerate(zip(batch, spans, strict=True)):
        tags, confidence = ["O"] * len(row), [1.0] * len(row)
        edges = [[s, s + ends[i].get(w, e - s)] for w, (s, e) in enumerate(row)]  # the characters its pieces cover
        for word in range(len(row)):
            if word < scored.shape[1] and scored[i, word]:
                best = int(chosen[i, word])
                tags[word], confidence[word] = id2label[best], float(probs[i, word, best])
        found = []
        for kind, first, last in sorted(metrics.entities(tags), key=lambda x: x[1]):
            start, end = _trim(text, edges[first][0], edges[last - 1][1])
            score = sum(confidence[first:last]) / (last - first)
            found.append({"type": kind, "text": text[start:end], "start": start, "end": end, "score": score})
        results.append({"text": text, "entities": found, "tags": tags})
    return results


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """A span without punctuation at its edges (`Paris,` -> `Paris`), as a tokenizer splits it off;
    all-punctuation spans are kept whole."""
    s, e = start, end
    while s < e and unicodedata.category(text[s]).startswith("P"):
        s += 1
    while e > s and unicodedata.category(text[e - 1]).startswith("P"):
        e -= 1
    return (s, e) if s < e else (start, end)
