"""hfadapt inside a pandas pipeline: a DataFrame in, a fine-tuned model out, a column of predictions.

1. fine-tune on a DataFrame (`hfadapt.finetune(recipe, data=df)`): no file to write first; the run
   records its data as `in-memory:sha256:...`, taken from the rows;
2. label a column of another DataFrame with the returned `Run`;
3. the run's folder is a plain `transformers` checkpoint: reload it with `transformers.pipeline`.

    python examples/pandas_pipeline.py --model builtin:minilm --data reviews.csv --output runs/pandas

`reviews.csv` has the columns `text` and `label` (any CSV pandas reads; the DataFrame could as well
come from a database or an earlier step of the pipeline).
"""

from __future__ import annotations

import argparse

import pandas as pd
from transformers import pipeline

import hfadapt


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse(argv)
    reviews = pd.read_csv(args.data)
    unseen = reviews.sample(n=min(args.unseen, len(reviews)), random_state=0)[["text"]].reset_index(drop=True)

    recipe = {
        "model": {"name_or_path": args.model},
        "data": {"max_length": args.max_length},
        "adapt": {"method": args.method},
        "training": {"learning_rate": args.learning_rate, "num_train_epochs": args.epochs, "seed": 0},
        "output": {"dir": args.output},  # a finished run there is never replaced (output.overwrite)
    }
    if args.method == "lora":  # adapters on attention and feed-forward, about 10x the full fine-tuning rate
        recipe["adapt"]["lora"] = {"r": 8, "lora_alpha": 16, "target_modules": ["query", "key", "value", "dense"]}
    run = hfadapt.finetune(recipe, data=reviews)
    print(run)  # the folder, and the main metric on the test split the run made from the rows

    predictions = run.predict(unseen["text"].tolist(), progress=False)
    unseen["label"] = [p["label"] for p in predictions]
    unseen["score"] = [p["score"] for p in predictions]

    # the run's folder is a plain checkpoint (under LoRA the merged model, adapt.merge_lora) and loads
    # without hfadapt or peft
    classify = pipeline("text-classification", model=str(run.run_dir))
    unseen["pipeline_label"] = [p["label"] for p in classify(unseen["text"].tolist())]
    print(unseen.head())
    return unseen


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a checkpoint folder, a Hub id, or builtin:minilm")
    parser.add_argument("--data", required=True, help="a CSV file with the columns text and label")
    parser.add_argument("--output", required=True, help="the run's folder")
    parser.add_argument("--unseen", type=int, default=20, help="texts to label in the second DataFrame")
    parser.add_argument("--method", default="lora", choices=["lora", "full", "freeze"], help="adapt.method")
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
