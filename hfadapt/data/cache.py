"""The prepared-data cache: token ids made once, kept on disk, loaded by every run and process that needs them.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfadapt import ranks
from hfadapt.data import splits, tokenization
from hfadapt.recipe import DataConfig, TaskConfig
from hfadapt.runs import output

logger = logging.getLogger(__name__)

# Part of every key: raise it when what a folder holds changes, and older folders are not reused.
FORMAT = 2  # 2: the corpus's held-out share is drawn by a salted hash


@dataclass
class Cached:
    data: Any  # datasets.DatasetDict, memory-mapped from `folder`
    folder: Path
    made: bool  # made by this call; False when it was there already (made before, or by the main process)
    info: dict  # prepared.json: the key, the seconds it took, and the packing statistics of a corpus


def tokenized(task_data: splits.TaskData, tokenizer, data_config: DataConfig, task: TaskConfig) -> Cached:
    """The task's three splits as token ids (`tokenization.tokenize`), tokenized once and saved with `save_to_disk`."""
    key = {
        "kind": "finetune",
        "data": task_data.report["fingerprint"],
        "label_names": task_data.label_names,
        "task": task.type,
        "max_length": data_config.max_length,
        "long_texts": [data_config.long_texts, data_config.window_stride()],
        "tokenizer": tokenizer_fingerprint(tokenizer),
    }

    def build(work: Path) -> dict:
        tokenization.tokenize(task_data, tokenizer, data_config, task).save_to_disk(str(work / "data"))
        return {}

    def load(folder: Path):
        from datasets import load_from_disk

        return load_from_disk(str(folder / "data"))

    return ensure(key, build, load)


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


def ensure(key: dict, build: Callable[[Path], dict], load: Callable[[Path], Any]) -> Cached:
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
    return Cached(data=load(folder), folder=folder, made=made, info=info)
