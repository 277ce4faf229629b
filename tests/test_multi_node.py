"""Two machines simulated on one: two `accelerate launch` nodes (machine ranks 0 and 1) on loopback, fine-tuning
and retraining, with one shared cache or a cache per node, and a node that dies or hangs.

Each node is its own `accelerate launch --config_file recipes/accelerate/multi_node.yaml` with one
CPU process, gloo between them; ACCELERATE_USE_CPU=1 keeps the workers on the CPU (the config's
MULTI_GPU path is the one that starts torchrun with --nnodes 2; `--cpu` alone starts one
unconnected process per node). Slow: run them with
    .venv/bin/python -m pytest tests/test_multi_node.py -m slow
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import chinese_retraining, free_port, sentiment_rows, write_csv

REPO = Path(__file__).parent.parent
ACCELERATE = Path(sys.executable).parent / "accelerate"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def start_nodes(side: Path, command: list[str], caches: list[Path], port: int | None = None) -> list[subprocess.Popen]:
    """Start machine ranks 0 and 1, each an `accelerate launch` of tests/dist_worker.py with its own cache folder."""
    side.mkdir(exist_ok=True)
    port = port or free_port()
    nodes = []
    for rank, cache in enumerate(caches):
        env = {
            **os.environ,
            "ACCELERATE_USE_CPU": "1",
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "HFADAPT_CACHE": str(cache),
        }
        launch = [
            str(ACCELERATE),
            "launch",
            "--config_file",
            str(REPO / "recipes" / "accelerate" / "multi_node.yaml"),
            "--num_processes",
            "2",
            "--machine_rank",
            str(rank),
            "--main_process_ip",
            "127.0.0.1",
            "--main_process_port",
            str(port),
            "--mixed_precision",
            "no",
        ]
        nodes.append(
            subprocess.Popen(
                [*launch, str(REPO / "tests" / "dist_worker.py"), str(side), *command],
                stdout=(side / f"node{rank}.out").open("w"),
                stderr=(side / f"node{rank}.err").open("w"),
                text=True,
                env=env,
                cwd=REPO,
                start_new_session=True,  # a node is killed as a whole: its launcher and its worker
            )
        )
    return nodes


def finish(side: Path, nodes: list[subprocess.Popen], timeout: float = 900) -> list[tuple[int, str, str]]:
    """Each node's exit status, stdout and stderr."""
    codes = [n.wait(timeout=timeout) for n in nodes]
    return [(code, *((side / f"node{r}.{s}").read_text() for s in ("out", "err"))) for r, code in enumerate(codes)]


def records(side: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(side.glob("*.json"))]


def run_nodes(side: Path, command: list[str], caches: list[Path]) -> tuple[list[tuple[int, str, str]], list[dict]]:
    ended = finish(side, start_nodes(side, command, caches))
    for code, out, err in ended:
        assert code == 0, out[-3000:] + err[-3000:]
    return ended, records(side)


def finetune_recipe(tiny_recipe, tmp_path: Path, adapt: dict, **training) -> Path:
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(401, seed=3))
    raw = tiny_recipe(
        data={"source": str(data)},
        adapt=adapt,
        training={"num_train_epochs": 1, "per_device_eval_batch_size": 8, **training},
    )
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def prepared(cache: Path) -> dict[str, str]:
    """Each prepared folder in CACHE (by name), with a digest of the files it holds."""
    import hashlib

    folders = {}
    for folder in sorted((cache / "prepared").glob("*-*")):
        if folder.is_dir():
            digest = hashlib.sha256()
            for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "prepared.json"):
                digest.update(file.relative_to(folder).as_posix().encode() + file.read_bytes())
            folders[folder.name] = digest.hexdigest()
    return folders


def caches(layout: str, cache: Path, tmp_path: Path) -> list[Path]:
    """Each node's HFADAPT_CACHE: one folder both see (shared), or node 1 with a folder of its own (per_node)."""
    return [cache, cache] if layout == "shared" else [cache, tmp_path / "node1-cache"]


