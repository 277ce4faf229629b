"""Hyperparameter search: one finished run folder per trial, chosen on validation alone, bad spaces refused first."""

import json
import logging
import sys

import pytest
import yaml

from hfadapt import load_recipe, search
from hfadapt.cli import main
from hfadapt.errors import HfadaptError
from hfadapt.training.space import parse_space

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {"max_steps": 40, "logging_steps": 10, "eval_strategy": "no", "save_strategy": "no"}
SPACE = ["training.learning_rate=1e-3..3e-2:log", "training.per_device_train_batch_size=16,32"]


def test_ranges_log_scales_and_choices_are_read_as_overrides_read_them():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    lr, epochs, r, scheduler = parse_space(
        [
            "training.learning_rate=1e-4..1e-3:log",
            "training.num_train_epochs = 1..3",
            "adapt.lora.r=4,8,16",
            "training.lr_scheduler_type=linear,cosine",
        ]
    )
    assert (lr.key, lr.low, lr.high, lr.log) == ("training.learning_rate", 1e-4, 1e-3, True)
    assert lr.distribution() == FloatDistribution(1e-4, 1e-3, log=True)
    assert (epochs.key, epochs.low, epochs.high, epochs.log) == ("training.num_train_epochs", 1, 3, False)
    assert epochs.distribution() == IntDistribution(1, 3)
    assert r.choices == (4, 8, 16) and r.distribution() == CategoricalDistribution((4, 8, 16))
    assert scheduler.choices == ("linear", "cosine")
    # a mapping says the same, and one float end makes a float range
    (warmup,) = parse_space({"training.warmup_steps": "0..0.2"})
    assert warmup.distribution() == FloatDistribution(0.0, 0.2)


@pytest.mark.parametrize(
    "space, message",
    [
        (
            ["training.learning_rate=1e-3..1e-4"],
            "--space training.learning_rate=1e-3..1e-4: LOW must be below HIGH",
        ),
        (
            ["training.learning_rate=0..1e-3:log"],
            "--space training.learning_rate=0..1e-3:log: a log scale needs LOW above 0",
        ),
        (
            ["training.learning_rate=1e-4..1e-3:lin"],
            "--space training.learning_rate=1e-4..1e-3:lin: the only scale is :log, as in LOW..HIGH:log",
        ),
        (
            ["training.learning_rate=small..large"],
            "--space training.learning_rate=small..large: a range is LOW..HIGH of two numbers, e.g. 1e-5..1e-3",
        ),
        (["adapt.lora.r=4,8:log"], "--space adapt.lora.r=4,8:log: :log applies to a range LOW..HIGH, not to choices"),
        (
            ["adapt.lora.r=8"],
            "--space adapt.lora.r=8: one value is not a search; give a range LOW..HIGH or choices a,b "
            "(or set it as key=value)",
        ),
        (["adapt.lora.r=4,,8"], "--space adapt.lora.r=4,,8: an empty choice; write choices as a,b,c"),
        (["adapt.lora.r=4,8,4"], "--space adapt.lora.r=4,8,4: 4 is given more than once"),
        (
            ["training.learning_rate"],
            "--space training.learning_rate: write KEY=SPEC, e.g. --space training.learning_rate=1e-5..1e-3:log "
            "or --space adapt.lora.r=4,8,16",
        ),
        (
            ["output.dir=a,b"],
            "--space output.dir: the search sets each trial's output; choose the search's folder with --output",
        ),
        (
            ["adapt.lora.r=4,8", "adapt.lora.r=16,32", "training.learning_rate=1..1"],
            "--space: 2 problems\n  adapt.lora.r: given more than once; give each key once\n"
            "  training.learning_rate=1..1: LOW must be below HIGH",
        ),
    ],
)
def test_a_bad_spec_is_refused_with_its_fix(space, message):
    with pytest.raises(HfadaptError) as caught:
        parse_space(space)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "space, trials, message",
    [
        (
            ["training.learnin_rate=1e-4..1e-3:log"],
            3,
            "--space training.learnin_rate: unknown key (did you mean 'learning_rate'?)",
        ),
        (
            ["data.max_length=4,64", "training.learning_rate=1e-4..1e-3", "trainin.seed=1,2"],
            3,
            "--space: 2 problems\n  data.max_length=4: data.max_length: 4 tokens is too short; use 8 or more\n"
            "  trainin: unknown key (did you mean 'training'?)",
        ),
        (  # each value passes alone; two of them together leave no training data
            ["data.validation_fraction=0.1,0.5", "data.test_fraction=0.1,0.5"],
            3,
            "--space with data.validation_fraction=0.5, data.test_fraction=0.5: data.validation_fraction + "
            "data.test_fraction: leave some examples for training (their sum must be below 1)",
        ),
        (SPACE, 0, "--trials: expected a whole number of 1 or more, got 0"),
    ],
)
def test_a_space_the_recipe_refuses_fails_before_any_folder_is_written(space, trials, message, tiny_recipe, tmp_path):
    with pytest.raises(HfadaptError) as caught:
        search(load_recipe(raw=tiny_recipe(training=FAST)), space, trials)
    assert str(caught.value) == message
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.incomplete").exists()


def test_the_same_seed_proposes_the_same_trials():
    from hfadapt.training.hparam_search import _ask, _optuna

    optuna, dimensions = _optuna(), parse_space(SPACE)
    done = [{"params": {"training.learning_rate": 1e-3, "training.per_device_train_batch_size": 16}, "validation": 0.7}]
    assert _ask(optuna, dimensions, done, 1, 42, True) == _ask(optuna, dimensions, done, 1, 42, True)
    assert _ask(optuna, dimensions, done, 1, 42, True) != _ask(optuna, dimensions, done, 1, 7, True)


