"""Tags decoded as sequences: each sentence's most probable tags among those its tagging scheme allows.

Taking each word's most probable tag alone can give sequences no scheme allows (`O I-PER`, `B-PER I-LOC`,
`O E-LOC`), which entity scoring then reads as broken or extra entities. Viterbi over the words'
log-probabilities, with the scheme's transitions allowed at no cost and the others forbidden (no
learned weights, no CRF), gives the best sequence that reads as whole entities. Schemes are told from
the label names: IO, BIO (IOB2), BIOES (B/I/E/S, or B/I/L/U as BILOU), BMES; labels that fit none
are decoded word by word (argmax).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# each scheme's prefixes, the role each plays; a label set is matched to the first scheme holding all its prefixes
SCHEMES = {
    "IO": {"I": "inside"},
    "BIO": {"B": "begin", "I": "inside"},
    "BIOES": {"B": "begin", "I": "inside", "E": "end", "S": "single"},
    "BILOU": {"B": "begin", "I": "inside", "L": "end", "U": "single"},
    "BMES": {"B": "begin", "M": "inside", "E": "end", "S": "single"},
}


def scheme(label_names: Sequence[str]) -> str | None:
    """The tagging scheme label names follow, read as `metrics.entities` reads tags (`B-PER`, `O`).

    Args:
        label_names: the labels, in id order.

    Returns:
        "IO", "BIO", "BIOES", "BILOU" or "BMES"; None when a label is neither `O` nor a known prefix, a
        hyphen and a type, when the prefixes mix schemes, or when an entity could open but never close.
    """
    prefixes = set()
    for name in label_names:
        prefix, _, kind = name.partition("-")
        if name.upper() == "O":
            continue
        if not kind or len(prefix) != 1 or prefix.upper() not in "BIMELSU":
            return None
        prefixes.add(prefix.upper())
    for name, roles in SCHEMES.items():
        # in a scheme with end tags, an entity opened by B must have an end tag to close it
        closes = name in ("IO", "BIO") or "B" not in prefixes or any(roles.get(p) == "end" for p in prefixes)
        if prefixes and prefixes <= set(roles) and closes:
            return name
    return None


def transitions(label_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Which tags may open a sentence, follow one another, and close a sentence.

    In BIO, `I-X` follows only `B-X` or `I-X`. In BIOES, BILOU and BMES, an inside or end tag of X
    follows only a begin or inside tag of X, every other tag follows only `O`, an end or a single
    tag, and a sentence does not end inside an entity. IO allows everything.

    Args:
        label_names: the labels, in id order.

    Returns:
        Boolean arrays `(start, allowed, end)` of shapes (labels,), (previous, next) and (labels,);
        None for labels that fit no scheme.
    """
    name = scheme(label_names)
    if name is None:
        return None
    roles, kinds = [], []
    for label in label_names:
        prefix, _, kind = label.partition("-")
        roles.append("outside" if label.upper() == "O" else SCHEMES[name][prefix.upper()])
        kinds.append(kind)
    roles, kinds = np.array(roles), np.array(kinds)
    same = kinds[:, None] == kinds[None, :]
    inside = roles == "inside"
    opened = (roles == "begin") | inside  # an entity is open after this tag
    if name == "IO":
        allowed = np.ones(same.shape, dtype=bool)
        return np.ones(len(roles), dtype=bool), allowed, np.ones(len(roles), dtype=bool)
    if name == "BIO":
        allowed = ~inside[None, :] | (opened[:, None] & same)
        return ~inside, allowed, np.ones(len(roles), dtype=bool)
    continuing = inside | (roles == "end")  # needs an open entity of its type before it
    allowed = np.where(continuing[None, :], opened[:, None] & same, ~opened[:, None])
    return ~continuing, allowed, ~opened


def decode(logits: np.ndarray, mask: np.ndarray, label_names: Sequence[str]) -> np.ndarray:
    """Each row's tags: on its masked positions, taken in order as one sentence, the most probable
    sequence the scheme allows (Viterbi over log-softmax scores); elsewhere each position's argmax.

    All rows are decoded at once, a position at a time. A row with no allowed sequence, and every row
    when the labels fit no scheme, keeps its argmax.

    Args:
        logits: scores of shape (rows, positions, labels).
        mask: booleans of shape (rows, positions), the positions that are tagged (the first piece of
            each word).
        label_names: the labels, in id order.

    Returns:
        Label ids of shape (rows, positions).
    """
    logits = np.asarray(logits, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    best = logits.argmax(-1)
    rules = transitions(label_names)
    if rules is None or not mask.any():
        return best
    start, allowed, end = (np.where(rule, 0.0, -np.inf) for rule in rules)
    lengths = mask.sum(1)
    # the masked positions of each row moved to its front, in order
    order = np.argsort(~mask, axis=1, kind="stable")[:, : lengths.max()]
    scores = np.take_along_axis(logits, order[..., None], 1)
    scores = scores - scores.max(-1, keepdims=True)
    scores -= np.log(np.exp(scores).sum(-1, keepdims=True))
    rows, steps, labels = scores.shape
    delta = scores[:, 0] + start
    back = np.zeros((rows, steps, labels), dtype=np.int32)
    for step in range(1, steps):
        candidates = delta[:, None, :] + allowed.T  # (rows, next, previous): numpy reduces the last axis fastest
        pointer = candidates.argmax(-1)
        back[:, step] = pointer
        moved = np.take_along_axis(candidates, pointer[..., None], -1)[..., 0] + scores[:, step]
        delta = np.where((step < lengths)[:, None], moved, delta)  # a row past its last position keeps its scores
    delta += end
    current = delta.argmax(1)
    path = np.zeros((rows, steps), dtype=np.intp)
    every = np.arange(rows)
    for step in range(steps - 1, -1, -1):
        path[:, step] = current
        current = np.where(step < lengths, back[every, step, current], current)
    kept = (np.arange(steps)[None, :] < lengths[:, None]) & np.isfinite(delta.max(1))[:, None]
    r, c = np.nonzero(kept)
    best[r, order[r, c]] = path[r, c]
    return best
