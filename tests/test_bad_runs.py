"""Runs that must not finish: a diverged model, a broken checkpoint, a user's folder, a damaged checkpoint.

Each case asserts its exact message (exit 2 on the command line) and that nothing was written or
changed: no run folder, no OUTPUT.incomplete, the user's files as they were. Checks that can run
before compute are asserted to run there (and in `hfadapt validate`); the cases that train do a few
steps of the tiny model.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import sentiment_rows

from hfadapt import finetune, load_recipe
from hfadapt.cli import main
from hfadapt.errors import HfadaptError, RecipeError

BASE = {"model": {"name_or_path": "m"}, "data": {"source": "d.csv"}, "output": {"dir": "out"}}
RETRAIN = {**BASE, "corpus": {"sources": ["c.txt"]}, "tokenizer": {}, "pretrain": {}}


def write_recipe(raw: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def broken_checkpoint(tiny_checkpoint: Path, folder: Path, kind: str) -> Path:
    """A copy of the tiny checkpoint with one thing wrong: cut off, without a tokenizer, or a config from another
    model (its vocab_size or hidden_size not the weights')."""
    shutil.copytree(tiny_checkpoint, folder)
    if kind == "truncated":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:5000])
    elif kind == "no tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (folder / name).unlink()
    else:
        config = json.loads((folder / "config.json").read_text())
        config[kind] = {"vocab_size": 500, "hidden_size": 64}[kind]
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def mismatch(folder: Path, kind: str) -> str:
    said, have = {"vocab_size": (500, 300), "hidden_size": (64, 32)}[kind]
    return (
        f"model.name_or_path: {folder / 'config.json'} gives {kind} {said}, but the weights' embedding matrix "
        "(embeddings.word_embeddings.weight) is 300 x 32: the config belongs to another model; save the model's "
        f"own config beside its weights (model.save_pretrained(FOLDER)), or set {kind} to {have}"
    )


# --- a diverged run is never saved ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, override, expected",
    [
        (BASE, "training.learning_rate=.inf", "training.learning_rate: must be a finite number, got inf"),
        (BASE, "training.learning_rate=.nan", "training.learning_rate: must be a finite number, got nan"),
        (BASE, "training.learning_rate=-.inf", "training.learning_rate: must be a finite number, got -inf"),
        (BASE, "training.max_grad_norm=.inf", "training.max_grad_norm: must be a finite number, got inf"),
        (BASE, "task.class_weights=[1.0,.inf]", "task.class_weights: must be a finite number, got inf"),
        (
            RETRAIN,
            "pretrain.training.learning_rate=.inf",
            "pretrain.training.learning_rate: must be a finite number, got inf",
        ),
    ],
)
def test_a_non_finite_number_is_a_recipe_problem(raw, override, expected):
    with pytest.raises(RecipeError) as info:
        load_recipe(raw=raw, overrides=[override])
    assert info.value.problems == [expected + " (YAML reads .inf and .nan as numbers)"]


@pytest.mark.integration
def test_a_diverging_finetune_exits_2_and_leaves_no_run(tiny_recipe, tmp_path, capsys, one_torch_thread):
    path = write_recipe(tiny_recipe(), tmp_path / "recipe.yaml")
    assert main(["finetune", str(path), "training.learning_rate=1.0e+30", "training.max_steps=20"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "hfadapt: error: training diverged at step 2: the gradient norm is nan; lower training.learning_rate "
        "(now 1e+30) and run again"
    )
    assert listing(tmp_path) == ["recipe.yaml"], "no run folder, no run.incomplete"


@pytest.mark.integration
def test_a_diverging_pretraining_stage_leaves_no_stage(tiny_checkpoint, tmp_path, one_torch_thread):
    from conftest import chinese_retraining

    from hfadapt import retrain

    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=6)
    raw["pretrain"]["training"]["learning_rate"] = 1.0e30
    with pytest.raises(HfadaptError) as info:
        retrain(raw)
    assert str(info.value) == (
        "training diverged at step 3: the gradient norm is nan; lower pretrain.training.learning_rate (now 1e+30) "
        "and run again"
    )
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["tokenizer"], "the finished tokenizer stage only"


def test_the_guard_stops_at_a_non_finite_log_and_saves_nothing():
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from hfadapt.training.divergence import DivergenceGuard

    guard, control, state = DivergenceGuard("pretrain.training"), TrainerControl(), TrainerState(global_step=7)
    args = TrainingArguments(output_dir="unused", report_to="none")
    control.should_save = control.should_evaluate = True
    guard.on_log(args, state, control, logs={"loss": 0.7, "grad_norm": float("inf")})
    assert guard.problem == "training diverged at step 7: the gradient norm is inf"
    assert (control.should_training_stop, control.should_save, control.should_evaluate) == (True, False, False)


