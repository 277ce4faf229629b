"""`retrain`: every retraining stage in order, each reused when finished; `--seeds` fine-tunes once per seed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hfadapt import ranks
from hfadapt.data import in_memory
from hfadapt.errors import HfadaptError
from hfadapt.model.pretrained import check_local
from hfadapt.recipe import Recipe, save_recipe
from hfadapt.retraining import stages
from hfadapt.retraining.corpus import reading_once
from hfadapt.runs import output, resume
from hfadapt.runs.run import Run
from hfadapt.training.finetuning import finetune


def retrain(
    recipe: Recipe | dict | str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    until: str = "finetuned",
    *,
    callbacks: list | tuple = (),
    seeds: list[int] | tuple[int, ...] | None = None,
    data: Any = None,
    corpus: Iterable[str] | None = None,
) -> Run | dict[str, Any]:
    """Run a retraining recipe's stages, reusing the finished ones.

    SIGINT or SIGTERM stops the running stage (pretraining and fine-tuning at the end of a step, after
    saving a checkpoint) with `resume.Interrupted`; the same recipe with `output.resume=true` (`--resume`)
    continues it from its newest complete checkpoint.

    Args:
        recipe: a `Recipe`, or the path of a YAML recipe with a `corpus` section.
        overrides: `key=value` strings applied to the recipe.
        until: the last stage to run: `tokenizer`, `pretrained` or `finetuned`.
        callbacks: `transformers.TrainerCallback`s given to the pretraining and fine-tuning Trainers.
        seeds: fine-tune once per seed from the one pretrained stage (`finetuned/seed-N/` each, their
            mean and sd in `finetuned/seeds.json`); the tokenizer and pretraining follow the recipe's seeds.
        data: the fine-tuning data itself, in place of data.source (which the saved recipe then gives as
            `in-memory:sha256:...`): a `datasets.Dataset` or `DatasetDict` (its splits kept), a
            `pandas.DataFrame` or a list of dicts. A corpus source that named data.source names it too.
        corpus: the corpus itself, in place of corpus.sources: an iterable of texts (a list, a generator,
            a pandas Series), read once and held in memory.

    Returns:
        With `until="finetuned"` and no `seeds`: the fine-tuned stage's `Run` (OUTPUT_DIR/finetuned),
        whose `stages` holds each stage's report, keyed by its folder: `tokenizer` (the fit),
        `pretrained` (perplexities, packing, vocabulary) and `finetuned` (the run's metrics). Without
        a fine-tuned model to hold (`until="tokenizer"` or `"pretrained"`, or `seeds`), that dict of
        reports itself, its `finetuned` being the summary `finetune_seeds` returns.
    """
    given = in_memory.load(data) if data is not None else None
    texts = in_memory.load_texts(corpus) if corpus is not None else None
    recipe = in_memory.recipe_with(recipe, overrides, given, texts, needs_data=until == "finetuned")
    if seeds is not None:
        from hfadapt.training.seeds import check_seeds, refuse_hub

        seeds = check_seeds(seeds)
        refuse_hub(recipe, "OUTPUT_DIR/finetuned/seed-N")
    if recipe.corpus is None:
        raise HfadaptError(
            "corpus: retraining needs a corpus section (and tokenizer and/or pretrain sections); "
            "for fine-tuning alone use hfadapt finetune"
        )
    if recipe.tokenizer is not None and recipe.pretrain is None and until == "finetuned":
        raise HfadaptError(
            "pretrain: a new tokenizer needs a pretrain stage before fine-tuning (the model's embeddings must learn it)"
        )
    check_local(recipe)  # the checkpoint's files and shapes, block_size against its positions: before any stage
    stages.check_stopped(recipe, Path(recipe.output.dir))
    with (
        output.lock(recipe.output.dir),
        reading_once(given, texts),
        resume.interruptible("retraining"),
        resume.time_limit(recipe.output.stop_after_minutes),
    ):
        return _retrain(recipe, until, list(callbacks), seeds, given)


def _retrain(
    recipe: Recipe, until: str, callbacks: list, seeds: list[int] | None, given: in_memory.Given | None
) -> Run | dict[str, Any]:
    from transformers import set_seed

    root = Path(recipe.output.dir)  # made by the first stage that writes, once its checks have passed
    set_seed(recipe.training["seed"])
    results: dict[str, Any] = {}
    if recipe.tokenizer is not None:
        with ranks.main_first():  # the main rank trains it; the others then find it and reuse it
            if not stages.reusable(recipe, root, "tokenizer"):
                stages.tokenizer_stage(recipe, root / "tokenizer")
        results["tokenizer"] = json.loads((root / "tokenizer" / "fit.json").read_text())
    if until == "tokenizer":
        return results
    if recipe.pretrain is not None:
        with ranks.main_first():
            reuse = stages.reusable(recipe, root, "pretrained")  # the main rank alone clears a stale stage
        if not reuse:
            stages.pretrain_stage(recipe, root / "pretrained", callbacks)  # every rank trains
        results["pretrained"] = json.loads((root / "pretrained" / "pretrain.json").read_text())
    if until == "pretrained":
        return results
    results["finetuned"] = _finetune_stage(recipe, root, callbacks, seeds, given)
    if ranks.is_main():
        save_recipe(recipe, root / "recipe.yaml")
        (root / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    if seeds is not None:
        return results
    run = Run.load(root / "finetuned")
    run.stages = results
    return run


def _finetune_stage(
    recipe: Recipe, root: Path, callbacks: list, seeds: list[int] | None, given: in_memory.Given | None
) -> dict[str, Any]:
    """Fine-tune the pretrained stage (or the checkpoint) into ROOT/finetuned, once or once per seed."""
    folder = root / "finetuned"
    with ranks.main_first():
        reuse = stages.reusable(recipe, root, "finetuned", seeds)
    if not reuse:
        # a fresh run in the stage's folder, or with output.resume the stopped one's (when it saved a checkpoint)
        changes: dict[str, Any] = {"corpus": None, "tokenizer": None, "pretrain": None}
        stopped = seeds is not None or output.has_checkpoint(output.incomplete_dir(folder))
        changes["output"] = {"dir": str(folder), "overwrite": False, "resume": recipe.output.resume and stopped}
        if recipe.pretrain is not None:
            changes["model"] = {"name_or_path": str(root / "pretrained"), "revision": None}
        if seeds is None:
            finetune(recipe.updated(changes), callbacks=callbacks, data=given)
        else:
            from hfadapt.training.seeds import finetune_seeds

            finetune_seeds(recipe.updated(changes), seeds, callbacks=callbacks, data=given)
        if ranks.is_main():
            stages.mark(recipe, folder, "finetuned", seeds)
        ranks.wait()
    return json.loads((folder / ("metrics.json" if seeds is None else "seeds.json")).read_text())
