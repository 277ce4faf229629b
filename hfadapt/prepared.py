"""Prepared data: token ids made once, kept on disk, loaded by every run and every process that needs them.

The fine-tuning data tokenized, and the pretraining corpus packed into blocks, each go into a
folder `$HFADAPT_CACHE/prepared/KIND-FINGERPRINT/` (default `~/.cache/hfadapt`), keyed by a hash of
what decides the token ids: the data (its fingerprint), the tokenizer (its tokenizer.json) and the
settings (`data.max_length`, `pretrain.block_size`). Training loads the folder when it exists and
makes it otherwise; `hfadapt prepare` makes it ahead of time. Under several processes the main
one makes it while the others wait, then they all load it: the work is done once. A folder is
written as `NAME.incomplete` and renamed when complete, so a killed preparation is redone, never
taken for finished. Blocks go from the packer straight into Arrow files, so memory does not grow
with the corpus; every process reads them memory-mapped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from hfadapt import data, output, pretrain, ranks
from hfadapt.errors import HfadaptError
from hfadapt.recipe import DataConfig, Recipe, TaskConfig, load_recipe

logger = logging.getLogger(__name__)

# Part of every key: raise it when what a folder holds changes, and older folders are not reused.
FORMAT = 2  # 2: the corpus's held-out share is drawn by a salted hash
BLOCK_SPLITS = ("train", "validation")


@dataclass
class Prepared:
    data: Any  # datasets.DatasetDict, memory-mapped from `folder`
    folder: Path
    made: bool  # made by this call; False when it was there already (made before, or by the main process)
    info: dict  # prepared.json: the key, the seconds it took, and the packing statistics of a corpus


def prepare(recipe: Recipe | str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Tokenize the recipe's fine-tuning data, and pack its pretraining corpus, before training needs them.

    For a recipe with a `tokenizer` section its tokenizer stage runs first (into OUTPUT_DIR/tokenizer,
    reused by `retrain`). Returns, for `finetune` (and `pretrain`), the folder and whether this call made it.
    """
    from hfadapt import model as model_lib

    recipe = load_recipe(raw=recipe.to_dict(), overrides=overrides) if isinstance(recipe, Recipe) else load_recipe(recipe, overrides)
    task_data = data.prepare(recipe.data, recipe.task)  # bad data fails here, before anything is written
    results: dict[str, Any] = {}
    if recipe.pretrain is not None:
        from hfadapt.retrain import pretraining_data, pretraining_tokenizers, reading_once, retrain

        with reading_once():
            retrain(recipe, until="tokenizer")
            tokenizer = pretraining_tokenizers(recipe)[0]
            packed = pretraining_data(recipe, tokenizer)
        results["pretrain"] = {"folder": str(packed.folder), "made": packed.made, "packing": packed.info["packing"]}
    elif recipe.tokenizer is not None:
        raise HfadaptError("pretrain: a new tokenizer needs a pretrain stage before fine-tuning (the model's embeddings must learn it)")
    else:
        tokenizer = model_lib.load_tokenizer(recipe.model)
    # with a pretrain stage, fine-tuning reads the pretrained checkpoint's tokenizer: the one the corpus was packed with
    tokens = tokenized(task_data, tokenizer, recipe.data, recipe.task)
    results["finetune"] = {"folder": str(tokens.folder), "made": tokens.made, "sizes": {split: len(ds) for split, ds in tokens.data.items()}}
    return results


def tokenized(task_data: data.TaskData, tokenizer, data_config: DataConfig, task: TaskConfig) -> Prepared:
    """The task's three splits as token ids (`data.tokenize`), tokenized once and saved with `save_to_disk`."""
    key = {
        "kind": "finetune",
        "data": task_data.report["fingerprint"],
        "label_names": task_data.label_names,
        "task": task.type,
        "max_length": data_config.max_length,
        "tokenizer": tokenizer_fingerprint(tokenizer),
    }

    def build(work: Path) -> dict:
        data.tokenize(task_data, tokenizer, data_config, task).save_to_disk(str(work / "data"))
        return {}

    def load(folder: Path):
        from datasets import load_from_disk

        return load_from_disk(str(folder / "data"))

    return _ensure(key, build, load)


