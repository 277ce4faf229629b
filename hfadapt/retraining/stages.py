"""The retraining stages, each in its own folder under OUTPUT_DIR, and when a finished one is reused.

`tokenizer/` (trained on the corpus, with its fit report), `pretrained/` (the vocabulary rebuilt,
masked-LM pretraining) and `finetuned/` (a normal fine-tuning run). A stage folder records the
recipe sections it was made from (stage.json); a rerun reuses it when they are unchanged.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hfadapt import ranks
from hfadapt.errors import HfadaptError
from hfadapt.model import pretrained
from hfadapt.recipe import Recipe, arguments
from hfadapt.retraining import corpus, mlm, rtd, vocab
from hfadapt.retraining.tokenizer import han_words, tokenizer_fit, train_tokenizer
from hfadapt.runs import output, resume
from hfadapt.training import divergence

logger = logging.getLogger(__name__)

STAGES = ("tokenizer", "pretrained", "finetuned")
# The recipe sections each stage's result depends on: a stage is reused when they are unchanged.
DEPENDS = {
    "tokenizer": ("model", "corpus", "tokenizer"),
    "pretrained": ("model", "corpus", "tokenizer", "pretrain"),
    "finetuned": ("model", "corpus", "tokenizer", "pretrain", "task", "data", "adapt", "training"),
}
# Training settings that change what is shown, not what is trained: a rerun that differs only in
# them reuses the stage.
COSMETIC = ("disable_tqdm", "report_to", "logging_steps", "logging_strategy")
FIT_SAMPLE = 5000  # texts of the corpus, drawn uniformly, that the fit report measures


def stage_key(recipe: Recipe, stage: str, seeds: list[int] | None = None) -> dict:
    """The recipe sections `stage` depends on, as JSON reads them back, less the cosmetic settings
    (and for a fine-tuning stage run once per seed, the seeds)."""
    raw = recipe.to_dict()
    for training in (raw["training"], (raw.get("pretrain") or {}).get("training") or {}):
        for name in COSMETIC:
            training.pop(name, None)
    key = {section: raw[section] for section in DEPENDS[stage]}
    if seeds is not None and stage == "finetuned":
        key["seeds"] = list(seeds)
    return json.loads(json.dumps(key))


def reusable(recipe: Recipe, root: Path, stage: str, seeds: list[int] | None = None) -> bool:
    """Whether ROOT/stage holds this recipe's result; a stage made by other settings is redone only on request."""
    folder = root / stage
    if not folder.exists():
        return False
    saved = folder / "stage.json"
    key = json.loads(saved.read_text()) if saved.exists() else None
    wanted = stage_key(recipe, stage, seeds)
    if key == wanted:
        return True
    if not recipe.output.overwrite:
        changed = sorted(s for s in {*DEPENDS[stage], "seeds"} if key is None or key.get(s) != wanted.get(s))
        raise HfadaptError(
            f"output.dir: {folder} was made with other settings ({', '.join(changed)}); choose another "
            "output.dir, or set output.overwrite=true to redo it and the stages after it"
        )
    stale = [root / name for name in STAGES[STAGES.index(stage) :] if (root / name).exists()]
    for other in stale:
        if not output.written_by_hfadapt(other):  # output.overwrite never deletes a user's folder
            raise HfadaptError(
                f"output.dir: {other} was not written by an hfadapt stage (it has no stage.json); move it away, "
                "or choose another output.dir"
            )
    for other in stale:
        shutil.rmtree(other)
    return False


def check_stopped(recipe: Recipe, root: Path) -> None:
    """Refuse, before any stage runs, to throw away a stopped stage's checkpoints unless asked to."""
    if recipe.output.resume or recipe.output.overwrite:
        return
    for stage in ("pretrained", "finetuned"):
        work = output.incomplete_dir(root / stage)
        if output.has_checkpoint(work):
            raise HfadaptError(
                f"output.dir: a stopped {stage} stage is in {work}; continue it with --resume (output.resume=true), "
                "or set output.overwrite=true to start it over"
            )


def mark(recipe: Recipe, folder: Path, stage: str, seeds: list[int] | None = None) -> None:
    """Record in `folder` the recipe sections (and seeds) the stage was made from."""
    text = json.dumps(stage_key(recipe, stage, seeds), ensure_ascii=False)
    (folder / "stage.json").write_text(text, encoding="utf-8")


