"""The output folder: checked before any compute, written in a side folder, moved into place at the end.

A run writes into `NAME.incomplete` beside the requested folder and renames it to `NAME` only
when everything is saved, so a killed or failed run never leaves a half-written `NAME` and never
replaces a finished one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hfadapt.errors import HfadaptError


def incomplete_dir(final: str | Path) -> Path:
    final = Path(final)
    return final.with_name(final.name + ".incomplete")


def check(final: str | Path, overwrite: bool, resume: bool = False) -> None:
    """Refuse, before anything runs, to write over a finished run unless asked to, or to throw away a stopped one."""
    final = Path(final)
    stopped = incomplete_dir(final)
    if stopped.exists() and not resume and not overwrite and (stopped / "checkpoints").exists():
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
    return final
