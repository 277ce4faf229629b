"""Timing a recipe's steps on this machine: the padded lengths its batches will have (`shapes`), and its
model's steps at those shapes, in its precision (`Bench`).

A shape is timed once: one warm-up step, then TIMED steps, their mean. Nothing is trained for real and
nothing is written. `cost.price` turns these times into the price of each stage.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
import tempfile
import time
from typing import Any

from hfadapt.data import sampler
from hfadapt.model import adapt, pretrained
from hfadapt.recipe import Recipe, arguments
from hfadapt.retraining import mlm

logger = logging.getLogger(__name__)

TIMED = 2  # steps timed per shape, after one warm-up step
BINS = 3  # a stage's batches, by padded length, in this many equal-count groups, each timed at its median
BLOCKS = 256  # masked-LM blocks packed from the training texts for timing (reused round where fewer)


def device() -> str:
    """Where a run on this machine trains: the GPU when there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def precision(training: dict[str, Any]) -> tuple[Any, str]:
    """The autocast dtype a `training` section runs in on this machine (None: fp32), and its name."""
    import torch

    if arguments.precision(training)["bf16"]:
        return torch.bfloat16, "bf16"
    if training.get("fp16") and device() == "cuda":
        return torch.float16, "fp16"
    return None, "fp32"


def machine(recipe: Recipe) -> dict[str, Any]:
    """Where the steps are timed, and the precision each training stage of `recipe` runs in there."""
    import torch

    if device() == "cuda":
        name = f"GPU: {torch.cuda.get_device_name()}"
    else:
        threads = torch.get_num_threads()
        name = f"CPU, {threads} torch thread{'s' * (threads != 1)}"
    finetuning = precision(recipe.training)[1]
    found = {"device": device(), "name": name, "bf16": finetuning == "bf16", "precision": finetuning}
    if recipe.pretrain is not None:
        found["pretraining_precision"] = precision(recipe.pretrain.training)[1]
    why = arguments.precision(recipe.training).get("why")
    if why:
        found["bf16_why"] = why
    return found


class Bench:
    """A model timed at given shapes: a training step (forward, backward, AdamW) and a forward pass.

    Args:
        model: the model, as the run trains it (its frozen parameters frozen).
        loss: `(model, inputs) -> loss`, as the run's Trainer computes it.
        batch: `(size, length) -> make`, `make()` giving a batch's inputs; it runs inside the timed step.
        dtype: the autocast dtype (None: fp32).
        kind: what is timed, for the log.
    """

    def __init__(self, model, loss, batch, dtype, kind: str):
        import torch

        self.device = device()
        self.model = model.to(self.device)
        self.loss, self.batch, self.dtype, self.kind = loss, batch, dtype, kind
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        self.times: dict[tuple, float] = {}
        names = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}
        self.precision = f"in {names[dtype]}"

    def step(self, size: int, length: int) -> float:
        """Seconds of a training step on a batch of `size` rows of `length` tokens."""
        return self._time("step", size, length)

    def forward(self, size: int, length: int) -> float:
        """Seconds of a forward pass (as evaluation runs it) on a batch of `size` rows of `length` tokens."""
        return self._time("forward", size, length)

    def _time(self, what: str, size: int, length: int) -> float:
        import torch

        key = (what, size, length)
        if key in self.times:
            return self.times[key]
        logger.info("price: timing a %s %s at %d x %d tokens", self.kind, what, size, length)
        self.model.train(what == "step")
        taken = []
        for _ in range(1 + TIMED):
            make = self.batch(size, length)
            began = time.perf_counter()
            inputs = {k: v.to(self.device) for k, v in make().items()}
            autocast = torch.autocast(self.device, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)
            if what == "step":
                with autocast:
                    loss = self.loss(self.model, inputs)
                loss.backward()
                self.optimizer.step()
                self.optimizer.zero_grad()
            else:
                with torch.no_grad(), autocast:
                    self.loss(self.model, inputs)
            if self.device == "cuda":
                torch.cuda.synchronize()
            taken.append(time.perf_counter() - began)
        self.times[key] = statistics.mean(taken[1:])
        return self.times[key]


