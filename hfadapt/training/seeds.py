"""Multi-seed runs: one fine-tuning recipe run once per seed, and the spread of its metrics.

Each seed's run is a normal finished run folder, OUTPUT_DIR/seed-<n>/; OUTPUT_DIR/seeds.json
holds the mean and standard deviation of every validation and test metric. The whole of
OUTPUT_DIR follows the single-run rules (hfadapt/output.py): it is written in
OUTPUT_DIR.incomplete and moved into place when the last seed has finished, and an existing
folder is replaced only with output.overwrite. A stopped multi-seed run continues with
output.resume: finished seeds are kept, the stopped one resumes from its checkpoint.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
from pathlib import Path
from typing import Any

from hfadapt import ranks
from hfadapt.data import in_memory
from hfadapt.errors import HfadaptError
from hfadapt.recipe import Recipe, load_recipe
from hfadapt.runs import output, resume
from hfadapt.training.finetuning import finetune

logger = logging.getLogger(__name__)

# Timing figures, not scores: left out of the summary.
TIMING_SUFFIXES = ("_runtime", "_samples_per_second", "_steps_per_second")


def finetune_seeds(
    recipe: Recipe | str | Path,
    seeds: list[int] | tuple[int, ...],
    overrides: list[str] | tuple[str, ...] = (),
    *,
    data: Any = None,
    callbacks: list | tuple = (),
) -> dict[str, Any]:
    """Run a fine-tuning recipe once per seed and return the summary saved as OUTPUT_DIR/seeds.json.

    The summary has, for `validation` and `test`, every metric's per-seed values, mean and
    sample standard deviation (n - 1 in the denominator).

    Args:
        recipe: a `Recipe`, its dict form, or the path of a YAML recipe (fine-tuning only).
        seeds: two or more seeds; each run goes to OUTPUT_DIR/seed-N.
        overrides: `key=value` strings applied to the recipe.
        data: the data itself, in place of data.source, as `finetune` takes it.
        callbacks: `transformers.TrainerCallback`s given to each run's Trainer.

    Returns:
        The summary: `seeds`, `runs` (seed -> its folder), `main_metric`, and for `validation` and
        `test` each metric's `mean`, `sd` and per-seed `values`.

    Raises:
        HfadaptError: fewer than two seeds, a retraining recipe, a `hub` section, or bad input to a run.
    """
    given = in_memory.load(data) if data is not None else None
    recipe = in_memory.recipe_with(recipe, overrides, given)
    seeds = check_seeds(seeds)
    if recipe.retraining:
        raise HfadaptError(
            "--seeds: this recipe has retraining stages (corpus, tokenizer, pretrain); run it with "
            "hfadapt retrain RECIPE --seeds ..., which pretrains once and fine-tunes once per seed"
        )
    refuse_hub(recipe, "OUTPUT_DIR/seed-N")
    final = Path(recipe.output.dir)
    work = output.incomplete_dir(final)
    _check_output(final, work, recipe.output.overwrite, recipe.output.resume)
    with output.lock(final), resume.time_limit(recipe.output.stop_after_minutes):
        return _run_seeds(recipe, seeds, final, work, list(callbacks), given)


def _run_seeds(
    recipe: Recipe, seeds: list[int], final: Path, work: Path, callbacks: list, given: in_memory.Given | None
) -> dict[str, Any]:
    if ranks.is_main():
        output.start(final, resume=recipe.output.resume)
    ranks.wait()

    runs: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        folder = work / f"seed-{seed}"
        one = recipe.with_seed(seed).with_output(folder)
        if _finished(one, folder):
            logger.info("seed %d: reusing the finished run in %s", seed, folder)
        else:
            if folder.exists() and ranks.is_main():
                shutil.rmtree(folder)  # a seed-<n> folder made by another recipe (only possible when resuming)
            ranks.wait()
            # the seed that was running when the multi-seed run stopped continues from its checkpoint
            stopped = resume.latest_complete(output.incomplete_dir(folder) / "checkpoints") is not None
            logger.info(
                "seed %d: %s (%d of %d)", seed, "resuming" if stopped else "training", seeds.index(seed) + 1, len(seeds)
            )
            finetune(one, ["output.resume=true"] if stopped else [], callbacks=callbacks, data=given)
        runs[seed] = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))

    result = summarize(runs)
    if ranks.is_main():
        (work / "seeds.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        output.finish(work, final)
    ranks.wait()
    return result


def parse_seeds(text: str) -> list[int]:
    """Seeds written as on the command line, `1,2,3`."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise HfadaptError(
            f"--seeds: expected whole numbers separated by commas, e.g. --seeds 1,2,3; got {text!r}"
        ) from None


