"""Label a corpus with a finished run inside `datasets.map`, in batches, loading the model once.

`hfadapt.Run.load` opens the run; its model loads on the first batch and stays loaded for the rest, so
a corpus of any size costs one load. The labels become columns of the data set, which is saved with
`save_to_disk` for the next step of the pipeline.

    python examples/label_with_map.py --run runs/pandas --texts corpus.txt --output labelled/
"""

from __future__ import annotations

import argparse

from datasets import Dataset, load_dataset

import hfadapt


def label(corpus: Dataset, run: hfadapt.Run, column: str = "text", batch_size: int = 64) -> Dataset:
    """The corpus with `label` and `score` columns, predicted by `run` batch after batch."""

    def predict(batch: dict) -> dict:
        found = run.predict(batch[column], batch_size=batch_size, progress=False)
        return {"label": [p["label"] for p in found], "score": [p["score"] for p in found]}

    # new_fingerprint: datasets would otherwise hash the function, and with it the run's model
    return corpus.map(predict, batched=True, batch_size=batch_size, new_fingerprint=f"labelled-{run.run_dir.name}")


def main(argv: list[str] | None = None) -> Dataset:
    args = parse(argv)
    run = hfadapt.Run.load(args.run)
    corpus = load_dataset("text", data_files=args.texts)["train"]
    labelled = label(corpus, run)
    labelled.save_to_disk(args.output)
    print(labelled.to_pandas()["label"].value_counts())
    return labelled


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="the folder of a finished run (text classification)")
    parser.add_argument("--texts", required=True, help="a text file, one text a line")
    parser.add_argument("--output", required=True, help="the folder the labelled data set is saved to")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
