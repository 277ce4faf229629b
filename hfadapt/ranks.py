"""Several processes (`accelerate launch`): every rank trains, only the main one writes.

The rank is read from the launcher's environment (torchrun's RANK, Open MPI's, MPICH's), so
commands that train nothing never start a process group.
"""

from __future__ import annotations

import os
from contextlib import contextmanager


def index() -> int:
    """This process's rank: 0 for a plain `python` run."""
    for name in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK"):
        if os.environ.get(name):
            return int(os.environ[name])
    return 0


def count() -> int:
    for name in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"):
        if os.environ.get(name):
            return int(os.environ[name])
    return 1


def is_main() -> bool:
    return index() == 0


def join(timeout: float, cpu: bool = False, backend: str | None = None) -> None:
    """Start the process group (under a launcher), in which a rank waits at most `timeout` seconds for the others
    at a barrier or collective; `cpu` and `backend` as `accelerate.PartialState` takes them. The group is made
    once, by the first call that needs it; later ones keep it."""
    if count() > 1:
        from datetime import timedelta

        from accelerate import PartialState

        PartialState(cpu=cpu, backend=backend, timeout=timedelta(seconds=timeout))


def wait() -> None:
    """All ranks meet here (nothing to do in a single process)."""
    if count() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


@contextmanager
def main_first():
    """The main rank runs the block first (it writes); the others run it after, and find its result."""
    if is_main():
        yield
        wait()
    else:
        wait()
        yield