def summarize(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per-seed values, mean and sample sd of every validation and test metric of `runs` (seed -> metrics.json)."""
    seeds = list(runs)
    first = runs[seeds[0]]
    result: dict[str, Any] = {
        "seeds": seeds,
        "runs": {str(s): f"seed-{s}" for s in seeds},
        "main_metric": first["main_metric"],
    }
    for split in ("validation", "test"):
        table = {}
        for key, value in first[split].items():
            if (
                key.endswith(TIMING_SUFFIXES)
                or key == "epoch"
                or not isinstance(value, (int, float))
                or isinstance(value, bool)
            ):
                continue
            values = [runs[s][split].get(key) for s in seeds]
            if any(not isinstance(v, (int, float)) for v in values):
                continue
            table[key] = {"mean": statistics.fmean(values), "sd": statistics.stdev(values), "values": values}
        result[split] = table
    return result


def refuse_hub(recipe: Recipe, seed_dir: str) -> None:
    """Refuse a multi-seed run of a recipe with a hub section: which seed's model would go up?

    Args:
        recipe: the recipe to run once per seed.
        seed_dir: where one seed's run folder lies, as the message names it (`OUTPUT_DIR/seed-N`).

    Raises:
        HfadaptError: the recipe has a hub section, with the fix.
    """
    if recipe.hub is not None:
        raise HfadaptError(
            "--seeds: a multi-seed run pushes nothing to the Hub; remove the hub section and "
            f"push one seed's folder with hfadapt push {seed_dir}"
        )


def check_seeds(seeds) -> list[int]:
    """Refuse seeds that cannot make a multi-seed run.

    Args:
        seeds: the seeds asked for, a list of whole numbers.

    Returns:
        The seeds as a list, once they are at least two, distinct and not negative.

    Raises:
        HfadaptError: any other seeds, with the fix.
    """
    if isinstance(seeds, int) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise HfadaptError(f"--seeds: expected a list of whole numbers, e.g. --seeds 1,2,3; got {seeds!r}")
    seeds = list(seeds)
    if len(seeds) < 2:
        raise HfadaptError(
            "--seeds: give at least two seeds (a standard deviation needs two runs), e.g. "
            f"--seeds 1,2,3; got {len(seeds)}"
        )
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise HfadaptError(f"--seeds: {', '.join(map(str, repeated))} given more than once; each seed runs once")
    if any(s < 0 for s in seeds):
        raise HfadaptError("--seeds: seeds must be 0 or more")
    return seeds


def _check_output(final: Path, work: Path, overwrite: bool, resume: bool) -> None:
    """The single-run rules, and a stopped multi-seed run is never thrown away silently."""
    output.check(final, overwrite, resume)
    if work.exists() and any(work.iterdir()) and not resume and not overwrite:
        raise HfadaptError(
            f"output.dir: a stopped multi-seed run of {final} is in {work}; continue it with "
            "--resume (output.resume=true), or set output.overwrite=true to start over"
        )


def _finished(recipe: Recipe, folder: Path) -> bool:
    """Whether `folder` holds a finished run of exactly this seed's recipe."""
    if not (folder / "metrics.json").exists() or not (folder / "recipe.yaml").exists():
        return False
    return load_recipe(folder / "recipe.yaml").to_dict() == recipe.to_dict()
