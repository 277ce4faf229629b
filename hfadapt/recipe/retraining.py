"""The retraining sections of a recipe: the corpus, the tokenizer trained on it, masked-LM pretraining."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hfadapt.recipe import arguments
from hfadapt.recipe.defaults import PRETRAIN_DEFAULTS, training_field
from hfadapt.recipe.typecheck import option


@dataclass
class CorpusConfig:
    """Texts for training a tokenizer and for masked-LM pretraining."""

    sources: list[str] = option(
        help="files, folders, Hub ids or builtin:NAME; when a source is data.source, only its "
        "training split is read (no validation or test text leaks in); in-memory:sha256:... names texts given "
        "to the Python API (corpus=)"
    )
    text_column: str = option(
        "text",
        help="the column of texts in each source; a source without it that has a `tokens` column of word lists "
        "(a token-classification data set such as builtin:msra_ner) is read as its sentences",
    )
    words_column: str = option("words", help="the corpus's own word segmentation, where a source has this column")
    segmenter: Literal["jieba"] | None = option(
        None, help="segments the other sources' texts into words (pip install jieba)"
    )
    max_texts: int | None = option(None, help="the first N texts of each source: tiny runs")
    validation_fraction: float = option(0.01, help="share held out by text hash for the perplexity")

    def problems(self) -> list[str]:
        found = []
        if not 0 < self.validation_fraction < 1:
            found.append(f"corpus.validation_fraction: must be above 0 and below 1, got {self.validation_fraction}")
        if self.max_texts is not None and self.max_texts < 1:
            found.append("corpus.max_texts: must be 1 or more (or null for all)")
        return found


@dataclass
class TokenizerConfig:
    """A tokenizer trained on the corpus with the `tokenizers` library's own trainers."""

    algorithm: Literal["wordpiece", "bpe", "unigram"] = option("wordpiece", help="the tokenizers trainer to use")
    vocab_size: int = option(16000, help="tokens in the new vocabulary, special tokens included")
    min_frequency: int = option(2, help="a merge or word must occur this often to be kept")
    lowercase: bool = option(True, help="lower-case the text first")
    strip_accents: bool = option(False, help="strip accents first")
    split_han: bool = option(True, help="one token per Han character, as BERT does for Chinese")
    words: bool = option(
        False,
        help="also keep the corpus's frequent Han words whole (wordpiece with split_han; words come from "
        "the corpus's segmentation or corpus.segmenter); needs a larger vocab_size",
    )

    def problems(self) -> list[str]:
        found = []
        if self.vocab_size < 100:
            found.append(
                f"tokenizer.vocab_size: {self.vocab_size} cannot hold the 5 special tokens and an alphabet; "
                "use at least a few hundred"
            )
        if self.min_frequency < 1:
            found.append(f"tokenizer.min_frequency: must be 1 or more, got {self.min_frequency}")
        return found


@dataclass
class PretrainConfig:
    """Masked-LM pretraining on the corpus, before fine-tuning."""

    init: Literal["continue", "scratch"] = option("continue", help="continue from model.name_or_path, or a fresh BERT")
    size: Literal["tiny", "mini", "small", "medium", "base"] = option(
        "mini", help="the fresh BERT's size (init: scratch)"
    )
    vocabulary: Literal["replace", "extend"] = option(
        "replace", help="with a new tokenizer (init: continue): its vocabulary alone, or added to the old one"
    )
    block_size: int = option(128, help="tokens per block; texts are packed end to end")
    new_rows: Literal["draw", "static"] = option(
        "draw",
        help="continue with a new tokenizer: rows of new tokens the old tokenizer cannot spell (only [UNK]) are "
        "drawn at random (draw), or combined from the rows of the shared tokens nearest them in static "
        "embeddings learnt on the corpus in seconds (static: the idea of FOCUS and WECHSEL)",
    )
    objective: Literal["mlm", "rtd"] = option(
        "mlm",
        help="masked-LM (mlm), or replaced-token detection (rtd, ELECTRA's: a small generator fills the masked "
        "positions and the model learns, at every position, whether the token is the original; the model is "
        "kept, the generator dropped)",
    )
    mlm_probability: float = option(0.15, help="share of the tokens masked")
    whole_word_masking: bool = option(True, help="mask all the tokens of a word together")
    repeat: dict[str, int] = option(
        factory=dict,
        help="by corpus source, how many times pretraining reads its texts in an epoch (default 1): "
        "more weight for in-domain text",
    )
    training: dict[str, Any] = training_field(PRETRAIN_DEFAULTS, "pretraining")

    def training_arguments(self, output_dir: str | Path):
        """`transformers.TrainingArguments` for pretraining; the blocks carry `word_ids`, which the collator needs."""
        return arguments.training_arguments(output_dir, self.training, remove_unused_columns=False)

    def problems(self, sources: list[str]) -> list[str]:
        found = []
        if not 0 < self.mlm_probability < 1:
            found.append(f"pretrain.mlm_probability: must be between 0 and 1, got {self.mlm_probability}")
        if self.new_rows == "static" and self.init == "scratch":
            found.append("pretrain.new_rows: static places the rows of a checkpoint continued; init is scratch")
        if self.block_size < 8:
            found.append(f"pretrain.block_size: {self.block_size} is too short; use 8 or more")
        for source, times in self.repeat.items():
            if source not in sources:
                found.append(
                    f"pretrain.repeat: {source} is not one of corpus.sources ({', '.join(sources)}); "
                    "name a source exactly as corpus.sources does"
                )
            elif isinstance(times, bool) or not isinstance(times, int) or times < 1:
                found.append(
                    f"pretrain.repeat: {source}: {times!r} is not a whole number of 1 or more; "
                    "give how many times to read its texts"
                )
        return found
