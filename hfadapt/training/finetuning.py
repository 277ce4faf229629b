"""Fine-tuning, top to bottom: recipe, seed, tokenizer, data, model, adaptation, Trainer, save."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from transformers import Trainer

from hfadapt import builtin, ranks
from hfadapt.data import cache, in_memory, long_texts, splits, tokenization
from hfadapt.data.sampler import SortedEvaluation, train_sampler
from hfadapt.errors import HfadaptError
from hfadapt.model import adapt, baseline, loss, metrics, pretrained
from hfadapt.recipe import Recipe, arguments, load_recipe, save_recipe
from hfadapt.runs import card, curves, hub, manifest, output, resume
from hfadapt.runs.run import Run
from hfadapt.training import divergence

logger = logging.getLogger(__name__)

# Sections a checkpoint depends on: resuming under other values would mix two runs.
RESUME_SECTIONS = ("model", "task", "data", "adapt", "training")


def finetune(
    recipe: Recipe | dict | str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    data: Any = None,
    callbacks: list | tuple = (),
) -> Run:
    """Run a fine-tuning recipe and return the finished run (its metrics are also saved as OUTPUT_DIR/metrics.json).

    Every check on the input (the recipe, the output folder, the model, the data, the labels,
    the adaptation) runs before training starts, and nothing is written until they pass. With
    `output.resume`, a stopped run continues from its newest complete checkpoint.

    Args:
        recipe: a `Recipe`, its dict form (as in YAML), or the path of a YAML recipe.
        overrides: `key=value` strings applied to the recipe, e.g. `training.learning_rate=3e-5`.
        data: the data itself, in place of data.source (which the saved recipe, manifest and card then
            give as `in-memory:sha256:<16 hex>`, a fingerprint of its content): a `datasets.Dataset`, a
            `datasets.DatasetDict` (its train, validation and test splits kept as given), a
            `pandas.DataFrame` or a list of dicts. Same row checks and split rules as a file.
        callbacks: `transformers.TrainerCallback`s given to the Trainer beside hfadapt's own.

    Returns:
        The `Run`: its folder, its recipe, its model and tokenizer (loaded on first use), and as
        `run.metrics` the `train`, `validation` and `test` metrics, the `main_metric`, parameter
        counts, the data report, the label names, the device and the compute time.

    Raises:
        HfadaptError: bad input (recipe, output folder, model, data), before any training.
    """
    given = in_memory.load(data) if data is not None else None
    recipe = in_memory.recipe_with(recipe, overrides, given)
    if recipe.retraining:
        raise HfadaptError(
            "this recipe has retraining stages (corpus, tokenizer, pretrain); run it with hfadapt retrain"
        )
    output.check(recipe.output.dir, recipe.output.overwrite, recipe.output.resume)
    with output.lock(recipe.output.dir), resume.time_limit(recipe.output.stop_after_minutes):
        return Run(recipe.output_path(), _finetune(recipe, list(callbacks), given), recipe)


def _finetune(recipe: Recipe, callbacks: list, given: in_memory.Given | None = None) -> dict[str, Any]:
    from transformers import set_seed

    resume_from = _resume_point(recipe) if recipe.output.resume else None
    if recipe.hub is not None:
        hub.token()  # a push that cannot happen fails now, not after training
    set_seed(recipe.training["seed"])  # before the head is initialised
    tokenizer, task_data, model = _load(recipe, given)
    weights = loss.weights_for_task(recipe.task, task_data.label_names, task_data.splits["train"])
    parameters = adapt.parameter_summary(model)
    logger.info("trainable parameters: %(trainable)d of %(total)d (%(trainable_percent).3f%%)", parameters)
    # tokenized once, by the main process
    tokenized = cache.tokenized(task_data, tokenizer, recipe.data, recipe.task).data
    task_data.report["truncation"] = tokenization.truncation(task_data, tokenizer, recipe.data, recipe.task)
    tfidf = baseline.fit_splits(recipe.task, task_data, "test") if ranks.is_main() else None  # before hours of training
    if resume_from is not None:
        _check_resumable(resume_from, model)

    work = _start(recipe, resume_from)
    trainer = _Trainer(
        model=model,
        args=recipe.training_arguments(output_dir=str(work / "checkpoints")),
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        processing_class=tokenizer,
        data_collator=tokenization.collator(tokenizer, recipe.task),
        compute_metrics=metrics.compute_fn(recipe.task, task_data.label_names),
        callbacks=[stop := resume.StopOnSignal(), divergence.DivergenceGuard()] + _early_stopping(recipe) + callbacks,
        compute_loss_func=(
            loss.weighted_loss(weights, loss.is_multi_label(recipe.task)) if weights is not None else None
        ),
    )
    try:
        train_metrics, seconds = _train(trainer, resume_from, work)
    finally:
        stop.restore()
    stop.check(trainer.state.global_step, work / "checkpoints")
    validation, validation_classes = _score(trainer, tokenized["validation"], "validation", recipe, task_data)
    test, test_classes = _score(trainer, tokenized["test"], "test", recipe, task_data)
    results: dict[str, Any] = {
        "train": train_metrics,
        "validation": validation,
        "test": test,
        "per_class": {"validation": validation_classes, "test": test_classes},
        "main_metric": metrics.main_metric(recipe.task),
        "parameters": parameters,
        "data": task_data.report,
        "label_names": task_data.label_names,
        "device": str(trainer.args.device),
        "precision": arguments.precision(recipe.training),
        "compute_seconds": seconds,
        "resumed_from": resume_from.name if resume_from else None,
        "class_weights": weights,
        "kept": _kept(trainer, recipe),
        "baseline": tfidf.to_dict() if tfidf is not None else None,
    }
    logger.info("test: %s", {k: round(v, 4) for k, v in results["test"].items() if isinstance(v, float)})
    _finish(trainer, recipe, tokenizer, results, work)
    return results


def _train(trainer, resume_from: Path | None, work: Path) -> tuple[dict[str, Any], float]:
    """Train, and the whole run's training metrics and compute seconds (a resumed run's too).

    A run that fails before its first complete checkpoint leaves nothing behind: its side folder
    goes, so the next run starts clean rather than being told to resume.
    """
    saved = resume.totals(resume_from)  # read now: the checkpoint may be rotated out during training
    trainer.before = saved or {"loss_sum": 0.0, "steps": 0, "compute_seconds": 0.0}
    try:
        train_metrics = dict(trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None).metrics)
        divergence.check(trainer)  # a run that diverged stops at that step and is not saved
    except Exception:
        if ranks.is_main() and not output.has_checkpoint(work):
            shutil.rmtree(work, ignore_errors=True)
        raise
    before = trainer.before
    steps = trainer.state.global_step
    seconds = round(before["compute_seconds"] + trainer.session_seconds(), 1)
    if resume_from is not None and saved is not None and steps:
        # Trainer's train_loss and train_runtime cover the steps of this session alone; the run's are its totals
        train_metrics["train_loss"] = (
            before["loss_sum"] + train_metrics["train_loss"] * (steps - before["steps"])
        ) / steps
        train_metrics["train_runtime"] = round(before["compute_seconds"] + train_metrics["train_runtime"], 4)
        summary = next((h for h in reversed(trainer.state.log_history) if "train_loss" in h), None)
        if summary is not None:  # log_history.json's last entry: the same totals
            summary.update(train_loss=train_metrics["train_loss"], train_runtime=train_metrics["train_runtime"])
    return train_metrics, seconds


def _early_stopping(recipe: Recipe) -> list:
    if recipe.early_stopping is None:
        return []
    from transformers import EarlyStoppingCallback

    settings = recipe.early_stopping
    return [
        EarlyStoppingCallback(early_stopping_patience=settings.patience, early_stopping_threshold=settings.threshold)
    ]


def _kept(trainer, recipe: Recipe) -> dict[str, Any]:
    """Which model the run kept (the last, or with early stopping the best), and why training stopped."""
    state = trainer.state
    early = state.global_step < state.max_steps
    stopped = "at the end of its schedule"
    if early and recipe.early_stopping is not None:
        stopped = f"early, after {recipe.early_stopping.patience} evaluations without improvement"
    if recipe.early_stopping is None or state.best_global_step is None:
        return {"model": "last", "step": state.global_step, "epoch": state.epoch, "stopped": stopped}
    epochs = {h["step"]: h["epoch"] for h in state.log_history if "step" in h and "epoch" in h}
    metric = trainer.args.metric_for_best_model
    return {
        "model": "best",
        "step": state.best_global_step,
        "epoch": epochs.get(state.best_global_step),
        f"validation_{metric}": state.best_metric,
        "stopped": stopped,
    }


def _score(trainer, dataset, split: str, recipe: Recipe, task_data) -> tuple[dict[str, Any], dict | None]:
    """A split's metrics (as `Trainer.evaluate` gives them) and its per-class figures, from one pass."""
    out = trainer.predict(dataset, metric_key_prefix=split)
    trainer.log(out.metrics)  # as evaluate would: the log history keeps the final figures
    return out.metrics, metrics.per_class(recipe.task, task_data.label_names, out.predictions, out.label_ids)


