"""Long texts in bounded memory: tokenizing 2,000 long texts with head_tail or windows takes no more memory
than tokenizing 200 (the tokenizer sees a batch at a time, and datasets.map writes each batch to disk)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FILLER

# Each measurement runs in a process forked for it, after the imports, the tokenizer and a first
# small run (the allocators' and libraries' one-off costs). It tokenizes N texts of ~870 tokens from
# a data set on disk, as a run does, while a thread samples its anonymous resident memory (RssAnon:
# what the out-of-memory killer counts) every few milliseconds; it reports the highest rise. Peak RSS
# (ru_maxrss) would add the pages of the memory-mapped data set and of the Arrow file datasets.map
# writes and reads back: the page cache's, dropped under pressure, and growing with the data's size.
CHILD = """
import json, os, sys, threading, time
from datasets import Dataset, DatasetDict, load_from_disk
from transformers import AutoTokenizer
from hfadapt.data import tokenization
from hfadapt.data.splits import TaskData
from hfadapt.recipe import DataConfig, TaskConfig

checkpoint, folder, sizes = sys.argv[1], sys.argv[2], json.loads(sys.argv[4])
text = " ".join(f"{word} {i}" for i, word in enumerate(json.loads(sys.argv[3])))
tokenizer = AutoTokenizer.from_pretrained(checkpoint)


def anonymous_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:")) / 1024


def save(n):
    rows = [{"text": f"{i} {text}", "label": i % 2} for i in range(n)]
    small = [{"text": text, "label": 0}, {"text": text, "label": 1}]
    splits = DatasetDict(train=Dataset.from_list(rows), validation=Dataset.from_list(small))
    splits["test"] = splits["validation"]
    splits.save_to_disk(f"{folder}/{n}")


def tokenize(strategy, n):
    task_data = TaskData(load_from_disk(f"{folder}/{n}"), ["a", "b"])  # memory-mapped: map writes to disk
    data = DataConfig(source="x", max_length=32, long_texts=strategy)
    return len(tokenization.tokenize(task_data, tokenizer, data, TaskConfig())["train"])


def measured(strategy, n):
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        start, peak, done = anonymous_mb(), [0.0], threading.Event()

        def watch():
            while not done.is_set():
                peak[0] = max(peak[0], anonymous_mb())
                time.sleep(0.002)

        watcher = threading.Thread(target=watch)
        watcher.start()
        rows = tokenize(strategy, n)
        done.set()
        watcher.join()
        os.write(write, json.dumps({"grown_mb": max(peak[0], anonymous_mb()) - start, "rows": rows}).encode())
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1000)
    os.waitpid(child, 0)
    return json.loads(answer)


for n in (20, *sizes):
    save(n)
for strategy in ("head_tail", "windows"):
    tokenize(strategy, 20)
print(json.dumps({s: {n: measured(s, n) for n in sizes} for s in ("head_tail", "windows")}))
"""
WORDS = 250  # "word i" pairs: ~870 tokens of the tiny tokenizer, 29 windows of 32, or head_tail's 30 of them
SLACK_MB = 20  # the allocators' rounding, Arrow's buffers


def peaks(checkpoint: Path, folder: Path, sizes: tuple[int, ...]) -> dict:
    """Each strategy's rise in anonymous memory while tokenizing each number of texts, and the rows made."""
    words = [FILLER[i % len(FILLER)] for i in range(WORDS)]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(checkpoint), str(folder), json.dumps(words), json.dumps(sizes)],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PATH": "/bin"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RssAnon from Linux's /proc")
def test_peak_memory_of_long_texts_does_not_grow_with_their_number(tiny_checkpoint, tmp_path):
    measured = peaks(tiny_checkpoint, tmp_path, (200, 2000))
    for strategy, per_text in (("head_tail", 1), ("windows", 29)):  # rows per text: 29 windows of a long one
        few, many = measured[strategy]["200"], measured[strategy]["2000"]
        assert few["rows"] == 200 * per_text and many["rows"] == 2000 * per_text, measured
        # ten times the texts, and the peak within 1.5 times that of 200 plus SLACK_MB. Measured here: now
        # 10 -> 16 MB (head_tail) and 41 -> 56 MB (windows), flat from 2,000 to 6,000 texts; hfadapt before its
        # batches (datasets.map's 1,000 texts a batch, each batch's whole encodings held) 19 -> 105 MB at 1,000
        assert many["grown_mb"] <= 1.5 * few["grown_mb"] + SLACK_MB, (strategy, measured)
