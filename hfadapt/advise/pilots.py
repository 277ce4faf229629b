"""Pilots: a few steps of each strategy on the same data, measured; and the budget they share.

The budget is cut into SHARES equal shares: one per fine-tuning pilot, two for retraining (its
masked-LM steps, then as many fine-tuning steps as the others), so every pilot fine-tunes for the
same number of steps.
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

from hfadapt import data, pretrained
from hfadapt.errors import HfadaptError
from hfadapt.finetune import finetune
from hfadapt.recipe import Recipe
from hfadapt.retrain import retrain

logger = logging.getLogger(__name__)

SHARES = 5  # freeze, lora, full, and two for retrain (masked-LM steps, fine-tuning steps)
MIN_STEPS = 10  # fewer steps per pilot measure the warm-up, not the strategy
PILOT_EVAL_SAMPLES = 500  # pilots score on at most this many validation texts: one standard error about 2%
MINUTES_FOR_STEPS = 0.7  # of --budget-minutes, the share spent in training steps; the rest loads, evaluates and saves


def check_budget(budget_steps: int | None, budget_minutes: float | None) -> int | None:
    """Steps per pilot for a step budget (None for a time budget, settled later, or none)."""
    if budget_steps is not None and budget_minutes is not None:
        raise HfadaptError("advise: give --budget-steps or --budget-minutes, not both")
    if budget_steps is not None:
        if isinstance(budget_steps, bool) or not isinstance(budget_steps, int):
            raise HfadaptError(f"--budget-steps: expected a whole number of steps, got {budget_steps!r}")
        if budget_steps < SHARES * MIN_STEPS:
            raise HfadaptError(
                f"--budget-steps {budget_steps} is too small for the pilots: they take {SHARES} equal shares "
                "(frozen layers, LoRA, full fine-tuning, and retraining's masked-LM and "
                f"fine-tuning steps) of at least {MIN_STEPS} steps each; "
                f"give at least {SHARES * MIN_STEPS}, or no budget for the tokenizer fit alone"
            )
        return budget_steps // SHARES
    if budget_minutes is not None and not budget_minutes > 0:
        raise HfadaptError(f"--budget-minutes: expected a positive number of minutes, got {budget_minutes!r}")
    return None


def steps_for_minutes(base: Recipe, tokenizer, task_data, minutes: float) -> int:
    """Steps per pilot that fit in `minutes`, from a timed full fine-tuning step on a real batch."""
    step = _time_one_step(base, tokenizer, task_data)
    per_pilot = int(minutes * 60 * MINUTES_FOR_STEPS / SHARES / step)
    if per_pilot < MIN_STEPS:
        need = SHARES * MIN_STEPS * step / 60 / MINUTES_FOR_STEPS
        raise HfadaptError(
            f"--budget-minutes {minutes:g} is too small for the pilots: one training step "
            f"takes {step:.2f} s here, so {SHARES} equal shares "
            "(frozen layers, LoRA, full fine-tuning, and retraining's masked-LM and "
            f"fine-tuning steps) get {per_pilot} steps each, fewer than {MIN_STEPS}; "
            f"give at least {math.ceil(need * 10) / 10:g} minutes, or no budget for the tokenizer fit alone"
        )
    return per_pilot


def _time_one_step(base: Recipe, tokenizer, task_data) -> float:
    """Seconds of one full fine-tuning step (forward, backward, AdamW) on a training batch; nothing is written."""
    import datasets
    import torch

    config = pretrained.task_config(base.model, base.task, task_data.label_names)
    model, _ = pretrained.load_task_model(base.model, base.task, config)
    model.train()
    size = base.training["per_device_train_batch_size"]
    train = task_data.splits["train"].select(range(min(size, len(task_data.splits["train"]))))
    one = data.TaskData(datasets.DatasetDict({"train": train}), task_data.label_names)
    rows = data.tokenize(one, tokenizer, base.data, base.task)["train"]
    batch = data.collator(tokenizer, base.task)([rows[i] for i in range(len(rows))])
    # where the pilots will train: the GPU when there is one, in bf16 autocast when the recipe asks
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    batch = {k: v.to(device) for k, v in batch.items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times = []
    for _ in range(3):  # the first step warms up allocators and kernels
        began = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bool(base.training.get("bf16"))):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
    del model, optimizer
    gc.collect()
    return min(times[1:])


def run_pilot(name: str, setting: Recipe, steps: int, folder: Path) -> dict[str, Any]:
    """Train one strategy for `steps` fine-tuning steps (retraining: as many masked-LM steps first) and measure it."""
    schedule = {
        "max_steps": steps,
        "eval_strategy": "steps",
        "eval_steps": max(1, steps // 3),  # three points per curve; each evaluation costs about as much as a few steps
        "logging_steps": max(1, steps // 10),
        "save_strategy": "no",
        "disable_tqdm": True,
    }
    changes: dict[str, Any] = {
        "training": schedule,
        "data": {"max_eval_samples": setting.data.max_eval_samples or PILOT_EVAL_SAMPLES},
    }
    if setting.pretrain is not None:
        changes["pretrain"] = {"training": {**schedule, "eval_strategy": "no"}}
    recipe = setting.updated(changes).with_output(folder)
    logger.info("pilot %s: %d steps", name, steps)
    gc.collect()
    with _PeakMemory() as memory:
        began = time.perf_counter()
        results = retrain(recipe)["finetune"] if name == "retrain" else finetune(recipe)
        seconds = time.perf_counter() - began
    run = folder / "finetuned" if name == "retrain" else folder
    metric, parameters = results["main_metric"], results["parameters"]
    history = json.loads((run / "log_history.json").read_text())
    training = _training_seconds(results["train"]["train_runtime"], history)
    samples = results["train"]["train_samples_per_second"] * results["train"]["train_runtime"]
    pilot = {
        "name": name,
        "steps": steps,
        "mlm_steps": 0,
        "main_metric": metric,
        "validation_metric": results["validation"][f"validation_{metric}"],
        "validation_loss": results["validation"]["validation_loss"],
        "validation_size": results["data"]["sizes"]["validation"],
        "train_samples_per_second": samples / training,
        "seconds_per_step": training / steps,
        "seconds": round(seconds, 1),
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
    logger.info("pilot %s: validation %s %.4f", name, metric, pilot["validation_metric"])
    return pilot


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
