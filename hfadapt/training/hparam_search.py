"""Hyperparameter search: one fine-tuning recipe run once per trial, with the values Optuna proposes.

Each trial is a normal finished run folder, OUTPUT_DIR/trial-000/, trial-001/ ..., made by
`finetune` with the trial's recipe, and is scored by the main metric on the validation split
alone. The test split takes no part in the choice: the search reports the test figure of the
chosen trial only. OUTPUT_DIR also holds search.md (the table of trials), trials.json, trials.png
(the validation metric per trial and the best so far) and best.yaml (the chosen trial's recipe).
The folder follows the single-run rules (hfadapt/output.py): written in OUTPUT_DIR.incomplete,
moved into place after the last trial, an existing folder replaced only with output.overwrite.
A stopped search continues with output.resume: finished trials are kept, the stopped one continues from
its newest complete checkpoint.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

from hfadapt import ranks
from hfadapt.errors import HfadaptError
from hfadapt.recipe import Recipe, as_recipe, dump_recipe, load_recipe
from hfadapt.runs import curves, output, resume
from hfadapt.training.divergence import Diverged
from hfadapt.training.finetuning import finetune
from hfadapt.training.space import (
    OUTSIDE,
    Dimension,
    assignments,
    check_space,
    parse_space,
    show,
    trial_recipe,
    value_at,
)

logger = logging.getLogger(__name__)


def search(
    recipe: Recipe | str | Path,
    space: dict[str, str] | list[str],
    trials: int,
    overrides: list[str] | tuple[str, ...] = (),
    output_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Search a fine-tuning recipe's hyperparameters: one run per trial, chosen by the validation main metric.

    Args:
        recipe: a `Recipe`, or the path of a YAML recipe.
        space: dotted recipe keys and what to try, as `{"training.learning_rate": "1e-5..1e-3:log"}` or
            `["training.learning_rate=1e-5..1e-3:log", "adapt.lora.r=4,8,16"]`: `LOW..HIGH` (whole numbers
            when both ends are; `:log` for a log scale) or choices `a,b,c`.
        trials: how many runs; Optuna's TPE sampler, seeded by `training.seed`, proposes each one's values.
        overrides: `key=value` strings applied to the recipe before the search, e.g. `data.max_train_samples=2000`.
        output_dir: the search's folder; by default the recipe's `output.dir`.

    Returns:
        The summary saved as OUTPUT_DIR/trials.json: the space, each trial's values, validation main metric
        and training minutes, and the best trial with its test figure.

    Raises:
        HfadaptError: a bad space, trial count, recipe or output folder, before any training; or Optuna missing.
    """
    recipe = as_recipe(recipe, overrides)
    if output_dir is not None:
        recipe = recipe.updated({"output": {"dir": str(output_dir)}})
    dimensions = parse_space(space)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise HfadaptError(f"--trials: expected a whole number of 1 or more, got {trials!r}")
    if recipe.retraining:
        raise HfadaptError(
            "search: this recipe has retraining stages (corpus, tokenizer, pretrain); a search is for "
            "hfadapt finetune recipes"
        )
    if recipe.hub is not None:
        raise HfadaptError(
            "search: a search pushes nothing to the Hub; remove the hub section and push the best trial's "
            "folder with hfadapt push OUTPUT_DIR/trial-N"
        )
    check_space(recipe, dimensions)
    optuna = _optuna()
    final = Path(recipe.output.dir)
    work = output.incomplete_dir(final)
    output.check(final, recipe.output.overwrite, recipe.output.resume)
    if work.exists() and any(work.iterdir()) and not recipe.output.resume and not recipe.output.overwrite:
        raise HfadaptError(
            f"output.dir: a stopped search of {final} is in {work}; continue it with --resume "
            "(output.resume=true), or set output.overwrite=true to start over"
        )
    with output.lock(final), resume.time_limit(recipe.output.stop_after_minutes):
        return _run(recipe, dimensions, trials, final, work, optuna)


