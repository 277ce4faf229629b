"""The price of a recipe on this machine, stage by stage, and the recipe cut down to fit a number of minutes.

Each stage's steps are counted from the data, and a step is timed here (`timing`) at the recipe's own
shapes: its batch sizes, the padded lengths its batches will have, its vocabulary and its precision.

- Tokenizer training (retraining): the fit trained the recipe's tokenizer on the training texts and
  timed it (`fit.measure`); that time, scaled by the corpus's characters over the fit's.
- Masked-LM pretraining (retraining): blocks = the corpus's tokens under the new tokenizer / the block's
  room; steps = `max_steps`, or the epochs x the batches of blocks. Its held-out perplexity passes
  (before, every `eval_steps`, after): forward only.
- Fine-tuning: rows = the training texts, times the windows a text makes under `data.long_texts:
  windows`; steps as `Trainer` counts them. Batches are padded to their longest row, so the rows' lengths
  are measured on a sample and batched as the run's sampler batches them (random, or grouped by length),
  and timed at those padded lengths (`timing.shapes`).
- Evaluation: validation at every evaluation `eval_strategy` asks for and once after training, test
  once; forward only, in batches sorted by length as the run reads them (`sampler.SortedEvaluation`).

Not counted: NOT_COUNTED. `run_minutes.fit_minutes` fits a recipe to a number of minutes from its prices.
"""

from __future__ import annotations

import gc
import math
import random
import time
from pathlib import Path
from typing import Any

from hfadapt.advice import timing
from hfadapt.advice.fit import texts
from hfadapt.data import splits, tokenization
from hfadapt.recipe import Recipe
from hfadapt.retraining import corpus, vocab

SAMPLE_TEXTS = 2000  # texts per split whose rows and lengths are measured (as the truncation report measures)
CORPUS_SAMPLE = 5000  # corpus texts (a uniform sample) tokenized for the corpus's tokens per character,
SAMPLE_CHARACTERS = 400  # each cut to this many characters: 2 million in all, as the fit reads
NOT_COUNTED = (
    "loading and saving models, packing the corpus, rebuilding the vocabulary, and the Trainer's own data "
    "loading and logging"
)
STAGES = {
    "tokenizer": "tokenizer training",
    "pretraining": "masked-LM pretraining",
    "pretraining_evaluation": "masked-LM held-out evaluation",
    "finetuning": "fine-tuning",
    "evaluation": "evaluation (validation and test)",
}


def price(recipe: Recipe, tokenizer, task_data, fit: dict[str, Any], new_tokenizer=None) -> dict[str, Any]:
    """What each stage of `recipe` costs on this machine: its steps, timed at the recipe's own shapes.

    Args:
        recipe: the recipe to price (`hfadapt finetune` or `hfadapt retrain`).
        tokenizer: the checkpoint's tokenizer.
        task_data: the data, split, as the recipe loads it.
        fit: the fit (`fit.measure`): its `tokenizer_seconds` price the tokenizer stage.
        new_tokenizer: the tokenizer the fit trained on the training texts (a retraining recipe's).

    Returns:
        `stages` (each `stage`, `title`, `steps`, `seconds_per_step`, `rows`, `seconds`, `basis`, and for an
        evaluation its `passes`), `seconds` (their sum), the `machine` it was timed on, what is
        `not_counted`, and `timing_seconds` (what pricing took).
    """
    pricer = Pricer(recipe, tokenizer, task_data, fit, new_tokenizer)
    try:
        return pricer.price(recipe)
    finally:
        pricer.close()


