"""Pilots: a few steps of each strategy on the same data, measured; and the budget they share.

The budget is cut into equal shares: one per fine-tuning pilot, two for retraining (its masked-LM
steps, then as many fine-tuning steps as the others), so every pilot fine-tunes for the same number
of steps. With a budget in minutes, each pilot also has a deadline (`deadline.Deadline`).
"""

from __future__ import annotations

import gc
import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

from hfadapt.advice import timing
from hfadapt.advice.deadline import Deadline
from hfadapt.data import long_texts, splits, tokenization
from hfadapt.errors import HfadaptError
from hfadapt.model import decoding
from hfadapt.recipe import Recipe
from hfadapt.retraining.pipeline import retrain
from hfadapt.training.finetuning import finetune

logger = logging.getLogger(__name__)

SHARES = 5  # at most: freeze, lora, full, and two for retrain (masked-LM steps, fine-tuning steps)
MIN_STEPS = 10  # fewer steps per pilot measure the warm-up, not the strategy
PILOT_EVAL_SAMPLES = 500  # pilots score on at most this many validation texts: one standard error about 2%
MINUTES_FOR_STEPS = (
    0.85  # of the pilots' time, the share in training steps; loading, scoring and saving took ~5% a pilot
)


def shares(names: list[str] | tuple[str, ...]) -> int:
    """Equal shares of the budget the pilots `names` take: one each, two for retraining."""
    return sum(2 if name == "retrain" else 1 for name in names)


def check_budget(budget_steps: int | None, budget_minutes: float | None) -> None:
    """Refuse a budget that cannot give every pilot MIN_STEPS steps, whichever pilots run.

    Raises:
        HfadaptError: both budgets, a bad value, or a step budget too small for the pilots.
    """
    if budget_steps is not None and budget_minutes is not None:
        raise HfadaptError("advise: give --budget-steps or --budget-minutes, not both")
    if budget_steps is not None:
        if isinstance(budget_steps, bool) or not isinstance(budget_steps, int):
            raise HfadaptError(f"--budget-steps: expected a whole number of steps, got {budget_steps!r}")
        if budget_steps < SHARES * MIN_STEPS:
            raise HfadaptError(
                f"--budget-steps {budget_steps} is too small for the pilots: they take {SHARES} equal shares "
                f"{_SHARES_TEXT[True]} of at least {MIN_STEPS} steps each; "
                f"give at least {SHARES * MIN_STEPS}, or no budget for the tokenizer fit alone"
            )
    if budget_minutes is not None and not budget_minutes > 0:
        raise HfadaptError(f"--budget-minutes: expected a positive number of minutes, got {budget_minutes!r}")


_SHARES_TEXT = {
    True: "(frozen layers, LoRA, full fine-tuning, and retraining's masked-LM and fine-tuning steps)",
    False: "(frozen layers, LoRA and full fine-tuning)",
}


def steps_for_seconds(
    seconds: float, step: float, names: list[str] | tuple[str, ...], minutes: float, spent: float = 0.0
) -> int:
    """Steps per pilot that fit in `seconds` of the budget, given one training step takes `step` seconds.

    Args:
        seconds: the seconds of the budget left for the pilots.
        step: seconds of one full fine-tuning step (`time_one_step`).
        names: the pilots to run.
        minutes: the whole budget, for the message.
        spent: seconds of the budget already spent (on the fit and the probe), for the message.

    Returns:
        Fine-tuning steps per pilot: MINUTES_FOR_STEPS of the time, cut into `shares(names)`.

    Raises:
        HfadaptError: fewer than MIN_STEPS steps per pilot, with the budget that would do.
    """
    count = shares(names)
    per_pilot = int(seconds * MINUTES_FOR_STEPS / count / step)
    if per_pilot < MIN_STEPS:
        need = (spent + count * MIN_STEPS * step / MINUTES_FOR_STEPS) / 60
        least = math.ceil(need * 10) / 10
        took = f"the tokenizer fit and the probe took {spent:.0f} s of it, and " if spent else ""
        raise HfadaptError(
            f"--budget-minutes {minutes:g} is too small for the pilots: {took}one training step "
            f"takes {step:.2f} s here, so {count} equal shares {_SHARES_TEXT['retrain' in names]} "
            f"get {per_pilot} steps each, fewer than {MIN_STEPS}; "
            f"give at least {least:g} minute{'s' * (least != 1)}, or no budget for the tokenizer fit alone"
        )
    return per_pilot


