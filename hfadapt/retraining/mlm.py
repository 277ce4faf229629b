"""Masked-LM pretraining: pack texts into blocks (cached on disk), mask whole words, train with `Trainer`.

Texts are packed end to end into fixed-length blocks across document boundaries; only the very
last block is padded, so nothing is dropped and almost every position is a real token. Each
token carries the index of the word it belongs to (from the corpus's own segmentation, a
segmenter such as jieba, or the tokenizer's pre-tokenization), and masking picks whole words:
all characters of a Chinese word are masked together, with no reference files.

`pack_blocks`, `WholeWordMaskCollator` and `MaskedLMTrainer` take plain arguments; `packed` is the
recipe's packing of its corpus, through the same writer, into the prepared-data cache.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import Trainer

from hfadapt.data import cache
from hfadapt.errors import HfadaptError

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# A checkpoint's record of how many batches training has read, which numbers the next batch's masks.
MASK_BATCHES = "mask_batches.json"
# Encoder sizes for pretraining from scratch: layers, hidden size, attention heads (feed-forward 4x hidden).
SIZES = {"tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8), "medium": (8, 512, 8), "base": (12, 768, 12)}


def blocks(
    tokenizer, documents: Iterable[tuple[str, list[str] | None]], block_size: int, stats: dict
) -> Iterator[dict[str, list[int]]]:
    """Pack documents `(text, words or None)` into blocks of `block_size`: [CLS] tokens... [SEP].

    Every token of every document lands in a block; only the last block is padded. Word ids
    count from 0 in each block (masking needs them distinct within a block only), so they stay
    small whatever the corpus size. `stats` receives the counts of documents, tokens and padding.
    """
    inner = block_size - 2
    ids: list[int] = []
    words: list[int] = []
    next_word = 0
    stats.update(documents=0, tokens=0, padding=0, blocks=0)

    def emit(chunk_ids, chunk_words):
        pad = inner - len(chunk_ids)
        stats["blocks"] += 1
        stats["padding"] += pad
        first = chunk_words[0]
        return {
            "input_ids": [tokenizer.cls_token_id]
            + chunk_ids
            + [tokenizer.sep_token_id]
            + [tokenizer.pad_token_id] * pad,
            "word_ids": [-1] + [w - first for w in chunk_words] + [-1] + [-1] * pad,
            "attention_mask": [1] * (len(chunk_ids) + 2) + [0] * pad,
        }

    for text, segmented in documents:
        # verbose=False: a document longer than the model's maximum length is expected here (it
        # spans several blocks), so transformers' "Token indices sequence length" warning is noise
        if segmented is not None:
            enc = tokenizer(segmented, is_split_into_words=True, add_special_tokens=False, verbose=False)
        else:
            enc = tokenizer(text, add_special_tokens=False, verbose=False)
        if not enc["input_ids"]:
            continue
        stats["documents"] += 1
        stats["tokens"] += len(enc["input_ids"])
        ids.extend(enc["input_ids"])
        words.extend(next_word + w for w in enc.word_ids())
        next_word = words[-1] + 1
        while len(ids) >= inner:
            yield emit(ids[:inner], words[:inner])
            ids, words = ids[inner:], words[inner:]
    if ids:
        yield emit(ids, words)


BLOCK_SPLITS = ("train", "validation")


def packed(
    corpus_key: dict,
    tokenizer,
    block_size: int,
    documents: Callable[[str], Iterable[tuple[str, list[str] | None]]],
) -> cache.Cached:
    """The corpus packed into blocks (`blocks`), train and validation, packed once into the cache.

    `corpus_key` names the corpus (its settings and what its sources hold); `documents(split)`
    streams it. Blocks go from the packer straight into Arrow files, so the corpus is never in
    memory; every process reads them memory-mapped.
    """
    key = {
        "kind": "pretrain",
        "corpus": corpus_key,
        "block_size": block_size,
        "tokenizer": cache.tokenizer_fingerprint(tokenizer),
    }

    def build(work: Path) -> dict:
        stats: dict[str, dict] = {}
        for split in BLOCK_SPLITS:
            stats[split] = _write_blocks(tokenizer, documents(split), block_size, path=work / f"{split}.arrow")
            if stats[split]["blocks"] == 0:
                raise HfadaptError(
                    f"corpus: the {split} share of the corpus is empty; "
                    "give more text or change corpus.validation_fraction"
                )
        real = stats["train"]["blocks"] * block_size
        return {"packing": {**stats, "non_padding_share": 1 - stats["train"]["padding"] / real}}

    def load(folder: Path):
        from datasets import Dataset, DatasetDict

        return DatasetDict({split: Dataset.from_file(str(folder / f"{split}.arrow")) for split in BLOCK_SPLITS})

    return cache.ensure(key, build, load)


def pack_blocks(texts: Iterable[Any], tokenizer: PreTrainedTokenizerBase, block_size: int) -> Dataset:
    """Pack texts end to end into masked-LM blocks of `block_size` tokens: [CLS] tokens... [SEP].

    Every token of every text lands in a block (a long text spans several); only the last block is
    padded. Each token carries its word's index within the block (`word_ids`), from the text's own
    segmentation where given, else from the tokenizer's pre-tokenization, for `WholeWordMaskCollator`.

    Args:
        texts: an iterable (a stream is read once) of texts; of `(text, words)` pairs, `words` being
            the text's segmentation into words (or None); or of rows with a `text` item (and a `words`
            one), such as a `datasets.Dataset`.
        tokenizer: a fast tokenizer with [CLS], [SEP] and [PAD] tokens.
        block_size: tokens per block, the special tokens included.

    Returns:
        A `datasets.Dataset` with `input_ids`, `word_ids` (-1 at special and padding positions) and
        `attention_mask`, one row per block: the train data for `WholeWordMaskCollator` and
        `MaskedLMTrainer` (with `remove_unused_columns=False`).

    Raises:
        HfadaptError: a block size below 3, a slow tokenizer or one without [CLS], [SEP] and [PAD], a
            single string for `texts`, or texts that hold no token.
    """
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 3:
        raise HfadaptError(f"pack_blocks: block_size must be a whole number, 3 or more; got {block_size!r}")
    if isinstance(texts, str):
        raise HfadaptError(f"pack_blocks: texts is one string; give an iterable of texts, e.g. [{texts[:20]!r}]")
    if not getattr(tokenizer, "is_fast", False):
        raise HfadaptError(
            "pack_blocks: word ids need a fast tokenizer (AutoTokenizer.from_pretrained(..., use_fast=True))"
        )
    missing = [
        role for role in ("cls_token", "sep_token", "pad_token") if getattr(tokenizer, role + "_id", None) is None
    ]
    if missing:
        raise HfadaptError(
            f"pack_blocks: the tokenizer has no {', '.join(missing)}; blocks are [CLS] ... [SEP], padded"
        )
    import pyarrow as pa
    from datasets import Dataset

    sink = pa.BufferOutputStream()
    stats = _write_blocks(tokenizer, map(_document, texts), block_size, stream=sink)
    if stats["blocks"] == 0:
        raise HfadaptError("pack_blocks: the texts hold no token; give at least one non-empty text")
    return Dataset.from_buffer(sink.getvalue())


def _document(item: Any) -> tuple[str, list[str] | None]:
    """A text, a (text, words) pair or a row with `text` (and `words`), as a (text, words) pair."""
    if isinstance(item, str):
        return item, None
    if isinstance(item, dict) and "text" in item:
        return item["text"], item.get("words")
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return item
    raise HfadaptError(f"pack_blocks: {item!r:.60} is not a text, a (text, words) pair or a row with a 'text' item")


def _write_blocks(tokenizer, documents, block_size: int, path: Path | None = None, stream=None) -> dict:
    """Write the blocks of `documents` as an Arrow file at `path` (or into `stream`); the packing counts."""
    from datasets import Features, Sequence, Value
    from datasets.arrow_writer import ArrowWriter

    # word ids restart in every block (`blocks`), so 32 bits hold them whatever the corpus size
    columns = {"input_ids": "int32", "word_ids": "int32", "attention_mask": "int8"}
    features = Features({name: Sequence(Value(kind)) for name, kind in columns.items()})
    stats: dict = {}
    with ArrowWriter(features=features, path=str(path) if path else None, stream=stream) as writer:
        for block in blocks(tokenizer, documents, block_size, stats):
            writer.write(block)
        writer.finalize()
    return stats


class WholeWordMaskCollator:
    """Mask about `probability` of the tokens, whole words at a time; 80% [MASK], 10% a random token, 10% kept.

    Args:
        tokenizer: the tokenizer the blocks were packed with; it needs a [MASK] token.
        probability: the share of each block's real tokens to mask, above 0 and below 1.
        whole_words: mask every token of a chosen word together (False: tokens one at a time).

    Returns:
        A data collator: called on blocks from `pack_blocks` (rows with `input_ids`, `attention_mask`
        and `word_ids`), it gives tensors `input_ids`, `attention_mask` and `labels` (-100 where unmasked).

    Raises:
        HfadaptError: a tokenizer without a mask token, or a probability outside (0, 1).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, probability: float = 0.15, whole_words: bool = True):
        if getattr(tokenizer, "mask_token_id", None) is None:
            raise HfadaptError("WholeWordMaskCollator: the tokenizer has no mask token ([MASK]); masked-LM needs one")
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 < probability < 1:
            raise HfadaptError(f"WholeWordMaskCollator: probability must be above 0 and below 1; got {probability!r}")
        self.tokenizer = tokenizer
        self.probability = probability
        self.whole_words = whole_words
        self.special = set(tokenizer.all_special_ids)
        self.vocab_size = len(tokenizer)
        self.generator = None  # None: torch's global random state; a seeded one repeats the same masks
        # (seed, number of the next batch): each batch's masks from a generator seeded by its number, so that
        # they do not depend on when the batch is made (ahead of its step, or first after a resume)
        self.numbered: tuple[int, int] | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        generator = self.generator
        if self.numbered is not None:
            seed, number = self.numbered
            generator = torch.Generator().manual_seed((seed * 1_000_003 + number) % 2**63)
            self.numbered = (seed, number + 1)
        input_ids = torch.tensor([e["input_ids"] for e in examples], dtype=torch.long)
        attention = torch.tensor([e["attention_mask"] for e in examples], dtype=torch.long)
        words = torch.tensor([e["word_ids"] for e in examples], dtype=torch.long)
        if not self.whole_words:  # every token its own word
            words = torch.where(words >= 0, torch.arange(words.shape[1]).expand_as(words), words)
        masked = torch.zeros_like(input_ids, dtype=torch.bool)
        for row in range(input_ids.shape[0]):
            real = words[row] >= 0
            budget = max(1, round(self.probability * int(real.sum())))
            candidates = torch.unique(words[row][real])
            order = candidates[torch.randperm(len(candidates), generator=generator)]
            count = 0
            for word in order.tolist():
                if count >= budget:
                    break
                span = words[row] == word
                masked[row] |= span
                count += int(span.sum())
        labels = torch.where(masked, input_ids, torch.full_like(input_ids, -100))
        chance = torch.rand(input_ids.shape, generator=generator)
        to_mask = masked & (chance < 0.8)
        to_random = masked & (chance >= 0.8) & (chance < 0.9)
        input_ids = input_ids.clone()
        input_ids[to_mask] = self.tokenizer.mask_token_id
        input_ids[to_random] = torch.randint(
            len(self.special), self.vocab_size, (int(to_random.sum()),), generator=generator
        )
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


