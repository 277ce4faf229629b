"""Multi-seed runs: one finished run folder per seed, and a summary that matches their metrics."""

import json
import statistics

import pytest
from safetensors.torch import load_file

from hfadapt import finetune_seeds, load_recipe
from hfadapt.cli import main
from hfadapt.errors import HfadaptError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = {"max_steps": 6, "eval_strategy": "no", "save_strategy": "steps", "save_steps": 3}


@pytest.mark.integration
def test_two_seeds_give_two_runs_and_their_mean_and_sd(tiny_recipe, tmp_path, capsys):
    recipe = load_recipe(raw=tiny_recipe(training=FAST))
    summary = finetune_seeds(recipe, [1, 2])
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["seed-1", "seed-2", "seeds.json"]
    assert not (tmp_path / "run.incomplete").exists()
    metrics = {s: json.loads((run / f"seed-{s}" / "metrics.json").read_text()) for s in (1, 2)}
    for s in (1, 2):
        saved = load_recipe(run / f"seed-{s}" / "recipe.yaml")
        # each seed's recipe reruns where the seed now lies, not in the folder it was written in
        assert saved.training["seed"] == s and saved.output.dir == str(run / f"seed-{s}")
        assert (run / f"seed-{s}" / "model.safetensors").exists() and (run / f"seed-{s}" / "README.md").exists()
    assert json.loads((run / "seeds.json").read_text()) == summary
    assert summary["seeds"] == [1, 2]
    for split in ("validation", "test"):
        assert f"{split}_accuracy" in summary[split] and f"{split}_loss" in summary[split]
        assert f"{split}_runtime" not in summary[split]
        for key, row in summary[split].items():
            values = [metrics[1][split][key], metrics[2][split][key]]
            assert row["values"] == values
            assert row["mean"] == pytest.approx(statistics.fmean(values))
            assert row["sd"] == pytest.approx(statistics.stdev(values))
    # different seeds: a different head initialisation and data order, so different weights
    one, two = (load_file(str(run / f"seed-{s}" / "model.safetensors")) for s in (1, 2))
    assert not all(one[k].equal(two[k]) for k in one)
    assert not one["classifier.weight"].equal(two["classifier.weight"])
    # a finished multi-seed folder is not replaced without output.overwrite
    with pytest.raises(
        HfadaptError,
        match=r"output.dir: .*run is not empty; choose another output.dir, or set " r"output.overwrite=true",
    ):
        finetune_seeds(recipe, [1, 2])


@pytest.mark.integration
def test_a_stopped_multi_seed_run_leaves_no_folder_and_resumes(tiny_recipe, tmp_path, monkeypatch):
    from hfadapt.training import seeds as finetune_module  # where finetune_seeds looks up `finetune`

    real = finetune_module.finetune
    calls = []

    def failing_on_seed_2(recipe, overrides=(), **kwargs):
        calls.append(recipe.training["seed"])
        if recipe.training["seed"] == 2:
            raise RuntimeError("killed")
        return real(recipe, overrides, **kwargs)

    monkeypatch.setattr(finetune_module, "finetune", failing_on_seed_2)
    recipe = load_recipe(raw=tiny_recipe(training=FAST))
    with pytest.raises(RuntimeError, match="killed"):
        finetune_seeds(recipe, [1, 2])
    run, stopped = tmp_path / "run", tmp_path / "run.incomplete"
    assert not run.exists() and (stopped / "seed-1" / "metrics.json").exists()
    with pytest.raises(
        HfadaptError,
        match=r"output.dir: a stopped multi-seed run of .*run is in .*run.incomplete; continue " r"it with --resume",
    ):
        finetune_seeds(recipe, [1, 2])
    stamp = (stopped / "seed-1" / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(finetune_module, "finetune", real)
    finetune_seeds(recipe, [1, 2], ["output.resume=true"])
    assert calls == [1, 2]  # seed 1 ran once: the resumed run reused it
    assert (run / "seed-1" / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((run / "seeds.json").read_text())["seeds"] == [1, 2]


@pytest.mark.parametrize(
    "seeds, message",
    [
        ([3], "--seeds: give at least two seeds (a standard deviation needs two runs), e.g. --seeds 1,2,3; got 1"),
        ([1, 2, 1], "--seeds: 1 given more than once; each seed runs once"),
        (3, "--seeds: expected a list of whole numbers, e.g. --seeds 1,2,3; got 3"),
    ],
)
def test_bad_seeds_are_refused_before_anything_is_written(seeds, message, tiny_recipe, tmp_path):
    with pytest.raises(HfadaptError) as caught:
        finetune_seeds(load_recipe(raw=tiny_recipe()), seeds)
    assert str(caught.value) == message
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.incomplete").exists()


@pytest.mark.integration
def test_cli_prints_the_table(tiny_recipe, tmp_path, capsys):
    import yaml

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(training=FAST)))
    assert main(["finetune", str(path), "training.learning_rate=1e-3", "--seeds", "5,6"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "run" / "seeds.json").read_text())
    row = summary["test"]["test_accuracy"]
    assert "test_accuracy" in out and f"{row['mean']:.4f}" in out and f"{row['sd']:.4f}" in out
    assert load_recipe(tmp_path / "run" / "seed-5" / "recipe.yaml").training["learning_rate"] == 1e-3
    assert main(["finetune", str(path), "--seeds", "5,x"]) == 2
    assert (
        "--seeds: expected whole numbers separated by commas, e.g. --seeds 1,2,3; got '5,x'"
    ) in capsys.readouterr().err
