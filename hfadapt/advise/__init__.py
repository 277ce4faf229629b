"""Advice: how to adapt a checkpoint to a data set, from its tokenizer's fit and short pilot runs.

1. Fit (`probe`): the checkpoint's tokenizer on the training texts, beside a WordPiece tokenizer
   trained on them (the one retraining would build); and for text classification a linear probe:
   how well a logistic regression reads the task from each tokenizer's tokens, which shows in
   seconds what the checkpoint's vocabulary hides.
2. Pilots (`pilots`), when a budget is given: on the same data and split, a few steps each of
   frozen layers (embeddings and the lower half of the encoder), LoRA, full fine-tuning, and
   retraining (the rebuilt vocabulary, a few masked-LM steps, then fine-tuning).
3. A verdict with its reasons (`verdict`), a recipe for it, and the cost of the full run from the
   measured throughput; written up by `report`.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from hfadapt import adapt, metrics, output, pretrained
from hfadapt.advise.pilots import check_budget, estimate, run_pilot, steps_for_minutes
from hfadapt.advise.probe import token_probe
from hfadapt.advise.report import plot, render
from hfadapt.advise.verdict import PILOTS, decide
from hfadapt.data import load_splits, texts
from hfadapt.errors import HfadaptError
from hfadapt.recipe import Recipe, load_recipe, save_recipe
from hfadapt.retrain.tokenizer import tokenizer_fit, train_tokenizer

logger = logging.getLogger(__name__)

FIT_TEXTS = 5000  # a uniform sample of the training texts for the fit report, as the tokenizer stage uses
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
    overrides: list[str] | tuple[str, ...] = (),
    overwrite: bool = False,
) -> dict[str, Any]:
    """Measure how `model`'s tokenizer fits the data, run pilots within the budget, and recommend a recipe.

    Args:
        model: a checkpoint folder, a Hub id, or `builtin:minilm`.
        data: a file, a folder, a Hub data set id, or `builtin:NAME`.
        output_dir: where to write advice.md, advice.json, pilots.png and recommended.yaml
            (atomically); without it the pilots run in a temporary folder and only the return value remains.
        text_column: the column of texts (a recipe's `data.text_column`).
        budget_steps: training steps for all pilots together; or
        budget_minutes: minutes for the pilots, turned into steps by timing one step. Neither: no pilots.
        overrides: `key=value` for every pilot and the recommended recipe, e.g. `data.label_column=stars`.
        overwrite: replace `output_dir` once the new advice is ready.

    Returns:
        The advice as saved in advice.json: fit, probe, pilots, verdict, estimate and the recommended recipe.
    """
    steps = check_budget(budget_steps, budget_minutes)
    if output_dir is not None:
        output.check(output_dir, overwrite)
        with output.lock(output_dir):
            return _advise(model, data, output_dir, text_column, budget_steps, budget_minutes, list(overrides), steps)
    return _advise(model, data, None, text_column, budget_steps, budget_minutes, list(overrides), steps)


def _advise(model, data, output_dir, text_column, budget_steps, budget_minutes, overrides, steps) -> dict[str, Any]:
    base, retraining = _base_recipes(model, data, text_column, list(overrides))
    tokenizer = pretrained.load_tokenizer(base.model)
    task_data = load_splits(base.data, base.task)
    if budget_minutes is not None:
        steps = steps_for_minutes(base, tokenizer, task_data, budget_minutes)
    # the budget is settled: from here on things are written
    started = time.perf_counter()
    fit, probe = _fit(base, retraining, tokenizer, task_data)
    final = Path(output_dir) if output_dir is not None else None
    scratch = tempfile.TemporaryDirectory(prefix="hfadapt-advise-") if final is None else None
    work = output.start(final) if final is not None else Path(scratch.name)
    try:
        settings = _pilot_settings(base, retraining, {item.partition("=")[0] for item in overrides})
        pilots = [run_pilot(name, settings[name], steps, work / "pilots" / name) for name in PILOTS] if steps else []
        # one standard error of an accuracy near 50% on the texts the pilots were scored on
        tolerance = (0.25 / pilots[0]["validation_size"]) ** 0.5 if pilots else None
        verdict = decide(fit["checkpoint"], pilots, tolerance, probe)
        recommended = _recommended(settings[verdict["strategy"]], base)
        advice = {
            "model": model,
            "data": data,
            "data_report": {k: task_data.report[k] for k in ("sizes", "fingerprint") if k in task_data.report},
            "main_metric": metrics.main_metric(base.task),
            "budget": {"steps": budget_steps, "minutes": budget_minutes, "steps_per_pilot": steps},
            "fit": fit,
            "probe": probe,
            "pilots": pilots,
            "verdict": verdict,
            "estimate": estimate(verdict["strategy"], pilots, recommended, task_data.report["sizes"]["train"]),
            "recommended": recommended.to_dict(),
            "seconds": round(time.perf_counter() - started, 1),
        }
        if final is not None:
            _write(advice, recommended, work, final)
    finally:
        if scratch is not None:
            scratch.cleanup()
    return advice


def _fit(base: Recipe, retraining: Recipe, tokenizer, task_data) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The checkpoint's tokenizer beside a new WordPiece on a sample of the training texts, and the probe."""
    train_texts = texts(task_data.splits["train"])
    sample = random.Random(base.training["seed"]).sample(train_texts, min(FIT_TEXTS, len(train_texts)))
    new_tokenizer = train_tokenizer(train_texts, retraining.tokenizer)
    fit = {
        "checkpoint": tokenizer_fit(tokenizer, sample),
        "new": tokenizer_fit(new_tokenizer, sample),
        "texts": len(sample),
    }
    logger.info("tokenizer fit, checkpoint vs new WordPiece: %s", fit)
    probe = token_probe(tokenizer, new_tokenizer, task_data, base)
    logger.info("linear probe on the tokens, checkpoint vs new WordPiece: %s", probe)
    return fit, probe


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
    raw: dict[str, Any] = {"model": {"name_or_path": model}, "data": {"source": source}, "output": {"dir": "advice"}}
    if text_column is not None:
        raw["data"]["text_column"] = text_column
    retraining = ("corpus.", "tokenizer.", "pretrain.")
    base = load_recipe(raw=raw, overrides=[o for o in overrides if not o.startswith(retraining)])
    if base.data.text_pair_column:
        raise HfadaptError(
            "data.text_pair_column: advise fits the tokenizer on single texts; text pairs are not supported yet"
        )
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


def _recommended(chosen: Recipe, base: Recipe) -> Recipe:
    """The chosen strategy's recipe, writing to runs/DATA_STRATEGY."""
    source = Path(base.data.source.removeprefix("builtin:")).stem or "data"
    strategy = "retrain" if chosen.pretrain is not None else chosen.adapt.method
    return chosen.with_output(f"runs/{re.sub(r'[^A-Za-z0-9_.-]+', '_', source)}_{strategy}")