def blocks(corpus_key: dict, tokenizer, block_size: int, documents: Callable[[str], Iterable[tuple[str, list[str] | None]]]) -> Prepared:
    """The corpus packed into blocks (`pretrain.blocks`), train and validation, packed once.

    `corpus_key` names the corpus (its settings and what its sources hold); `documents(split)`
    streams it. Blocks are written to Arrow files as they come: the corpus is never in memory.
    """
    key = {"kind": "pretrain", "corpus": corpus_key, "block_size": block_size, "tokenizer": tokenizer_fingerprint(tokenizer)}

    def build(work: Path) -> dict:
        from datasets import Features, Sequence, Value
        from datasets.arrow_writer import ArrowWriter

        # word ids restart in every block (pretrain.blocks), so 32 bits hold them whatever the corpus size
        features = Features({"input_ids": Sequence(Value("int32")), "word_ids": Sequence(Value("int32")), "attention_mask": Sequence(Value("int8"))})
        stats: dict[str, dict] = {}
        for split in BLOCK_SPLITS:
            stats[split] = {}
            with ArrowWriter(features=features, path=str(work / f"{split}.arrow")) as writer:
                for block in pretrain.blocks(tokenizer, documents(split), block_size, stats[split]):
                    writer.write(block)
                writer.finalize()
            if stats[split]["blocks"] == 0:
                raise HfadaptError(f"corpus: the {split} share of the corpus is empty; give more text or change corpus.validation_fraction")
        real = stats["train"]["blocks"] * block_size
        return {"packing": {**stats, "non_padding_share": 1 - stats["train"]["padding"] / real}}

    def load(folder: Path):
        from datasets import Dataset, DatasetDict

        return DatasetDict({split: Dataset.from_file(str(folder / f"{split}.arrow")) for split in BLOCK_SPLITS})

    return _ensure(key, build, load)


def cache_root() -> Path:
    """Where prepared folders go: $HFADAPT_CACHE/prepared, by default ~/.cache/hfadapt/prepared."""
    base = os.environ.get("HFADAPT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "hfadapt"
    return Path(base).expanduser() / "prepared"


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of what turns text into ids: the tokenizer's tokenizer.json (or vocabulary), class and special tokens."""
    if tokenizer.is_fast:
        state = json.loads(tokenizer.backend_tokenizer.to_str())
        # set by each call (truncation=True, max_length=...) and left behind by the last one: not the tokenizer's own
        state.pop("truncation", None)
        state.pop("padding", None)
    else:
        state = sorted(tokenizer.get_vocab().items())
    return _digest({"class": type(tokenizer).__name__, "special": tokenizer.special_tokens_map, "state": state})


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _ensure(key: dict, build: Callable[[Path], dict], load: Callable[[Path], Any]) -> Prepared:
    """The folder for `key`, made by `build` unless it is there, then loaded by `load`.

    The main process makes it while the others wait. A file lock keeps two runs that share the
    cache from writing the same folder at once; a process on a machine that does not see the main
    one's cache makes its own there.
    """
    from filelock import FileLock

    key = {"format": FORMAT, **key}
    folder = cache_root() / f"{key['kind']}-{_digest(key)[:16]}"
    made = False
    with ranks.main_first():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):
            if not folder.exists():
                started = time.perf_counter()
                work = output.start(folder)  # a side folder left by a killed preparation is cleared here
                try:
                    info = {"key": key, **build(work)}
                except BaseException:
                    shutil.rmtree(work, ignore_errors=True)
                    raise
                info["seconds"] = round(time.perf_counter() - started, 1)
                (work / "prepared.json").write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
                output.finish(work, folder)
                made = True
                logger.info("prepared %s data in %s (%.1f s)", key["kind"], folder, info["seconds"])
    info = json.loads((folder / "prepared.json").read_text(encoding="utf-8"))
    if not made:
        logger.info("using the %s data prepared in %s", key["kind"], folder)
    return Prepared(data=load(folder), folder=folder, made=made, info=info)