class MaskedLMTrainer(Trainer):
    """`Trainer` for masked-LM that projects onto the vocabulary at the masked positions alone.

    A masked-LM's loss reads only the ~15% of positions that were masked, yet the model's head
    projects every position onto the whole vocabulary: for a small encoder with a large vocabulary
    that projection and its softmax are a large share of a step. A pre-hook on the output
    embeddings (the decoder that the head ends in) keeps only the masked positions' hidden states,
    and the labels are cut to the same positions, so the model's own loss is the same mean over
    the same tokens; loss scaling, gradient accumulation and the model wrappers of DDP, FSDP and
    DeepSpeed are Trainer's own. Evaluation goes through the same path (its logits are the masked
    positions'). A model without output embeddings is trained the usual way.

    Args:
        *args: `transformers.Trainer`'s own arguments: the masked-LM model, `TrainingArguments` (with
            `remove_unused_columns=False`, so the blocks keep their `word_ids`), the blocks of
            `pack_blocks` and a `WholeWordMaskCollator`.
        **kwargs: `transformers.Trainer`'s own keyword arguments.

    Returns:
        A `Trainer`: `train()`, `evaluate()` (its `eval_loss` gives the perplexity) and `save_model()`.
    """

    _batches = 0  # training batches read so far (with gradient accumulation, several a step)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._positions = None
        decoder = self.model.get_output_embeddings()
        self._sparse = decoder is not None
        if self._sparse:
            decoder.register_forward_pre_hook(self._masked_only)

    def train(self, resume_from_checkpoint: str | None = None, *args, **kwargs):
        """`Trainer.train`, each training batch's masks drawn from a generator seeded by the batch's number.

        A resumed run then draws the masks the uninterrupted run drew. Drawn from one running
        generator, they would not: the data loader makes each batch a step ahead of training, so
        the generator's state at a checkpoint is already a batch further on (and Trainer restores
        torch's global random state only after making the first resumed batch).
        """
        collator = self.data_collator
        self._batches = 0
        if isinstance(resume_from_checkpoint, str) and (Path(resume_from_checkpoint) / MASK_BATCHES).is_file():
            self._batches = json.loads((Path(resume_from_checkpoint) / MASK_BATCHES).read_text())["batches"]
        if isinstance(collator, WholeWordMaskCollator):
            collator.numbered = (self.args.seed + self.args.process_index, self._batches)
        try:
            return super().train(resume_from_checkpoint, *args, **kwargs)
        finally:
            if isinstance(collator, WholeWordMaskCollator):
                collator.numbered = None

    def training_step(self, *args, **kwargs):
        self._batches += 1
        return super().training_step(*args, **kwargs)

    def _save_checkpoint(self, model, trial) -> None:
        # written before the checkpoint's trainer_state.json, which marks it complete
        if self.args.should_save:
            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / MASK_BATCHES).write_text(json.dumps({"batches": self._batches}), encoding="utf-8")
        super()._save_checkpoint(model, trial)

    def evaluate(self, *args, **kwargs):
        """Held-out loss under the same masks at every evaluation (seeded by `args.seed`), so the
        perplexities along a run, and those of runs with one seed, differ by the model alone."""
        collator = self.data_collator
        if not isinstance(collator, WholeWordMaskCollator):
            return super().evaluate(*args, **kwargs)
        import torch

        numbered, collator.numbered = collator.numbered, None  # the training batches' numbering waits
        collator.generator = torch.Generator().manual_seed(self.args.seed)
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            collator.generator, collator.numbered = None, numbered

    def _masked_only(self, module, args):
        if self._positions is None:
            return None
        return (args[0][self._positions],) + tuple(args[1:])

    def compute_loss(self, model, inputs, *args, **kwargs):
        if not self._sparse or "labels" not in inputs:
            return super().compute_loss(model, inputs, *args, **kwargs)
        labels = inputs["labels"]
        self._positions = labels != -100
        try:
            return super().compute_loss(model, {**inputs, "labels": labels[self._positions]}, *args, **kwargs)
        finally:
            self._positions = None


def scratch_model(tokenizer, size: str, max_positions: int):
    """A BERT masked-LM of a preset size, randomly initialised, for `tokenizer`."""
    from transformers import BertConfig, BertForMaskedLM

    layers, hidden, heads = SIZES[size]
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=max(512, max_positions),
        pad_token_id=tokenizer.pad_token_id,
    )
    return BertForMaskedLM(config)


def perplexity(eval_loss: float) -> float:
    return math.exp(eval_loss) if eval_loss < 50 else float("inf")
