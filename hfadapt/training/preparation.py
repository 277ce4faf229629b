"""`hfadapt prepare`: the token ids a recipe's training needs, made ahead of time into the cache."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hfadapt.data import cache, in_memory, splits
from hfadapt.errors import HfadaptError
from hfadapt.model import pretrained
from hfadapt.recipe import Recipe
from hfadapt.retraining import vocab
from hfadapt.retraining.corpus import pretraining_data, reading_once
from hfadapt.retraining.pipeline import retrain


def prepare(
    recipe: Recipe | str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    data: Any = None,
    corpus: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Tokenize the recipe's fine-tuning data, and pack its pretraining corpus, before training needs them.

    For a recipe with a `tokenizer` section its tokenizer stage runs first (into OUTPUT_DIR/tokenizer,
    reused by `retrain`).

    Args:
        recipe: a `Recipe`, or the path of a YAML recipe.
        overrides: `key=value` strings applied to the recipe.
        data: the fine-tuning data itself, in place of data.source, as `finetune` takes it.
        corpus: the corpus itself, in place of corpus.sources, as `retrain` takes it.

    Returns:
        For `finetune` (and `pretrain`, with a pretrain section): the cache folder, whether this call
        made it, and the split sizes (the corpus's packing statistics).
    """
    given = in_memory.load(data) if data is not None else None
    texts = in_memory.load_texts(corpus) if corpus is not None else None
    recipe = in_memory.recipe_with(recipe, overrides, given, texts)
    # bad data fails here, before anything is written
    task_data = splits.load_splits(recipe.data, recipe.task, given=given)
    results: dict[str, Any] = {}
    if recipe.pretrain is not None:
        with reading_once(given, texts):
            retrain(recipe, until="tokenizer", data=given, corpus=texts)
            tokenizer = vocab.pretraining_tokenizers(recipe)[0]
            packed = pretraining_data(recipe, tokenizer)
        results["pretrain"] = {"folder": str(packed.folder), "made": packed.made, "packing": packed.info["packing"]}
    elif recipe.tokenizer is not None:
        raise HfadaptError(
            "pretrain: a new tokenizer needs a pretrain stage before fine-tuning (the model's embeddings must learn it)"
        )
    else:
        tokenizer = pretrained.load_tokenizer(recipe.model)
    # with a pretrain stage, fine-tuning reads the pretrained checkpoint's tokenizer: the one the corpus was packed with
    tokens = cache.tokenized(task_data, tokenizer, recipe.data, recipe.task)
    sizes = {split: len(ds) for split, ds in tokens.data.items()}
    results["finetune"] = {"folder": str(tokens.folder), "made": tokens.made, "sizes": sizes}
    return results