def test_a_saved_model_with_a_nan_is_refused(tmp_path):
    import torch
    from safetensors.torch import save_file

    from hfadapt.training.divergence import Diverged, check_saved

    save_file({"a": torch.zeros(3), "b": torch.tensor([1.0, float("nan")])}, str(tmp_path / "model.safetensors"))
    with pytest.raises(Diverged) as info:
        check_saved(tmp_path, learning_rate=1e30)
    assert str(info.value) == (
        "training diverged: the trained weight b in model.safetensors holds NaN or infinite values, so the run "
        "was not saved; lower training.learning_rate (now 1e+30) and run again"
    )
    save_file({"a": torch.zeros(3)}, str(tmp_path / "model.safetensors"))
    check_saved(tmp_path)  # finite: no error


# --- checks that run before compute -----------------------------------------------------------------------


def test_a_constant_regression_target_is_refused_before_training(tiny_recipe, tmp_path):
    path = tmp_path / "scores.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([r["text"], "0.5" if i % 2 else "high"] for i, r in enumerate(sentiment_rows(60)))
    raw = tiny_recipe(data={"source": str(path), "drop_invalid": True}, task={"problem_type": "regression"})
    with pytest.raises(HfadaptError) as info:
        finetune(raw)
    assert str(info.value) == (
        f"data.label_column: every training example of {path} has the target 0.5 (after data.drop_invalid left out "
        "30 rows); a target that never varies teaches nothing and its Pearson correlation is undefined: check "
        "data.label_column and the rows left out, or give targets that vary"
    )
    assert listing(tmp_path) == ["scores.csv"]


CLASSES = (
    "accuracy, f1_macro, f1_micro, precision_macro, precision_micro, recall_macro, recall_micro, matthews_correlation,"
    " loss"
)


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            ["task.main_metric=acuracy"],
            f"task.main_metric: 'acuracy' is not a metric of this task (did you mean 'accuracy'?); use {CLASSES}",
        ),
        (
            ["task.main_metric=accuracy", "task.problem_type=regression"],
            "task.main_metric: 'accuracy' is not a metric of this task; use pearson, spearman, mse, loss",
        ),
        (
            ["task.main_metric=f1_macro", "task.type=token_classification"],
            "task.main_metric: 'f1_macro' is not a metric of this task; use f1, precision, recall, accuracy, loss",
        ),
    ],
)
def test_an_unknown_main_metric_is_a_recipe_problem(override, expected, tmp_path, capsys):
    with pytest.raises(RecipeError) as info:
        load_recipe(raw=BASE, overrides=override)
    assert info.value.problems == [expected]
    path = write_recipe(BASE, tmp_path / "r.yaml")
    assert main(["validate", str(path), *override]) == 2
    assert capsys.readouterr().err == f"hfadapt: error: {path}: 1 problem\n  {expected}\n"


def test_the_metric_names_are_those_the_metrics_give():
    import numpy as np

    from hfadapt.model import metrics
    from hfadapt.recipe import TaskConfig

    labels = np.array([0, 1, 1, 0])
    given = {
        "single_label_classification": metrics.classification(labels, labels, 2),
        "multi_label_classification": metrics.multilabel(np.eye(4), np.eye(4)),
        "regression": metrics.regression(np.arange(4.0), np.arange(4.0)),
        "token_classification": metrics.entity_scores([["S-LOC"]], [["S-LOC"]]),
    }
    for kind, scores in given.items():
        task = (
            TaskConfig(type="token_classification") if kind == "token_classification" else TaskConfig(problem_type=kind)
        )
        assert sorted(task.metric_names()) == sorted([*scores, "loss"]), kind


@pytest.mark.parametrize("kind", ["vocab_size", "hidden_size"])
def test_a_config_that_does_not_match_its_weights_is_refused_before_loading(
    kind, tiny_checkpoint, tiny_recipe, tmp_path, capsys
):
    folder = broken_checkpoint(tiny_checkpoint, tmp_path / "model", kind)
    raw = tiny_recipe(model={"name_or_path": str(folder)})
    path = write_recipe(raw, tmp_path / "r.yaml")
    before = listing(tmp_path)
    for command in (["finetune", str(path)], ["validate", str(path)]):
        assert main(command) == 2
        assert capsys.readouterr().err.splitlines()[-1] == "hfadapt: error: " + mismatch(folder, kind)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("kind", ["truncated", "no tokenizer", "vocab_size"])
