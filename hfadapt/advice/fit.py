"""The fit: the checkpoint's tokenizer on the training texts beside a new WordPiece, how much
data.max_length cuts, and the linear probe; each step logged as it starts and ends."""

from __future__ import annotations

import logging
import math
import random
import time
from typing import Any

from hfadapt.advice.probe import token_probe
from hfadapt.data import splits, tokenization
from hfadapt.model import pretrained
from hfadapt.recipe import Recipe
from hfadapt.retraining.tokenizer import tokenizer_fit, train_tokenizer

logger = logging.getLogger(__name__)

FIT_TEXTS = 5000  # a uniform sample of the training texts for the fit report, as the tokenizer stage uses
# The fit holds every word of its sample, and each word's encoding, at once: the sample's texts are cut
# to share this many characters, so a corpus of books costs what a corpus of reviews does.
FIT_CHARACTERS = 2_000_000
LONG_SHARE = (
    tokenization.TRUNCATION_WARNING
)  # above this share of training texts cut, the advice raises data.max_length
COVERED = 0.9  # the recommended data.max_length holds this share of the training texts whole


def texts(split) -> list[str]:
    """A split's texts, each joined with its pair (a space between) where the data has text pairs."""
    plain = splits.texts(split)
    if "text_pair" not in split.column_names:
        return plain
    return [f"{a} {b}" for a, b in zip(plain, split["text_pair"], strict=True)]


def measure(
    base: Recipe, retraining: Recipe, tokenizer, task_data
) -> tuple[dict[str, Any], dict[str, Any] | None, Any]:
    """The checkpoint's tokenizer beside a new WordPiece on a sample of the training texts, the truncation
    at data.max_length, and the probe.

    Args:
        base: the recipe every pilot starts from.
        retraining: the same with retraining's sections (its tokenizer settings).
        tokenizer: the checkpoint's tokenizer.
        task_data: the data, split.

    Returns:
        The fit (`checkpoint`, `new`, `texts`, `tokenizer_seconds`, `truncation`, `length`, `seconds`), the
        probe (or None), and the new tokenizer (the one a retraining recipe trains, which `cost.price` reads with).
    """
    began = time.perf_counter()
    train_texts = texts(task_data.splits["train"])
    sample = random.Random(base.training["seed"]).sample(train_texts, min(FIT_TEXTS, len(train_texts)))
    # a cut word at a text's end is one word in hundreds
    sample = [t[: FIT_CHARACTERS // max(len(sample), 1)] for t in sample]
    logger.info("fit 1/4: training a WordPiece tokenizer on the %d training texts", len(train_texts))
    new_tokenizer = train_tokenizer(train_texts, retraining.tokenizer)
    tokenizer_seconds = _since(began)
    logger.info("fit 2/4: both tokenizers on %d training texts (%.0f s so far)", len(sample), _since(began))
    fit: dict[str, Any] = {
        "checkpoint": tokenizer_fit(tokenizer, sample),
        "new": tokenizer_fit(new_tokenizer, sample),
        "texts": len(sample),
        "tokenizer_seconds": round(tokenizer_seconds, 3),  # the tokenizer stage's price (`cost.price`)
    }
    logger.info("fit 3/4: texts cut at data.max_length=%d (%.0f s so far)", base.data.max_length, _since(began))
    fit["truncation"] = tokenization.truncation(task_data, tokenizer, base.data, base.task)
    fit["length"] = _length(base, tokenizer, task_data, fit["truncation"])
    logger.info("tokenizer fit, checkpoint vs new WordPiece: %s", {k: fit[k] for k in ("checkpoint", "new")})
    logger.info("fit 4/4: linear probe on the tokens (%.0f s so far)", _since(began))
    probe = token_probe(tokenizer, new_tokenizer, task_data, base)
    logger.info("linear probe on the tokens, checkpoint vs new WordPiece: %s", probe)
    fit["seconds"] = round(_since(began), 1)
    return fit, probe, new_tokenizer


def _since(began: float) -> float:
    return time.perf_counter() - began


def _length(base: Recipe, tokenizer, task_data, truncation: dict[str, Any]) -> dict[str, Any] | None:
    """The data.max_length that holds COVERED of the training texts whole, when more than LONG_SHARE are cut.

    Capped by the model's positions; beyond them, data.long_texts: windows (for single texts, labelled
    whole or word by word).
    """
    cut = truncation["train"]["cut"]
    if cut <= LONG_SHARE or truncation.get("long_texts") == "windows":  # windows read long texts whole
        return None
    split = task_data.splits["train"]
    rows = split.select(range(min(len(split), tokenization.TRUNCATION_SAMPLE)))
    if base.task.type == "token_classification":
        encoded = tokenizer(list(rows["tokens"]), is_split_into_words=True, verbose=False)
    else:
        pairs = list(rows["text_pair"]) if "text_pair" in rows.column_names else None
        encoded = tokenizer(list(rows["text"]), pairs, verbose=False)
    lengths = sorted(len(ids) for ids in encoded["input_ids"])
    wanted = lengths[math.ceil(COVERED * len(lengths)) - 1]
    config = pretrained.load_config(base.model)
    limits = [x for x in (config.max_position_embeddings, tokenizer.model_max_length) if x and x < 1_000_000]
    limit = min(limits) if limits else wanted
    max_length = min(8 * math.ceil(wanted / 8), limit)  # a multiple of 8, as tensor cores like it
    whole = sum(n <= max_length for n in lengths) / len(lengths)
    windows = wanted > limit and not base.data.text_pair_column
    text = (
        f"{cut:.0%} of the training texts are longer than data.max_length={base.data.max_length} tokens and are "
        f"cut ({truncation['train']['tokens_kept']:.0%} of their tokens kept); "
    )
    raised = max_length > base.data.max_length
    if wanted <= limit:
        text += f"data.max_length={max_length} holds {whole:.0%} of them whole"
    else:
        text += f"{COVERED:.0%} of them have up to {wanted} tokens, more than the model's {limit} positions"
        text += f" (data.max_length={max_length} holds {whole:.0%} of them whole); " if raised else "; "
        text += (
            "data.long_texts=windows reads the rest in overlapping windows"
            if windows
            else "the rest would need a model with more positions (hfadapt reads text pairs cut at data.max_length)"
        )
    return {
        "cut": cut,
        "length_90": wanted,
        "limit": limit,
        "max_length": max_length,
        "held_whole": whole,
        "long_texts": "windows" if windows else None,
        "advice": text,
    }