ADAPT = {
    "full": {"method": "full"},
    "lora": {"method": "lora", "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]}},
}


@pytest.mark.parametrize("adapt, layout", [("full", "shared"), ("lora", "shared"), ("full", "per_node")])
def test_finetune_on_two_nodes(adapt, layout, tiny_recipe, tmp_path, prepared_cache):
    from hfadapt import evaluate

    recipe = finetune_recipe(tiny_recipe, tmp_path, ADAPT[adapt])
    folders = caches(layout, prepared_cache, tmp_path)
    ended, records = run_nodes(tmp_path / "ranks", ["finetune", str(recipe)], folders)

    # one process group over both nodes; both ranks end with the same weights
    assert [(r["world_size"], r["wrapped"]) for r in records] == [(2, "DistributedDataParallel")] * 2
    assert records[0]["digest"] == records[1]["digest"]
    made = prepared(prepared_cache)
    assert [name.split("-")[0] for name in made] == ["finetune"]
    if layout == "shared":
        # global rank 0 tokenized, rank 1 (the other node) loaded its folder
        assert [r["tokenized"] for r in records] == [1, 0]
    else:
        # node 1 does not see node 0's cache: it tokenized into its own, after node 0, the same folder to the byte
        assert [r["tokenized"] for r in records] == [1, 1]
        assert prepared(folders[1]) == made
    # only global rank 0 wrote: one finished run folder, one result line, from node 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("run")) == ["run"]
    assert [out.count("test accuracy:") for _, out, _ in ended] == [1, 0]
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    alone = evaluate(run, split="test")
    scored = [k for k in alone if k.endswith(("accuracy", "_macro", "_micro", "correlation"))]
    assert len(scored) == 8 and all(alone[k] == metrics["test"][k] for k in scored)
    assert json.loads((run / "manifest.json").read_text())["accelerate"]["processes"] == 2


def wait_for(condition, nodes: list[subprocess.Popen], seconds: float) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, f"not reached in {seconds} s"
        assert all(n.poll() is None for n in nodes), "a node ended first"
        time.sleep(0.2)


def kill_node(node: subprocess.Popen) -> None:
    """Kill a node as a machine dies: its launcher and every process under it (torchrun starts each worker
    in a session of its own, so killing the launcher's group alone leaves the worker training)."""
    import psutil

    try:
        processes = [psutil.Process(node.pid), *psutil.Process(node.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    node.wait()


def saved_steps(folder: Path) -> int:
    """The step of the newest checkpoint under FOLDER whose trainer state is written (0 if none)."""
    return max((int(p.parent.name.split("-")[1]) for p in folder.rglob("checkpoint-*/trainer_state.json")), default=0)


def test_a_killed_node_stops_the_other_and_the_run_resumes(tiny_recipe, tmp_path, prepared_cache):
    recipe = finetune_recipe(
        tiny_recipe, tmp_path, ADAPT["full"], max_steps=1000, save_strategy="steps", save_steps=100, ddp_timeout=60
    )
    side = tmp_path / "killed"
    nodes = start_nodes(side, ["finetune", str(recipe)], [prepared_cache] * 2)
    wait_for(lambda: saved_steps(tmp_path) >= 200, nodes, 600)
    kill_node(nodes[1])
    killed = time.monotonic()
    try:
        code = nodes[0].wait(timeout=200)
    finally:
        kill_node(nodes[0])
    seconds = time.monotonic() - killed
    err = (side / "node0.err").read_text()
    # the surviving node fails at its next collective, with gloo's message, well before ddp_timeout (60 s)
    assert code != 0 and seconds < 30, (code, seconds)
    assert "Connection reset by peer" in err or "Connection closed by peer" in err, err[-2000:]
    print(f"node 0 exited {seconds:.1f} s after node 1 was killed")

    # both nodes start again with --resume: they continue from the newest complete checkpoint, in step
    saved = saved_steps(tmp_path)
    again = tmp_path / "resumed"
    run_nodes(again, ["finetune", str(recipe), "--resume"], [prepared_cache] * 2)
    resumed = records(again)
    assert [(r["steps"], r["world_size"]) for r in resumed] == [(1000, 2)] * 2
    assert resumed[0]["digest"] == resumed[1]["digest"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["resumed_from"] == f"checkpoint-{saved}"


@pytest.mark.parametrize("layout", ["shared", "per_node"])
def test_retraining_stages_on_two_nodes(layout, tiny_checkpoint, tmp_path, prepared_cache):
    from hfadapt import evaluate

    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=4)
    raw["training"].update(per_device_eval_batch_size=8, ddp_timeout=600)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    folders = caches(layout, prepared_cache, tmp_path)
    ended, records = run_nodes(tmp_path / "ranks", ["retrain", str(tmp_path / "r.yaml")], folders)

    # each rank recorded pretraining, then fine-tuning: one process group, 4 steps each
    assert [(r["world_size"], r["wrapped"], r["steps"]) for r in records] == [(2, "DistributedDataParallel", 4)] * 4
    # the group, started by the recipe's check, waits training.ddp_timeout in both stages
    assert [r["timeout"] for r in records] == [600] * 4
    pretrained0, finetuned0, pretrained1, finetuned1 = records
    # both nodes end each stage with the same weights
    assert pretrained0["digest"] == pretrained1["digest"] and finetuned0["digest"] == finetuned1["digest"]
    # global rank 0 trained the tokenizer into the run folder; the other node read it from there
    assert [finetuned0["tokenizers"], finetuned1["tokenizers"]] == [1, 0]
    assert [err.count("tokenizer fit (new vs old)") for _, _, err in ended] == [1, 0]
    made = prepared(prepared_cache)
    assert sorted(name.split("-")[0] for name in made) == ["finetune", "pretrain"]
    if layout == "shared":
        # rank 0 packed the corpus (train and validation) and tokenized the data; node 1 loaded both folders
        assert [(r["packed"], r["tokenized"]) for r in (finetuned0, finetuned1)] == [(2, 1), (0, 0)]
    else:
        # node 1 did not see node 0's cache: it made its own, under the same keys (the tokenizer's fingerprint
        # is one of them) and with the same bytes
        assert [(r["packed"], r["tokenized"]) for r in (finetuned0, finetuned1)] == [(2, 1), (2, 1)]
        assert prepared(folders[1]) == made
    # only global rank 0 wrote: one run folder with its three stages, one result line, from node 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("run")) == ["run"]
    run = tmp_path / "run"
    stages = ["finetuned", "pretrained", "recipe.yaml", "results.json", "tokenizer"]
    assert sorted(p.name for p in run.iterdir()) == stages
    assert [out.count("test accuracy:") for _, out, _ in ended] == [1, 0]
    metrics = json.loads((run / "finetuned" / "metrics.json").read_text())
    alone = evaluate(run / "finetuned", split="test")
    scored = [k for k in alone if k.endswith(("accuracy", "_macro", "_micro", "correlation"))]
    assert len(scored) == 8 and all(alone[k] == metrics["test"][k] for k in scored)


def test_a_hung_node_stops_the_other_at_ddp_timeout(tiny_recipe, tmp_path, prepared_cache):
    import psutil

    recipe = finetune_recipe(
        tiny_recipe, tmp_path, ADAPT["full"], max_steps=1000, save_strategy="steps", save_steps=100, ddp_timeout=20
    )
    side = tmp_path / "hung"
    nodes = start_nodes(side, ["finetune", str(recipe)], [prepared_cache] * 2)
    try:
        wait_for(lambda: saved_steps(tmp_path) >= 100, nodes, 600)
        # node 1 hangs as a machine does: every process stops (SIGSTOP), its connections stay open
        for process in [psutil.Process(nodes[1].pid), *psutil.Process(nodes[1].pid).children(recursive=True)]:
            process.suspend()
        hung = time.monotonic()
        try:
            code = nodes[0].wait(timeout=90)
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.monotonic() - hung
    finally:
        for node in nodes:
            kill_node(node)
    err = (side / "node0.err").read_text()
    # node 0 fails at the collective it waits in once training.ddp_timeout has passed (without hfadapt starting the
    # process group with it, torch's 30 minutes: it had not failed 300 s later), with one of gloo's timeout messages
    assert code not in (None, 0) and 15 < seconds < 60, (code, seconds)
    timeouts = ("Timed out waiting 20000ms for recv operation", "Timed out waiting 20000ms for send operation")
    timeouts += ("Application timeout caused pair closure",)
    assert any(timeout in err for timeout in timeouts), err[-2000:]
    print(f"node 0 exited {seconds:.1f} s after node 1 hung")