def time_one_step(base: Recipe, tokenizer, task_data) -> float:
    """Seconds of one full fine-tuning step (forward, backward, AdamW) on a batch as long as the first batch of
    training texts, where the pilots train and in their precision (`timing.finetuning_bench`); nothing is written.

    Args:
        base: the recipe every pilot starts from.
        tokenizer: the checkpoint's tokenizer.
        task_data: the data, split.

    Returns:
        The mean of two steps after a warm-up step.
    """
    import datasets

    size = base.training["per_device_train_batch_size"]
    train = task_data.splits["train"].select(range(min(size, len(task_data.splits["train"]))))
    one = splits.TaskData(datasets.DatasetDict({"train": train}), task_data.label_names)
    rows = tokenization.tokenize(one, tokenizer, base.data, base.task)["train"]
    bench = timing.finetuning_bench(base, tokenizer, task_data.label_names)
    try:
        return bench.step(len(rows), max(len(ids) for ids in rows["input_ids"]))
    finally:
        del bench
        gc.collect()


def run_pilot(
    name: str, setting: Recipe, steps: int, folder: Path, validation, seconds: float | None = None
) -> tuple[dict[str, Any], Any]:
    """Train one strategy for `steps` fine-tuning steps (retraining: as many masked-LM steps first), measure it,
    and predict the validation examples with it.

    Args:
        name: the pilot, one of verdict.PILOTS.
        setting: the strategy's whole recipe.
        steps: fine-tuning steps (and for retraining, masked-LM steps).
        folder: where the pilot's run is written.
        validation: the validation examples every pilot is scored on (`splits.load_splits` with
            `pilot_data`'s settings).
        seconds: each training run (retraining has two) stops after the step that reaches it; None: no deadline.

    Returns:
        The pilot's figures, and its predictions on `validation` (`compare.gold`'s form).
    """
    schedule = {
        "max_steps": steps,
        "eval_strategy": "steps",
        "eval_steps": max(1, steps // 3),  # three points per curve; each evaluation costs about as much as a few steps
        "logging_steps": max(1, steps // 10),
        "save_strategy": "no",
        "disable_tqdm": True,
    }
    changes: dict[str, Any] = {"training": schedule, "data": pilot_data(setting)}
    if setting.pretrain is not None:
        changes["pretrain"] = {"training": {**schedule, "eval_strategy": "no"}}
    recipe = setting.updated(changes).with_output(folder)
    logger.info("pilot %s: %d steps%s", name, steps, f", at most {seconds:.0f} s each run" if seconds else "")
    gc.collect()
    deadline = Deadline(seconds)
    with _PeakMemory() as memory:
        began = time.perf_counter()
        if name == "retrain":
            finished = retrain(recipe, callbacks=[deadline])
        else:
            finished = finetune(recipe, callbacks=[deadline])
    results, run = finished.metrics, finished.run_dir
    predictions = predict_validation(run, recipe, validation, results["label_names"])
    seconds_taken = time.perf_counter() - began
    metric, parameters = results["main_metric"], results["parameters"]
    history = json.loads((run / "log_history.json").read_text())
    training = _training_seconds(results["train"]["train_runtime"], history)
    done = deadline.runs[-1]["steps"]
    batch = recipe.training["per_device_train_batch_size"] * recipe.training.get("gradient_accumulation_steps", 1)
    pilot = {
        "name": name,
        "steps": done,
        "planned_steps": steps,
        "stopped_at_deadline": any(r["stopped_at_deadline"] for r in deadline.runs),
        "deadline_seconds": seconds,
        "mlm_steps": 0,
        "main_metric": metric,
        "validation_metric": results["validation"][f"validation_{metric}"],
        "validation_loss": results["validation"]["validation_loss"],
        "validation_size": results["data"]["sizes"]["validation"],
        "train_samples_per_second": done * batch / training,
        "seconds_per_step": training / max(done, 1),
        "seconds": round(seconds_taken, 1),
        # what loading, evaluating, saving and predicting took beside the training runs
        "overhead_seconds": seconds_taken - sum(r["seconds"] for r in deadline.runs),
        "peak_rss_growth_mb": memory.peak_growth_mb,
        "peak_cuda_mb": memory.cuda_mb,
        # weights (4 bytes each), and for the trainable ones a gradient and AdamW's two moments
        "training_state_mb": (4 * parameters["total"] + 12 * parameters["trainable"]) / 2**20,
        "parameters": parameters,
        "log_history": history,
        "learning_rate": recipe.training["learning_rate"],
    }
    if name == "retrain":
        pilot.update(_pretraining(folder / "pretrained"))
    logger.info("pilot %s: %d steps, validation %s %.4f", name, done, metric, pilot["validation_metric"])
    return pilot, predictions


def pilot_data(setting: Recipe) -> dict[str, Any]:
    """The data settings every pilot trains and is scored with: at most PILOT_EVAL_SAMPLES validation texts."""
    return {"max_eval_samples": setting.data.max_eval_samples or PILOT_EVAL_SAMPLES}


def predict_validation(run: Path, recipe: Recipe, validation, label_names: list[str] | None) -> Any:
    """A finished pilot's predictions on `validation`, one per example (for token tasks, one tag per word:
    words that truncation left out get O, as the model predicted no entity there)."""
    import datasets
    import numpy as np
    from transformers import Trainer

    from hfadapt.runs.run import Run

    finished = Run.load(run)
    model, tokenizer = finished.model, finished.tokenizer
    one = splits.TaskData(datasets.DatasetDict({"train": validation}), label_names)
    rows = tokenization.tokenize(one, tokenizer, recipe.data, recipe.task)["train"]
    args = recipe.training_arguments(output_dir=str(run / "predicting"))
    trainer = Trainer(
        model=model, args=args, eval_dataset=rows, data_collator=tokenization.collator(tokenizer, recipe.task)
    )
    logits = trainer.predict(rows).predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    if "doc" in rows.column_names:  # data.long_texts: windows: a text's prediction is the mean of its windows'
        logits, _ = long_texts.pool_windows(logits, rows["doc"])
    del trainer, model, finished
    gc.collect()
    if recipe.task.type == "token_classification":
        words = list(validation["tokens"])
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=recipe.data.max_length)
        scored = np.zeros(logits.shape[:2], dtype=bool)  # the first piece of each word, as training scores it
        for i in range(len(words)):
            previous = None
            for position, word in enumerate(encoded.word_ids(i)):
                scored[i, position] = word is not None and word != previous
                previous = word
        chosen = decoding.decode(logits, scored, label_names)  # the tags as a sequence their scheme allows
        tags = []
        for i, sentence in enumerate(words):
            row = ["O"] * len(sentence)
            for position, word in enumerate(encoded.word_ids(i)):
                if scored[i, position]:
                    row[word] = label_names[int(chosen[i, position])]
            tags.append(row)
        return tags
    if recipe.task.problem_type == "regression":
        return logits.reshape(len(logits), -1)[:, 0]
    if recipe.task.problem_type == "multi_label_classification":
        return (logits > 0).astype(np.int64)
    return logits.argmax(-1)


def _pretraining(folder: Path) -> dict[str, Any]:
    """The retraining pilot's masked-LM figures, from its pretrained stage's folder."""
    report = json.loads((folder / "pretrain.json").read_text())
    history = json.loads((folder / "log_history.json").read_text())
    return {
        "mlm_steps": report["steps"],
        "pretrain": {
            "perplexity_before": report["perplexity_before"],
            "perplexity": report["perplexity"],
            "seconds_per_step": _training_seconds(report["train"]["train_runtime"], history) / max(report["steps"], 1),
            "blocks": report["packing"]["train"]["blocks"],
            "vocabulary": report.get("vocabulary"),
        },
    }


def _training_seconds(train_runtime: float, history: list[dict[str, Any]]) -> float:
    """Seconds spent in training steps: Trainer's train_runtime includes the evaluations run inside train()."""
    return train_runtime - sum(h["eval_runtime"] for h in history if "eval_runtime" in h)


class _PeakMemory:
    """The peak resident memory of this process while the block runs, above its level at the start.

    Sampled every 50 ms with psutil. Memory the process already holds (from loading libraries or
    an earlier pilot) and reuses is not counted again, so this is what the block added at its peak.
    On a GPU, also the peak memory allocated by PyTorch on it.
    """

    def __enter__(self):
        import psutil
        import torch

        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)

    def __exit__(self, *exc):
        import torch

        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.peak_growth_mb = (self.peak - self.start) / 2**20
        self.cuda_mb = torch.cuda.max_memory_allocated() / 2**20 if self.cuda else None
        return False


