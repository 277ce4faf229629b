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

Not counted: NOT_COUNTED. `fit_minutes` cuts a recipe until its price fits, in LEVERS order (docs/advise.md).
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
from hfadapt.errors import HfadaptError
from hfadapt.recipe import Recipe
from hfadapt.retraining import corpus, vocab

SAMPLE_TEXTS = 2000  # texts per split whose rows and lengths are measured (as the truncation report measures)
CORPUS_SAMPLE = 5000  # corpus texts (a uniform sample) tokenized for the corpus's tokens per character,
SAMPLE_CHARACTERS = 400  # each cut to this many characters: 2 million in all, as the fit reads
# Floors of the settings fit_minutes cuts (docs/advise.md):
MLM_FLOOR = 300  # masked-LM steps: what docs/pretraining_variants.md measured (+10.4 points over no retraining)
LENGTH_FLOOR = 64  # data.max_length: 32 tokens lost 5.8 points against 64 (docs/long_texts.md)
LENGTH_CUT = 0.75  # each shorter data.max_length tried is this share of the one before, to a multiple of 8
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


def check_run_minutes(run_minutes: float | None) -> None:
    """Refuse a time to fit the recipe in that is not a positive number of minutes.

    Raises:
        HfadaptError: zero, a negative or non-finite number, or not a number.
    """
    number = isinstance(run_minutes, (int, float)) and not isinstance(run_minutes, bool)
    if run_minutes is not None and (not number or not math.isfinite(run_minutes) or not run_minutes > 0):
        raise HfadaptError(f"--run-minutes: expected a positive number of minutes, got {run_minutes!r}")


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
    pricer = _Pricer(recipe, tokenizer, task_data, fit, new_tokenizer)
    try:
        return pricer.price(recipe)
    finally:
        pricer.close()


def fit_minutes(
    recipe: Recipe, minutes: float, tokenizer, task_data, fit: dict[str, Any], new_tokenizer=None
) -> tuple[Recipe, dict[str, Any]]:
    """`recipe` cut until its price fits in `minutes`, one setting at a time in LEVERS order, each only as
    far as it must go and never below its floor.

    Args:
        recipe: the recipe to fit.
        minutes: the time it must fit in, on this machine.
        tokenizer, task_data, fit, new_tokenizer: as for `price`.

    Returns:
        The recipe (unchanged where it fits already), and its price (`price`'s) with `fitted`: the
        `minutes`, the price before (`seconds_before`) and each `change` with the seconds it `saves`.

    Raises:
        HfadaptError: even cut to its floors the recipe takes longer; the message gives the minutes it needs.
    """
    pricer = _Pricer(recipe, tokenizer, task_data, fit, new_tokenizer)
    try:
        cost = pricer.price(recipe)
        before, budget, changes = cost["seconds"], minutes * 60, []
        for lever in LEVERS:
            cut = lever(pricer, recipe, cost, budget) if cost["seconds"] > budget else None
            if cut is not None:
                text, recipe, priced = cut
                changes.append({"change": text, "saves": cost["seconds"] - priced["seconds"]})
                cost = priced
        if cost["seconds"] > budget:
            need = math.ceil(cost["seconds"] / 60 * 10) / 10
            cuts = "; ".join(c["change"] for c in changes) or "nothing to cut"
            stages = ", ".join(f"{stage['title']} {_minutes(stage['seconds'])}" for stage in cost["stages"])
            raise HfadaptError(
                f"--run-minutes {minutes:g}: the recommended recipe takes about {_minutes(before)} on this machine, "
                f"and cut as far as advise cuts it ({cuts}) still about {_minutes(cost['seconds'])} ({stages}); "
                f"give --run-minutes {need:g} or more, or train on fewer texts (data.max_train_samples=N), or run "
                "on a faster machine (a GPU)"
            )
        cost["fitted"] = {"minutes": minutes, "seconds_before": before, "changes": changes}
        cost["timing_seconds"] = time.perf_counter() - pricer.began
        return recipe, cost
    finally:
        pricer.close()


def _fewer_epochs(pricer, recipe: Recipe, cost: dict[str, Any], budget: float):
    """Fine-tuning epochs, a whole one at a time, down to 1 (a recipe that sets max_steps keeps them)."""
    args = recipe.training_arguments()
    epochs = args.num_train_epochs
    for fewer in range(math.ceil(epochs) - 1, 0, -1) if args.max_steps <= 0 else ():
        cut = recipe.updated({"training": {"num_train_epochs": float(fewer)}})
        priced = pricer.price(cut)
        if priced["seconds"] <= budget or fewer == 1:
            return f"epochs {epochs:g} -> {fewer}", cut, priced
    return None


def _fewer_mlm_steps(pricer, recipe: Recipe, cost: dict[str, Any], budget: float):
    """Masked-LM steps, down to MLM_FLOOR: as many fewer as the excess takes at the timed step."""
    stage = next((s for s in cost["stages"] if s["stage"] == "pretraining"), None)
    if stage is None or stage["steps"] <= MLM_FLOOR:
        return None
    steps = max(MLM_FLOOR, stage["steps"] - math.ceil((cost["seconds"] - budget) / stage["seconds_per_step"]))
    cut = recipe.updated({"pretrain": {"training": {"max_steps": steps}}})
    return f"masked-LM steps {stage['steps']:,} -> {steps:,}", cut, pricer.price(cut)


def _head_tail(pricer, recipe: Recipe, cost: dict[str, Any], budget: float):
    """Long texts read as one row each, their head and tail, instead of as windows."""
    if recipe.data.long_texts != "windows":
        return None
    cut = recipe.updated({"data": {"long_texts": "head_tail", "stride": None}})
    return "data.long_texts windows -> head_tail", cut, pricer.price(cut)


def _shorter(pricer, recipe: Recipe, cost: dict[str, Any], budget: float):
    """data.max_length, each try LENGTH_CUT of the one before (a multiple of 8), down to LENGTH_FLOOR."""
    length = tried = recipe.data.max_length
    while tried > LENGTH_FLOOR:
        tried = max(LENGTH_FLOOR, 8 * math.floor(tried * LENGTH_CUT / 8))
        cut = recipe.updated({"data": {"max_length": tried}})
        priced = pricer.price(cut)
        if priced["seconds"] <= budget or tried == LENGTH_FLOOR:
            return f"data.max_length {length} -> {tried}", cut, priced
    return None


# The order fit_minutes cuts in: the least accuracy lost by the project's measurements first (docs/advise.md).
LEVERS = (_fewer_epochs, _fewer_mlm_steps, _head_tail, _shorter)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} minutes"


class _Pricer:
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
        training = _stage("pretraining", steps, step, blocks["read"]) | {
            "basis": (
                f"{_schedule(args, steps, blocks['read'], 'blocks')}: the corpus's {counted['read']['characters']:,} "
                f"characters{repeat} x {counted['tokens_per_character']:.3f} tokens each under the new tokenizer "
                f"(measured on a sample) = {tokens['read']:,} tokens, {room} to a block of {length}; a step timed at "
                f"{size} x {length} tokens, vocabulary {len(self._mlm_tokenizer(recipe)):,}, {bench.precision}"
            )
        }
        passes = 2 + _evaluations(args, steps, _trainer_steps(blocks["read"], args, epochs=1))  # and before, after
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
