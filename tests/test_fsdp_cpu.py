"""FSDP (recipes/accelerate/fsdp.yaml) under 2 CPU processes over gloo, against the same run under DDP; and
DeepSpeed's configs on the CPU: refused under ACCELERATE_USE_CPU=1, trained on DeepSpeed's CPU accelerator.

`accelerate launch --config_file recipes/accelerate/fsdp.yaml` goes through torchrun; ACCELERATE_USE_CPU=1
keeps its workers on the CPU. Slow: run them with
    .venv/bin/python -m pytest tests/test_fsdp_cpu.py -m slow
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import free_port, run_workers, sentiment_rows, write_csv

REPO = Path(__file__).parent.parent
ACCELERATE = Path(sys.executable).parent / "accelerate"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def launch(
    side: Path, config: str, options: list[str], *command: str, cpu: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Two CPU processes under `accelerate launch` with recipes/accelerate/CONFIG, each recording what it trained;
    `cpu`: the variables that keep them on the CPU (Accelerate's own switch by default)."""
    env = {**os.environ, **(cpu or {"ACCELERATE_USE_CPU": "1"}), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launcher = [str(ACCELERATE), "launch", "--config_file", str(REPO / "recipes" / "accelerate" / config)]
    launcher += ["--num_processes", "2", "--main_process_port", str(free_port()), "--mixed_precision", "no", *options]
    return run_workers(launcher, side, command, env, timeout=900)


def recipe_file(tiny_recipe, tmp_path: Path, adapt: dict) -> Path:
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(401, seed=3))
    raw = tiny_recipe(data={"source": str(data)}, adapt=adapt, training={"num_train_epochs": 1})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_fsdp_as_shipped_is_refused_on_the_cpu(tiny_recipe, tmp_path):
    recipe = recipe_file(tiny_recipe, tmp_path, {"method": "full"})
    done, records = launch(tmp_path / "ranks", "fsdp.yaml", [], "finetune", str(recipe))
    assert done.returncode != 0 and records == []
    assert "FSDP parameter initialization with `sync_module_states=True` is not supported on cpu." in done.stderr


NEEDS_DEEPSPEED = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None,
    reason="accelerate launch needs deepspeed to start a DeepSpeed config (pip install deepspeed)",
)


@NEEDS_DEEPSPEED
@pytest.mark.parametrize("config", ["deepspeed_zero2.yaml", "deepspeed_zero3.yaml"])
def test_deepspeed_is_refused_on_the_cpu(config, tiny_recipe, tmp_path):
    # Without the refusal, Accelerate's CPU switch trained with DDP and saved the model, DeepSpeed left out
    # (docs/devices.md); every worker now stops before reading the recipe.
    recipe = recipe_file(tiny_recipe, tmp_path, {"method": "full"})
    done, records = launch(tmp_path / "ranks", config, [], "finetune", str(recipe))
    assert done.returncode != 0 and records == [] and not (tmp_path / "run").exists()
    refusal = "hfadapt: error: this process was started from a DeepSpeed config with ACCELERATE_USE_CPU=1,"
    assert done.stderr.count(refusal) == 2, done.stderr[-3000:]


@NEEDS_DEEPSPEED
@pytest.mark.parametrize(
    "config, training",
    [("deepspeed_zero2.yaml", {"bf16": False}), ("deepspeed_zero3.yaml", {})],
    ids=["zero2", "zero3"],
)
def test_deepspeed_trains_on_its_cpu_accelerator(config, training, tiny_recipe, tmp_path):
    """DS_ACCELERATOR=cpu: DeepSpeed itself runs the two processes; the saved model is whole and loads anywhere."""
    from transformers import pipeline

    from hfadapt import evaluate

    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(401, seed=3))
    training = {"num_train_epochs": 1, **training}
    raw = tiny_recipe(data={"source": str(data)}, adapt={"method": "full"}, training=training)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    done, records = launch(tmp_path / "ranks", config, [], "finetune", str(recipe), cpu={"DS_ACCELERATOR": "cpu"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert [(r["world_size"], r["wrapped"]) for r in records] == [(2, "DeepSpeedEngine")] * 2
    if config == "deepspeed_zero2.yaml":  # under ZeRO-3 each rank holds its own part of the weights
        assert records[0]["digest"] == records[1]["digest"]
    run = tmp_path / "run"
    saved = json.loads((run / "metrics.json").read_text())["test"]
    # every score from predictions is exact; the loss is not under 2 processes (docs/devices.md)
    timing = ("test_loss", "test_runtime", "test_samples_per_second", "test_steps_per_second")
    scores = [k for k in saved if k.startswith("test_") and k not in timing]
    again = evaluate(run)
    assert len(scores) == 8 and {k: again[k] for k in scores} == pytest.approx({k: saved[k] for k in scores}, abs=1e-4)
    [label] = pipeline("text-classification", model=str(run))(["a great film"])
    assert label["label"] in ("negative", "positive")


# With fsdp_sync_module_states off, FSDP v1 and v2 both start, but on the CPU Accelerate wraps the
# model in DistributedDataParallel, not FSDP: nothing is sharded. The test pins that fallback.
FSDP = {
    "fsdp1": ["--fsdp_sync_module_states", "false"],
    "fsdp2": ["--fsdp_version", "2", "--fsdp_reshard_after_forward", "true", "--fsdp_sync_module_states", "false"],
}
ADAPT = {
    "full": {"method": "full"},
    "lora": {"method": "lora", "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]}},
}


@pytest.mark.parametrize("adapt", ADAPT, ids=list(ADAPT))
@pytest.mark.parametrize("fsdp", FSDP, ids=list(FSDP))
def test_fsdp_on_the_cpu_falls_back_to_ddp(fsdp, adapt, tiny_recipe, tmp_path):
    recipe = recipe_file(tiny_recipe, tmp_path, ADAPT[adapt])
    done, records = launch(tmp_path / "ranks", "fsdp.yaml", FSDP[fsdp], "finetune", str(recipe))
    assert done.returncode == 0, done.stderr[-3000:]
    assert [(r["world_size"], r["wrapped"]) for r in records] == [(2, "DistributedDataParallel")] * 2
    assert records[0]["digest"] == records[1]["digest"]