def _load(recipe: Recipe, given: in_memory.Given | None = None):
    """The checkpoint's tokenizer, the data (`given` in memory, or data.source) split and checked, and the
    task model ready to train."""
    config = pretrained.load_config(recipe.model)  # an unknown model fails here, before the data is read
    pretrained.check_folder(recipe.model.name_or_path)
    tokenizer = pretrained.load_tokenizer(recipe.model)
    pretrained.check_tokenizer(tokenizer, config, recipe.data.max_length)
    task_data = splits.load_splits(recipe.data, recipe.task, given=given)
    config = pretrained.task_config(recipe.model, recipe.task, task_data.label_names)
    model, fresh = pretrained.load_task_model(recipe.model, recipe.task, config)
    return tokenizer, task_data, adapt.apply(model, recipe, fresh)


class _Trainer(long_texts.WindowPooling, SortedEvaluation, Trainer):
    """`Trainer`, with length grouping that keeps each batch's label mix (sampler.LengthGroupedByLabelSampler),
    the run's totals so far (loss, compute seconds) saved in every checkpoint, for a resumed run's metrics,
    windows of long texts scored per text (long_texts.WindowPooling), and evaluation batches longest first
    (sampler.SortedEvaluation)."""

    before = {"loss_sum": 0.0, "steps": 0, "compute_seconds": 0.0}  # the totals up to where training starts

    def train(self, *args, **kwargs):
        self._began = time.perf_counter()
        return super().train(*args, **kwargs)

    def session_seconds(self) -> float:
        return time.perf_counter() - self._began

    def _save_checkpoint(self, model, trial) -> None:
        # written before the checkpoint's trainer_state.json, which marks it complete: a complete
        # checkpoint always has its totals
        if self.args.should_save:
            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            session_loss = self._total_loss_scalar + self._tr_loss.item()
            resume.save_totals(
                folder,
                loss_sum=self.before["loss_sum"] + session_loss,
                steps=self.state.global_step,
                compute_seconds=self.before["compute_seconds"] + self.session_seconds(),
            )
        super()._save_checkpoint(model, trial)

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy == "group_by_length" and dataset is not None:
            sampler = train_sampler(dataset, self.args.train_batch_size)
            if sampler is not None:
                return sampler
        return super()._get_train_sampler(train_dataset)


