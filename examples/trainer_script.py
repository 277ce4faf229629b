"""A plain `transformers.Trainer` script that uses hfadapt's pieces and no recipe.

An English checkpoint is taught a new language, then a task in it:
1. train a WordPiece tokenizer on the corpus (`hfadapt.train_tokenizer`);
2. rebuild the checkpoint's vocabulary and embeddings for it (`hfadapt.rebuild_vocabulary`): tokens the
   two vocabularies share keep their rows;
3. a few masked-LM steps on the corpus, whole words masked (`hfadapt.pack_blocks`,
   `hfadapt.WholeWordMaskCollator`, `hfadapt.MaskedLMTrainer`);
4. LoRA fine-tuning on labelled texts (`hfadapt.add_lora`) with the stock `Trainer`.

One process:

    python examples/trainer_script.py --model builtin:minilm --corpus corpus.txt --data labelled.csv --output runs/ex

Several processes or GPUs, the same script (Accelerate runs the devices under `Trainer`):

    accelerate launch --num_processes 2 examples/trainer_script.py --model ... --corpus ... --data ... --output ...

`corpus.txt` holds one text a line; `labelled.csv` has the columns `text` and `label`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from accelerate import PartialState
from datasets import load_dataset
from transformers import (
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

import hfadapt
from hfadapt.model.pretrained import resolve  # builtin:minilm -> its folder; a Hub id or folder as it is


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    state = PartialState()
    out = Path(args.output)
    checkpoint = resolve(args.model)
    corpus = [line for line in Path(args.corpus).read_text(encoding="utf-8").splitlines() if line.strip()]

    # 1. the tokenizer is trained once, by the main process, and read by the others: every process
    #    must use the same vocabulary (tokenizer training is not reproducible from run to run)
    with state.main_process_first():
        if state.is_main_process:
            tokenizer = hfadapt.train_tokenizer(corpus, vocab_size=args.vocab_size, min_frequency=1)
            tokenizer.save_pretrained(out / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")

    # 2. the vocabulary rebuilt: the same seed on every process gives the same new rows
    mlm = AutoModelForMaskedLM.from_pretrained(checkpoint)
    rows = hfadapt.rebuild_vocabulary(mlm, AutoTokenizer.from_pretrained(checkpoint), tokenizer, seed=args.seed)

    # 3. masked-LM pretraining on the corpus
    blocks = hfadapt.pack_blocks(corpus, tokenizer, block_size=args.block_size)
    mlm_args = TrainingArguments(
        output_dir=str(out / "mlm"),
        max_steps=args.mlm_steps,
        per_device_train_batch_size=8,
        learning_rate=5e-4,
        remove_unused_columns=False,  # the blocks' word_ids reach the whole-word collator
        save_strategy="no",
        report_to="none",
        seed=args.seed,
    )
    collator = hfadapt.WholeWordMaskCollator(tokenizer, probability=0.15)
    pretraining = hfadapt.MaskedLMTrainer(model=mlm, args=mlm_args, train_dataset=blocks, data_collator=collator)
    pretraining.train()
    pretraining.save_model(str(out / "pretrained"))  # written by the main process only
    if state.is_main_process:
        tokenizer.save_pretrained(out / "pretrained")
    state.wait_for_everyone()

    # 4. LoRA fine-tuning on the labelled texts
    data = load_dataset("csv", data_files=args.data)["train"]
    labels = sorted(set(data["label"]))
    data = data.map(
        lambda batch: {
            **tokenizer(batch["text"], truncation=True, max_length=args.max_length),
            "labels": [labels.index(label) for label in batch["label"]],
        },
        batched=True,
        remove_columns=data.column_names,
    )
    split = data.train_test_split(test_size=0.2, seed=args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        out / "pretrained",
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = hfadapt.add_lora(model, r=8, lora_alpha=16, keep=["classifier"])
    summary = hfadapt.parameter_summary(model)
    task_args = TrainingArguments(
        output_dir=str(out / "finetuned"),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=16,
        learning_rate=args.learning_rate,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
    )
    trainer = Trainer(
        model=model,
        args=task_args,
        train_dataset=split["train"],
        eval_dataset=split["test"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=lambda p: {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())},
    )
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model(str(out / "finetuned"))  # the LoRA adapter and the head, by the main process

    # every process reports what it holds: under DDP the trained weights are the same on each
    weights = float(sum(p.detach().double().sum() for p in model.parameters() if p.requires_grad))
    result = {
        "process": state.process_index,
        "processes": state.num_processes,
        "vocabulary": rows,
        "parameters": summary,
        "eval_accuracy": metrics["eval_accuracy"],
        "trained_weight_sum": weights,
    }
    (out / f"process-{state.process_index}.json").write_text(json.dumps(result, indent=1))
    return result


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a checkpoint folder, a Hub id, or builtin:minilm")
    parser.add_argument("--corpus", required=True, help="a text file of the new language, one text a line")
    parser.add_argument("--data", required=True, help="a CSV file with the columns text and label")
    parser.add_argument("--output", required=True, help="the folder the script writes")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--mlm-steps", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