def test_advise_refusing_a_broken_checkpoint_writes_nothing(kind, tiny_checkpoint, sentiment_csv, tmp_path, capsys):
    folder = broken_checkpoint(tiny_checkpoint, tmp_path / "model", kind)
    before = listing(tmp_path)
    args = ["advise", "--model", str(folder), "--data", str(sentiment_csv), "--budget-steps", "60"]
    assert main([*args, "--output", str(tmp_path / "advice")]) == 2
    err = capsys.readouterr().err
    expected = {
        "truncated": f"hfadapt: error: model.name_or_path: {folder / 'model.safetensors'} cannot be read (",
        "no tokenizer": f"hfadapt: error: model.name_or_path: {folder} has no tokenizer files (",
        "vocab_size": "hfadapt: error: " + mismatch(folder, "vocab_size"),
    }[kind]
    assert err.startswith(expected), err
    assert listing(tmp_path) == before, "no advice.incomplete"


def test_a_block_size_past_the_positions_is_refused_before_any_stage(tiny_checkpoint, tmp_path, capsys):
    from conftest import chinese_retraining

    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=2)
    raw["pretrain"]["block_size"] = 256
    path = write_recipe(raw, tmp_path / "r.yaml")
    before = listing(tmp_path)
    expected = (
        "hfadapt: error: pretrain.block_size: 256 exceeds the model's 128 positions (max_position_embeddings in its "
        "config.json); use at most 128\n"
    )
    for command in ("validate", "retrain"):
        assert main([command, str(path)]) == 2
        assert capsys.readouterr().err.endswith(expected)
    assert listing(tmp_path) == before, "no tokenizer stage written"


# --- the output folder ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "folder, which",
    [(".", "the current folder"), ("..", "the parent folder"), ("/", "the root folder")],
)
def test_an_output_dir_that_names_no_folder_of_its_own(folder, which, tiny_recipe, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    path = write_recipe(tiny_recipe(output={"dir": folder}), tmp_path / "r.yaml")
    said = (
        f"output.dir: {folder!r} is {which}, not a folder of the run's own; give the run a new folder, e.g. runs/my-run"
    )
    for command in ("finetune", "validate"):  # a recipe problem: validate finds it too
        assert main([command, str(path)]) == 2
        assert capsys.readouterr().err == f"hfadapt: error: {path}: 1 problem\n  {said}\n"
    assert listing(tmp_path) == ["r.yaml", "work"]


def test_overwrite_never_replaces_a_folder_no_hfadapt_run_wrote(tiny_recipe, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    (mine / "mydata.csv").write_text("text,label\nfine,pos\n")
    path = write_recipe(tiny_recipe(output={"dir": str(mine), "overwrite": True}), tmp_path / "r.yaml")
    assert main(["finetune", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"hfadapt: error: output.dir: {mine} holds files no hfadapt run wrote (mydata.csv, notes.txt); "
        "output.overwrite replaces only an hfadapt run's folder (one with its manifest.json): choose another "
        "output.dir, or move those files\n"
    )
    assert listing(tmp_path) == ["mine", "mine/mydata.csv", "mine/notes.txt", "r.yaml"]
    assert (mine / "notes.txt").read_text() == "my notes"
    assert (mine / "mydata.csv").read_text() == "text,label\nfine,pos\n"


def test_overwrite_never_deletes_a_users_folder_in_place_of_a_stage(tiny_checkpoint, tmp_path):
    from conftest import chinese_retraining

    from hfadapt import retrain

    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=2)
    raw["output"]["overwrite"] = True
    (tmp_path / "run" / "tokenizer").mkdir(parents=True)
    (tmp_path / "run" / "tokenizer" / "mine.txt").write_text("mine")
    with pytest.raises(HfadaptError) as info:
        retrain(raw, until="tokenizer")
    assert str(info.value) == (
        f"output.dir: {tmp_path / 'run' / 'tokenizer'} was not written by an hfadapt stage (it has no stage.json); "
        "move it away, or choose another output.dir"
    )
    assert (tmp_path / "run" / "tokenizer" / "mine.txt").read_text() == "mine"


def test_what_hfadapt_wrote_is_told_from_what_it_did_not(tmp_path):
    from hfadapt.runs.output import written_by_hfadapt

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text(json.dumps({"hfadapt_git_commit": None, "seed": 42}))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "manifest.json").write_text(json.dumps({"name": "a web app"}))
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "stage.json").write_text("[1, 2]")
    assert [written_by_hfadapt(tmp_path / n) for n in ("run", "other", "list", "missing")] == [
        True,
        False,
        False,
        False,
    ]


