"""A pilot's deadline: a callback that ends each training run once its share of the budget is used."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback


class Deadline(TrainerCallback):
    """Stops a training run after the step during which it has run for `seconds` (None: never).

    Every `Trainer.train` call starts its own clock, so a retraining pilot's masked-LM steps and its
    fine-tuning steps each get `seconds`. Each finished call is recorded in `runs`: its steps, its
    seconds and whether the deadline stopped it.
    """

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.perf_counter):
        self.seconds, self.clock = seconds, clock
        self.runs: list[dict[str, Any]] = []
        self.began, self.stopped = clock(), False

    def on_train_begin(self, args, state, control, **kwargs):
        self.began, self.stopped = self.clock(), False

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds is not None and state.global_step < state.max_steps:
            if self.clock() - self.began >= self.seconds:
                control.should_training_stop = True
                self.stopped = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        seconds = self.clock() - self.began
        self.runs.append({"steps": state.global_step, "seconds": seconds, "stopped_at_deadline": self.stopped})
