"""Diverged training: stopped at the step it happens, and never saved as a finished run.

A learning rate far too high (1e30, or a mistyped exponent) turns the weights into NaN within a
step or two; the Trainer then trains on, its NaN losses filtered out of the logged average, and a
NaN model scores as one that predicts a single class. `DivergenceGuard` stops training at the
first step whose trainable weights, logged loss or gradient norm are not finite, before that step
is evaluated or checkpointed; `check` then raises `Diverged`. `check_saved` refuses a finished
model holding a non-finite weight, before its folder is moved into place.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from transformers import TrainerCallback

from hfadapt.errors import HfadaptError

logger = logging.getLogger(__name__)


class Diverged(HfadaptError):
    """Training diverged (a loss, gradient norm or weight became NaN or infinite); the run was not saved."""


class DivergenceGuard(TrainerCallback):
    """Stop training at the first step whose trainable weights, logged loss or gradient norm are not finite.

    The weights are summed once per optimizer step (one reduction per trainable tensor, one device
    sync); the loss and gradient norm are read as the Trainer logs them. A stopped run saves no
    checkpoint and runs no evaluation of the broken model.

    Args:
        section: the recipe section holding the training settings, named in the hint (`training`,
            `pretrain.training`).
    """

    def __init__(self, section: str = "training"):
        self.section = section
        self.problem: str | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.problem is None and model is not None:
            bad = _non_finite_weight(model)
            if bad is not None:
                self.problem = f"training diverged at step {state.global_step}: the weight {bad[0]} holds {bad[1]}"
                control.should_log = True  # the step's loss and gradient norm, for the message (on_log)
        return self._stop(control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        names = ("loss", "grad_norm") if not args.fp16 else ("loss",)  # fp16 skips steps with inf gradients
        for name in names:
            value = (logs or {}).get(name)
            if isinstance(value, float) and not math.isfinite(value):
                what = "the gradient norm" if name == "grad_norm" else "the training loss"
                self.problem = f"training diverged at step {state.global_step}: {what} is {value}"
                break
        return self._stop(control)

    def on_epoch_end(self, args, state, control, **kwargs):
        return self._stop(control)

    def _stop(self, control):
        if self.problem is not None:
            control.should_training_stop = True
            control.should_save = False  # no checkpoint of a broken model
            control.should_evaluate = False
        return control


def check(trainer) -> None:
    """Raise `Diverged` if a `DivergenceGuard` of `trainer` stopped its training.

    Raises:
        Diverged: the step, the value and the fix.
    """
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, DivergenceGuard) and callback.problem is not None:
            raise Diverged(f"{callback.problem}; {_hint(callback.section, trainer.args)}")


def check_saved(folder: str | Path, section: str = "training", learning_rate: float | None = None) -> None:
    """Refuse a saved model (every `*.safetensors` in `folder` and its `adapter/`) holding a non-finite weight.

    The tensors are read one at a time, so a large model is never in memory twice.

    Raises:
        Diverged: the file, the tensor and the fix.
    """
    import torch
    from safetensors import safe_open

    folder = Path(folder)
    for file in sorted([*folder.glob("*.safetensors"), *folder.glob("adapter/*.safetensors")]):
        with safe_open(str(file), "pt") as weights:
            for name in weights.keys():
                tensor = weights.get_tensor(name)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    rate = f" (now {learning_rate:g})" if learning_rate is not None else ""
                    raise Diverged(
                        f"training diverged: the trained weight {name} in {file.name} holds NaN or infinite values, "
                        f"so the run was not saved; lower {section}.learning_rate{rate} and run again"
                    )


def _hint(section: str, args) -> str:
    fp16 = ", or train in bf16 or fp32 (fp16 overflows past 65,504)" if args.fp16 else ""
    return f"lower {section}.learning_rate (now {args.learning_rate:g}){fp16} and run again"


def _non_finite_weight(model) -> tuple[str, float] | None:
    """The first trainable weight holding NaN or an infinity, and that value; None when all are finite.

    One float32 sum per tensor finds a non-finite value (a sum of finite weights overflows only past
    3e38); only then is each tensor searched for the name and the value.
    """
    import torch

    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad and p.numel()]
    if not params:
        return None
    with torch.no_grad():
        device = params[0][1].device
        if bool(torch.isfinite(torch.stack([p.sum(dtype=torch.float32).to(device) for _, p in params]).sum())):
            return None
        for name, p in params:
            bad = p[~torch.isfinite(p)]
            if bad.numel():
                return name, float(bad.flatten()[0])
    return None
