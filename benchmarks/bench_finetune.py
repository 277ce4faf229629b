"""hfadapt's fine-tuning against the strongest plain Trainer script, side by side.

Every arm trains the same model on the same training texts with the same hyperparameters for the
same number of steps, each in its own process (so peak memory is its own). The plain arms are what
one writes by hand with the libraries' own flags: tokenize, `DataCollatorWithPadding`, `Trainer`,
with random batches (`plain`), with `train_sampling_strategy="group_by_length"`, and with that and
`bf16=True` where the hardware runs bf16 fast (skipped elsewhere, with the reason). hfadapt runs the
recipe in fp32 (`training.bf16=false`) and with `training.bf16=auto`. Ratios are taken against the fastest plain arm;
the notes give hfadapt's against each.

    python benchmarks/bench_finetune.py                      # the README's LoRA recipe, 60 steps
    python benchmarks/bench_finetune.py --recipe recipes/rotten_tomatoes_full.yaml --steps 40
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

import harness

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_hfadapt(recipe_path: str, steps: int, out: str, extra: tuple[str, ...] = ()) -> dict:
    from hfadapt import finetune, load_recipe

    overrides = [f"training.max_steps={steps}", f"output.dir={out}", "training.eval_strategy=no"]
    overrides += ["training.save_strategy=no", "training.disable_tqdm=true", *extra]
    results = finetune(load_recipe(recipe_path, overrides)).metrics
    return {
        "samples_per_second": results["train"]["train_samples_per_second"],
        "runtime": results["train"]["train_runtime"],
    }


def run_plain(recipe_path: str, steps: int, out: str, group_by_length: bool = False, bf16: bool = False) -> dict:
    """The hand-written baseline: what a user writes without hfadapt, on the same split and settings,
    with the Trainer's own length grouping and bf16 flags if asked."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from hfadapt import load_recipe
    from hfadapt.data import splits
    from hfadapt.model.pretrained import resolve

    recipe = load_recipe(recipe_path)
    training = recipe.training
    set_seed(training["seed"])
    path = resolve(recipe.model.name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    split = splits.load_splits(recipe.data, recipe.task)  # the same texts as the hfadapt arm; not timed

    def tokenize(batch):
        return tokenizer(batch["text"], truncation=True, max_length=recipe.data.max_length)

    train = split.splits["train"].map(tokenize, batched=True, remove_columns=["text"])
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(split.label_names))
    if recipe.adapt.method == "lora":
        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, **recipe.adapt.lora))
    args = TrainingArguments(
        output_dir=out,
        max_steps=steps,
        per_device_train_batch_size=training["per_device_train_batch_size"],
        learning_rate=training.get("learning_rate", 5e-5),
        weight_decay=training.get("weight_decay", 0.0),
        warmup_steps=training.get("warmup_steps", 0),
        seed=training["seed"],
        report_to="none",
        save_strategy="no",
        logging_steps=training["logging_steps"],
        disable_tqdm=True,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        bf16=bf16,
        use_cpu=bf16 and not torch.cuda.is_available(),  # transformers wants it for bf16 on a CPU
    )
    train = train.rename_column("label", "labels")
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer))
    metrics = trainer.train().metrics
    return {"samples_per_second": metrics["train_samples_per_second"], "runtime": metrics["train_runtime"]}


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--recipe", default=str(harness.REPO / "recipes" / "rotten_tomatoes_lora.yaml"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", help=argparse.SUPPRESS)  # in a child: its output folder
    args = parser.parse_args()
    if args.arm:
        logging.disable(logging.WARNING)
        arms = {
            "plain": lambda: run_plain(args.recipe, args.steps, args.out),
            "plain+group_by_length": lambda: run_plain(args.recipe, args.steps, args.out, group_by_length=True),
            "plain+group_by_length+bf16": lambda: run_plain(args.recipe, args.steps, args.out, True, bf16=True),
            "hfadapt": lambda: run_hfadapt(args.recipe, args.steps, args.out, ("training.bf16=false",)),
            "hfadapt+bf16:auto": lambda: run_hfadapt(args.recipe, args.steps, args.out, ("training.bf16=auto",)),
        }
        harness.answer(args, arms[args.arm]())
        return
    plain, said = harness.plain_arms()
    with tempfile.TemporaryDirectory() as scratch:
        rows = {
            arm: harness.run_arm(__file__, arm, "--out", str(Path(scratch) / arm.replace("+", "_").replace(":", "_")))
            for arm in [*plain, "hfadapt", "hfadapt+bf16:auto"]
        }
    best, against = harness.against_plain(
        rows, plain, ["hfadapt", "hfadapt+bf16:auto"], "samples_per_second", "samples/s"
    )
    columns = [
        harness.Column("samples_per_second", "samples/s", ratio="value"),
        harness.Column("runtime", "train s", "{:.1f}"),
        harness.Column("peak_rss_mb", "peak RSS MB", "{:.0f}", ratio="value"),
    ]
    title = (
        f"Fine-tuning `{Path(args.recipe).name}` for {args.steps} steps, each arm in its own process; "
        f"ratios against the fastest plain arm, `{best}`."
    )
    table = harness.Table(title, rows, best, columns)
    harness.publish(__file__, [table], args.no_write, notes=[said, *against])


if __name__ == "__main__":
    main()
