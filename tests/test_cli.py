"""The CLI: every bad input gets one clear message and exit code 2, with nothing written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import sentiment_rows, write_csv

import hfadapt
from hfadapt.cli import main


def write_recipe(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def run_cli(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hfadapt", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.integration
def test_bad_recipe_exits_2_with_every_problem_and_no_traceback(tiny_recipe, tmp_path):
    raw = tiny_recipe(adapt={"metod": "lora"})
    raw["training"]["learning_rate"] = "5e-4"
    result = run_cli("finetune", write_recipe(tmp_path / "r.yaml", raw))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "adapt.metod: unknown key (did you mean 'method'?)" in result.stderr
    assert "training.learning_rate: expected a number, got the string '5e-4'" in result.stderr
    assert not (tmp_path / "run").exists()


CASES = {
    "missing data file": ({"data": {"source": "{tmp}/missing.csv"}}, "data.source: {tmp}/missing.csv does not exist"),
    "missing column": (
        {"data": {"text_column": "review"}},
        "data.text_column: the train split of {csv} has no column 'review'; its columns are text, label",
    ),
    "unseen test label": (
        {"data": {"source": "{tmp}/split"}},
        "data: the test split has labels that training never saw: 'neutral'",
    ),
    "empty data set": ({"data": {"source": "{tmp}/empty.csv"}}, "empty text: 1 row (line 2 of {tmp}/empty.csv)"),
    "model folder missing": (
        {"model": {"name_or_path": "{tmp}/no-model"}},
        "model.name_or_path: {tmp}/no-model does not exist; give a checkpoint folder, a "
        "Hub model id, or builtin:minilm",
    ),
    "unknown Hub model offline": (
        {"model": {"name_or_path": "someorg/no-such-model"}},
        "model.name_or_path: cannot load someorg/no-such-model (offline, only models "
        "already in the Hugging Face cache load by id)",
    ),
    "not a checkpoint": (
        {"model": {"name_or_path": "{tmp}/split"}},
        "model.name_or_path: {tmp}/split is not a checkpoint folder (it has no config.json)",
    ),
    "unknown LoRA target": (
        {"adapt": {"method": "lora", "lora": {"target_modules": ["q_proj"]}}},
        "adapt.lora.target_modules: the model has no module named 'q_proj'; its linear "
        "layers are: classifier, dense, key, query, value",
    ),
    "too many frozen layers": (
        {"adapt": {"method": "freeze", "freeze": {"layers": 5}}},
        "adapt.freeze.layers: 5 layers asked, but the model has 2 (bert.encoder.layer); use at most 2",
    ),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_message_and_nothing_is_written(case, tiny_recipe, sentiment_csv, tmp_path, capsys):
    write_csv(tmp_path / "empty.csv", [{"text": " ", "label": "positive"}])
    (tmp_path / "split").mkdir()
    write_csv(tmp_path / "split" / "train.csv", sentiment_rows(60))
    write_csv(tmp_path / "split" / "test.csv", [{"text": "so so", "label": "neutral"}])
    change, expected = CASES[case]
    fill = lambda s: s.format(tmp=tmp_path, csv=sentiment_csv)  # noqa: E731
    raw = tiny_recipe(
        **{k: {kk: fill(vv) if isinstance(vv, str) else vv for kk, vv in v.items()} for k, v in change.items()}
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["finetune", str(write_recipe(tmp_path / "r.yaml", raw))]) == 2
    err = capsys.readouterr().err
    assert fill(expected) in err
    assert err.count("hfadapt: error:") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["r.yaml"])  # no run folder, no .incomplete


def test_non_empty_output_folder_is_refused(tiny_recipe, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("precious")
    assert main(["finetune", str(write_recipe(tmp_path / "r.yaml", tiny_recipe()))]) == 2
    assert f"output.dir: {tmp_path / 'run'} is not empty" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["keep.txt"]


def test_validate_prints_the_resolved_recipe(tiny_recipe, tmp_path, capsys):
    assert main(["validate", str(write_recipe(tmp_path / "r.yaml", tiny_recipe())), "training.learning_rate=3e-5"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["training"]["learning_rate"] == 3e-5
    # batches stay random
    assert resolved["training"]["seed"] == 42 and "train_sampling_strategy" not in resolved["training"]


def test_overrides_may_follow_an_option(tiny_recipe, tmp_path, capsys):
    recipe = str(write_recipe(tmp_path / "r.yaml", tiny_recipe()))
    config = tmp_path / "one_cpu.yaml"
    config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nnum_processes: "
        "1\nmixed_precision: 'no'\nuse_cpu: true\n"
    )
    config = str(config)
    assert (
        main(["validate", recipe, "--accelerate-config", config, "training.learning_rate=3e-5", "training.seed=7"]) == 0
    )
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["training"]["learning_rate"] == 3e-5 and resolved["training"]["seed"] == 7
    with pytest.raises(SystemExit):
        main(["validate", recipe, "--accelerate-config", config, "--no-such-option"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


@pytest.mark.integration
def test_finetune_predict_and_evaluate_from_the_command_line(tiny_recipe, tmp_path):
    raw = tiny_recipe(training={"num_train_epochs": 1})
    result = run_cli("finetune", write_recipe(tmp_path / "r.yaml", raw), "training.num_train_epochs=2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("test accuracy: ")
    assert " (worst class: " in result.stdout.splitlines()[-1]  # and the class of lowest F1
    run = tmp_path / "run"
    (tmp_path / "texts.txt").write_text("good great film\nawful dull movie\n")
    result = run_cli("predict", run, "--file", tmp_path / "texts.txt", "--output", tmp_path / "out.jsonl")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == ["good great film", "awful dull movie"]
    assert "Predicting" in result.stderr  # the progress bar
    (tmp_path / "texts.csv").write_text('id,review\n1,"good, great film"\n2,awful dull movie\n')
    result = run_cli(
        "predict", run, "--file", tmp_path / "texts.csv", "--column", "review", "--output", tmp_path / "out.csv"
    )
    assert result.returncode == 0, result.stderr
    import csv

    written = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [r["text"] for r in written] == ["good, great film", "awful dull movie"] and all(
        0.5 <= float(r["score"]) <= 1 for r in written
    )
    result = run_cli("predict", run, "good great film", "--precision", "fp32", "--output", tmp_path / "fp32.jsonl")
    assert result.returncode == 0, result.stderr
    [row] = [json.loads(line) for line in (tmp_path / "fp32.jsonl").read_text().splitlines()]
    [same] = hfadapt.predict(run, ["good great film"], progress=False, precision="fp32")
    assert row["label"] == same["label"] and row["score"] == pytest.approx(same["score"], abs=1e-6)
    result = run_cli("evaluate", run)
    assert result.returncode == 0, result.stderr
    saved = json.loads((run / "metrics.json").read_text())["test"]
    assert json.loads(result.stdout)["test_accuracy"] == saved["test_accuracy"]


@pytest.mark.parametrize("command", ["predict", "evaluate", "push", "export"])
def test_the_run_folder_is_called_run_dir(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    usage = capsys.readouterr().out
    assert "RUN_DIR" in usage and "model_dir" not in usage.lower()