@pytest.mark.integration
def test_three_trials_each_a_run_and_the_best_chosen_on_validation(tiny_recipe, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    result = search(load_recipe(raw=tiny_recipe(training=FAST)), SPACE, 3)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "best.yaml",
        "search.md",
        "trial-000",
        "trial-001",
        "trial-002",
        "trials.json",
        "trials.png",
    ]
    assert not (tmp_path / "run.incomplete").exists()
    assert json.loads((run / "trials.json").read_text()) == result
    trials = result["trials"]
    assert [t["folder"] for t in trials] == ["trial-000", "trial-001", "trial-002"]
    for t in trials:  # each trial ran its own values, and is scored by its own validation figure
        recipe = load_recipe(run / t["folder"] / "recipe.yaml")
        assert recipe.training["learning_rate"] == t["params"]["training.learning_rate"]
        assert recipe.training["per_device_train_batch_size"] == t["params"]["training.per_device_train_batch_size"]
        assert 1e-3 <= t["params"]["training.learning_rate"] <= 3e-2
        metrics = json.loads((run / t["folder"] / "metrics.json").read_text())
        assert t["validation"] == metrics["validation"]["validation_accuracy"]
        assert "test" not in t
    assert len({t["params"]["training.learning_rate"] for t in trials}) == 3
    best = max(trials, key=lambda t: (t["validation"], -t["trial"]))
    assert result["best"]["folder"] == best["folder"]
    chosen = json.loads((run / best["folder"] / "metrics.json").read_text())
    assert result["best"]["test"] == chosen["test"]["test_accuracy"]
    # best.yaml is the chosen trial's recipe, loadable by hfadapt finetune (its output beside the search's)
    best_recipe = load_recipe(run / "best.yaml")
    assert best_recipe.output.dir == f"{run}-best"
    assert best_recipe.with_output("x") == load_recipe(run / best["folder"] / "recipe.yaml").with_output("x")
    # the table: every trial's validation figure, and the test figure of the chosen one only
    table = (run / "search.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| trial-")]
    assert len(rows) == 3 and all("test" not in row for row in rows)
    assert [row.endswith("| best |") for row in rows] == [t is best for t in trials]
    mentions = [line for line in table.splitlines() if "test accuracy" in line]
    assert len(mentions) == 1 and mentions[0].startswith(f"Best: {best['folder']}")
    assert f"{chosen['test']['test_accuracy']:.4g}" in mentions[0]
    # a line per trial with the best so far, and no trial's test figures in the log
    logged = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith(("trial 1/3 (", "trial 2/3 (", "trial 3/3 (")) for m in logged) == 3
    assert any(m.startswith("trial 3/3") and f"best so far {best['validation']:.4g}" in m for m in logged)
    assert not any(m.startswith("test:") for m in logged)
    # a finished search is not replaced without output.overwrite
    with pytest.raises(HfadaptError, match=r"output.dir: .*run is not empty"):
        search(load_recipe(raw=tiny_recipe(training=FAST)), SPACE, 3)


@pytest.mark.integration
def test_a_stopped_search_keeps_its_finished_trials_and_resumes_from_the_command_line(
    tiny_recipe, tmp_path, monkeypatch, capsys
):
    from hfadapt.training import hparam_search as module  # where search looks up `finetune`

    real, trained, fail = module.finetune, [], {"trial-002"}

    def stopping_at_trial_2(recipe, overrides=()):
        name = recipe.output.dir.rsplit("/", 1)[-1]
        if name in fail:
            raise RuntimeError("killed")
        trained.append(name)
        return real(recipe, overrides)

    monkeypatch.setattr(module, "finetune", stopping_at_trial_2)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(training=FAST)))
    with pytest.raises(RuntimeError, match="killed"):
        search(path, SPACE, 3)
    run, stopped = tmp_path / "run", tmp_path / "run.incomplete"
    assert not run.exists() and (stopped / "trial-001" / "metrics.json").exists()
    kept = json.loads((stopped / "trial-001" / "metrics.json").read_text())
    stamp = (stopped / "trial-000" / "model.safetensors").stat().st_mtime_ns
    argv = ["search", str(path), "--space", SPACE[0], "--space", SPACE[1], "--trials", "3"]
    assert main(argv) == 2
    assert "output.dir: a stopped search of" in capsys.readouterr().err
    fail.clear()
    assert main(argv + ["--resume"]) == 0
    assert trained == ["trial-000", "trial-001", "trial-002"]  # the first two once each: the resumed search kept them
    assert (run / "trial-000" / "model.safetensors").stat().st_mtime_ns == stamp
    summary = json.loads((run / "trials.json").read_text())
    assert [t["folder"] for t in summary["trials"]] == ["trial-000", "trial-001", "trial-002"]
    assert summary["trials"][1]["validation"] == kept["validation"]["validation_accuracy"]
    printed = capsys.readouterr().out
    assert f"Best: {summary['best']['folder']}" in printed and "written to" in printed


def test_without_optuna_the_search_says_how_to_install_it(tiny_recipe, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    with pytest.raises(HfadaptError) as caught:
        search(load_recipe(raw=tiny_recipe(training=FAST)), SPACE, 3)
    assert str(caught.value) == "search needs optuna: pip install 'hfadapt[search]' (or pip install optuna)"
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.incomplete").exists()
