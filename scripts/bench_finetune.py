"""hfadapt's fine-tuning against a plain hand-written Trainer script, side by side.

Both arms train the same model on the same training texts with the same hyperparameters for
the same number of steps, each in its own process (so peak memory is its own). The plain arm is
what one writes by hand: tokenize, `DataCollatorWithPadding`, random batches, `Trainer`. Prints
training samples per second and peak memory (max RSS) of each, and their ratios.

    python scripts/bench_finetune.py                      # the README's LoRA recipe, 60 steps
    python scripts/bench_finetune.py --recipe recipes/rotten_tomatoes_full.yaml --steps 40
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_hfadapt(recipe_path: str, steps: int, out: str) -> dict:
    from hfadapt import finetune, load_recipe

    recipe = load_recipe(recipe_path, [f"training.max_steps={steps}", f"output.dir={out}", "training.eval_strategy=no", "training.save_strategy=no", "training.disable_tqdm=true"])
    results = finetune(recipe)
    return {"samples_per_second": results["train"]["train_samples_per_second"], "runtime": results["train"]["train_runtime"]}


def run_plain(recipe_path: str, steps: int, out: str) -> dict:
    """The hand-written baseline: what a user writes without hfadapt, on the same split and settings."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

    from hfadapt import data, load_recipe
    from hfadapt.model import resolve

    recipe = load_recipe(recipe_path)
    training = recipe.training
    set_seed(training["seed"])
    path = resolve(recipe.model.name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    split = data.prepare(recipe.data, recipe.task)  # the same texts as the hfadapt arm; not timed
    train = split.splits["train"].map(lambda b: tokenizer(b["text"], truncation=True, max_length=recipe.data.max_length), batched=True, remove_columns=["text"])
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
    )
    trainer = Trainer(model=model, args=args, train_dataset=train.rename_column("label", "labels"), data_collator=DataCollatorWithPadding(tokenizer))
    metrics = trainer.train().metrics
    return {"samples_per_second": metrics["train_samples_per_second"], "runtime": metrics["train_runtime"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(Path(__file__).parent.parent / "recipes" / "rotten_tomatoes_lora.yaml"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--arm", choices=["hfadapt", "plain"], help=argparse.SUPPRESS)  # one arm, in a child process
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        import logging

        logging.disable(logging.WARNING)
        result = (run_hfadapt if args.arm == "hfadapt" else run_plain)(args.recipe, args.steps, args.out)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(result))
        return
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        for arm in ("plain", "hfadapt"):
            command = [sys.executable, __file__, "--arm", arm, "--recipe", args.recipe, "--steps", str(args.steps), "--out", str(Path(scratch) / arm)]
            done = subprocess.run(command, capture_output=True, text=True)
            line = next((row for row in done.stdout.splitlines() if row.startswith("RESULT ")), None)
            if done.returncode or line is None:
                sys.exit(f"{arm} arm failed:\n{done.stderr[-3000:]}")
            rows[arm] = json.loads(line[len("RESULT ") :])
    print(f"recipe {args.recipe}, {args.steps} steps, {os.cpu_count()} CPUs, torch threads {__import__('torch').get_num_threads()}")
    print(f"{'arm':<10}{'samples/s':>12}{'train s':>10}{'peak RSS MB':>14}")
    for arm, r in rows.items():
        print(f"{arm:<10}{r['samples_per_second']:>12.2f}{r['runtime']:>10.1f}{r['peak_rss_mb']:>14.0f}")
    speed = rows["hfadapt"]["samples_per_second"] / rows["plain"]["samples_per_second"]
    memory = rows["hfadapt"]["peak_rss_mb"] / rows["plain"]["peak_rss_mb"]
    print(f"speed ratio hfadapt/plain: {speed:.2f}x   peak memory ratio hfadapt/plain: {memory:.2f}x")


if __name__ == "__main__":
    main()