def tokenizer_stage(recipe: Recipe, folder: Path) -> None:
    """Train the tokenizer on the corpus as a stream (it never sits whole in memory) and report its fit."""
    sample: list[tuple[str, list[str] | None]] = []  # a uniform sample of the texts for the fit report
    chooser = random.Random(recipe.training["seed"])
    count = 0
    word_counts: Counter = Counter()  # for tokenizer.words: the Han words of the corpus's segmentation

    def stream() -> Iterator[str]:
        nonlocal count
        for document in corpus.corpus_documents(recipe, "train"):
            count += 1
            if recipe.tokenizer.words and document[1] is not None:
                word_counts.update(han_words(document[1]))
            if len(sample) < FIT_SAMPLE:
                sample.append(document)
            elif (slot := chooser.randrange(count)) < FIT_SAMPLE:
                sample[slot] = document
            yield document[0]

    started = time.perf_counter()
    new = train_tokenizer(stream(), recipe.tokenizer, word_counts)
    seconds = time.perf_counter() - started
    texts = [t for t, _ in sample]
    words = [w for _, w in sample]
    report = {"new": tokenizer_fit(new, texts, words), "seconds": round(seconds, 2), "texts": count}
    try:
        report["old"] = tokenizer_fit(pretrained.load_tokenizer(recipe.model), texts, words)
    except HfadaptError:
        report["old"] = None  # a recipe from scratch may name no usable checkpoint
    work = output.start(folder)
    new.save_pretrained(work)
    (work / "fit.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    mark(recipe, work, "tokenizer")
    output.finish(work, folder)
    logger.info("tokenizer fit (new vs old): %s", report)


def pretraining_model(recipe: Recipe) -> tuple[Any, Any, dict[str, Any]]:
    """The masked-LM that pretraining starts from, its tokenizer, and the vocabulary report.

    Everything random here (new head weights, drawn embedding rows) follows the pretraining seed,
    which the stage is keyed on; the fine-tuning seed leaves it alone.
    """
    from transformers import AutoModelForMaskedLM, set_seed

    settings = recipe.pretrain
    seed = settings.training["seed"]
    set_seed(seed)
    tokenizer, old_tokenizer, new_tokenizer = vocab.pretraining_tokenizers(recipe)
    report: dict[str, Any] = {}
    if settings.init == "scratch":
        model = mlm.scratch_model(tokenizer, settings.size, settings.block_size)
    else:
        path = pretrained.resolve(recipe.model.name_or_path)
        model = AutoModelForMaskedLM.from_pretrained(path, revision=recipe.model.revision)
        if new_tokenizer is not None:
            # read only for new_rows: static (its static embeddings)
            texts = (text for text, _ in corpus.corpus_documents(recipe, "train"))
            report["vocabulary"] = vocab.rebuild_vocabulary(
                model, old_tokenizer, tokenizer, new_rows=settings.new_rows, corpus=texts, seed=seed
            )
            report["vocabulary"]["mode"] = settings.vocabulary
        pretrained.check_sizes(model, tokenizer)
    positions = model.config.max_position_embeddings
    if settings.block_size > positions:
        raise HfadaptError(f"pretrain.block_size: {settings.block_size} exceeds the model's {positions} positions")
    return model, tokenizer, report


def pretrain_stage(recipe: Recipe, folder: Path, callbacks: list | tuple = ()) -> None:
    """Masked-LM pretraining from `pretraining_model`, on the packed corpus, saved in `folder`.

    SIGINT or SIGTERM stops it at the end of a step, after saving a checkpoint in
    `folder.incomplete/checkpoints`; with `output.resume` a rerun continues from the newest complete one.
    """
    settings = recipe.pretrain
    model, tokenizer, report = pretraining_model(recipe)
    packed = corpus.pretraining_data(recipe, tokenizer)  # the main process packs the corpus, the others load it
    report["packing"] = packed.info["packing"]
    report["precision"] = arguments.precision(settings.training)
    work = output.incomplete_dir(folder)
    resume_from = _resume_point(recipe, work) if recipe.output.resume else None
    if ranks.is_main():
        output.start(folder, resume=resume_from is not None)
        mark(recipe, work, "pretrained")  # what its checkpoints were made from, for a later --resume
    ranks.wait()
    args = settings.training_arguments(work / "checkpoints")
    # The perplexity before training is measured inside train() (eval_on_start): a model that
    # Accelerate prepared for an evaluation first is marked prepared and never wrapped for DDP,
    # so the ranks drift apart (seen in tests/test_distributed.py). A resumed run has it in the
    # log history its checkpoint brings back.
    args.eval_on_start = resume_from is None
    args.prediction_loss_only = True  # perplexity is all evaluation reports: no logits are gathered
    if settings.objective == "rtd":
        model = rtd.ReplacedTokenDetection(model, tokenizer.all_special_ids)
    trainer = (rtd.ReplacedTokenDetectionTrainer if settings.objective == "rtd" else mlm.MaskedLMTrainer)(
        model=model,
        args=args,
        train_dataset=packed.data["train"],
        eval_dataset=packed.data["validation"],
        data_collator=mlm.WholeWordMaskCollator(tokenizer, settings.mlm_probability, settings.whole_word_masking),
        processing_class=tokenizer,
        callbacks=[stop := resume.StopOnSignal(), divergence.DivergenceGuard("pretrain.training"), *callbacks],
    )
    started = time.perf_counter()
    try:
        report.update(_pretrain(trainer, settings.block_size, resume_from, stop))
    except divergence.Diverged:  # stopped at the step it diverged: no checkpoint of it, nothing to resume
        if ranks.is_main() and not output.has_checkpoint(work):
            shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        stop.restore()
    report["seconds"] = round(time.perf_counter() - started, 1)  # a resumed stage's: since it resumed
    report["resumed_from"] = resume_from.name if resume_from is not None else None
    if settings.objective == "rtd":
        rtd.save_discriminator(trainer, work)  # the model alone: the generator is dropped
    else:
        trainer.save_model(str(work))  # every rank takes part; the main one writes
    if ranks.is_main():
        shutil.rmtree(work / "checkpoints", ignore_errors=True)
        try:
            divergence.check_saved(work, "pretrain.training", args.learning_rate)
        except divergence.Diverged:
            shutil.rmtree(work, ignore_errors=True)
            raise
        (work / "pretrain.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        (work / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1), encoding="utf-8")
        mark(recipe, work, "pretrained")
        output.finish(work, folder)
    ranks.wait()
    logger.info("pretraining: %s", {k: v for k, v in report.items() if "perplexity" in k or "accuracy" in k})


def _resume_point(recipe: Recipe, work: Path) -> Path | None:
    """The newest complete checkpoint of this recipe's stopped pretraining stage in `work`; None to start it afresh."""
    latest = resume.latest_complete(work / "checkpoints")
    if latest is None:
        return None
    saved = work / "stage.json"
    if not saved.is_file() or json.loads(saved.read_text(encoding="utf-8")) != stage_key(recipe, "pretrained"):
        raise HfadaptError(
            f"--resume: the checkpoints in {work / 'checkpoints'} come from other settings (model, corpus, tokenizer "
            "or pretrain changed); resume with the recipe that started them, or set output.overwrite=true to start "
            "the stage over"
        )
    logger.info("pretraining: resuming from %s", latest)
    return latest


def _pretrain(trainer, block_size: int, resume_from: Path | None, stop: resume.StopOnSignal) -> dict[str, Any]:
    """Train, then the held-out perplexity before and after, and what was read."""
    train_metrics = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None).metrics
    divergence.check(trainer)
    stop.check(trainer.state.global_step, Path(trainer.args.output_dir))
    before = next(entry for entry in trainer.state.log_history if "eval_loss" in entry)
    after = trainer.evaluate()
    state, args = trainer.state, trainer.args
    if "eval_discriminator_accuracy" in after:  # replaced-token detection: its generator's perplexity
        scores = {
            "discriminator_accuracy_before": before["eval_discriminator_accuracy"],
            "discriminator_accuracy": after["eval_discriminator_accuracy"],
            "generator_perplexity": after["eval_generator_perplexity"],
        }
    else:
        scores = {
            "perplexity_before": mlm.perplexity(before["eval_loss"]),
            "perplexity": mlm.perplexity(after["eval_loss"]),
        }
    return {
        "train": train_metrics,
        **scores,
        "eval_loss": after["eval_loss"],
        "tokens_seen": state.global_step * args.train_batch_size * args.world_size * block_size,
        "steps": state.global_step,
    }
