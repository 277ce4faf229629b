"""Surviving a kill: find the newest complete checkpoint, and save one when the run is told to stop.

A checkpoint folder is complete once the Trainer has written `trainer_state.json` into it, the
last file it writes; a folder without it (the process died while writing) is never resumed from.
SIGTERM and Ctrl-C stop training at the end of the current step, after a checkpoint is saved
(`StopOnSignal`); work that has no checkpoint (a tokenizer's training, packing a corpus) stops at
once (`interruptible`). A time limit (`output.stop_after_minutes`, `--stop-after-minutes`) stops
training the same way once it has passed (`time_limit`). Either way the run ends with `Interrupted`,
which the CLI turns into exit 130 and the command that continues it.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback

from hfadapt.errors import HfadaptError
from hfadapt.runs import output

logger = logging.getLogger(__name__)


class Interrupted(HfadaptError):
    """Training was stopped by a signal after saving a checkpoint; `--resume` continues it."""


def latest_complete(folder: str | Path) -> Path | None:
    """The newest `checkpoint-N` under `folder` whose trainer state was fully written and whose files are whole;
    a damaged one (a weights file cut off) is passed over for the one before it, with a warning."""
    found = []
    for path in Path(folder).glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        state = path / "trainer_state.json"
        if not match or not state.exists():
            continue
        try:
            json.loads(state.read_text())
        except ValueError:  # cut off mid-write
            continue
        found.append((int(match.group(1)), path))
    for _, path in sorted(found, reverse=True):
        problem = output.damage(path)
        if problem is None:
            return path
        logger.warning("%s is damaged (%s); falling back to the checkpoint before it", path, problem)
    return None


class StopOnSignal(TrainerCallback):
    """On SIGTERM or SIGINT, or once the run's time limit has passed, finish the current step, save a
    checkpoint and stop.

    Under several processes the ranks agree after each step (the flag is reduced with MAX), so a
    signal that reached one rank, or a clock one rank read a step early, stops them all at the same step.
    """

    def __init__(self):
        self.signal: int | None = None
        self.timed_out = False
        self._previous = {}

    def on_train_begin(self, args, state, control, **kwargs):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass

    def _handle(self, sig, frame):
        if self.signal is not None:  # a second signal: stop at once
            signal.signal(sig, self._previous.get(sig, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.signal = sig
        logger.warning("received %s: saving a checkpoint after this step, then stopping", signal.Signals(sig).name)

    def on_step_end(self, args, state, control, **kwargs):
        if _agreed(self.signal is not None or past_time_limit()):
            if self.signal is None and not self.timed_out:
                self.timed_out = True
                logger.warning("the time limit of %g minutes has passed: saving a checkpoint, then stopping", _limit[1])
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()

    def restore(self) -> None:
        """Hand the signals back to their handlers before training; also for training that raised (the
        Trainer then never ends it), so that no later code finds this one's handler."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def check(self, step: int, checkpoints: Path) -> None:
        """Once training has returned: raise `Interrupted` if a signal or the time limit stopped it (its
        checkpoint is saved by then)."""
        if self.signal is not None or self.timed_out:
            why = (
                f"by {signal.Signals(self.signal).name}"
                if self.signal is not None
                else f"at the time limit of {_limit[1]:g} minutes (output.stop_after_minutes)"
            )
            raise Interrupted(
                f"stopped {why} at step {step}, after saving a checkpoint in {checkpoints}; continue with --resume"
            )


def _agreed(stop: bool) -> bool:
    """`stop` on any rank, under several processes; `stop` itself under one."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return stop
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([int(stop)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


_limit: list[float] = []  # while a time limit holds: [the monotonic time it passes at, its minutes]


@contextmanager
def time_limit(minutes: float | None) -> Iterator[None]:
    """Within it, training stops after the step during which `minutes` have passed since it began,
    saving a checkpoint (`StopOnSignal`).

    The outermost limit holds: a retraining's stages, a search's trials and a multi-seed run's seeds
    share their run's. A stage that starts after the limit has passed still trains one step and saves
    it, so that each piece of a run stopped and resumed this way gets further.

    Args:
        minutes: the limit; None for none.
    """
    if minutes is None or _limit:
        yield
        return
    _limit[:] = [time.monotonic() + 60 * minutes, minutes]
    try:
        yield
    finally:
        _limit.clear()


def past_time_limit() -> bool:
    """Whether a time limit holds and has passed."""
    return bool(_limit) and time.monotonic() >= _limit[0]


@contextmanager
def interruptible(what: str) -> Iterator[None]:
    """Within it, SIGINT and SIGTERM raise `Interrupted` at once: for work with no checkpoint to save.

    Training inside it still stops at the end of a step with `StopOnSignal`, which takes the signals
    over while the Trainer runs and hands them back after.

    Args:
        what: the work, as the message names it ("retraining").
    """

    def stop(sig, frame):
        raise Interrupted(
            f"stopped by {signal.Signals(sig).name} during {what}, outside a training step (finished stages and "
            "saved checkpoints are kept); continue with --resume"
        )

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, stop)
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


TOTALS = "hfadapt_totals.json"


def save_totals(checkpoint: Path, **totals: float) -> None:
    """The run's totals up to this checkpoint (loss summed over steps, steps, compute seconds)."""
    (Path(checkpoint) / TOTALS).write_text(json.dumps(totals), encoding="utf-8")


def totals(checkpoint: str | Path | None) -> dict[str, float] | None:
    """The totals saved with a checkpoint; zeros for a fresh run, None for a checkpoint saved without them."""
    if not checkpoint:
        return {"loss_sum": 0.0, "steps": 0, "compute_seconds": 0.0}
    path = Path(checkpoint) / TOTALS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
