"""Pushing runs to a local server that speaks the Hub's HTTP API, with the real huggingface_hub client.

The client runs in subprocesses: huggingface_hub fixes its endpoint and offline mode at import,
and this test process is offline.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import HubServer

from hfadapt import finetune, load_recipe
from hfadapt.data.splits import load_splits

TOKEN = "hf_secretTestToken0123456789abcdef"


@pytest.fixture
def hub(tmp_path):
    with HubServer(TOKEN) as server:
        yield server


def run(args, env, cwd=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def push(hub, run_dir, repo_id, tmp_path, *extra, token=True, env=None):
    env = env or hub.client_env(tmp_path / "hf_home", token=token)
    return run(["-m", "hfadapt", "push", str(run_dir), "--repo-id", repo_id, *extra], env)


ACCURACY_FROM_HUB = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
repo, kind, base, data_path = sys.argv[1:5]
if kind == "adapter":
    from peft import PeftModel
    names = json.load(open(data_path))["labels"]
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(names))
    model = PeftModel.from_pretrained(model, repo)
    tokenizer = AutoTokenizer.from_pretrained(repo)
else:
    model = AutoModelForSequenceClassification.from_pretrained(repo)
    tokenizer = AutoTokenizer.from_pretrained(repo)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
model.eval()
test = json.load(open(data_path))
with torch.no_grad():
    logits = model(**tokenizer(test["texts"], padding=True, truncation=True, max_length=32, return_tensors="pt")).logits
predicted = [names[i] for i in logits.argmax(-1).tolist()]
print(json.dumps({"accuracy": sum(p == g for p, g in zip(predicted, test["gold"])) / len(predicted), "labels": names}))
"""


def write_test_split(recipe, path):
    split = load_splits(recipe.data, recipe.task)
    names = split.label_names
    test = split.splits["test"]
    path.write_text(
        json.dumps({"texts": list(test["text"]), "gold": [names[i] for i in test["label"]], "labels": names})
    )
    return path