def _run(recipe: Recipe, dimensions: list[Dimension], trials: int, final: Path, work: Path, optuna) -> dict:
    if ranks.is_main():
        output.start(final, resume=recipe.output.resume)
    ranks.wait()
    metric = recipe.task.metric()
    maximize = metric not in ("loss", "mse")  # as the best checkpoint is chosen (Recipe.training_arguments)
    done = _finished(recipe, dimensions, work) if recipe.output.resume else []
    for record in done:
        logger.info("trial %d/%d: reusing the finished run in %s", record["trial"] + 1, trials, work / record["folder"])
    finetune_log = logging.getLogger("hfadapt.training.finetuning")
    finetune_log.addFilter(hide := _NoTestFigures())
    try:
        for number in range(len(done), trials):
            folder = work / f"trial-{number:03d}"
            # the trial that was stopped continues from its checkpoint (its values are asked again, the same);
            # a later one, or one stopped before any checkpoint, starts over
            stopped = recipe.output.resume and output.has_checkpoint(output.incomplete_dir(folder))
            if ranks.is_main() and not stopped:
                for stale in (folder, output.incomplete_dir(folder)):
                    shutil.rmtree(stale, ignore_errors=True)
            ranks.wait()
            params = _ask(optuna, dimensions, done, number, recipe.training["seed"], maximize)
            try:
                finetune(trial_recipe(recipe, params, folder), ["output.resume=true"] if stopped else [])
                done.append(_record(number, params, folder, metric))
            except Diverged as e:  # values that diverge: a failed trial, as a NaN metric is; the search goes on
                logger.warning("trial %d/%d (%s): %s", number + 1, trials, assignments(params), e)
                failed = {"trial": number, "folder": folder.name, "params": params, "validation": None, "minutes": 0}
                done.append(failed)  # no run folder is kept: a resumed search tries these values again
            best = _best(done, maximize)
            logger.info(
                "trial %d/%d (%s): validation %s %s; best so far %s",
                number + 1,
                trials,
                assignments(params),
                metric,
                show(done[-1]["validation"]),
                f"{show(best['validation'])} ({best['folder']})" if best else "none",
            )
    finally:
        finetune_log.removeFilter(hide)
    result = _summary(recipe, dimensions, done, final, work, metric, maximize)
    if ranks.is_main():
        _write(result, work, load_recipe(work / result["best"]["folder"] / "recipe.yaml"), final)
        output.finish(work, final)
    ranks.wait()
    return result


class _NoTestFigures(logging.Filter):
    """Drops finetune's log line of each trial's test figures: trials are compared on validation alone, and the
    search shows the test figure of the chosen trial only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("test:")


def _ask(optuna, dimensions: list[Dimension], done: list[dict], number: int, seed: int, maximize: bool) -> dict:
    """Trial `number`'s values, from a TPE sampler seeded by the recipe's seed and the trial's number, that has
    seen the finished trials: what a trial tries depends only on them, so a resumed search proposes what the
    uninterrupted one would have."""
    distributions = {d.key: d.distribution() for d in dimensions}
    study = optuna.create_study(
        direction="maximize" if maximize else "minimize", sampler=optuna.samplers.TPESampler(seed=seed + number)
    )
    for record in done:
        failed = record["validation"] is None  # a NaN metric: the trial counts as failed, not as a score
        study.add_trial(
            optuna.trial.create_trial(
                params=record["params"],
                distributions=distributions,
                value=None if failed else record["validation"],
                state=optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE,
            )
        )
    return dict(study.ask(distributions).params)


def _record(number: int, params: dict[str, Any], folder: Path, metric: str) -> dict[str, Any]:
    results = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    value = results["validation"].get(f"validation_{metric}")
    return {
        "trial": number,
        "folder": folder.name,
        "params": params,
        "validation": None if value is None or math.isnan(value) else value,
        "minutes": round(results["compute_seconds"] / 60, 2),
    }


def _finished(recipe: Recipe, dimensions: list[Dimension], work: Path) -> list[dict[str, Any]]:
    """The stopped search's finished trials, in order, up to the first that is missing or made by another recipe."""
    metric = recipe.task.metric()
    done = []
    for number in itertools.count():
        folder = work / f"trial-{number:03d}"
        if not (folder / "metrics.json").is_file() or not (folder / "recipe.yaml").is_file():
            break
        saved = load_recipe(folder / "recipe.yaml")
        params = {d.key: d.value(value_at(saved.to_dict(), d.key)) for d in dimensions}
        if (
            any(v is OUTSIDE for v in params.values())
            or trial_recipe(recipe, params, folder).to_dict() != saved.to_dict()
        ):
            break
        done.append(_record(number, params, folder, metric))
    return done


def _best(done: list[dict[str, Any]], maximize: bool) -> dict[str, Any] | None:
    """The trial with the best validation figure; the earliest of equals."""
    scored = [r for r in done if r["validation"] is not None]
    if not scored:
        return None
    sign = 1 if maximize else -1
    return max(scored, key=lambda r: (sign * r["validation"], -r["trial"]))