class Pricer:
    """Prices recipes that share a model, tokenizers and data: the rows, the corpus's counts and each
    shape's time are measured once and reused by every recipe priced."""

    def __init__(self, recipe: Recipe, tokenizer, task_data, fit: dict[str, Any], new_tokenizer):
        self.began = time.perf_counter()
        self.task_data, self.fit, self.seed = task_data, fit, recipe.training["seed"]
        self.old, self.new = tokenizer, new_tokenizer
        self.tokenizer = tokenizer  # the one fine-tuning (and pretraining) reads with
        if recipe.pretrain is not None and new_tokenizer is not None:
            extend = recipe.pretrain.init == "continue" and recipe.pretrain.vocabulary == "extend"
            self.tokenizer = vocab.extend_tokenizer(tokenizer, new_tokenizer) if extend else new_tokenizer
        self.samples = self._samples()
        self.rows: dict[tuple, dict[str, Any]] = {}
        self.counts: dict[tuple, dict[str, Any]] = {}
        self.benches: dict[str, timing.Bench] = {}

    def close(self) -> None:
        self.benches.clear()
        gc.collect()

    def price(self, recipe: Recipe) -> dict[str, Any]:
        stages = [self._tokenizer_stage(recipe)] if recipe.tokenizer is not None and self.new is not None else []
        if recipe.pretrain is not None:
            stages += self._pretraining_stages(recipe)
        stages += self._finetuning_stages(recipe)
        for stage in stages:
            stage["title"] = STAGES[stage["stage"]]
        return {
            "stages": stages,
            "seconds": sum(s["seconds"] for s in stages),
            "machine": timing.machine(recipe),
            "not_counted": NOT_COUNTED,
            "timing_seconds": time.perf_counter() - self.began,
        }

    def _samples(self):
        """Up to SAMPLE_TEXTS texts of each split, drawn with the recipe's seed, held in memory (so that
        tokenizing them writes no cache file)."""
        import datasets

        chosen = {}
        for name, split in self.task_data.splits.items():
            picked = sorted(random.Random(self.seed).sample(range(len(split)), min(len(split), SAMPLE_TEXTS)))
            chosen[name] = datasets.Dataset.from_dict(split.select(picked).to_dict(), features=split.features)
        return splits.TaskData(datasets.DatasetDict(chosen), self.task_data.label_names)

    def _rows(self, recipe: Recipe, split: str) -> tuple[int, list[int], float]:
        """A split's rows in all (windows make several of a text), its sampled rows' lengths, and its rows per
        text, under the recipe's data settings."""
        data = recipe.data
        key = (data.max_length, data.long_texts, data.window_stride())
        if key not in self.rows:
            tokenized = tokenization.tokenize(self.samples, self.tokenizer, data, recipe.task)
            self.rows[key] = {
                name: ([len(ids) for ids in rows["input_ids"]], len(rows) / max(len(self.samples.splits[name]), 1))
                for name, rows in tokenized.items()
            }
        lengths, per_text = self.rows[key][split]
        return round(len(self.task_data.splits[split]) * per_text), lengths, per_text

    def _corpus(self, recipe: Recipe) -> dict[str, Any]:
        """The corpus's characters and texts in its training share (once, and as pretraining reads it with
        `pretrain.repeat`) and held out, and its tokens per character under the new tokenizer, from a uniform
        sample of its texts. Read without a segmenter: words change where a mask falls, not the tokens."""
        settings = recipe.corpus
        key = (tuple(settings.sources), settings.validation_fraction, settings.max_texts, str(recipe.pretrain.repeat))
        if key in self.counts:
            return self.counts[key]
        plain, chooser, sample = recipe.updated({"corpus": {"segmenter": None}}), random.Random(self.seed), []
        counts: dict[str, Any] = {}
        for share, split, repeated in (
            ("train", "train", False),
            ("read", "train", True),
            ("held_out", "validation", False),
        ):
            if repeated and not recipe.pretrain.repeat:
                counts[share] = counts["train"]
                continue
            characters = documents = 0
            for text, _ in corpus.corpus_documents(plain, split, repeated=repeated):
                documents, characters = documents + 1, characters + len(text)
                if share == "train" and len(sample) < CORPUS_SAMPLE:  # a reservoir: a uniform sample
                    sample.append(text[:SAMPLE_CHARACTERS])
                elif share == "train" and (slot := chooser.randrange(documents)) < CORPUS_SAMPLE:
                    sample[slot] = text[:SAMPLE_CHARACTERS]
            counts[share] = {"characters": characters, "texts": documents}
        pieces = self._mlm_tokenizer(recipe)(sample, add_special_tokens=False, verbose=False)["input_ids"]
        counts["tokens_per_character"] = sum(map(len, pieces)) / max(sum(map(len, sample)), 1)
        self.counts[key] = counts
        return counts

    def _mlm_tokenizer(self, recipe: Recipe):
        return self.tokenizer if recipe.tokenizer is not None else self.old

    def _bench(self, kind: str, recipe: Recipe) -> timing.Bench:
        if kind not in self.benches:
            self.benches[kind] = (
                timing.pretraining_bench(recipe, self._mlm_tokenizer(recipe), texts(self.samples.splits["train"]))
                if kind == "pretraining"
                else timing.finetuning_bench(recipe, self.tokenizer, self.task_data.label_names)
            )
        return self.benches[kind]

    def _tokenizer_stage(self, recipe: Recipe) -> dict[str, Any]:
        counted, fitted = self._corpus(recipe)["train"], sum(map(len, texts(self.task_data.splits["train"])))
        seconds = self.fit["tokenizer_seconds"]
        stage = _stage("tokenizer", None, None, counted["texts"])
        stage["seconds"] = seconds * counted["characters"] / max(fitted, 1)
        stage["basis"] = (
            f"the fit trained this tokenizer on the {len(self.task_data.splits['train']):,} training texts "
            f"({fitted:,} characters) in {seconds:.2f} s; the corpus's training share has "
            f"{counted['characters']:,} characters in {counted['texts']:,} texts"
        )
        return stage

    def _pretraining_stages(self, recipe: Recipe) -> list[dict[str, Any]]:
        settings, counted = recipe.pretrain, self._corpus(recipe)
        room, length = settings.block_size - 2, settings.block_size  # [CLS] ... [SEP]
        tokens = {
            share: round(counted[share]["characters"] * counted["tokens_per_character"])
            for share in ("read", "held_out")
        }
        blocks = {share: max(1, math.ceil(n / room)) for share, n in tokens.items()}
        args = settings.training_arguments(Path(recipe.output.dir) / "pretrained")  # its settings: nothing is written
        size, steps = min(args.per_device_train_batch_size, blocks["read"]), _trainer_steps(blocks["read"], args)
        bench = self._bench("pretraining", recipe)
        step = args.gradient_accumulation_steps * bench.step(size, length)
        repeat = " (pretrain.repeat counted)" if settings.repeat else ""
        per_pass = _trainer_steps(blocks["read"], args, epochs=1)
        training = _stage("pretraining", steps, step, blocks["read"]) | {
            "per_pass": per_pass,
            "basis": (
                f"{_schedule(args, steps, blocks['read'], 'blocks')}: the corpus's {counted['read']['characters']:,} "
                f"characters{repeat} x {counted['tokens_per_character']:.3f} tokens each under the new tokenizer "
                f"(measured on a sample) = {tokens['read']:,} tokens, {room} to a block of {length}; a step timed at "
                f"{size} x {length} tokens, vocabulary {len(self._mlm_tokenizer(recipe)):,}, {bench.precision}"
            ),
        }
        passes = 2 + _evaluations(args, steps, per_pass)  # and before, after
        eval_size = min(args.per_device_eval_batch_size, blocks["held_out"])
        batches = passes * math.ceil(blocks["held_out"] / eval_size)
        held_out = _stage("pretraining_evaluation", batches, bench.forward(eval_size, length), blocks["held_out"])
        held_out["passes"] = {"validation": passes}
        held_out["basis"] = (
            f"{passes} passes (before, {passes - 2} during, after) over {blocks['held_out']:,} held-out blocks in "
            f"batches of {eval_size}; forward only"
        )
        return [training, held_out]

    def _finetuning_stages(self, recipe: Recipe) -> list[dict[str, Any]]:
        args = recipe.training_arguments()
        rows, lengths, per_text = self._rows(recipe, "train")
        size, steps = max(1, min(args.per_device_train_batch_size, rows)), _trainer_steps(rows, args)
        order = "grouped" if args.train_sampling_strategy == "group_by_length" else "random"
        shapes = timing.shapes(lengths, size, order, self.seed)
        bench = self._bench("finetuning", recipe)
        step = args.gradient_accumulation_steps * sum(share * bench.step(size, n) for n, share in shapes)
        windows = f" ({per_text:.2f} windows a text, measured on {len(self.samples.splits['train']):,} texts)"
        schedule = _schedule(args, steps, rows, "rows" + (windows if recipe.data.long_texts == "windows" else ""))
        finetuning = _stage("finetuning", steps, step, rows)
        finetuning["basis"] = f"{schedule}; steps timed at {timing.shapes_text(shapes, order)}, {bench.precision}"
        during = _evaluations(args, steps, _trainer_steps(rows, args, epochs=1))
        seconds, batches, read, passes, parts = 0.0, 0, 0, {}, []
        for split, times in (("validation", during + 1), ("test", 1)):
            count, split_lengths, _ = self._rows(recipe, split)
            if count == 0:
                continue
            eval_size = min(args.per_device_eval_batch_size, count)
            split_shapes = timing.shapes(split_lengths, eval_size, "sorted", self.seed)
            forward = sum(share * bench.forward(eval_size, n) for n, share in split_shapes)
            seconds += times * math.ceil(count / eval_size) * forward
            batches, read, passes[split] = batches + times * math.ceil(count / eval_size), read + count, times
            parts.append(
                f"{split} {times} time{'s' * (times != 1)}: {count:,} rows in batches of {eval_size} sorted by "
                f"length, timed at {timing.shapes_text(split_shapes, 'sorted')}"
            )
        if during and parts:
            strategy = getattr(args.eval_strategy, "value", args.eval_strategy)
            parts[0] += f"; {during} of them during training (eval_strategy {strategy}), 1 after"
        evaluation = _stage("evaluation", batches, seconds / max(batches, 1), read)
        evaluation.update(seconds=seconds, passes=passes, basis="; ".join(parts) + "; forward only")
        return [finetuning, evaluation]


