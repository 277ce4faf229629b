"""Token classification at predict time: a text's words with their character spans, a tag for each word
(its first piece's), and the entities those tags make, as character offsets into the text."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from hfadapt.model import decoding, metrics


def words(text: str) -> list[tuple[int, int]]:
    """The character spans of a text's words, as token-classification data split them: whitespace-separated
    words, or for a text without spaces (Chinese, as MSRA is) each character."""
    if re.search(r"\s", text.strip()):
        return [m.span() for m in re.finditer(r"\S+", text)]
    return [(i, i + 1) for i, c in enumerate(text) if not c.isspace()]


def tag(model, tokenizer, batch: list[str], max_length: int, where) -> list[dict[str, Any]]:
    """One batch of texts tagged word by word (the tag of each word's first piece, decoded as a sequence the
    tagging scheme allows), and their entities. A word's confidence is its tag's probability."""
    import numpy as np
    import torch

    spans = [words(text) for text in batch]
    enc = tokenizer(
        [[text[s:e] for s, e in row] for text, row in zip(batch, spans, strict=True)],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    offsets = enc.pop("offset_mapping").tolist()  # each piece's characters, within its word
    with torch.no_grad():
        logits = model(**enc.to(where)).logits.float().cpu()
    probs = torch.softmax(logits, -1).numpy()
    scored = np.zeros(probs.shape[:2], dtype=bool)  # the first piece of each word, as training scores it
    for i in range(len(batch)):
        seen = set()
        for position, word in enumerate(enc.word_ids(i)):
            if word is not None and word not in seen:
                seen.add(word)
                scored[i, position] = True
    id2label = model.config.id2label
    chosen = decoding.decode(logits.numpy(), scored, [id2label[j] for j in range(len(id2label))])
    results = []
    for i, (text, row) in enumerate(zip(batch, spans, strict=True)):
        tags, confidence = ["O"] * len(row), [1.0] * len(row)
        edges: list[list[int]] = [[s, e] for s, e in row]  # the characters the word's pieces cover
        for position, word in enumerate(enc.word_ids(i)):
            if word is None:
                continue
            piece_start, piece_end = offsets[i][position]
            if scored[i, position]:
                best = int(chosen[i, position])
                tags[word], confidence[word] = id2label[best], float(probs[i, position, best])
                edges[word][0] = row[word][0] + piece_start
            edges[word][1] = row[word][0] + piece_end
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
