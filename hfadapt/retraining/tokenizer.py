"""Tokenizers: train one on a corpus with the `tokenizers` library's own trainers, and measure its fit.

WordPiece is trained by `WordPieceTrainer` itself (transformers' `train_new_from_iterator` trains
BPE behind a WordPiece name). Normalisation: Unicode NFKC (People's Daily writes digits and Latin
letters full width), optional lower-casing and accent stripping, and Han characters split one
per token before any merge is learnt, as BERT does for Chinese.

With `tokenizer.words`, the corpus's frequent Han words (from its own segmentation or a segmenter)
join the vocabulary as whole tokens, each as a word start and as a continuation (`##词`), beside
every Han character in both forms. Han text is then kept in runs, and WordPiece's greedy longest
match inside a run is forward maximum matching against that lexicon: the tokenizer needs no
segmenter when it is used, and a Han character the vocabulary lacks is cut off on its own, so
it alone becomes `[UNK]`, not its whole run.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from hfadapt.data.splits import HAN, HAN_RANGES
from hfadapt.errors import HfadaptError
from hfadapt.recipe import TokenizerConfig
from hfadapt.retraining.corpus import segment_with

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ALGORITHMS = ("wordpiece", "bpe", "unigram")


def build(config: TokenizerConfig):
    """An untrained `tokenizers.Tokenizer` and its trainer, for `config`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if config.algorithm == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
        trainer = trainers.WordPieceTrainer(
            vocab_size=config.vocab_size,
            min_frequency=config.min_frequency,
            special_tokens=SPECIAL_TOKENS,
            continuing_subword_prefix="##",
        )
        tokenizer.decoder = decoders.WordPiece(prefix="##")
    elif config.algorithm == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
        trainer = trainers.BpeTrainer(
            vocab_size=config.vocab_size,
            min_frequency=config.min_frequency,
            special_tokens=SPECIAL_TOKENS,
            continuing_subword_prefix="##",
        )
        tokenizer.decoder = decoders.WordPiece(prefix="##")
    else:
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=config.vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="[UNK]"
        )
    tokenizer.normalizer = _normalizer(config, split_han=config.split_han)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer, trainer


def _normalizer(config: TokenizerConfig, split_han: bool):
    """NFKC, then BERT's cleaning, casing and accents; `split_han` puts spaces around each Han character."""
    from tokenizers import normalizers

    bert = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=split_han, strip_accents=config.strip_accents, lowercase=config.lowercase
    )
    return normalizers.Sequence([normalizers.NFKC(), bert])


def train_tokenizer(
    texts: Iterable[str],
    config: TokenizerConfig | None = None,
    word_counts: Counter | None = None,
    **settings: Any,
) -> PreTrainedTokenizerFast:
    """Train a tokenizer on `texts` with the `tokenizers` library's own trainers.

    The texts may be any iterable: a stream is read once and never held whole in memory.

    Args:
        texts: the corpus, one text per item.
        config: a `hfadapt.recipe.TokenizerConfig`; None builds one from `settings`.
        word_counts: with `words=True`, how often each word of the corpus occurs (a `Counter` of Han
            words); read once `texts` is exhausted, so a stream may fill it as it goes.
        **settings: `TokenizerConfig` fields when `config` is None: `algorithm` (wordpiece, bpe,
            unigram), `vocab_size`, `min_frequency`, `lowercase`, `strip_accents`, `split_han`, `words`.

    Returns:
        A `transformers.PreTrainedTokenizerFast` with BERT's special tokens ([PAD], [UNK], [CLS],
        [SEP], [MASK]) and its [CLS] ... [SEP] template.

    Raises:
        HfadaptError: unknown settings, a single string for `texts`, no text, a vocabulary too small for
            the corpus's alphabet, or `words` without word counts.
    """
    config = _tokenizer_config(config, settings)
    if isinstance(texts, str):
        raise HfadaptError(f"train_tokenizer: texts is one string; give an iterable of texts, e.g. [{texts[:20]!r}]")
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    minimum = len(SPECIAL_TOKENS) + 1
    if config.vocab_size < minimum:
        raise HfadaptError(
            f"tokenizer.vocab_size: {config.vocab_size} cannot hold the {len(SPECIAL_TOKENS)} "
            "special tokens and an alphabet; use at least a few hundred"
        )
    tokenizer, trainer = build(config)
    seen = _Counting(texts)
    tokenizer.train_from_iterator(seen, trainer=trainer, length=None)
    if seen.count == 0:
        raise HfadaptError("tokenizer: the corpus has no text; give a corpus with non-empty texts")
    size = tokenizer.get_vocab_size()
    if size > config.vocab_size:  # the trainer keeps the whole alphabet, whatever size was asked
        raise HfadaptError(
            f"tokenizer.vocab_size: {config.vocab_size} is smaller than the special tokens "
            f"plus the corpus's alphabet ({size} tokens); raise it above {size}"
        )
    if config.words:
        tokenizer = _with_words(tokenizer, config, word_counts or Counter())
        size = tokenizer.get_vocab_size()
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    logger.info("trained a %s tokenizer of %d tokens on %d texts", config.algorithm, size, seen.count)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )


