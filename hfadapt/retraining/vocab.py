"""Vocabulary and embeddings: give a checkpoint a new tokenizer, carrying over what can be carried over.

For each token of the new vocabulary, the embedding row is
- copied from the checkpoint when the old vocabulary has the same token (`##` continuations
  matched as continuations, special tokens matched by their role);
- composed as the mean of the checkpoint's rows for the pieces the old tokenizer cuts it into;
- drawn from a normal distribution with the mean and covariance of the checkpoint's rows when
  the old tokenizer has nothing but the unknown token for it, or placed from static embeddings of
  the corpus (`transfer`).
The masked-LM output layer stays tied to the embeddings, and its bias is rebuilt to the new size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfadapt.errors import HfadaptError
from hfadapt.model.pretrained import load_tokenizer
from hfadapt.recipe import Recipe
from hfadapt.retraining import transfer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

NEW_ROWS = ("draw", "static")  # for the tokens the old tokenizer cannot spell
ROLES = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token", "bos_token", "eos_token")


def extend_tokenizer(
    old_tokenizer: PreTrainedTokenizerFast, new_tokenizer: PreTrainedTokenizerBase
) -> PreTrainedTokenizerFast:
    """The old tokenizer with the new one's tokens appended: every old token keeps its id.

    Rebuild the model for the result with `rebuild_vocabulary(model, old_tokenizer, extended)`: the
    old rows are then copied in place and only the added tokens get new rows.

    Args:
        old_tokenizer: the checkpoint's fast WordPiece tokenizer.
        new_tokenizer: a tokenizer trained on the new corpus (e.g. by `train_tokenizer`).

    Returns:
        A `transformers.PreTrainedTokenizerFast`: the old one's rules and special tokens, with the new
        one's tokens the old vocabulary lacks added after the old ids.

    Raises:
        HfadaptError: a slow tokenizer, or an old tokenizer that is not WordPiece.
    """
    for name, tokenizer in (("old_tokenizer", old_tokenizer), ("new_tokenizer", new_tokenizer)):
        _check_fast(tokenizer, name)
    old_vocab = old_tokenizer.get_vocab()
    added = [
        t
        for t, _ in sorted(new_tokenizer.get_vocab().items(), key=lambda x: x[1])
        if t not in old_vocab and t not in new_tokenizer.all_special_tokens
    ]
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(old_tokenizer.backend_tokenizer.to_str())
    if not isinstance(backend.model, models.WordPiece):
        raise HfadaptError(
            f"extend_tokenizer: the old tokenizer is {type(backend.model).__name__}, not WordPiece, and only a "
            "WordPiece vocabulary is extended here; use the new tokenizer alone (pretrain.vocabulary: replace)"
        )
    vocab = dict(old_vocab)
    for token in added:
        vocab[token] = len(vocab)
    backend.model = models.WordPiece(
        vocab=vocab, unk_token=old_tokenizer.unk_token, continuing_subword_prefix="##", max_input_chars_per_word=100
    )
    specials = {role: getattr(old_tokenizer, role) for role in ROLES if getattr(old_tokenizer, role, None)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=old_tokenizer.model_max_length, **specials
    )
    return tokenizer


def rebuild_vocabulary(
    model: PreTrainedModel,
    old_tokenizer: PreTrainedTokenizerBase,
    new_tokenizer: PreTrainedTokenizerBase,
    new_rows: str = "draw",
    corpus: Iterable[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Resize `model`'s embeddings (and its tied output layer) to `new_tokenizer`'s vocabulary and fill every row.

    Each new token's row is copied from the old row of the same token (special tokens by their role),
    else composed as the mean of the old rows of the pieces the old tokenizer cuts it into, else (the
    old tokenizer has only [UNK] for it) drawn from a normal with the old rows' mean and covariance
    (`new_rows="draw"`), or placed as a combination of the shared tokens' rows nearest it in static
    embeddings learnt on `corpus` (`new_rows="static"`; a token the corpus never shows is still drawn).

    Args:
        model: a transformers model (e.g. `AutoModelForMaskedLM`) whose embeddings match `old_tokenizer`.
        old_tokenizer: the checkpoint's tokenizer.
        new_tokenizer: the tokenizer the model is to read (e.g. from `train_tokenizer` or `extend_tokenizer`).
        new_rows: `draw` or `static`, for the tokens the old tokenizer cannot spell.
        corpus: texts of the new language, for `new_rows="static"` (read once; up to 2 million tokens).
        seed: the seed of the drawn rows.

    Returns:
        The row report: `vocab_size`, `old_vocab_size`, and how many rows were `copied`, `composed` and
        `drawn`; with `static`, also `transferred` (placed) and `drawn_unseen`.

    Raises:
        HfadaptError: `new_rows` not draw or static, or `static` without a corpus.
    """
    if new_rows not in NEW_ROWS:
        raise HfadaptError(f"rebuild_vocabulary: new_rows must be one of {', '.join(NEW_ROWS)}; got {new_rows!r}")
    if new_rows == "static" and (corpus is None or isinstance(corpus, str)):
        raise HfadaptError(
            "rebuild_vocabulary: new_rows='static' learns static embeddings on the corpus; pass corpus=texts "
            "(an iterable of texts), or use new_rows='draw'"
        )
    static = _static_embeddings(corpus, new_tokenizer) if new_rows == "static" else None
    import torch

    old = model.get_input_embeddings().weight.detach().clone()
    old_vocab = old_tokenizer.get_vocab()
    old_unk = old_tokenizer.unk_token_id
    role_of = {getattr(new_tokenizer, role): role for role in ROLES if getattr(new_tokenizer, role, None)}
    new_vocab = sorted(new_tokenizer.get_vocab().items(), key=lambda x: x[1])
    size = len(new_tokenizer)
    rows = torch.empty(size, old.shape[1], dtype=old.dtype)
    mean = old.mean(0)
    covariance = torch.cov(old.T.double()) + 1e-5 * torch.eye(old.shape[1], dtype=torch.float64)
    draw = torch.distributions.MultivariateNormal(mean.double(), covariance_matrix=covariance)
    torch.manual_seed(seed)
    copied = composed = drawn = 0
    anchors: dict[int, int] = {}  # new id -> old id, for the tokens both vocabularies share
    unspelled: list[int] = []
    for token, index in new_vocab:
        role = role_of.get(token)
        source = getattr(old_tokenizer, role + "_id", None) if role else old_vocab.get(token)
        if source is not None:
            rows[index] = old[source]
            copied += 1
            if role is None:
                anchors[index] = source
            continue
        bare = token[2:] if token.startswith("##") and len(token) > 2 else token
        pieces = [i for i in old_tokenizer(bare, add_special_tokens=False)["input_ids"] if i != old_unk]
        if pieces:
            rows[index] = old[pieces].mean(0)
            composed += 1
        else:
            rows[index] = draw.sample().to(old.dtype)
            unspelled.append(index)
            drawn += 1
    transferred = {}
    if static is not None:
        placed = transfer.combine(static, anchors, unspelled, old.numpy())
        for index, row in placed.items():
            rows[index] = torch.from_numpy(row).to(old.dtype)
        drawn -= len(placed)
        transferred = transfer.report(len(placed), drawn)
    model.resize_token_embeddings(size, mean_resizing=False)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(rows)
    model.config.vocab_size = size
    if new_tokenizer.pad_token_id is not None:
        model.config.pad_token_id = new_tokenizer.pad_token_id
    output = model.get_output_embeddings()
    if output is not None:
        model.tie_weights()
        if getattr(output, "bias", None) is not None and output.bias.shape[0] != size:
            output.bias = torch.nn.Parameter(torch.zeros(size, dtype=output.bias.dtype))
    report = {
        "vocab_size": size,
        "copied": copied,
        "composed": composed,
        "drawn": drawn,
        "old_vocab_size": old.shape[0],
        **transferred,
    }
    logger.info("vocabulary rebuilt: %s", report)
    return report