def _start(recipe: Recipe, resume_from: Path | None) -> Path:
    """The side folder the run writes into, made by the main process once every rank has checked."""
    ranks.wait()  # every rank has checked the output folder before the main one starts writing
    work = output.incomplete_dir(recipe.output.dir)
    if ranks.is_main():
        output.start(recipe.output.dir, resume=resume_from is not None)
        save_recipe(recipe, work / "recipe.yaml")  # a later --resume checks it continues the same recipe
    ranks.wait()
    return work


def _resume_point(recipe: Recipe) -> Path | None:
    """The newest complete checkpoint of the stopped run, after checking it is this recipe's; None when
    the run never saved one (it starts, so that the same command with --resume runs a job in pieces)."""
    work = output.incomplete_dir(recipe.output.dir)
    latest = resume.latest_complete(work / "checkpoints")
    if latest is None:
        states = (work / "checkpoints").glob("checkpoint-*/trainer_state.json")
        damaged = sorted(state.parent.name for state in states)
        if damaged:  # each one's problem was logged by latest_complete
            raise HfadaptError(
                f"--resume: every checkpoint in {work / 'checkpoints'} is damaged ({', '.join(damaged)}: a file cut "
                "off or corrupt); run without --resume to start over"
            )
        logger.warning("--resume: no checkpoint in %s to continue from; starting the run", work / "checkpoints")
        return None
    saved = load_recipe(work / "recipe.yaml").to_dict()
    wanted = recipe.to_dict()
    changed = [s for s in RESUME_SECTIONS if saved[s] != wanted[s]]
    if changed:
        raise HfadaptError(
            f"--resume: the checkpoint in {work} comes from a different recipe "
            f"({', '.join(changed)} changed); resume with the recipe that started it, or set "
            "output.overwrite=true to start over"
        )
    logger.info("resuming from %s", latest)
    return latest


