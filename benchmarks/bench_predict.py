"""Predicting with a finished run on the CPU: transformers' pipeline, `hfadapt predict`, and the run's ONNX exports.

The run (`--run`, by default runs/rotten_tomatoes_lora, which `hfadapt finetune
recipes/rotten_tomatoes_lora.yaml` writes) is first exported with `--quantize int8` into a scratch
folder, in a process of its own; that export checks the int8 model on the run's test split, and the
check's two scores go into the notes. The texts are the run's test split, repeated or cut to
`--texts`. Each arm then labels them in a fresh process, on the CPU, `--batch-size` texts at a time,
timed from after one warm-up batch (loading is not timed):
- pipeline: `transformers.pipeline("text-classification", ...)` on the run's merged model, with
  `batch_size`, truncation at the recipe's max_length: what one writes with the library alone;
- pipeline bf16: the same with `dtype=torch.bfloat16`, the pipeline's own flag for bf16, where this
  CPU runs bf16 fast (AVX512-BF16 or AMX; skipped elsewhere, with the reason in the notes);
- hfadapt predict fp32: `hfadapt.predict(run, texts, batch_size=..., precision="fp32")`, which
  batches texts longest first;
- hfadapt predict: the same with the default `precision="auto"`: bf16 autocast where the CPU runs
  bf16 fast, fp32 elsewhere;
- onnx fp32 and onnx int8: model.onnx and model.int8.onnx under ONNX Runtime, texts batched longest
  first the same way, tokenized by `tokenizers` with the export's tokenizer.json: a process without
  torch, as a deployment of the export can be.
Ratios are taken against the faster pipeline arm (the strongest plain script); the notes give each
arm's ratio against each pipeline arm, int8's against hfadapt predict, each arm's accuracy on the
test split (the first texts are the whole split), and how many of its labels agree with hfadapt
predict fp32's. For single-label sequence classification runs only.

    python benchmarks/bench_predict.py                                   # runs/rotten_tomatoes_lora, 2,000 texts
    python benchmarks/bench_predict.py --run runs/my_run --texts 5000 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import harness

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ARMS = ("hfadapt predict fp32", "hfadapt predict", "onnx fp32", "onnx int8")


def export(run: Path, scratch: Path, count: int) -> dict:
    """Export the run with int8 into SCRATCH/onnx; write the texts and the recipe's max_length to SCRATCH/texts.json."""
    import math

    from hfadapt import export_onnx, load_recipe
    from hfadapt.data import splits

    recipe = load_recipe(run / "recipe.yaml")
    if recipe.task.type != "sequence_classification" or recipe.task.problem_type != "single_label_classification":
        raise SystemExit(f"{run}: this benchmark takes a single-label sequence classification run")
    if not (run / "config.json").exists():
        raise SystemExit(f"{run}: the pipeline arm needs the merged model (a run with adapt.merge_lora: true)")
    started = time.perf_counter()
    info = export_onnx(run, scratch / "onnx", quantize="int8")
    seconds = time.perf_counter() - started
    labels = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["label_names"]
    split = splits.load_splits(recipe.data, recipe.task, label_names=labels).splits["test"]
    test = splits.texts(split)
    texts = (test * math.ceil(count / len(test)))[:count]
    gold = [labels[i] for i in split["label"]]
    given = {"texts": texts, "max_length": recipe.data.max_length, "gold": gold}
    (scratch / "texts.json").write_text(json.dumps(given), encoding="utf-8")
    return {"int8": info["int8"], "export_seconds": seconds, "test_texts": len(test)}


def timed(label, texts: list[str], batch_size: int) -> dict:
    """Run `label` (texts -> labels) on one warm-up batch, then time it on all the texts."""
    label(texts[:batch_size])
    started = time.perf_counter()
    labels = label(texts)
    seconds = time.perf_counter() - started
    return {"texts_per_second": len(texts) / seconds, "seconds": seconds, "labels": labels}


def run_pipeline(run: Path, texts: list[str], max_length: int, batch_size: int, bf16: bool = False) -> dict:
    import torch
    from transformers import pipeline

    dtype = torch.bfloat16 if bf16 else torch.float32
    classify = pipeline("text-classification", model=str(run), tokenizer=str(run), device="cpu", dtype=dtype)
    options = {"batch_size": batch_size, "truncation": True, "max_length": max_length}
    return timed(lambda batch: [r["label"] for r in classify(batch, **options)], texts, batch_size)


def run_hfadapt(run: Path, texts: list[str], batch_size: int, precision: str) -> dict:
    import hfadapt

    def label(batch):
        done = hfadapt.predict(run, batch, batch_size=batch_size, progress=False, device="cpu", precision=precision)
        return [r["label"] for r in done]

    return timed(label, texts, batch_size)


