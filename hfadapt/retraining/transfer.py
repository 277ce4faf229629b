"""Embedding rows for the tokens the old vocabulary cannot spell, from static embeddings of the corpus.

When the old tokenizer turns a new token into [UNK] alone (most Han characters, for an English
BERT), nothing of the checkpoint names it, and `vocab.rebuild_vocabulary` draws its row at random. The idea of
FOCUS (Dobler and de Melo, 2023) and WECHSEL (Minixhofer et al., 2022) gives it a better start: learn
static embeddings of the new vocabulary on the target corpus (here in seconds: positive pointwise
mutual information of tokens within a window, reduced by a truncated SVD), then start the token's
row as a combination of the checkpoint's rows of the tokens both vocabularies share (the anchors),
weighted by how close each anchor is to the token in the static space: a softmax of the cosine
similarities of its ANCHORS nearest anchors, at temperature TEMPERATURE.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

WINDOW = 5  # tokens on each side that count as co-occurring
DIMENSIONS = 100  # of the static embeddings
ANCHORS = 10  # nearest shared tokens combined into a new row
TEMPERATURE = 0.1  # of the softmax over their cosine similarities (WECHSEL's)
MAX_TOKENS = 2_000_000  # corpus tokens read for the static embeddings


def static_embeddings(token_ids: Iterable[list[int]], vocab_size: int, dimensions: int = DIMENSIONS) -> np.ndarray:
    """Static embeddings of a vocabulary: PPMI of co-occurrence within WINDOW tokens, reduced by a truncated SVD.

    Args:
        token_ids: the corpus's texts as token ids of the new tokenizer.
        vocab_size: the new vocabulary's size.
        dimensions: the embeddings' width.

    Returns:
        A `vocab_size` x `dimensions` array, rows of unit length (zero for tokens never seen with another).
    """
    from scipy import sparse
    from scipy.sparse.linalg import svds

    rows, cols, read = [], [], 0
    for ids in token_ids:
        ids = np.asarray(ids, dtype=np.int64)
        for offset in range(1, WINDOW + 1):
            if len(ids) > offset:
                rows += [ids[:-offset], ids[offset:]]
                cols += [ids[offset:], ids[:-offset]]
        read += len(ids)
        if read >= MAX_TOKENS:
            break
    if not rows:
        return np.zeros((vocab_size, dimensions), dtype=np.float32)
    pairs = sparse.coo_matrix(
        (np.ones(sum(len(r) for r in rows), dtype=np.float64), (np.concatenate(rows), np.concatenate(cols))),
        shape=(vocab_size, vocab_size),
    ).tocsr()
    total = pairs.sum()
    row_sums = np.asarray(pairs.sum(axis=1)).ravel()
    col_sums = np.asarray(pairs.sum(axis=0)).ravel() ** 0.75  # context smoothing, as word2vec's sampling
    col_sums *= row_sums.sum() / max(col_sums.sum(), 1e-12)
    pairs = pairs.tocoo()
    pmi = np.log(pairs.data * total / (row_sums[pairs.row] * col_sums[pairs.col]))
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (pairs.row[keep], pairs.col[keep])), shape=pairs.shape)
    k = min(dimensions, min(ppmi.shape) - 1)
    u, s, _ = svds(ppmi, k=k, random_state=0)
    s[s < 1e-8 * s.max()] = 0  # directions of a rank-deficient matrix are arbitrary: left out
    vectors = u * np.sqrt(s)
    vectors[ppmi.getnnz(axis=1) == 0] = 0  # a token with no informative neighbour has no place
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    if k < dimensions:
        vectors = np.pad(vectors, ((0, 0), (0, dimensions - k)))
    return vectors.astype(np.float32)


def combine(
    vectors: np.ndarray,
    anchors: dict[int, int],
    targets: list[int],
    old_rows: np.ndarray,
    nearest: int = ANCHORS,
    temperature: float = TEMPERATURE,
) -> dict[int, np.ndarray]:
    """The start rows of `targets`: each a softmax-weighted combination of its nearest anchors' old rows.

    Args:
        vectors: static embeddings of the new vocabulary (unit rows), by new token id.
        anchors: new token id -> the old row it was copied from, for tokens both vocabularies share.
        targets: new token ids to place.
        old_rows: the checkpoint's embedding matrix.
        nearest: anchors combined per target, by cosine similarity in the static space.
        temperature: of the softmax over those similarities.

    Returns:
        new token id -> its row, for the targets with a static embedding (a target never seen in the
        corpus has none, and is left out).
    """
    ids = np.array(sorted(anchors), dtype=np.int64)
    ids = ids[np.linalg.norm(vectors[ids], axis=1) > 0]
    if not len(ids):
        return {}
    sources = np.array([anchors[i] for i in ids], dtype=np.int64)
    placed = {}
    for target in targets:
        if not np.linalg.norm(vectors[target]) > 0:
            continue
        similarity = vectors[ids] @ vectors[target]
        top = np.argsort(-similarity, kind="stable")[:nearest]
        weights = np.exp((similarity[top] - similarity[top].max()) / temperature)
        weights /= weights.sum()
        placed[target] = (weights[:, None] * old_rows[sources[top]]).sum(axis=0)
    return placed


def corpus_ids(texts: Iterable[str], tokenizer) -> Iterable[list[int]]:
    """The texts as the new tokenizer's ids, without special tokens, batch by batch."""
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == 1000:
            yield from tokenizer(batch, add_special_tokens=False)["input_ids"]
            batch = []
    if batch:
        yield from tokenizer(batch, add_special_tokens=False)["input_ids"]


def report(placed: int, unseen: int) -> dict[str, Any]:
    logger.info("static embeddings placed %d rows the old tokenizer cannot spell (%d unseen: drawn)", placed, unseen)
    return {"transferred": placed, "drawn_unseen": unseen}