def finetuning_bench(recipe: Recipe, tokenizer, label_names: list[str] | None) -> Bench:
    """The task model `recipe` fine-tunes (its vocabulary `tokenizer`'s, its adaptation applied), on batches of
    random token ids: every position is computed, padding included, so they cost what real ones do."""
    import torch

    config = pretrained.task_config(recipe.model, recipe.task, label_names)
    if recipe.pretrain is not None and recipe.pretrain.init == "scratch":
        base = mlm.scratch_model(tokenizer, recipe.pretrain.size, recipe.pretrain.block_size).config
        for name in ("num_labels", "id2label", "label2id", "problem_type"):
            setattr(base, name, getattr(config, name))
        model, fresh = pretrained.task_class(recipe.task).from_config(base), []
    else:
        model, fresh = pretrained.load_task_model(recipe.model, recipe.task, config)
        if len(tokenizer) != model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))  # a retraining recipe's rebuilt vocabulary
    model = adapt.apply(model, recipe, fresh)
    labels, problem = model.config.num_labels, recipe.task.problem_type
    generator = torch.Generator().manual_seed(0)

    def batch(size: int, length: int):
        ids = torch.randint(len(tokenizer), (size, length), generator=generator)
        if recipe.task.type == "token_classification":
            target = torch.randint(labels, (size, length), generator=generator)
        elif problem == "regression":
            target = torch.rand(size, generator=generator)
        elif problem == "multi_label_classification":
            target = torch.randint(2, (size, labels), generator=generator).float()
        else:
            target = torch.randint(labels, (size,), generator=generator)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": target}
        return lambda: inputs

    return Bench(model, lambda m, inputs: m(**inputs).loss, batch, precision(recipe.training)[0], "fine-tuning")


def pretraining_bench(recipe: Recipe, tokenizer, texts: list[str]) -> Bench:
    """The masked-LM `recipe` pretrains (at `tokenizer`'s vocabulary size), on blocks packed from `texts` and
    masked by the recipe's collator inside the step (the training loop's process masks them), with
    `MaskedLMTrainer`'s loss: the vocabulary projected at the masked positions alone."""
    import torch
    from transformers import AutoModelForMaskedLM

    settings = recipe.pretrain
    if settings.init == "scratch":
        model = mlm.scratch_model(tokenizer, settings.size, settings.block_size)
    else:
        path = pretrained.resolve(recipe.model.name_or_path)
        model = AutoModelForMaskedLM.from_pretrained(path, revision=recipe.model.revision)
        if len(tokenizer) != model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
    alone = {**settings.training, "eval_strategy": "no", "save_strategy": "no"}  # no held-out data here
    with tempfile.TemporaryDirectory(prefix="hfadapt-price-") as folder:
        args = arguments.training_arguments(folder, alone, remove_unused_columns=False)
        trainer = mlm.MaskedLMTrainer(model=model, args=args)
    collator = mlm.WholeWordMaskCollator(tokenizer, settings.mlm_probability, settings.whole_word_masking)
    collator.generator = torch.Generator().manual_seed(0)
    blocks = mlm.pack_blocks(texts, tokenizer, settings.block_size)
    rows = [blocks[i] for i in range(min(len(blocks), BLOCKS))]

    def batch(size: int, length: int):
        return lambda: collator([rows[i % len(rows)] for i in range(size)])

    return Bench(trainer.model, trainer.compute_loss, batch, precision(settings.training)[0], "masked-LM")


def shapes(lengths: list[int], size: int, order: str, seed: int) -> list[tuple[int, float]]:
    """The padded lengths a loader's batches of `size` rows will have, as (length, share of the batches): the
    rows batched as the run batches them (`random`, `grouped` by length as `sampler.LengthGroupedByLabelSampler`
    groups them, or `sorted` longest first for evaluation), each batch padded to its longest row, and the
    batches in BINS equal-count groups by padded length, each at its median (rounded up to a multiple of 8,
    never past the longest row: splits and recipes then share their timings)."""
    rows = list(lengths) or [1]
    if order == "sorted":
        rows.sort(reverse=True)
    else:
        random.Random(seed).shuffle(rows)
        if order == "grouped":
            mega = sampler.LengthGroupedByLabelSampler.MEGABATCH * size
            rows = [n for start in range(0, len(rows), mega) for n in sorted(rows[start : start + mega])]
    size = min(size, len(rows))
    padded = sorted(max(rows[start : start + size]) for start in range(0, len(rows) - size + 1, size))
    found: dict[int, float] = {}
    for group in range(BINS):
        part = padded[group * len(padded) // BINS : (group + 1) * len(padded) // BINS]
        if part:
            median = min(8 * math.ceil(part[len(part) // 2] / 8), padded[-1])
            found[median] = found.get(median, 0.0) + len(part) / len(padded)
    return sorted(found.items())


def shapes_text(timed: list[tuple[int, float]], order: str) -> str:
    """`shapes`' lengths and shares, in words."""
    how = {"random": "random batches", "grouped": "batches grouped by length", "sorted": "batches"}[order]
    if len(timed) == 1:
        return f"{timed[0][0]} tokens, the padded length of its {how}"
    return f"the padded lengths of its {how}: " + ", ".join(f"{n} tokens ({share:.0%})" for n, share in timed)