def _stage(name: str, steps: int | None, seconds_per_step: float | None, rows: int) -> dict[str, Any]:
    seconds = steps * seconds_per_step if steps is not None else None
    return {"stage": name, "steps": steps, "seconds_per_step": seconds_per_step, "rows": rows, "seconds": seconds}


def _schedule(args, steps: int, rows: int, what: str) -> str:
    """How the steps were counted, in words."""
    if args.max_steps > 0:
        return f"max_steps {steps:,}"
    accumulated = f" x {args.gradient_accumulation_steps} accumulated" if args.gradient_accumulation_steps > 1 else ""
    epochs, batch = args.num_train_epochs, args.per_device_train_batch_size
    return f"{epochs:g} epoch{'s' * (epochs != 1)} of {rows:,} {what} at batch {batch}{accumulated}"


def _trainer_steps(rows: int, args, epochs: float | None = None) -> int:
    """Optimizer steps as `Trainer` counts them: max_steps, or the epochs x the batches of an epoch over the
    accumulation (one process)."""
    if args.max_steps > 0 and epochs is None:
        return args.max_steps
    batches = math.ceil(rows / args.per_device_train_batch_size)
    per_epoch = max(math.ceil(batches / args.gradient_accumulation_steps), 1)
    return math.ceil((args.num_train_epochs if epochs is None else epochs) * per_epoch)


def _evaluations(args, steps: int, per_epoch: int) -> int:
    """Evaluations during training: one an epoch, or every eval_steps (a share of the run where below 1;
    logging_steps where unset)."""
    if args.eval_strategy == "epoch":
        return math.ceil(steps / max(per_epoch, 1))
    if args.eval_strategy == "steps":
        every = args.eval_steps if args.eval_steps is not None else args.logging_steps
        return steps // max(1, math.ceil(every * steps) if every < 1 else int(every))
    return 0