# --- resuming past a damaged checkpoint -----------------------------------------------------------------


def test_a_damaged_checkpoint_file_is_found_without_loading(tmp_path):
    import torch
    from safetensors.torch import save_file

    from hfadapt.runs.output import damage

    save_file({"w": torch.zeros(100)}, str(tmp_path / "model.safetensors"))
    torch.save({"state": torch.zeros(10)}, tmp_path / "optimizer.pt")
    assert damage(tmp_path) is None
    whole = (tmp_path / "optimizer.pt").read_bytes()
    (tmp_path / "optimizer.pt").write_bytes(whole[:-30])
    assert damage(tmp_path) == "optimizer.pt: it is cut off or corrupt"
    (tmp_path / "optimizer.pt").write_bytes(whole)
    weights = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(weights[:-100])
    assert damage(tmp_path) == f"model.safetensors: it is cut off: {len(weights) - 100} of its {len(weights)} bytes"


def stopped_run(tiny_checkpoint: Path, sentiment_csv: Path, tmp_path: Path, damaged: list[str]) -> tuple[dict, Path]:
    """A run's side folder with two complete checkpoints (steps 2 and 4), as a stopped run leaves it, with the
    weights of the `damaged` ones cut off."""
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "data": {"source": str(sentiment_csv), "max_length": 32},
        "training": {
            "max_steps": 4,
            "save_strategy": "steps",
            "save_steps": 2,
            "save_total_limit": 2,
            "eval_strategy": "no",
            "per_device_train_batch_size": 8,
            "disable_tqdm": True,
        },
        "output": {"dir": str(tmp_path / "run"), "keep_checkpoints": True},
    }
    finetune(raw)
    work = tmp_path / "run.incomplete"
    (tmp_path / "run").rename(work)  # its recipe.yaml is the one a stopped run saved
    for name in damaged:
        weights = work / "checkpoints" / name / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:5000])
    return raw, work


@pytest.mark.integration
def test_resume_falls_back_past_a_cut_off_checkpoint(
    tiny_checkpoint, sentiment_csv, tmp_path, caplog, one_torch_thread
):
    raw, work = stopped_run(tiny_checkpoint, sentiment_csv, tmp_path, ["checkpoint-4"])
    run = finetune(raw, ["output.resume=true"])
    assert run.metrics["resumed_from"] == "checkpoint-2"
    assert f"{work / 'checkpoints' / 'checkpoint-4'} is damaged (model.safetensors: it is cut off: 5,000 of its" in (
        caplog.text
    )
    assert "falling back to the checkpoint before it" in caplog.text


@pytest.mark.integration
def test_resume_with_every_checkpoint_cut_off_is_refused_cleanly(
    tiny_checkpoint, sentiment_csv, tmp_path, capsys, one_torch_thread
):
    raw, work = stopped_run(tiny_checkpoint, sentiment_csv, tmp_path, ["checkpoint-2", "checkpoint-4"])
    saved = (work / "recipe.yaml").read_bytes()
    before = listing(tmp_path)
    path = write_recipe(raw, tmp_path / "r.yaml")
    assert main(["finetune", str(path), "--resume"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"hfadapt: error: --resume: every checkpoint in {work / 'checkpoints'} is damaged (checkpoint-2, "
        "checkpoint-4: a file cut off or corrupt); run without --resume to start over"
    )
    assert (work / "recipe.yaml").read_bytes() == saved
    assert listing(tmp_path) == sorted([*before, "r.yaml"])


@pytest.mark.integration
def test_a_search_trial_that_diverges_counts_as_failed_and_the_search_goes_on(tiny_recipe, tmp_path, one_torch_thread):
    from hfadapt import search

    fast = {"max_steps": 4, "eval_strategy": "no", "save_strategy": "no"}
    result = search(load_recipe(raw=tiny_recipe(training=fast)), ["training.learning_rate=1.0e+30,5.0e-3"], 3)
    diverged = [t for t in result["trials"] if t["params"]["training.learning_rate"] == 1e30]
    trained = [t for t in result["trials"] if t["params"]["training.learning_rate"] == 5e-3]
    assert diverged and trained
    assert all(t["validation"] is None and not (tmp_path / "run" / t["folder"]).exists() for t in diverged)
    assert result["best"]["folder"] in {t["folder"] for t in trained}
