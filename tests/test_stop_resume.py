"""Stopping retraining with a real signal: SIGINT during pretraining saves a checkpoint and exits 130 with the
command to continue, a double Ctrl-C stops at once in one line, and `retrain --resume` ends with the weights of
an uninterrupted run."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import chinese_retraining, wait_for_checkpoint
from safetensors.torch import load_file
from transformers import TrainerCallback

from hfadapt import load_recipe, search
from hfadapt.errors import HfadaptError
from hfadapt.retraining.pipeline import retrain
from hfadapt.runs.resume import Interrupted, latest_complete

PRETRAIN = {
    "max_steps": 60,  # ~0.1 s a step on the tiny model (2 busy cores): seconds after the first checkpoint to stop in
    "save_strategy": "steps",
    "save_steps": 10,
    "eval_strategy": "no",
    "logging_steps": 10,
    "disable_tqdm": True,
}


def hfadapt(*argv: str, together: bool = False) -> subprocess.Popen:
    """The CLI in a process of its own; `together`: its standard error read with its output, line by line."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "hfadapt", *argv]
    stderr = subprocess.STDOUT if together else subprocess.PIPE
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)


def read_until(process: subprocess.Popen, marker: str) -> str:
    """What the process writes up to and including the first line holding `marker`."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if marker in line:
            return "".join(lines)
    pytest.fail(f"the run ended before {marker!r}: {''.join(lines)[-3000:]}")


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.integration
def test_sigint_during_pretraining_saves_a_checkpoint_and_resume_ends_as_an_uninterrupted_run(
    tiny_checkpoint, tmp_path
):
    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=2)
    raw["pretrain"]["training"] = PRETRAIN
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    run = Path(raw["output"]["dir"])
    checkpoints = run / "pretrained.incomplete" / "checkpoints"

    process = hfadapt("retrain", str(tmp_path / "r.yaml"))
    wait_for_checkpoint(checkpoints, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    stopped = re.search(r"hfadapt: stopped: stopped by SIGINT at step (\d+), after saving a checkpoint in (.*); ", err)
    assert stopped and Path(stopped.group(2)) == checkpoints, err[-3000:]
    step = int(stopped.group(1))
    assert 10 <= step < 60 and latest_complete(checkpoints) == checkpoints / f"checkpoint-{step}"
    assert (run / "tokenizer").is_dir() and not (run / "pretrained").exists()
    command = re.search(r"hfadapt: to continue: (.*)", err).group(1)
    assert command == f"hfadapt retrain {tmp_path / 'r.yaml'} --resume"

    # a plain rerun would throw the stopped stage away: it is refused before any stage runs
    with pytest.raises(HfadaptError) as refused:
        retrain(load_recipe(raw=raw))
    assert str(refused.value) == (
        f"output.dir: a stopped pretrained stage is in {run / 'pretrained.incomplete'}; continue it with --resume "
        "(output.resume=true), or set output.overwrite=true to start it over"
    )
    assert latest_complete(checkpoints) == checkpoints / f"checkpoint-{step}"

    # resumed, and stopped again with a double Ctrl-C: the second signal stops at once, in one line
    resumed = hfadapt(*shlex.split(command)[1:], together=True)
    said = read_until(resumed, "'loss'")  # training again (Trainer prints its logs every 10 steps)
    assert f"pretraining: resuming from {checkpoints / f'checkpoint-{step}'}" in said
    resumed.send_signal(signal.SIGINT)
    said += read_until(resumed, "received SIGINT: saving a checkpoint after this step")
    resumed.send_signal(signal.SIGINT)
    said += resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 130, said[-3000:]
    assert "Traceback" not in said and "KeyboardInterrupt" not in said, said[-3000:]
    assert said.rstrip().splitlines()[-1] == (
        f"hfadapt: interrupted; checkpoints saved so far are kept (continue with: {command})"
    )

    finished = hfadapt(*shlex.split(command)[1:])
    _, err = finished.communicate(timeout=600)
    assert finished.returncode == 0, err[-3000:]
    report = yaml.safe_load((run / "pretrained" / "pretrain.json").read_text())
    assert report["resumed_from"].startswith("checkpoint-") and report["steps"] == 60

    # the same recipe without a stop, from the same tokenizer (training one is not repeatable run to run)
    reference = tmp_path / "reference"
    reference.mkdir()
    shutil.copytree(run / "tokenizer", reference / "tokenizer")
    retrain(load_recipe(raw=raw, overrides=[f"output.dir={reference}"]))
    resumed_weights, reference_weights = weights(run / "pretrained"), weights(reference / "pretrained")
    assert resumed_weights.keys() == reference_weights.keys()
    for name, tensor in resumed_weights.items():  # bitwise equal here; the tolerance allows other thread counts
        torch.testing.assert_close(tensor, reference_weights[name], rtol=1e-5, atol=1e-6, msg=name)


class SignalAt(TrainerCallback):
    """Sends this process `sig` as step `step` begins, as a user's Ctrl-C or a cluster's SIGTERM would."""

    def __init__(self, step: int, sig: int = signal.SIGINT):
        self.step, self.sig = step, sig

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.step:
            os.kill(os.getpid(), self.sig)


@pytest.mark.integration
def test_a_search_trial_stopped_by_sigterm_continues_from_its_checkpoint(tiny_recipe, tmp_path, monkeypatch):
    from hfadapt.training import hparam_search as module  # where search looks up `finetune`

    real, calls = module.finetune, []

    def finetune(recipe, overrides=()):
        name = Path(recipe.output.dir).name
        calls.append((name, list(overrides)))
        stop = [SignalAt(7, signal.SIGTERM)] if name == "trial-001" and not overrides else []
        return real(recipe, overrides, callbacks=stop)

    monkeypatch.setattr(module, "finetune", finetune)
    raw = tiny_recipe(training={"max_steps": 20, "eval_strategy": "no", "save_strategy": "no"})
    space = ["training.learning_rate=1e-3..3e-2:log"]
    with pytest.raises(Interrupted, match=r"stopped by SIGTERM at step 7, after saving a checkpoint in .*trial-001"):
        search(load_recipe(raw=raw), space, 2)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handed back

    search(load_recipe(raw=raw, overrides=["output.resume=true"]), space, 2)
    # trial-000 finished and is kept; trial-001 continues from the checkpoint its stop saved
    assert calls == [("trial-000", []), ("trial-001", []), ("trial-001", ["output.resume=true"])]
    metrics = json.loads((tmp_path / "run" / "trial-001" / "metrics.json").read_text())
    assert metrics["resumed_from"] == "checkpoint-7" and metrics["train"]["epoch"] > 0


def test_sigterm_while_the_tokenizer_trains_stops_at_once_and_writes_nothing(tiny_checkpoint, tmp_path, monkeypatch):
    from hfadapt.retraining import stages

    def train_tokenizer(*args, **kwargs):  # a long training, stopped by a signal
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        pytest.fail("the signal did not stop the tokenizer stage")

    monkeypatch.setattr(stages, "train_tokenizer", train_tokenizer)
    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=2)
    with pytest.raises(Interrupted) as stopped:
        retrain(load_recipe(raw=raw), until="tokenizer")
    assert str(stopped.value) == (
        "stopped by SIGTERM during retraining, outside a training step (finished stages and saved checkpoints "
        "are kept); continue with --resume"
    )
    assert not (tmp_path / "run").exists() and not (tmp_path / "run" / "tokenizer.incomplete").exists()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handed back


@pytest.mark.integration
def test_a_stage_stopped_by_its_time_limit_continues_in_pieces_to_the_weights_of_an_uninterrupted_run(
    tiny_checkpoint, tmp_path
):
    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=2)
    raw["pretrain"]["training"] = {**PRETRAIN, "max_steps": 20}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    run = Path(raw["output"]["dir"])
    checkpoints = run / "pretrained.incomplete" / "checkpoints"

    # a limit long past by the first step: each piece trains one step, saves it and stops
    process = hfadapt("pretrain", str(tmp_path / "r.yaml"), "--stop-after-minutes", "1e-6")
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert (
        f"hfadapt: stopped: stopped at the time limit of 1e-06 minutes (output.stop_after_minutes) at step 1, "
        f"after saving a checkpoint in {checkpoints}; continue with --resume" in err
    ), err[-3000:]
    assert f"hfadapt: to continue: hfadapt pretrain {tmp_path / 'r.yaml'} --stop-after-minutes 1e-6 --resume" in err
    assert latest_complete(checkpoints) == checkpoints / "checkpoint-1"

    with pytest.raises(Interrupted, match=r"at the time limit of 1e-06 minutes .* at step 2,"):
        retrain(
            load_recipe(raw=raw, overrides=["output.resume=true", "output.stop_after_minutes=1e-6"]), until="pretrained"
        )
    assert latest_complete(checkpoints) == checkpoints / "checkpoint-2"
    done = retrain(
        load_recipe(raw=raw, overrides=["output.resume=true", "output.stop_after_minutes=60"]), until="pretrained"
    )
    assert done["pretrained"]["resumed_from"] == "checkpoint-2" and done["pretrained"]["steps"] == 20

    reference = tmp_path / "reference"
    reference.mkdir()
    shutil.copytree(run / "tokenizer", reference / "tokenizer")
    retrain(load_recipe(raw=raw, overrides=[f"output.dir={reference}"]), until="pretrained")
    pieces, whole = weights(run / "pretrained"), weights(reference / "pretrained")
    assert pieces.keys() == whole.keys()
    for name, tensor in pieces.items():
        torch.testing.assert_close(tensor, whole[name], rtol=1e-5, atol=1e-6, msg=name)


def test_a_time_limit_must_be_a_positive_number_of_minutes(tiny_recipe):
    from hfadapt.errors import RecipeError

    for bad, said in [
        ("0", "0 is not a positive number of minutes"),
        ("-5", "-5 is not a positive number of minutes"),
    ]:
        with pytest.raises(RecipeError, match=rf"output.stop_after_minutes: {re.escape(said)}"):
            load_recipe(raw=tiny_recipe(), overrides=[f"output.stop_after_minutes={bad}"])
    with pytest.raises(RecipeError, match=r"output.stop_after_minutes: must be a finite number, got inf"):
        load_recipe(raw=tiny_recipe(), overrides=["output.stop_after_minutes=.inf"])