def _summary(
    recipe: Recipe, dimensions: list[Dimension], done: list[dict], final: Path, work: Path, metric: str, maximize: bool
) -> dict[str, Any]:
    best = _best(done, maximize)
    if best is None:
        raise HfadaptError(
            f"search: no trial gave a validation {metric} (every one was NaN or diverged); the finished trials are in "
            f"{work}; change the space and start over with output.overwrite=true"
        )
    # the test split is read once, for the chosen trial: it played no part in the choice
    test = json.loads((work / best["folder"] / "metrics.json").read_text(encoding="utf-8"))["test"]
    return {
        "output_dir": str(final),
        "main_metric": metric,
        "direction": "maximize" if maximize else "minimize",
        "sampler": "optuna TPESampler",
        "seed": recipe.training["seed"],
        "space": {d.key: d.spec for d in dimensions},
        "trials": done,
        "best": {**best, "test": test.get(f"test_{metric}")},
    }


def _write(result: dict[str, Any], work: Path, best: Recipe, final: Path) -> None:
    """search.md, trials.json, trials.png and best.yaml in the search's folder."""
    chosen = result["best"]
    recipe = best.with_output(f"{final}-best")
    header = (
        f"# The best trial of the search in {final} ({chosen['folder']}): validation "
        f"{result['main_metric']} {show(chosen['validation'])}.\n#   hfadapt finetune {final}/best.yaml\n"
    )
    (work / "best.yaml").write_text(header + dump_recipe(recipe), encoding="utf-8")
    (work / "trials.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (work / "search.md").write_text(report(result), encoding="utf-8")
    _plot(result, work / "trials.png")


def report(result: dict[str, Any]) -> str:
    """search.md: the space, a table of trials (values, validation figure, minutes), and the best trial's test figure.

    Args:
        result: the summary `search` returns.

    Returns:
        The report as Markdown.
    """
    metric, keys, best = result["main_metric"], list(result["space"]), result["best"]
    lines = [
        f"# Search: {Path(result['output_dir']).name}",
        "",
        f"{len(result['trials'])} trials, values proposed by Optuna's TPE sampler (seed {result['seed']}); each "
        f"trial scored by its validation {metric} ({'higher' if result['direction'] == 'maximize' else 'lower'} "
        "is better). The test split took no part in the choice.",
        "",
        "| key | searched |",
        "|---|---|",
        *(f"| `{k}` | `{v}` |" for k, v in result["space"].items()),
        "",
        "| trial | " + " | ".join(f"`{k}`" for k in keys) + f" | validation {metric} | training minutes | |",
        "|---" * (len(keys) + 4) + "|",
    ]
    for r in result["trials"]:
        mark = "best" if r["trial"] == best["trial"] else ""
        values = " | ".join(show(r["params"][k]) for k in keys)
        lines.append(f"| {r['folder']} | {values} | {show(r['validation'])} | {r['minutes']:.1f} | {mark} |")
    lines += [
        "",
        f"Best: {best['folder']}, validation {metric} {show(best['validation'])}; its test {metric}, scored once "
        f"for the chosen trial only: {show(best['test'])}. Its recipe is best.yaml "
        f"(`hfadapt finetune {result['output_dir']}/best.yaml`).",
        "",
    ]
    return "\n".join(lines)


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    metric, maximize = result["main_metric"], result["direction"] == "maximize"
    scored = [(r["trial"], r["validation"]) for r in result["trials"] if r["validation"] is not None]
    better = max if maximize else min
    line = [(number, better(v for _, v in scored[: i + 1])) for i, (number, _) in enumerate(scored)]
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot(*zip(*scored, strict=True), "o", color="tab:blue", label="trial")
    axes.step(*zip(*line, strict=True), where="post", color="tab:orange", label="best so far")
    best = result["best"]
    axes.plot([best["trial"]], [best["validation"]], "*", markersize=14, color="tab:red", label="chosen")
    axes.set_xlabel("trial")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(f"validation {metric}")
    axes.grid(alpha=0.3)
    axes.legend()
    curves.save(figure, f"{Path(result['output_dir']).name}: validation {metric} per trial", path)


def _optuna():
    try:
        import optuna
    except ImportError:
        raise HfadaptError("search needs optuna: pip install 'hfadapt[search]' (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # hfadapt logs one line per trial itself
    return optuna