@pytest.mark.integration
@pytest.mark.parametrize("method", ["full", "lora_merged", "lora_adapter"])
def test_pushed_run_loads_back_and_reproduces_test_accuracy(method, hub, tiny_recipe, tiny_checkpoint, tmp_path):
    adapt = {
        "full": {},
        "lora_merged": {"method": "lora", "lora": {"r": 4, "lora_alpha": 8}},
        "lora_adapter": {"method": "lora", "lora": {"r": 4, "lora_alpha": 8}, "merge_lora": False},
    }[method]
    raw = tiny_recipe(adapt=adapt) if adapt else tiny_recipe()
    raw["training"]["learning_rate"] = 2.0e-2 if adapt else 5.0e-3
    recipe = load_recipe(raw=raw)
    results = finetune(recipe).metrics
    done = push(hub, recipe.output.dir, "test-user/tiny", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "commit" in done.stdout
    files = hub.repos["test-user/tiny"]["main"]
    assert {"README.md", "recipe.yaml", "training_curves.png", "tokenizer.json"} <= set(files)
    assert not any(p.startswith("checkpoints/") for p in files)
    if method == "lora_adapter":
        config = json.loads(files["adapter_config.json"])
        assert config["base_model_name_or_path"] == str(tiny_checkpoint)
    if method == "lora_merged":
        assert "adapter/adapter_config.json" in files and "model.safetensors" in files
    data = write_test_split(recipe, tmp_path / "test.json")
    loaded = run(
        [
            "-c",
            ACCURACY_FROM_HUB,
            "test-user/tiny",
            "adapter" if method == "lora_adapter" else "model",
            str(tiny_checkpoint),
            str(data),
        ],
        hub.client_env(tmp_path / "fresh_home"),
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    answer = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert answer["accuracy"] == pytest.approx(results["test"]["test_accuracy"])
    assert answer["labels"] == ["negative", "positive"]


@pytest.mark.integration
def test_card_on_the_hub_parses_with_model_index(hub, tiny_recipe, tmp_path):
    from huggingface_hub import ModelCard

    recipe = load_recipe(raw=tiny_recipe(training={"num_train_epochs": 1}))
    results = finetune(recipe).metrics
    assert push(hub, recipe.output.dir, "test-user/card", tmp_path).returncode == 0
    card = ModelCard(hub.repos["test-user/card"]["main"]["README.md"].decode())
    accuracy = [r for r in card.data.eval_results if r.metric_type == "accuracy"][0]
    assert accuracy.metric_value == round(results["test"]["test_accuracy"], 4)
    assert accuracy.dataset_split == "test"


@pytest.mark.integration
def test_the_token_is_written_and_logged_nowhere(hub, tiny_recipe, tmp_path, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    recipe = load_recipe(raw=tiny_recipe(training={"num_train_epochs": 1}))
    finetune(recipe)
    done = push(hub, recipe.output.dir, "test-user/secret", tmp_path, "--private")
    assert done.returncode == 0, done.stderr
    assert any(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.requests)  # it was used
    places = [done.stdout, done.stderr, caplog.text]
    places += [p.read_bytes().decode("utf-8", "replace") for p in Path(recipe.output.dir).rglob("*") if p.is_file()]
    places += [content.decode("utf-8", "replace") for content in hub.repos["test-user/secret"]["main"].values()]
    assert places and all(TOKEN not in text for text in places)
    assert hub.repos["test-user/secret"].private


@pytest.mark.integration
def test_push_failures_are_clear_and_leave_the_run_intact(hub, tiny_recipe, tmp_path):
    recipe = load_recipe(raw=tiny_recipe(training={"num_train_epochs": 1}))
    finetune(recipe)
    run_dir = Path(recipe.output.dir)
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    no_token = push(hub, run_dir, "test-user/x", tmp_path, token=False)
    assert (
        no_token.returncode == 2
        and ("hfadapt: error: no Hugging Face token: set HF_TOKEN, or run `hf auth login`, before pushing")
        in no_token.stderr
    )

    bad_id = push(hub, run_dir, "not a//valid id", tmp_path)
    assert bad_id.returncode == 2 and "hub.repo_id: 'not a//valid id' is not a valid repo id" in bad_id.stderr

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env = {**hub.client_env(tmp_path / "hf_home"), "HF_ENDPOINT": f"http://127.0.0.1:{closed}"}
    unreachable = push(hub, run_dir, "test-user/x", tmp_path, env=env)
    assert unreachable.returncode == 2 and f"cannot reach http://127.0.0.1:{closed}" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr

    hub.fail_next_commit = 500
    broken = push(hub, run_dir, "test-user/x", tmp_path)
    assert (
        broken.returncode == 2
        and "push to test-user/x failed (HTTP 500" in broken.stderr
        and "run the same push again" in broken.stderr
    )
    retried = push(hub, run_dir, "test-user/x", tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert "model.safetensors" in hub.repos["test-user/x"]["main"]
    after = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before


def test_a_recipe_that_pushes_fails_before_training_without_a_token(tiny_recipe, tmp_path, monkeypatch):
    from hfadapt.errors import HfadaptError

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_home"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "empty_home" / "token"))
    recipe = load_recipe(raw=tiny_recipe(hub={"repo_id": "test-user/model"}))
    with pytest.raises(HfadaptError, match="no Hugging Face token"):
        finetune(recipe)
    assert not Path(recipe.output.dir).exists()


@pytest.mark.integration
def test_a_recipe_with_a_hub_section_pushes_when_training_ends(hub, tiny_recipe, tmp_path):
    import yaml

    raw = tiny_recipe(training={"num_train_epochs": 1}, hub={"repo_id": "test-user/from-recipe", "private": True})
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    done = run(["-m", "hfadapt", "finetune", str(tmp_path / "r.yaml")], hub.client_env(tmp_path / "hf_home"))
    assert done.returncode == 0, done.stderr[-3000:]
    pushed = hub.repos["test-user/from-recipe"]
    assert pushed.private and {"model.safetensors", "README.md", "recipe.yaml"} <= set(pushed["main"])
    assert TOKEN not in pushed["main"]["recipe.yaml"].decode()