def estimate(strategy: str, pilots: list[dict[str, Any]], recipe: Recipe, train_size: int) -> dict[str, Any] | None:
    """Steps and minutes of the recommended full run, from the pilot's measured seconds per step."""
    pilot = next((p for p in pilots if p["name"] == strategy), None)
    if pilot is None:
        return None
    args = recipe.training_arguments()
    batches = math.ceil(train_size / (args.per_device_train_batch_size * args.gradient_accumulation_steps))
    steps = math.ceil(batches * args.num_train_epochs)
    estimate = {
        "steps": steps,
        "seconds_per_step": pilot["seconds_per_step"],
        "train_seconds": steps * pilot["seconds_per_step"],
    }
    if strategy == "retrain":
        pretraining = recipe.pretrain.training_arguments(Path(recipe.output.dir) / "pretrained")
        blocks = math.ceil(
            pilot["pretrain"]["blocks"]
            / (pretraining.per_device_train_batch_size * pretraining.gradient_accumulation_steps)
        )
        mlm = math.ceil(blocks * pretraining.num_train_epochs)
        estimate.update(mlm_steps=mlm, mlm_seconds_per_step=pilot["pretrain"]["seconds_per_step"])
        estimate["train_seconds"] += mlm * pilot["pretrain"]["seconds_per_step"]
    return estimate
