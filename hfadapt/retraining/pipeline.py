"""`retrain`: every retraining stage in order, each reused when finished; `--seeds` fine-tunes once per seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hfadapt import ranks
from hfadapt.errors import HfadaptError
from hfadapt.recipe import Recipe, as_recipe, save_recipe
from hfadapt.retraining import corpus, stages
from hfadapt.runs import output
from hfadapt.training.finetuning import finetune


def retrain(
    recipe: Recipe | dict | str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    until: str = "finetuned",
    *,
    callbacks: list | tuple = (),
    seeds: list[int] | tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Run a retraining recipe's stages, reusing the finished ones.

    Args:
        recipe: a `Recipe`, or the path of a YAML recipe with a `corpus` section.
        overrides: `key=value` strings applied to the recipe.
        until: the last stage to run: `tokenizer`, `pretrained` or `finetuned`.
        callbacks: `transformers.TrainerCallback`s given to the pretraining and fine-tuning Trainers.
        seeds: fine-tune once per seed from the one pretrained stage (`finetuned/seed-N/` each, their
            mean and sd in `finetuned/seeds.json`); the tokenizer and pretraining follow the recipe's seeds.

    Returns:
        Each stage's report: `tokenizer` (the fit), `pretrain` (perplexities, packing, vocabulary)
        and `finetune` (the fine-tuning metrics, as `finetune` returns them, or with `seeds` the
        summary `finetune_seeds` returns).
    """
    recipe = as_recipe(recipe, overrides)
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
    with output.lock(recipe.output.dir), corpus.reading_once():
        return _retrain(recipe, until, list(callbacks), seeds)


def _retrain(recipe: Recipe, until: str, callbacks: list, seeds: list[int] | None) -> dict[str, Any]:
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
        results["pretrain"] = json.loads((root / "pretrained" / "pretrain.json").read_text())
    if until == "pretrained":
        return results
    results["finetune"] = _finetune_stage(recipe, root, callbacks, seeds)
    if ranks.is_main():
        save_recipe(recipe, root / "recipe.yaml")
        (root / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return results


def _finetune_stage(recipe: Recipe, root: Path, callbacks: list, seeds: list[int] | None) -> dict[str, Any]:
    """Fine-tune the pretrained stage (or the checkpoint) into ROOT/finetuned, once or once per seed."""
    folder = root / "finetuned"
    with ranks.main_first():
        reuse = stages.reusable(recipe, root, "finetuned", seeds)
    if not reuse:
        # a fresh run in the stage's folder (or the stopped one's, with output.resume)
        changes: dict[str, Any] = {"corpus": None, "tokenizer": None, "pretrain": None}
        changes["output"] = {"dir": str(folder), "overwrite": False}
        if recipe.pretrain is not None:
            changes["model"] = {"name_or_path": str(root / "pretrained"), "revision": None}
        if seeds is None:
            finetune(recipe.updated(changes), callbacks=callbacks)
        else:
            from hfadapt.training.seeds import finetune_seeds

            finetune_seeds(recipe.updated(changes), seeds, callbacks=callbacks)
        if ranks.is_main():
            stages.mark(recipe, folder, "finetuned", seeds)
        ranks.wait()
    return json.loads((folder / ("metrics.json" if seeds is None else "seeds.json")).read_text())
