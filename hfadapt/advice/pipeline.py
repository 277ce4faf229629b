"""`advise`: fit, pilots, verdict and a recommended recipe, written to an output folder."""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from hfadapt.advice import cost
from hfadapt.advice.compare import compare, comparison_metric, gold, imbalanced, majority
from hfadapt.advice.fit import measure
from hfadapt.advice.pilots import (
    MINUTES_FOR_STEPS,
    check_budget,
    estimate,
    pilot_data,
    run_pilot,
    shares,
    steps_for_seconds,
    time_one_step,
)
from hfadapt.advice.report import plot, render
from hfadapt.advice.run_minutes import check_run_minutes, fit_minutes
from hfadapt.advice.verdict import PILOTS, against_baseline, decide, pilot_names
from hfadapt.data.splits import TaskData, load_splits
from hfadapt.errors import HfadaptError
from hfadapt.model import adapt, baseline, pretrained
from hfadapt.recipe import Recipe, load_recipe, save_recipe
from hfadapt.runs import output

logger = logging.getLogger(__name__)

# What each pilot changes in the recipe. Learning rates as in the shipped MiniLM recipes: LoRA
# takes about 10x the rate of full fine-tuning.
PILOT_SETTINGS: dict[str, dict[str, Any]] = {
    "freeze": {"adapt": {"method": "freeze"}, "training": {"learning_rate": 1.0e-4}},  # freeze.layers: set below
    "lora": {
        "adapt": {"method": "lora", "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1}},
        "training": {"learning_rate": 1.0e-3},
    },
    "full": {"adapt": {"method": "full"}, "training": {"learning_rate": 1.0e-4}},
    "retrain": {"adapt": {"method": "full"}, "training": {"learning_rate": 1.0e-4}},
}
# Recipe sections advise sets itself; the others can be overridden with key=value.
OWNED = {
    "model": "give the checkpoint with --model",
    "adapt": "the pilots compare adaptation methods",
    "output": "give the advice folder with --output",
    "hub": "advise pushes nothing",
}


def advise(
    model: str,
    data: str,
    output_dir: str | Path | None = None,
    *,
    text_column: str | None = None,
    budget_steps: int | None = None,
    budget_minutes: float | None = None,
    run_minutes: float | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    overwrite: bool = False,
) -> dict[str, Any]:
    """Measure how `model`'s tokenizer fits the data, run pilots within the budget, recommend a recipe and
    price it on this machine.

    Args:
        model: a checkpoint folder, a Hub id, or `builtin:minilm`.
        data: a file, a folder, a Hub data set id, or `builtin:NAME`.
        output_dir: where to write advice.md, advice.json, pilots.png and recommended.yaml
            (atomically); without it the pilots run in a temporary folder and only the return value remains.
        text_column: the column of texts (a recipe's `data.text_column`).
        budget_steps: training steps for all pilots together; or
        budget_minutes: minutes for the fit, the probe and the pilots together: the pilots get what the fit and
            the probe leave, turned into steps by timing one step, and each stops at its share. Neither: no pilots.
        run_minutes: fit the recommended recipe to this many minutes on this machine, its price at most
            `FIT_SHARE` of them (`run_minutes.fit_minutes`): cut it (fewer epochs, fewer masked-LM steps, head and
            tail for windows, a shorter data.max_length, in that order), or spend the minutes a retraining recipe
            leaves on masked-LM steps; None: the recipe as recommended, priced.
        overrides: `key=value` for every pilot and the recommended recipe, e.g. `data.label_column=stars`.
        overwrite: replace `output_dir` once the new advice is ready.

    Returns:
        The advice as saved in advice.json: fit, probe, TF-IDF baseline, pilots, verdict, estimate (from the
        pilot), cost (the price of each stage of the recommended recipe, timed here) and the recommended recipe.

    Raises:
        HfadaptError: bad input, a budget too small for the pilots, or a recipe that cannot fit `run_minutes`
            (nothing is written then).
    """
    check_budget(budget_steps, budget_minutes)
    check_run_minutes(run_minutes)
    budget = (budget_steps, budget_minutes, run_minutes)
    if output_dir is not None:
        output.check(output_dir, overwrite)
        with output.lock(output_dir):
            return _advise(model, data, output_dir, text_column, budget, list(overrides))
    return _advise(model, data, None, text_column, budget, list(overrides))


def _advise(model, data, output_dir, text_column, budget, overrides) -> dict[str, Any]:
    budget_steps, budget_minutes, run_minutes = budget
    started = time.perf_counter()  # the budget in minutes counts from here: the fit and the probe spend it too
    base, retraining = _base_recipes(model, data, text_column, list(overrides))
    pretrained.check_folder(base.model.name_or_path)  # weights whole and matching the config, a tokenizer
    tokenizer = pretrained.load_tokenizer(base.model)
    task_data = load_splits(base.data, base.task)
    base, retraining = _imbalance_metric(base, retraining, task_data.report)
    step = time_one_step(base, tokenizer, task_data) if budget_minutes is not None else None
    if step is not None:  # too small even before the fit: refused at once
        steps_for_seconds(budget_minutes * 60, step, PILOTS, budget_minutes)
    fit, probe, new_tokenizer = measure(base, retraining, tokenizer, task_data)
    # the validation examples every pilot predicts, and the TF-IDF baseline's predictions of them
    validation = load_splits(base.updated({"data": pilot_data(base)}).data, base.task).splits["validation"]
    pair = TaskData({"train": task_data.splits["train"], "validation": validation}, task_data.label_names)
    tfidf = baseline.fit_splits(base.task, pair, "validation")
    names = pilot_names(fit["checkpoint"])
    steps = budget_steps // shares(names) if budget_steps is not None else None
    if step is not None:
        spent = time.perf_counter() - started
        steps = steps_for_seconds(budget_minutes * 60 - spent, step, names, budget_minutes, spent)
    # the budget is settled: from here on the pilots write, in the side folder (or a temporary one)
    final = Path(output_dir) if output_dir is not None else None
    scratch = tempfile.TemporaryDirectory(prefix="hfadapt-advise-") if final is None else None
    work = None
    try:
        settings = _pilot_settings(base, retraining, {item.partition("=")[0] for item in overrides})
        end = started + budget_minutes * 60 if budget_minutes is not None else None
        pilots, comparison = [], None
        if steps:
            work = output.start(final) if final is not None else Path(scratch.name)
            pilots, comparison = _pilots(names, settings, steps, work, task_data, validation, tfidf, base, fit, end)
        verdict = decide(fit["checkpoint"], pilots, probe, comparison["baseline"] if comparison else None)
        verdict["tfidf_baseline"] = against_baseline(verdict["strategy"], pilots, tfidf.to_dict())
        recommended = _recommended(settings[verdict["strategy"]], base, fit["length"])
        # timed at the recipe's own shapes; a recipe that cannot fit run_minutes is refused here, before
        # anything is written without pilots (with them, their side folder goes below)
        if run_minutes is None:
            price = cost.price(recommended, tokenizer, task_data, fit, new_tokenizer)
        else:
            recommended, price = fit_minutes(recommended, run_minutes, tokenizer, task_data, fit, new_tokenizer)
        advice = {
            "model": model,
            "data": data,
            "data_report": {
                k: task_data.report[k] for k in ("sizes", "fingerprint", "class_counts") if k in task_data.report
            },
            "main_metric": comparison_metric(base.task),
            "budget": {
                "steps": budget_steps,
                "minutes": budget_minutes,
                "steps_per_pilot": steps,
                "run_minutes": run_minutes,
            },
            "fit": fit,
            "probe": probe,
            "tfidf_baseline": tfidf.to_dict(),
            "skipped": [] if "retrain" in names else ["retrain"],
            "comparison": {k: v for k, v in comparison.items() if k != "pilots"} if comparison else None,
            "pilots": pilots,
            "verdict": verdict,
            "estimate": estimate(verdict["strategy"], pilots, recommended, task_data.report["sizes"]["train"]),
            "cost": price,
            "recommended": recommended.to_dict(),
            "seconds": round(time.perf_counter() - started, 1),
        }
        if final is not None:
            work = work or output.start(final)
            _write(advice, recommended, work, final)
    except BaseException:
        if work is not None and final is not None:  # a failed or stopped advice leaves no OUTPUT.incomplete behind
            shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        if scratch is not None:
            scratch.cleanup()
    return advice


def _pilots(
    names, settings, steps, work, task_data, validation, tfidf, base, fit, end
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the pilots one after another, each within its share of the time left (with a budget in minutes),
    and compare them on the validation examples they all predicted, with each other and the baselines."""
    pilots, predictions, overhead = [], {}, None
    for i, name in enumerate(names):
        seconds = None
        if end is not None:
            left = max(end - time.perf_counter(), 0.0)
            wall = left * shares([name]) / shares(names[i:])
            # loading, evaluating, saving and predicting: as the pilots so far took, or the budget's usual share
            # (retraining also trains a tokenizer, as the fit did, and loads and saves twice)
            expected = (1 - MINUTES_FOR_STEPS) * wall if overhead is None else overhead
            if name == "retrain" and overhead is not None:
                expected = 2 * overhead + fit["tokenizer_seconds"]
            seconds = max(wall - expected, 0.0) / shares([name])
        pilot, predictions[name] = run_pilot(name, settings[name], steps, work / "pilots" / name, validation, seconds)
        overhead = max(overhead or 0.0, pilot["overhead_seconds"])
        pilots.append(pilot)
    truth = gold(base.task, task_data.label_names, validation)
    metric = comparison_metric(base.task)
    most = majority(base.task, task_data.label_names, task_data.splits["train"], truth)
    comparison = compare(base.task, metric, task_data.label_names, truth, predictions, most, tfidf.predictions)
    for pilot in pilots:
        pilot.update(comparison["pilots"][pilot["name"]], main_metric=metric, validation_size=len(truth))
    return pilots, comparison


def _write(advice: dict[str, Any], recommended: Recipe, work: Path, final: Path) -> None:
    """advice.json, advice.md, pilots.png and recommended.yaml, moved into place together."""
    shutil.rmtree(work / "pilots", ignore_errors=True)  # the pilots' models: their figures are in advice.json
    save_recipe(recommended, work / "recommended.yaml")
    load_recipe(work / "recommended.yaml")  # what is written reads back as a valid recipe
    (work / "advice.json").write_text(json.dumps(advice, indent=2, ensure_ascii=False), encoding="utf-8")
    if advice["pilots"]:
        title = f"pilots: {advice['model']} on {advice['data']}"
        plot(advice["pilots"], advice["main_metric"], work / "pilots.png", title=title)
    (work / "advice.md").write_text(render(advice), encoding="utf-8")
    output.finish(work, final)


def _base_recipes(model: str, source: str, text_column: str | None, overrides: list[str]) -> tuple[Recipe, Recipe]:
    """The fine-tuning recipe every pilot starts from, and the same with retraining's sections.

    Both are checked before anything runs.
    """
    for item in overrides:
        key = item.partition("=")[0]
        section = key.split(".")[0]
        if section in OWNED:
            raise HfadaptError(f"{item}: advise sets {section} itself ({OWNED[section]})")
        if key in ("training.max_steps", "pretrain.training.max_steps"):
            raise HfadaptError(f"{item}: the budget sets the pilots' steps (--budget-steps or --budget-minutes)")
        if key == "pretrain.objective":
            raise HfadaptError(f"{item}: the retraining pilot pretrains with masked-LM, the objective it reports on")
    raw: dict[str, Any] = {"model": {"name_or_path": model}, "data": {"source": source}, "output": {"dir": "advice"}}
    if text_column is not None:
        raw["data"]["text_column"] = text_column
    retraining = ("corpus.", "tokenizer.", "pretrain.")
    base = load_recipe(raw=raw, overrides=[o for o in overrides if not o.startswith(retraining)])
    positions = pretrained.load_config(base.model).max_position_embeddings
    retrain_raw = base.to_dict()
    # the data's training split only (pretraining holds out a share of it by a salted hash)
    retrain_raw["corpus"] = {"sources": [source]}
    # room for the Han characters of a Chinese corpus (about 5,000) and its words
    retrain_raw["tokenizer"] = {"algorithm": "wordpiece", "vocab_size": 12000}
    retrain_raw["pretrain"] = {"init": "continue", "vocabulary": "replace", "block_size": min(128, positions)}
    retrain = load_recipe(raw=retrain_raw, overrides=[o for o in overrides if o.startswith(retraining)])
    return base, retrain


def _pilot_settings(base: Recipe, retraining: Recipe, overridden: set[str]) -> dict[str, Recipe]:
    """Each strategy as a whole recipe (without the pilots' step schedule); the user's overrides win."""
    config = pretrained.load_config(base.model)
    settings = {}
    for name in PILOTS:
        adaptation = json.loads(json.dumps(PILOT_SETTINGS[name]["adapt"]))
        if name == "freeze":
            adaptation["freeze"] = {"embeddings": True, "layers": config.num_hidden_layers // 2}
        if name == "lora" and config.model_type in adapt.LORA_WIDE_TARGETS:
            adaptation["lora"]["target_modules"] = list(adapt.LORA_WIDE_TARGETS[config.model_type])
        ours = {k: v for k, v in PILOT_SETTINGS[name]["training"].items() if f"training.{k}" not in overridden}
        settings[name] = (retraining if name == "retrain" else base).updated({"adapt": adaptation, "training": ours})
    return settings


def _recommended(chosen: Recipe, base: Recipe, length: dict[str, Any] | None) -> Recipe:
    """The chosen strategy's recipe, writing to runs/DATA_STRATEGY, with a data.max_length that holds most
    training texts whole where the recipe's cuts more than a tenth of them (`fit.measure`)."""
    source = Path(base.data.source.removeprefix("builtin:")).stem or "data"
    strategy = "retrain" if chosen.pretrain is not None else chosen.adapt.method
    if length is not None:
        changes: dict[str, Any] = {"max_length": length["max_length"]}
        if length["long_texts"] is not None:
            changes["long_texts"] = length["long_texts"]
        chosen = chosen.updated({"data": changes})
    return _measured_best(chosen).with_output(f"runs/{re.sub(r'[^A-Za-z0-9_.-]+', '_', source)}_{strategy}")


def _measured_best(recipe: Recipe) -> Recipe:
    """The settings the project's measurements favour, where the recipe leaves them at their defaults:
    batches grouped by length (hfadapt's grouping keeps each batch's label mix; 1.9x the samples/s of
    random batches on the main job in fp32, docs/benchmarks/bench_finetune.md), and for a continued checkpoint
    with a new tokenizer, new rows from static embeddings (75.2 +- 0.3 against 73.3 +- 1.6 drawn,
    docs/pretraining_variants.md). bf16 where the machine runs it fast is every recipe's default."""
    changes: dict[str, Any] = {}
    if "train_sampling_strategy" not in recipe.training:
        changes["training"] = {"train_sampling_strategy": "group_by_length"}
    settings = recipe.pretrain
    if settings is not None and recipe.tokenizer is not None and settings.init == "continue":
        if settings.new_rows == "draw":
            changes["pretrain"] = {"new_rows": "static"}
    return recipe.updated(changes) if changes else recipe


def _imbalance_metric(base: Recipe, retraining: Recipe, report: dict[str, Any]) -> tuple[Recipe, Recipe]:
    """Where the training classes are imbalanced and neither a main metric nor class weights are set, the
    pilots (and the recommended recipe) weigh the classes in the loss (`task.class_weights: auto`) and are
    scored by macro F1: accuracy rewards a model that always says the majority class, and the weights
    help the rare class (docs/imbalance.md)."""
    counts = report.get("class_counts", {}).get("train")
    chosen = base.task.main_metric or base.task.class_weights is not None
    if chosen or counts is None or base.task.problem_type != "single_label_classification" or not imbalanced(counts):
        return base, retraining
    logger.info(
        "advise: the training classes are imbalanced (%s); the pilots weigh them (task.class_weights: auto) "
        "and are compared by f1_macro",
        counts,
    )
    weighted = {"task": {"class_weights": "auto"}}
    return base.updated(weighted), retraining.updated(weighted)
