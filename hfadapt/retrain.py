"""Retraining, top to bottom: corpus, tokenizer, vocabulary and embeddings, masked-LM pretraining, fine-tuning.

Each stage writes its own folder under OUTPUT_DIR (`tokenizer/`, `pretrained/`, `finetuned/`),
atomically; a rerun of the same recipe reuses every finished stage, so a stopped pipeline goes
on from the stage it reached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import random
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from hfadapt import data, output, prepared, pretrain, ranks
from hfadapt import model as model_lib
from hfadapt import tokenizer as tokenizer_lib
from hfadapt.errors import HfadaptError
from hfadapt.recipe import Recipe, load_recipe, save_recipe

logger = logging.getLogger(__name__)
STAGES = ("tokenizer", "pretrained", "finetuned")


def retrain(recipe: Recipe | str | Path, overrides: list[str] | tuple[str, ...] = (), until: str = "finetuned") -> dict[str, Any]:
    """Run the recipe's stages up to `until` (tokenizer, pretrained or finetuned) and return their results."""
    recipe = load_recipe(raw=recipe.to_dict(), overrides=overrides) if isinstance(recipe, Recipe) else load_recipe(recipe, overrides)
    if recipe.corpus is None:
        raise HfadaptError(
            "corpus: retraining needs a corpus section (and tokenizer and/or pretrain sections); for fine-tuning alone use hfadapt finetune"
        )
    with reading_once():
        return _retrain(recipe, until)


# The corpus sources and fine-tuning data, read once inside `reading_once()`: the tokenizer
# stage, the name of the packed corpus and the packing itself all read them. Outside it, each
# read goes to the source.
_loaded: dict[str, Any] | None = None


@contextlib.contextmanager
def reading_once():
    global _loaded
    outer = _loaded
    _loaded = {} if outer is None else outer
    try:
        yield
    finally:
        _loaded = outer


def _once(key: str, read):
    if _loaded is None:
        return read()
    if key not in _loaded:
        _loaded[key] = read()
    return _loaded[key]


def _task_data(recipe: Recipe) -> data.TaskData:
    key = json.dumps([dataclasses.asdict(recipe.data), dataclasses.asdict(recipe.task)], sort_keys=True, default=str)
    return _once("data\x1e" + key, lambda: data.prepare(recipe.data, recipe.task))


def _source(source: str):
    return _once("source\x1e" + source, lambda: _corpus_part(data.load_source(source)))


