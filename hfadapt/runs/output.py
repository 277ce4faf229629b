"""The output folder: checked before any compute, written in a side folder, moved into place at the end.

A run writes into `NAME.incomplete` beside the requested folder and renames it to `NAME` only
when everything is saved, so a killed or failed run never leaves a half-written `NAME` and never
replaces a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from contextlib import contextmanager
from pathlib import Path

from hfadapt import ranks
from hfadapt.errors import HfadaptError
from hfadapt.model.pretrained import safetensors_header
from hfadapt.recipe.output import named_problem


def incomplete_dir(final: str | Path) -> Path:
    final = Path(final)
    return final.with_name(final.name + ".incomplete")


# The file each kind of folder hfadapt finishes holds, and a key that file always has: a folder with one
# is an hfadapt run (a fine-tuning run, a retraining stage, seeds, a search, advice, an export), which
# output.overwrite may replace. Any other folder may hold a user's files: it is never replaced.
WRITTEN_BY_HFADAPT = {
    "manifest.json": "hfadapt_git_commit",
    "stage.json": "model",
    "seeds.json": "seeds",
    "trials.json": "space",
    "advice.json": "verdict",
    "export.json": "opset",
}


def check(final: str | Path, overwrite: bool, resume: bool = False) -> None:
    """Refuse, before anything runs, to write over a finished run unless asked to, or to throw away a stopped one;
    with `overwrite`, to replace a folder that no hfadapt run wrote."""
    final = _named(final)
    stopped = incomplete_dir(final)
    for parent in final.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise HfadaptError(
                    f"output.dir: {parent} is a file, not a folder; choose an output.dir inside a folder"
                )
            break
    if stopped.exists() and not resume and not overwrite and has_checkpoint(stopped):
        raise HfadaptError(
            f"output.dir: a stopped run of {final} is in {stopped}; continue it with --resume "
            "(output.resume=true), or set output.overwrite=true to start over"
        )
    if final.exists() and not final.is_dir():
        raise HfadaptError(f"output.dir: {final} is a file; choose a folder path")
    if final.is_dir() and any(final.iterdir()) and not overwrite:
        raise HfadaptError(
            f"output.dir: {final} is not empty; choose another output.dir, or set "
            "output.overwrite=true to replace it once the new run finishes"
        )
    if final.is_dir() and any(final.iterdir()) and not written_by_hfadapt(final):
        names = sorted(p.name for p in final.iterdir())
        shown = ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")
        raise HfadaptError(
            f"output.dir: {final} holds files no hfadapt run wrote ({shown}); output.overwrite replaces only "
            "an hfadapt run's folder (one with its manifest.json): choose another output.dir, or move those files"
        )


def written_by_hfadapt(folder: str | Path) -> bool:
    """Whether `folder` is one hfadapt finished (`WRITTEN_BY_HFADAPT`), which output.overwrite may replace."""
    for name, key in WRITTEN_BY_HFADAPT.items():
        try:
            content = json.loads((Path(folder) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(content, dict) and key in content:
            return True
    return False


def _named(final: str | Path) -> Path:
    """`final` as a path, refused (`named_problem`) when it names no folder of its own."""
    problem = named_problem(final)
    if problem:
        raise HfadaptError(problem)
    return Path(final)


def has_checkpoint(work: Path) -> bool:
    """Whether a side folder holds a complete checkpoint (one whose trainer state was written, its files whole):
    a run to resume."""
    return any(
        (c / "trainer_state.json").is_file() and damage(c) is None for c in (work / "checkpoints").glob("checkpoint-*")
    )


def damage(checkpoint: str | Path) -> str | None:
    """What is broken in a checkpoint's files (a weights file cut off or corrupt), or None when each is whole.

    Read without loading a weight: a safetensors file against the length its header gives, a torch file
    (optimizer, scheduler, random state) by the directory at the end of its zip archive.
    """
    for file in sorted(Path(checkpoint).iterdir()):
        if file.suffix == ".safetensors":
            try:
                safetensors_header(file)
            except (OSError, ValueError) as e:
                return f"{file.name}: {e}"
        elif file.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(file):
            return f"{file.name}: it is cut off or corrupt"
    return None


@contextmanager
def lock(final: str | Path):
    """Hold the output folder for this process: a second run into it is refused, naming the running one.

    The lock is a hidden file beside the folder (`.NAME.lock`), held with `filelock` while the run
    writes; the process id beside it (`.NAME.pid`) names the holder. Only the main rank locks.
    """
    from filelock import FileLock, Timeout

    if not ranks.is_main():
        yield
        return
    final = _named(final).absolute()
    made = [p for p in reversed(final.parents) if not p.exists()]  # made for the lock, removed if left empty
    final.parent.mkdir(parents=True, exist_ok=True)
    held = FileLock(str(final.with_name(f".{final.name}.lock")))
    pid_file = final.with_name(f".{final.name}.pid")
    try:
        held.acquire(timeout=0)
    except Timeout:  # the holder's lock file is in final.parent, so no folder was made here
        holder = pid_file.read_text().strip() if pid_file.exists() else "unknown"
        raise HfadaptError(
            f"output.dir: another hfadapt run (process {holder}) is writing {final}; wait for it to finish, "
            "or choose another output.dir"
        ) from None
    try:
        pid_file.write_text(str(os.getpid()))
        yield
    finally:
        pid_file.unlink(missing_ok=True)
        held.release()
        Path(held.lock_file).unlink(missing_ok=True)
        for folder in reversed(made):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def start(final: str | Path, resume: bool = False) -> Path:
    """The side folder the run writes into: fresh, or the stopped run's own when resuming."""
    work = incomplete_dir(final)
    if work.exists() and not resume:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    return work


def finish(work: Path, final: str | Path) -> Path:
    """Move the finished run into place; an old run there is replaced only now."""
    final = Path(final)
    old = final.with_name(final.name + ".replaced")
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    work.rename(final)
    if old.exists():
        shutil.rmtree(old)
    _relocate_recipes(work, final)
    return final


def _relocate_recipes(work: Path, final: Path) -> None:
    """The runs inside a finished folder (a multi-seed run's seeds, a search's trials) were written in
    `work`: their saved recipes now name their folders in `final`, so that each reruns where it lies."""
    nested = list(final.glob("*/recipe.yaml"))
    if not nested:
        return
    from hfadapt.recipe import load_recipe, save_recipe

    before = str(work.absolute())
    for saved in nested:
        recipe = load_recipe(saved)
        folder = str(Path(recipe.output.dir).absolute())
        if folder == before or folder.startswith(before + "/"):
            save_recipe(recipe.updated({"output": {"dir": str(final) + folder[len(before) :]}}), saved)
