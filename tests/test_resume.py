"""Runs that survive: resume after SIGKILL or SIGTERM equals an uninterrupted run; same seed, same metrics."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import wait_for_checkpoint
from safetensors.torch import load_file

from hfadapt import finetune, load_recipe
from hfadapt.errors import HfadaptError

STEPS = {
    "max_steps": 120,
    "save_strategy": "steps",
    "save_steps": 10,
    "eval_strategy": "no",
    "logging_steps": 10,
    "per_device_train_batch_size": 8,
}
TIMING = {
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "validation_runtime",
    "validation_samples_per_second",
    # fmt: skip
    "validation_steps_per_second",
    "test_runtime",
    "test_samples_per_second",
    "test_steps_per_second",
}


def start(recipe_path: Path, *extra) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "hfadapt", "finetune", str(recipe_path), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stripped(metrics: dict) -> dict:
    return {split: {k: v for k, v in metrics[split].items() if k not in TIMING} for split in ("validation", "test")}


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert left.keys() == right.keys()
    for name in left:
        torch.testing.assert_close(left[name], right[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.integration
@pytest.mark.parametrize("adapt", [{}, {"method": "lora", "lora": {"r": 4, "lora_alpha": 8}}], ids=["full", "lora"])
def test_resume_after_sigkill_equals_an_uninterrupted_run(adapt, tiny_recipe, tmp_path):
    raw = tiny_recipe(training=STEPS, adapt=adapt) if adapt else tiny_recipe(training=STEPS)
    reference = finetune(load_recipe(raw=raw, overrides=[f"output.dir={tmp_path / 'reference'}"])).metrics

    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    run = Path(raw["output"]["dir"])
    process = start(tmp_path / "r.yaml")
    wait_for_checkpoint(run.with_name(run.name + ".incomplete") / "checkpoints", process, timeout=240)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not run.exists(), "a killed run leaves no half-written output folder"
    # a half-written checkpoint (the process died while saving) is never resumed from
    broken = run.with_name(run.name + ".incomplete") / "checkpoints" / "checkpoint-119"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"cut off")

    with pytest.raises(HfadaptError, match="a stopped run of .* is in .*; continue it with --resume"):
        finetune(load_recipe(raw=raw))
    from hfadapt.runs.resume import latest_complete, totals

    before = totals(latest_complete(run.with_name(run.name + ".incomplete") / "checkpoints"))
    resumed = finetune(load_recipe(raw=raw, overrides=["output.resume=true"])).metrics
    assert resumed["resumed_from"] not in (None, "checkpoint-119")
    # the whole run's training loss and compute time, not the resumed part's alone
    assert resumed["train"]["train_loss"] == pytest.approx(reference["train"]["train_loss"], rel=1e-4)
    assert resumed["compute_seconds"] > before["compute_seconds"] > 0
    assert int(resumed["resumed_from"].split("-")[1]) < 120
    for split in ("validation", "test"):  # the same metrics, within floating-point tolerance
        assert stripped(resumed)[split] == pytest.approx(stripped(reference)[split], rel=1e-4)
    assert_same_weights(run, tmp_path / "reference")


@pytest.mark.integration
def test_sigterm_saves_a_checkpoint_and_exits_130(tiny_recipe, tmp_path):
    raw = tiny_recipe(training={**STEPS, "max_steps": 200, "save_steps": 10000})
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    run = Path(raw["output"]["dir"])
    process = start(tmp_path / "r.yaml")
    for line in process.stdout:  # the Trainer prints a line of logs every 10 steps
        if "'loss'" in line:
            break
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert "hfadapt: stopped: stopped by SIGTERM at step" in err and "continue with --resume" in err
    logs = run.with_name(run.name + ".incomplete") / "checkpoints"
    saved = [c for c in logs.glob("checkpoint-*") if (c / "trainer_state.json").exists()]
    assert len(saved) == 1 and 10 <= int(saved[0].name.split("-")[1]) < 200
    resumed = finetune(load_recipe(raw=raw, overrides=["output.resume=true"])).metrics  # the interrupted run continues
    assert resumed["resumed_from"] == saved[0].name and (run / "model.safetensors").exists()


def test_resume_with_nothing_to_resume_starts_the_run(tiny_recipe, caplog):
    raw = tiny_recipe(training={**STEPS, "max_steps": 2})
    run = finetune(load_recipe(raw=raw, overrides=["output.resume=true"]))  # the same command runs a job in pieces
    assert run.metrics["resumed_from"] is None and (run.run_dir / "model.safetensors").exists()
    assert "--resume: no checkpoint in" in caplog.text and "starting the run" in caplog.text


def test_resume_refusals(tiny_recipe, tmp_path):
    raw = tiny_recipe(training=STEPS)
    work = Path(raw["output"]["dir"] + ".incomplete")
    (work / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    (work / "checkpoints" / "checkpoint-10" / "trainer_state.json").write_text("{}")
    other = tiny_recipe(training=STEPS, model={"name_or_path": "builtin:minilm"})
    (work / "recipe.yaml").write_text(yaml.safe_dump(other))
    with pytest.raises(
        HfadaptError,
        match=r"comes from a different recipe \(model changed\); resume with the recipe that " r"started it",
    ):
        finetune(load_recipe(raw=raw, overrides=["output.resume=true"]))


@pytest.mark.integration
def test_same_seed_same_metrics_and_a_manifest(tiny_recipe, tmp_path):
    first = finetune(load_recipe(raw=tiny_recipe(), overrides=[f"output.dir={tmp_path / 'a'}"])).metrics
    second = finetune(load_recipe(raw=tiny_recipe(), overrides=[f"output.dir={tmp_path / 'b'}"])).metrics
    assert stripped(first) == stripped(second)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["seed"] == 42 and manifest["packages"]["transformers"] and manifest["accelerate"]["processes"] == 1
    assert (
        manifest["data"]["fingerprint"]
        == json.loads((tmp_path / "b" / "manifest.json").read_text())["data"]["fingerprint"]
    )
    assert len(manifest["data"]["fingerprint"]) == 64