def _retrain(recipe: Recipe, until: str) -> dict[str, Any]:
    from transformers import set_seed

    root = Path(recipe.output.dir)
    root.mkdir(parents=True, exist_ok=True)
    set_seed(recipe.training["seed"])
    results: dict[str, Any] = {}
    if recipe.tokenizer is not None:
        folder = root / "tokenizer"
        with ranks.main_first():  # the main rank trains it; the others then find it and reuse it
            if not _reusable(recipe, root, "tokenizer"):
                _tokenizer_stage(recipe, folder)
        results["tokenizer"] = json.loads((folder / "fit.json").read_text())
    if until == "tokenizer":
        return results
    if recipe.pretrain is not None:
        folder = root / "pretrained"
        with ranks.main_first():
            reuse = _reusable(recipe, root, "pretrained")  # the main rank alone clears a stale stage
        if not reuse:
            _pretrain_stage(recipe, root, folder)  # every rank trains
        results["pretrain"] = json.loads((folder / "pretrain.json").read_text())
    if until == "pretrained":
        return results
    from hfadapt.finetune import finetune

    folder = root / "finetuned"
    with ranks.main_first():
        reuse = _reusable(recipe, root, "finetuned")
    if not reuse:
        raw = recipe.to_dict()
        for section in ("corpus", "tokenizer", "pretrain"):
            raw[section] = None
        if recipe.pretrain is not None:
            raw["model"] = {"name_or_path": str(root / "pretrained"), "revision": None}
        elif recipe.tokenizer is not None:
            raise HfadaptError("pretrain: a new tokenizer needs a pretrain stage before fine-tuning (the model's embeddings must learn it)")
        raw["output"] = {**raw["output"], "dir": str(folder), "overwrite": False}
        finetune(load_recipe(raw=raw))
        if ranks.is_main():
            _mark(recipe, folder, "finetuned")
        ranks.wait()
    results["finetune"] = json.loads((folder / "metrics.json").read_text())
    if ranks.is_main():
        save_recipe(recipe, root / "recipe.yaml")
        (root / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return results


# The recipe sections each stage's result depends on: a stage is reused when they are unchanged.
DEPENDS = {
    "tokenizer": ("model", "corpus", "tokenizer"),
    "pretrained": ("model", "corpus", "tokenizer", "pretrain"),
    "finetuned": ("model", "corpus", "tokenizer", "pretrain", "task", "data", "adapt", "training"),
}


# Training settings that change what is shown, not what is trained: a rerun that differs only in
# them reuses the stage.
COSMETIC = ("disable_tqdm", "report_to", "logging_steps", "logging_strategy")


def _stage_key(recipe: Recipe, stage: str) -> dict:
    raw = recipe.to_dict()
    for training in (raw["training"], (raw.get("pretrain") or {}).get("training") or {}):
        for name in COSMETIC:
            training.pop(name, None)
    return {section: raw[section] for section in DEPENDS[stage]}


def _reusable(recipe: Recipe, root: Path, stage: str) -> bool:
    """Whether ROOT/stage holds this recipe's result; a stage made by other settings is redone only on request."""
    folder = root / stage
    if not folder.exists():
        return False
    saved = folder / "stage.json"
    key = json.loads(saved.read_text()) if saved.exists() else None
    if key == json.loads(json.dumps(_stage_key(recipe, stage))):
        return True
    if not recipe.output.overwrite:
        changed = sorted(s for s in DEPENDS[stage] if key is None or key.get(s) != json.loads(json.dumps(_stage_key(recipe, stage)))[s])
        raise HfadaptError(
            f"output.dir: {folder} was made with other settings ({', '.join(changed)}); choose another output.dir, or set output.overwrite=true to redo it and the stages after it"
        )
    shutil.rmtree(folder)
    for later in STAGES[STAGES.index(stage) + 1 :]:
        shutil.rmtree(root / later, ignore_errors=True)
    return False


def _mark(recipe: Recipe, folder: Path, stage: str) -> None:
    (folder / "stage.json").write_text(json.dumps(_stage_key(recipe, stage), ensure_ascii=False), encoding="utf-8")


def corpus_documents(recipe: Recipe, split: str, repeated: bool = False) -> Iterator[tuple[str, list[str] | None]]:
    """The corpus as `(text, words or None)`, in the `train` or held-out `validation` share (by text hash).

    `repeated`: the training share as masked-LM pretraining reads it, each source `pretrain.repeat`
    times. A repeated source is read and segmented once and held in memory for its further passes
    (repeat is for small in-domain sources); every other source streams.
    """
    segment = pretrain.segment_with(recipe.corpus.segmenter)
    repeat = recipe.pretrain.repeat if repeated and split == "train" and recipe.pretrain is not None else {}
    for source in recipe.corpus.sources:
        documents = _source_documents(recipe, source, split, segment)
        times = repeat.get(source, 1)
        if times > 1:
            documents = list(documents)
        for _ in range(times):
            yield from documents


def _source_documents(recipe: Recipe, source: str, split: str, segment) -> Iterator[tuple[str, list[str] | None]]:
    """One corpus source's `(text, words or None)` in the `split` share."""
    corpus = recipe.corpus
    if source == recipe.data.source:
        # the fine-tuning data: its training split only, so no test text is ever pretrained on
        rows = ((t, None) for t in data.texts(_task_data(recipe).splits["train"]))
    else:
        part = _source(source)
        if corpus.text_column not in part.column_names:
            raise HfadaptError(f"corpus.text_column: {source} has no column {corpus.text_column!r}; its columns are {', '.join(part.column_names)}")
        has_words = corpus.words_column in part.column_names
        columns = [corpus.text_column] + ([corpus.words_column] if has_words else [])
        rows = ((r[corpus.text_column], r[corpus.words_column] if has_words else None) for r in part.select_columns(columns))
    count = 0
    for text, words in rows:
        if corpus.max_texts is not None and count >= corpus.max_texts:
            break
        if not text or not text.strip():
            continue
        count += 1
        # salted: unsalted, this hash is the one that made the data's splits, and the fine-tuning
        # texts left in training would never fall in the held-out share
        held_out = (int(hashlib.sha1(("corpus\x1e" + text).encode("utf-8")).hexdigest(), 16) % 1_000_000) / 1_000_000 < corpus.validation_fraction
        if held_out != (split == "validation"):
            continue
        if words is None and segment is not None:
            words = segment(text)
        yield text, words
    if count == 0:
        raise HfadaptError(f"corpus.sources: {source} has no text; give a corpus with non-empty texts")


def _corpus_part(loaded):
    """The split of a corpus source that pretraining reads: its `train` split, or its only one."""
    return loaded["train"] if "train" in loaded else loaded[next(iter(loaded))]


def _corpus_key(recipe: Recipe) -> dict:
    """What names the corpus for prepared data: its settings, and what each source holds.

    A source's content is named by the fingerprint `datasets` gives it (a hash of the data, or of
    the files and their modification times); the fine-tuning data by its own fingerprint.
    """
    sources = []
    for source in recipe.corpus.sources:
        if source == recipe.data.source:
            sources.append(_task_data(recipe).report["fingerprint"])
        else:
            sources.append(_source(source)._fingerprint)
    return {"settings": dataclasses.asdict(recipe.corpus), "sources": sources}


def pretraining_tokenizers(recipe: Recipe) -> tuple[Any, Any, Any]:
    """The tokenizer pretraining packs and trains with, and the checkpoint's (old) and the trained (new) ones it comes from.

    Scratch: the new one. Continue: the old one, or with a tokenizer section the new one (or the
    old one extended by it). Old and new are None where the recipe has none.
    """
    settings = recipe.pretrain
    old = model_lib.load_tokenizer(recipe.model) if settings.init == "continue" else None
    new = None
    if recipe.tokenizer is not None:
        from transformers import AutoTokenizer

        new = AutoTokenizer.from_pretrained(Path(recipe.output.dir) / "tokenizer")
    if new is None:
        return old, old, None
    if old is None:
        return new, None, new
    from hfadapt import vocab

    return (vocab.extend(old, new) if settings.vocabulary == "extend" else new), old, new


def pretraining_data(recipe: Recipe, tokenizer) -> prepared.Prepared:
    """The corpus packed into blocks for `tokenizer`: prepared once (by the main process), then loaded."""
    key = _corpus_key(recipe)
    if recipe.pretrain.repeat:
        key["repeat"] = recipe.pretrain.repeat
    return prepared.blocks(key, tokenizer, recipe.pretrain.block_size, lambda split: corpus_documents(recipe, split, repeated=True))


def _tokenizer_stage(recipe: Recipe, folder: Path) -> None:
    """Train the tokenizer on the corpus as a stream (it never sits whole in memory) and report its fit."""
    sample: list[tuple[str, list[str] | None]] = []  # a uniform sample of 5,000 texts for the fit report
    chooser = random.Random(recipe.training["seed"])
    count = 0
    word_counts: Counter = Counter()  # for tokenizer.words: the Han words of the corpus's segmentation

    def stream() -> Iterator[str]:
        nonlocal count
        for document in corpus_documents(recipe, "train"):
            count += 1
            if recipe.tokenizer.words and document[1] is not None:
                word_counts.update(tokenizer_lib.han_words(document[1]))
            if len(sample) < 5000:
                sample.append(document)
            elif (slot := chooser.randrange(count)) < 5000:
                sample[slot] = document
            yield document[0]

    started = time.perf_counter()
    new = tokenizer_lib.train(stream(), recipe.tokenizer, word_counts)
    seconds = time.perf_counter() - started
    texts = [t for t, _ in sample]
    words = [w for _, w in sample]
    report = {"new": tokenizer_lib.fit(new, texts, words), "seconds": round(seconds, 2), "texts": count}
    try:
        old = model_lib.load_tokenizer(recipe.model)
        report["old"] = tokenizer_lib.fit(old, texts, words)
    except HfadaptError:
        report["old"] = None  # a recipe from scratch may name no usable checkpoint
    work = output.start(folder)
    new.save_pretrained(work)
    (work / "fit.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    _mark(recipe, work, "tokenizer")
    output.finish(work, folder)
    logger.info("tokenizer fit (new vs old): %s", report)


def _pretrain_stage(recipe: Recipe, root: Path, folder: Path) -> None:
    from transformers import AutoModelForMaskedLM, set_seed

    settings = recipe.pretrain
    # Everything random in this stage (new head weights, drawn embedding rows, masks, order) follows
    # the pretraining seed, which the stage is keyed on; the fine-tuning seed leaves it alone.
    seed = settings.training["seed"]
    set_seed(seed)
    tokenizer, old_tokenizer, new_tokenizer = pretraining_tokenizers(recipe)
    report: dict[str, Any] = {}
    if settings.init == "scratch":
        model = pretrain.scratch_model(tokenizer, settings.size, settings.block_size)
    else:
        from hfadapt import vocab

        model = AutoModelForMaskedLM.from_pretrained(model_lib.resolve(recipe.model.name_or_path), revision=recipe.model.revision)
        if new_tokenizer is not None:
            report["vocabulary"] = vocab.rebuild(model, old_tokenizer, tokenizer, seed=seed)
            report["vocabulary"]["mode"] = settings.vocabulary
        vocab.check_sizes(model, tokenizer)
    if settings.block_size > model.config.max_position_embeddings:
        raise HfadaptError(
            f"pretrain.block_size: {settings.block_size} exceeds the model's {model.config.max_position_embeddings} positions"
        )
    packed = pretraining_data(recipe, tokenizer)  # the main process packs the corpus, the others load it
    report["packing"] = packed.info["packing"]
    work = output.incomplete_dir(folder)
    if ranks.is_main():
        output.start(folder)
    ranks.wait()
    args = settings.training_arguments(work / "checkpoints")
    collator = pretrain.WholeWordMaskCollator(tokenizer, settings.mlm_probability, settings.whole_word_masking)
    started = time.perf_counter()
    # The perplexity before training is measured inside train() (eval_on_start): a model that
    # Accelerate prepared for an evaluation first is marked prepared and never wrapped for DDP,
    # so the ranks drift apart (seen in tests/test_distributed.py).
    args.eval_on_start = True
    args.prediction_loss_only = True  # perplexity is all evaluation reports: no logits are gathered
    trainer = pretrain.MaskedLMTrainer(
        model=model,
        args=args,
        train_dataset=packed.data["train"],
        eval_dataset=packed.data["validation"],
        data_collator=collator,
        processing_class=tokenizer,
    )
    train_metrics = trainer.train().metrics
    before = next(entry for entry in trainer.state.log_history if "eval_loss" in entry)
    after = trainer.evaluate()
    report.update(
        train=train_metrics,
        perplexity_before=pretrain.perplexity(before["eval_loss"]),
        perplexity=pretrain.perplexity(after["eval_loss"]),
        eval_loss=after["eval_loss"],
        tokens_seen=trainer.state.global_step * trainer.args.train_batch_size * trainer.args.world_size * settings.block_size,
        steps=trainer.state.global_step,
        seconds=round(time.perf_counter() - started, 1),
    )
    trainer.save_model(str(work))  # every rank takes part; the main one writes
    if ranks.is_main():
        shutil.rmtree(work / "checkpoints", ignore_errors=True)
        (work / "pretrain.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        (work / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1), encoding="utf-8")
        _mark(recipe, work, "pretrained")
        output.finish(work, folder)
    ranks.wait()
    logger.info("pretraining: perplexity %.1f -> %.1f", report["perplexity_before"], report["perplexity"])