def _static_embeddings(corpus: Iterable[str], tokenizer):
    """Static embeddings of the new vocabulary, learnt on the corpus (transfer.static_embeddings)."""
    started = time.perf_counter()
    vectors = transfer.static_embeddings(transfer.corpus_ids(corpus, tokenizer), len(tokenizer))
    logger.info("static embeddings of the new vocabulary: %.1f s", time.perf_counter() - started)
    return vectors


def _check_fast(tokenizer, name: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise HfadaptError(
            f"extend_tokenizer: {name} is not a fast tokenizer ({type(tokenizer).__name__}); load it with "
            "AutoTokenizer.from_pretrained(..., use_fast=True)"
        )


def pretraining_tokenizers(recipe: Recipe) -> tuple[Any, Any, Any]:
    """The tokenizer pretraining packs and trains with, and the old (checkpoint's) and new (trained) ones behind it.

    Scratch: the new one. Continue: the old one, or with a tokenizer section the new one (or the
    old one extended by it). Old and new are None where the recipe has none.
    """
    settings = recipe.pretrain
    old = load_tokenizer(recipe.model) if settings.init == "continue" else None
    new = None
    if recipe.tokenizer is not None:
        from transformers import AutoTokenizer

        new = AutoTokenizer.from_pretrained(Path(recipe.output.dir) / "tokenizer")
    if new is None:
        return old, old, None
    if old is None:
        return new, None, new
    return (extend_tokenizer(old, new) if settings.vocabulary == "extend" else new), old, new