def _check_resumable(latest: Path, model) -> None:
    config = json.loads((latest / "config.json").read_text()) if (latest / "config.json").exists() else {}
    rows = model.get_input_embeddings().num_embeddings
    if config.get("vocab_size", rows) != rows:
        raise HfadaptError(
            f"--resume: the checkpoint {latest} has a vocabulary of {config['vocab_size']}, "
            f"the model {rows}; it belongs to another model"
        )


def _finish(trainer, recipe: Recipe, tokenizer, results: dict[str, Any], work: Path) -> None:
    """Save the model and the run's files, move the run folder into place, and push if asked."""
    if recipe.adapt.method != "lora":
        # every rank takes part (FSDP, DeepSpeed ZeRO-3 gather the weights); the main one writes
        trainer.save_model(str(work))
    if trainer.is_world_process_zero():
        _save(trainer, recipe, tokenizer, results, work)
        try:
            divergence.check_saved(work, learning_rate=trainer.args.learning_rate)  # no finished run with a NaN
        except divergence.Diverged:
            shutil.rmtree(work, ignore_errors=True)  # resuming would end in the same weights: nothing is kept
            raise
        output.finish(work, recipe.output.dir)
        if recipe.hub is not None:
            hub_config = recipe.hub
            results["hub_commit"] = hub.push(
                recipe.output.dir, hub_config.repo_id, private=hub_config.private, revision=hub_config.revision
            )
    ranks.wait()  # no rank reports done before the output folder is in place


def _save(trainer, recipe: Recipe, tokenizer, results: dict[str, Any], work: Path) -> None:
    """The run's files in `work`: model (or adapter), recipe, manifest, metrics, log, curves, card."""
    model = trainer.model
    base_model = builtin.hub_id(recipe.model.name_or_path)
    if recipe.adapt.method == "lora":
        model.save_pretrained(work / "adapter")
        tokenizer.save_pretrained(work / "adapter")
        if recipe.adapt.merge_lora:
            model.merge_and_unload().save_pretrained(work)
            tokenizer.save_pretrained(work)
    if not recipe.output.keep_checkpoints:
        shutil.rmtree(work / "checkpoints", ignore_errors=True)
    save_recipe(recipe, work / "recipe.yaml")
    (work / "manifest.json").write_text(
        json.dumps(manifest.build(recipe, trainer.args, results), indent=2), encoding="utf-8"
    )
    (work / "metrics.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    (work / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1), encoding="utf-8")
    curves.plot(
        trainer.state.log_history,
        results["main_metric"],
        work / "training_curves.png",
        title=f"{base_model} on {recipe.data.source} ({recipe.adapt.method})",
    )
    confusion = (results["per_class"]["test"] or {}).get("confusion")
    if confusion is not None:
        curves.confusion(confusion, results["label_names"], work / "confusion_matrix.png", title="test split")
    (work / "README.md").write_text(
        card.render(recipe, results, base_model, Path(recipe.output.dir).name), encoding="utf-8"
    )