def _tokenizer_config(config: TokenizerConfig | None, settings: dict[str, Any]) -> TokenizerConfig:
    """`config`, or a `TokenizerConfig` of `settings`, with what `build` needs checked."""
    import dataclasses

    if config is not None and settings:
        raise HfadaptError(
            f"train_tokenizer: give a TokenizerConfig or its fields as keywords, not both (got {sorted(settings)})"
        )
    if config is None:
        fields = [f.name for f in dataclasses.fields(TokenizerConfig)]
        unknown = sorted(set(settings) - set(fields))
        if unknown:
            raise HfadaptError(
                f"train_tokenizer: {', '.join(map(repr, unknown))} is not a tokenizer setting; the settings are "
                f"{', '.join(fields)}"
            )
        config = TokenizerConfig(**settings)
    if config.algorithm not in ALGORITHMS:
        raise HfadaptError(f"train_tokenizer: algorithm {config.algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    for name, least in (("vocab_size", 0), ("min_frequency", 1)):  # vocab_size: its room is checked in training
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise HfadaptError(f"train_tokenizer: {name} must be a whole number, {least} or more; got {value!r}")
    return config


def han_words(words: Iterable[str]) -> Iterator[str]:
    """The words of two or more characters that are all Han: the candidates `tokenizer.words` keeps."""
    return (w for w in words if len(w) > 1 and HAN_WORD.fullmatch(w))


def _with_words(trained, config: TokenizerConfig, word_counts: Counter):
    """The trained character-level WordPiece, given the corpus's frequent Han words as whole tokens."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    if not word_counts:
        raise HfadaptError(
            "tokenizer.words: the corpus has no word segmentation; set corpus.segmenter: jieba (pip install jieba), "
            "or use a corpus with a words column (builtin:peoples_daily has one), or set tokenizer.words: false"
        )
    vocab = trained.get_vocab()
    entries = [t for t, _ in sorted(vocab.items(), key=lambda item: item[1])]
    characters = [t for t in entries if len(t) == 1 and HAN.match(t)]
    if not characters:
        raise HfadaptError(
            "tokenizer.words: the corpus has no Han characters, so there are no Han words to "
            "keep; set tokenizer.words: false"
        )
    known = set(entries)
    for c in characters:  # inside a run of Han text every character after the first is a continuation
        if "##" + c not in known:
            entries.append("##" + c)
            known.add("##" + c)
    if len(entries) > config.vocab_size:
        raise HfadaptError(
            f"tokenizer.vocab_size: {config.vocab_size} cannot hold the {len(characters)} Han "
            "characters as word starts and continuations "
            f"with the rest ({len(entries)} tokens) before any word; raise it above "
            f"{len(entries)}, or set tokenizer.words: false"
        )
    alphabet = set(characters)
    for word, count in word_counts.most_common():
        if len(entries) + 2 > config.vocab_size or count < config.min_frequency:
            break
        if not set(word) <= alphabet:
            continue
        for token in (word, "##" + word):
            if token not in known:
                entries.append(token)
                known.add(token)
    # runs of Han text up to 1,000 characters are matched whole (WordPiece's default is 100, past which a run is [UNK])
    model = models.WordPiece(
        vocab={t: i for i, t in enumerate(entries)},
        unk_token="[UNK]",
        continuing_subword_prefix="##",
        max_input_chars_per_word=1000,
    )
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = _normalizer(config, split_han=False)  # Han text stays in runs
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.BertPreTokenizer(),
            # Han runs apart from Latin letters and digits beside them
            pre_tokenizers.Split(Regex(f"[{HAN_RANGES}]+"), "isolated"),
            # a character the vocabulary lacks alone
            pre_tokenizers.Split(Regex(f"[{HAN_RANGES}&&[^{''.join(characters)}]]"), "isolated"),
        ]
    )
    tokenizer.decoder = trained.decoder
    return tokenizer


class _Counting:
    """Pass texts through, counting the non-empty ones."""

    def __init__(self, texts: Iterable[str]):
        self.texts, self.count = texts, 0

    def __iter__(self) -> Iterator[str]:
        for text in self.texts:
            if text and text.strip():
                self.count += 1
                yield text


HAN_WORD = re.compile(f"[{HAN_RANGES}]+")


def _han_segmenter():
    """jieba's word segmentation (corpus.segment_with), or None where jieba is not installed."""
    try:
        return segment_with("jieba")
    except HfadaptError:
        return None


def tokenizer_fit(
    tokenizer, texts: list[str], words: list[list[str] | None] | None = None, top_characters: int = 1000
) -> dict[str, float | None]:
    """How well a tokenizer fits a corpus.

    - unk_rate: share of tokens that are the unknown token;
    - tokens_per_char: tokens per non-space character;
    - tokens_per_word and split_3plus: tokens per word, and share of words cut in 3 pieces or
      more; words come from `words` (the corpus's own segmentation, aligned with `texts`, None
      where a text has none), else from jieba for text with Han characters (when installed:
      their spaces do not separate words), else from whitespace. None when no text has words;
    - char_coverage: share of the corpus's `top_characters` most frequent characters that the
      tokenizer encodes without the unknown token.
    """
    unk = tokenizer.unk_token_id
    tokens = unknown = 0
    for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]:
        tokens += len(ids)
        unknown += sum(1 for i in ids if i == unk)
    characters = sum(len(t) - t.count(" ") for t in texts)
    flat: list[str] = []
    segment_han = _han_segmenter() if any(HAN.search(t) for t in texts) else None
    for i, text in enumerate(texts):
        segmented = words[i] if words is not None else None
        if segmented is None and HAN.search(text):
            segmented = segment_han(text) if segment_han else None
        elif segmented is None and len(text.split()) > 1:
            segmented = text.split()
        flat.extend(w for w in segmented or [] if w.strip())
    pieces = [len(ids) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"]] if flat else []
    frequent = [c for c, _ in Counter(c for t in texts for c in t if not c.isspace()).most_common(top_characters)]
    covered = (
        sum(1 for ids in tokenizer(frequent, add_special_tokens=False)["input_ids"] if ids and unk not in ids)
        if frequent
        else 0
    )
    return {
        "unk_rate": unknown / max(tokens, 1),
        "tokens_per_char": tokens / max(characters, 1),
        "tokens_per_word": sum(pieces) / len(pieces) if pieces else None,
        "split_3plus": sum(1 for n in pieces if n >= 3) / len(pieces) if pieces else None,
        "char_coverage": covered / max(len(frequent), 1),
        "vocab_size": len(tokenizer),
    }