def run_onnx(folder: Path, file: str, texts: list[str], max_length: int, batch_size: int) -> dict:
    """An exported model under ONNX Runtime: texts batched longest first, as `hfadapt predict` batches them."""
    import numpy as np
    import onnxruntime
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    pad = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))["pad_token"]
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad), pad_token=pad)
    id2label = json.loads((folder / "config.json").read_text(encoding="utf-8"))["id2label"]
    session = onnxruntime.InferenceSession(str(folder / file), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}

    def label(batch):
        order = sorted(range(len(batch)), key=lambda i: len(batch[i]), reverse=True)
        labels = [""] * len(batch)
        for start in range(0, len(batch), batch_size):
            chosen = order[start : start + batch_size]
            encoded = tokenizer.encode_batch([batch[i] for i in chosen])
            inputs = {n: np.array([getattr(e, fields[n]) for e in encoded], dtype=np.int64) for n in names}
            logits = session.run(["logits"], inputs)[0]
            for i, best in zip(chosen, logits.argmax(-1), strict=True):
                labels[i] = id2label[str(best)]
        return labels

    return timed(label, texts, batch_size)


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--run", default="runs/rotten_tomatoes_lora", help="the output folder of a finished run")
    parser.add_argument("--texts", type=int, default=2000, help="texts to label: the test split, repeated or cut")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)  # in a child: the export and the texts
    args = parser.parse_args()
    run = Path(args.run).absolute()
    if args.arm:
        logging.disable(logging.WARNING)
        scratch = Path(args.scratch)
        if args.arm == "export":
            harness.answer(args, export(run, scratch, args.texts))
            return
        given = json.loads((scratch / "texts.json").read_text(encoding="utf-8"))
        texts, length, size = given["texts"], given["max_length"], args.batch_size
        arms = {
            "pipeline": lambda: run_pipeline(run, texts, length, size),
            "pipeline bf16": lambda: run_pipeline(run, texts, length, size, bf16=True),
            "hfadapt predict fp32": lambda: run_hfadapt(run, texts, size, "fp32"),
            "hfadapt predict": lambda: run_hfadapt(run, texts, size, "auto"),
            "onnx fp32": lambda: run_onnx(scratch / "onnx", "model.onnx", texts, length, size),
            "onnx int8": lambda: run_onnx(scratch / "onnx", "model.int8.onnx", texts, length, size),
        }
        harness.answer(args, arms[args.arm]())
        return
    if not (run / "recipe.yaml").exists():
        raise SystemExit(
            f"--run {args.run}: not a finished run; make one with `hfadapt finetune recipes/rotten_tomatoes_lora.yaml` "
            "(it writes runs/rotten_tomatoes_lora) or give --run"
        )
    plain, said = harness.plain_arms()
    pipelines = ["pipeline"] + (["pipeline bf16"] if len(plain) > 2 else [])
    with tempfile.TemporaryDirectory() as scratch:
        exported = harness.run_arm(__file__, "export", "--scratch", scratch)
        rows = {arm: harness.run_arm(__file__, arm, "--scratch", scratch) for arm in [*pipelines, *ARMS]}
        gold = json.loads((Path(scratch) / "texts.json").read_text(encoding="utf-8"))["gold"]
    best, against = harness.against_plain(rows, pipelines, list(ARMS), "texts_per_second", "texts/s")
    columns = [
        harness.Column("texts_per_second", "texts/s", ratio="value"),
        harness.Column("seconds", "seconds", "{:.1f}"),
        harness.Column("peak_rss_mb", "peak RSS MB", "{:.0f}", ratio="value"),
    ]
    title = (
        f"Labelling {args.texts} texts (the test split of `{args.run}`, {exported['test_texts']} texts, repeated or "
        f"cut) on the CPU, {args.batch_size} a batch, each arm in its own process after one warm-up batch; "
        f"ratios against the faster pipeline arm, `{best}`."
    )
    table = harness.Table(title, rows, best, columns)
    check = exported["int8"]
    reference = rows["hfadapt predict fp32"]["labels"]
    agree = ", ".join(
        f"{arm} {sum(a == b for a, b in zip(rows[arm]['labels'], reference, strict=True)) / len(reference):.2%}"
        for arm in rows
        if arm != "hfadapt predict fp32"
    )
    notes = [
        f"- {said} `pipeline bf16` runs only where it does; `hfadapt predict` (precision auto) is bf16 exactly there.",
        *against,
        f"- int8 check at export (export.json): {check['metric']} {check['int8']:.4f} for int8 against "
        f"{check['fp32']:.4f} for fp32 on {check['examples']} test examples (at most {check['tolerance']} lower "
        f"allowed); the export took {exported['export_seconds']:.0f} s.",
        f"- onnx int8 against hfadapt predict fp32: "
        f"{rows['onnx int8']['texts_per_second'] / rows['hfadapt predict fp32']['texts_per_second']:.2f}x texts/s; "
        f"against hfadapt predict: "
        f"{rows['onnx int8']['texts_per_second'] / rows['hfadapt predict']['texts_per_second']:.2f}x.",
        f"- labels that agree with hfadapt predict fp32's: {agree}.",
    ]
    if len(gold) <= args.texts:
        right = {arm: sum(a == b for a, b in zip(rows[arm]["labels"][: len(gold)], gold, strict=True)) for arm in rows}
        accuracy = ", ".join(f"{arm} {right[arm] / len(gold):.2%}" for arm in rows)
        notes.append(f"- accuracy on the {len(gold)} test texts (the first {len(gold)} labelled): {accuracy}.")
    harness.publish(__file__, [table], args.no_write, notes=notes)


if __name__ == "__main__":
    main()
