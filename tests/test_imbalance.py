"""Imbalanced labels and long runs: class weights in the loss, early stopping that keeps the best model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hfadapt import finetune, load_recipe
from hfadapt.errors import HfadaptError
from hfadapt.model.loss import class_weights, weighted_loss, weights_for_task
from hfadapt.recipe import TaskConfig


def test_class_weights_change_the_loss_as_computed_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    loss = weighted_loss([1.0, 3.0])({"logits": logits}, labels)
    nll = [-math.log(math.exp(2) / (math.exp(2) + 1)), -math.log(math.e / (1 + math.e)), math.log(2)]
    assert loss.item() == pytest.approx((1 * nll[0] + 3 * nll[1] + 3 * nll[2]) / 3)
    # equal weights give the model's own (mean) cross-entropy
    plain = weighted_loss([1.0, 1.0])({"logits": logits}, labels)
    assert plain.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())
    # divided by the step's labels across micro-batches when Trainer gives their number
    assert weighted_loss([1.0, 3.0])({"logits": logits}, labels, num_items_in_batch=6).item() == (
        pytest.approx(loss.item() / 2)
    )


def test_multi_label_weights_are_the_positives_weights():
    logits = torch.tensor([[1.0, -1.0], [0.5, 2.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    got = weighted_loss([2.0, 5.0], multi_label=True)({"logits": logits}, labels).item()
    sig = torch.sigmoid(logits)
    by_hand = -(
        2.0 * math.log(sig[0, 0]) + math.log(1 - sig[0, 1]) + math.log(1 - sig[1, 0]) + 5.0 * math.log(sig[1, 1])
    )
    assert got == pytest.approx(by_hand / 4)


def test_auto_weights_are_inverse_to_the_training_counts():
    from datasets import Dataset

    train = Dataset.from_dict({"label": [0] * 90 + [1] * 10})
    assert weights_for_task(TaskConfig(class_weights="auto"), ["a", "b"], train) == pytest.approx([100 / 180, 100 / 20])
    assert class_weights([0] * 90 + [1] * 10, 2) == pytest.approx([100 / 180, 100 / 20])
    multi = Dataset.from_dict({"label": [[1.0, 0.0]] * 3 + [[1.0, 1.0]]})
    task = TaskConfig(problem_type="multi_label_classification", class_weights="auto")
    assert weights_for_task(task, ["a", "b"], multi) == pytest.approx([1.0, 3.0])
    assert class_weights([[1, 0]] * 3 + [[1, 1]], 2, multi_label=True) == pytest.approx([1.0, 3.0])
    mapping = TaskConfig(class_weights={"b": 4.0})
    assert weights_for_task(mapping, ["a", "b"], train) == [1.0, 4.0]
    assert TaskConfig(class_weights="auto").metric() == "f1_macro" and TaskConfig().metric() == "accuracy"


@pytest.mark.parametrize(
    "setting, expected",
    [
        (
            [1.0],
            "task.class_weights: 1 weights for 2 labels (a, b); give one weight per label, in "
            "this order, or a mapping by name",
        ),
        ({"c": 2.0}, "task.class_weights: 'c' is not a label; the labels are a, b"),
    ],
)
def test_class_weights_that_do_not_fit_the_labels(setting, expected):
    from datasets import Dataset

    with pytest.raises(HfadaptError) as info:
        weights_for_task(TaskConfig(class_weights=setting), ["a", "b"], Dataset.from_dict({"label": [0, 1]}))
    assert str(info.value) == expected


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "task.class_weights=balanced",
            "task.class_weights: 'balanced' is not auto, a list or a mapping of label names to weights",
        ),
        ("task.class_weights=[1, -2]", "task.class_weights: every weight must be a number above 0"),
        ("early_stopping.patience=0", "early_stopping.patience: must be 1 or more, got 0"),
    ],
)
def test_imbalance_options_are_checked_in_the_recipe(override, expected):
    from hfadapt.errors import RecipeError

    raw = {"model": {"name_or_path": "m"}, "data": {"source": "d.csv"}, "output": {"dir": "o"}}
    with pytest.raises(RecipeError) as info:
        load_recipe(raw=raw, overrides=[override])
    assert info.value.problems == [expected]


def test_early_stopping_needs_evaluations():
    from hfadapt.errors import RecipeError

    raw = {"model": {"name_or_path": "m"}, "data": {"source": "d.csv"}, "output": {"dir": "o"}, "early_stopping": {}}
    with pytest.raises(RecipeError) as info:
        load_recipe(raw=raw, overrides=["training.eval_strategy=no", "training.save_strategy=no"])
    assert info.value.problems == ["early_stopping: needs evaluations; set training.eval_strategy to epoch or steps"]


@pytest.mark.integration
def test_early_stopping_stops_at_the_expected_epoch_and_keeps_the_best_model(tiny_recipe):
    # a threshold no change can pass: the second evaluation is never an improvement, so with
    # patience 1 training stops after epoch 2 of 6, whatever the model learns
    raw = tiny_recipe(
        training={"num_train_epochs": 6, "save_total_limit": 10},
        output={"keep_checkpoints": True},
        early_stopping={"patience": 1, "threshold": 1.0},
    )
    results = finetune(load_recipe(raw=raw)).metrics
    run = Path(raw["output"]["dir"])
    state = json.loads(
        sorted((run / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name[11:]))[-1]
        .joinpath("trainer_state.json")
        .read_text()
    )
    per_epoch = state["global_step"] // 2
    assert state["global_step"] == 2 * per_epoch and state["epoch"] == pytest.approx(2.0)
    kept = results["kept"]
    assert kept["model"] == "best" and kept["step"] in (per_epoch, 2 * per_epoch)
    assert kept["stopped"] == "early, after 1 evaluations without improvement"
    evals = {h["step"]: h["eval_accuracy"] for h in state["log_history"] if "eval_accuracy" in h}
    assert kept["validation_accuracy"] == max(evals.values()) == evals[kept["step"]]
    # the saved model is the kept checkpoint's
    saved, best = (
        load_file(str(run / "model.safetensors")),
        load_file(str(run / "checkpoints" / f"checkpoint-{kept['step']}" / "model.safetensors")),
    )
    assert all(torch.equal(saved[k], best[k]) for k in saved)
    assert "| model kept | the best by validation, at step" in (run / "README.md").read_text()


@pytest.mark.integration
def test_a_class_weighted_run_reports_macro_f1(tiny_recipe):
    raw = tiny_recipe(task={"class_weights": "auto"}, training={"max_steps": 6})
    results = finetune(load_recipe(raw=raw)).metrics
    assert results["main_metric"] == "f1_macro" and "test_f1_macro" in results["test"]
    counts = results["data"]["class_counts"]["train"]
    n = sum(counts.values())
    assert results["class_weights"] == pytest.approx([n / (2 * counts[name]) for name in results["label_names"]])
