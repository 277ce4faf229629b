"""Advice: how to adapt a checkpoint to a data set, from its tokenizer's fit and short pilot runs.

1. Fit: the checkpoint's tokenizer on the training texts, beside a WordPiece tokenizer trained
   on them (the one retraining would build), measured by `tokenizer.fit`; and for text
   classification a linear probe: how well a logistic regression reads the task from each
   tokenizer's tokens, which shows in seconds what the checkpoint's vocabulary hides.
2. Pilots, when a budget is given: on the same data and split, a few steps each of frozen layers
   (embeddings and the lower half of the encoder), LoRA, full fine-tuning, and retraining (the
   rebuilt vocabulary, a few masked-LM steps, then fine-tuning). The budget is cut into five equal
   shares: one per fine-tuning pilot, two for retraining (its masked-LM steps, then as many
   fine-tuning steps as the others), so every pilot fine-tunes for the same number of steps.
3. A verdict with its reasons, a recipe for it, and the cost of the full run from the measured
   throughput.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import random
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hfadapt import data as data_lib
from hfadapt import model as model_lib
from hfadapt import curves, output
from hfadapt import tokenizer as tokenizer_lib
from hfadapt.errors import HfadaptError
from hfadapt.recipe import Recipe, dump_recipe, load_recipe, save_recipe

logger = logging.getLogger(__name__)

PILOTS = ("freeze", "lora", "full", "retrain")
SHARES = 5  # freeze, lora, full, and two for retrain (masked-LM steps, fine-tuning steps)
MIN_STEPS = 10  # fewer steps per pilot measure the warm-up, not the strategy
UNK_LIMIT = 0.05  # above this [UNK] rate the model cannot see a twentieth of its input
COVERAGE_LIMIT = 0.95  # share of the corpus's 1,000 most frequent characters the tokenizer must know
FIT_TEXTS = 5000  # a uniform sample of the training texts for the fit report, as the tokenizer stage uses
PILOT_EVAL_SAMPLES = 500  # pilots score on at most this many validation texts: one standard error about 2%
MINUTES_FOR_STEPS = 0.7  # of --budget-minutes, the share spent in training steps; the rest loads, evaluates and saves
# What each pilot changes in the recipe. Learning rates as in the shipped MiniLM recipes: LoRA
# takes about 10x the rate of full fine-tuning.
PILOT_SETTINGS: dict[str, dict[str, Any]] = {
    "freeze": {"adapt": {"method": "freeze"}, "training": {"learning_rate": 1.0e-4}},  # freeze.layers: half the encoder, set below
    "lora": {"adapt": {"method": "lora", "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1}}, "training": {"learning_rate": 1.0e-3}},
    "full": {"adapt": {"method": "full"}, "training": {"learning_rate": 1.0e-4}},
    "retrain": {"adapt": {"method": "full"}, "training": {"learning_rate": 1.0e-4}},
}
# LoRA on attention and feed-forward (as the shipped LoRA recipe: q,v alone underfits a 6-layer
# model) for the families whose linear layers have these names; peft's defaults for the others.
LORA_TARGETS = ["query", "key", "value", "dense"]
LORA_TARGET_FAMILIES = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
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
    """Measure how `model`'s tokenizer fits `data`, run pilots within the budget, and recommend a recipe.

    `overrides` (`key=value`, as for a recipe) apply to every pilot and to the recommended recipe:
    e.g. `data.label_column=stars`, `data.max_length=64`, `training.per_device_train_batch_size=16`.
    With `output_dir`, writes advice.md, advice.json, pilots.png and recommended.yaml there
    (atomically: nothing is left half-written); without it, the pilots run in a temporary folder and
    only the returned advice remains. Returns the advice as saved in advice.json.
    """
    steps = _check_budget(budget_steps, budget_minutes)
    if output_dir is not None:
        output.check(output_dir, overwrite)
    base, retraining = _base_recipes(model, data, text_column, list(overrides))

    tokenizer = model_lib.load_tokenizer(base.model)
    task_data = data_lib.prepare(base.data, base.task)
    texts = data_lib.texts(task_data.splits["train"])
    sample = random.Random(base.training["seed"]).sample(texts, min(FIT_TEXTS, len(texts)))
    if budget_minutes is not None:
        steps = _steps_for_minutes(base, tokenizer, task_data, budget_minutes)
    # the budget is settled: from here on things are written

    started = time.perf_counter()
    new_tokenizer = tokenizer_lib.train(texts, retraining.tokenizer)
    fit = {"checkpoint": tokenizer_lib.fit(tokenizer, sample), "new": tokenizer_lib.fit(new_tokenizer, sample), "texts": len(sample)}
    logger.info("tokenizer fit, checkpoint vs new WordPiece: %s", fit)
    probe = token_probe(tokenizer, new_tokenizer, task_data, base)
    logger.info("linear probe on the tokens, checkpoint vs new WordPiece: %s", probe)

    final = Path(output_dir) if output_dir is not None else None
    scratch = None
    if final is not None:
        work = output.start(final)
    else:
        scratch = tempfile.TemporaryDirectory(prefix="hfadapt-advise-")
        work = Path(scratch.name)
    try:
        settings = _pilot_settings(base, retraining, {item.partition("=")[0] for item in overrides})
        pilots = [_run_pilot(name, settings[name], steps, work / "pilots" / name) for name in PILOTS] if steps else []
        # one standard error of an accuracy near 50% on the texts the pilots were scored on
        tolerance = math.sqrt(0.25 / pilots[0]["validation_size"]) if pilots else None
        verdict = decide(fit["checkpoint"], pilots, tolerance, probe)
        chosen = settings[verdict["strategy"]]
        recommended = _recommended(chosen, base)
        advice = {
            "model": model,
            "data": data,
            "data_report": {k: task_data.report[k] for k in ("sizes", "fingerprint") if k in task_data.report},
            "main_metric": _main_metric(base),
            "budget": {"steps": budget_steps, "minutes": budget_minutes, "steps_per_pilot": steps},
            "fit": fit,
            "probe": probe,
            "pilots": pilots,
            "verdict": verdict,
            "estimate": _estimate(verdict["strategy"], pilots, recommended, task_data.report["sizes"]["train"]),
            "recommended": recommended.to_dict(),
            "seconds": round(time.perf_counter() - started, 1),
        }
        if final is not None:
            shutil.rmtree(work / "pilots", ignore_errors=True)  # the pilots' models: their figures are in advice.json
            save_recipe(recommended, work / "recommended.yaml")
            load_recipe(work / "recommended.yaml")  # what is written reads back as a valid recipe
            (work / "advice.json").write_text(json.dumps(advice, indent=2, ensure_ascii=False), encoding="utf-8")
            if pilots:
                plot(pilots, advice["main_metric"], work / "pilots.png", title=f"pilots: {model} on {data}")
            (work / "advice.md").write_text(render(advice), encoding="utf-8")
            output.finish(work, final)
    finally:
        if scratch is not None:
            scratch.cleanup()
    return advice


def decide(checkpoint_fit: dict[str, Any], pilots: list[dict[str, Any]], tolerance: float | None, probe: dict[str, Any] | None = None) -> dict[str, Any]:
    """The strategy to recommend, with its reasons.

    A checkpoint's tokenizer fits badly when its [UNK] rate is above UNK_LIMIT or it covers fewer
    than COVERAGE_LIMIT of the corpus's frequent characters. A good fit never retrains: the
    fine-tuning pilot with the best validation metric wins, where pilots within `tolerance` (one
    standard error of the validation metric) of the best count as tied and the one with fewest
    trainable parameters wins. With a bad fit, retraining, when either
    - the probe shows that the checkpoint's tokens hide what the task needs: a linear model on the
      new tokenizer's tokens beats the same model on the checkpoint's by more than one standard
      error. Short pilots cannot show this: they measure the first steps of training, and the
      retraining pilot's rebuilt embeddings have had only a few masked-LM steps; or
    - the retraining pilot is not worse than the best fine-tuning pilot by more than `tolerance`;
    or, with neither a probe nor pilots, the fit alone. Otherwise the best fine-tuning pilot.
    """
    unk, coverage = checkpoint_fit["unk_rate"], checkpoint_fit["char_coverage"]
    bad = []
    if unk > UNK_LIMIT:
        bad.append(f"the checkpoint's tokenizer turns {unk:.1%} of the tokens into [UNK] (above {UNK_LIMIT:.0%})")
    if coverage < COVERAGE_LIMIT:
        bad.append(f"it encodes only {coverage:.1%} of the corpus's 1,000 most frequent characters without [UNK] (below {COVERAGE_LIMIT:.0%})")
    fits = f"the checkpoint's tokenizer fits the texts: {unk:.2%} [UNK] (at most {UNK_LIMIT:.0%}), {coverage:.1%} of the frequent characters covered (at least {COVERAGE_LIMIT:.0%})"
    hidden = None
    if probe is not None:
        gain = probe["new"] - probe["checkpoint"]
        hidden = gain > probe["tolerance"]
        probed = (
            f"a linear model on the tokens reaches a validation accuracy of {probe['new']:.4f} with the new tokenizer's against {probe['checkpoint']:.4f} with the checkpoint's: "
            + (f"the checkpoint's vocabulary hides {gain * 100:.1f} points of what the task needs, more than one standard error ({probe['tolerance']:.3f})" if hidden
               else f"the checkpoint's vocabulary hides nothing measurable (the new tokens are not better by more than one standard error, {probe['tolerance']:.3f})")
        )
    tuned = [p for p in pilots if p["name"] != "retrain"]
    pick = why_pick = None
    if tuned:
        best = max(p["validation_metric"] for p in tuned)
        tied = [p for p in tuned if p["validation_metric"] >= best - tolerance]
        pick = min(tied, key=lambda p: (p["parameters"]["trainable"], PILOTS.index(p["name"])))
        why_pick = (
            f"{pick['name']} reached a validation {pick['main_metric']} of {pick['validation_metric']:.4f} against the best fine-tuning pilot's {best:.4f}"
            + (f"; {', '.join(p['name'] for p in tied)} are within one standard error ({tolerance:.3f}) of the best, and {pick['name']} trains the fewest parameters ({pick['parameters']['trainable']:,})" if len(tied) > 1 else "")
        )

    def verdict(strategy: str, reasons: list[str]) -> dict[str, Any]:
        return {"strategy": strategy, "reasons": reasons, "tolerance": tolerance}

    if not bad:
        if pick is None:
            return verdict("full", [fits, "no pilots were run (no budget): full fine-tuning is the plain default; give a budget to compare frozen layers, LoRA and full fine-tuning"])
        return verdict(pick["name"], [fits, why_pick])
    retrain = next((p for p in pilots if p["name"] == "retrain"), None)
    compared = None
    if retrain is not None:
        gap = best - retrain["validation_metric"]
        compared = f"the retraining pilot reached {retrain['validation_metric']:.4f} against the best fine-tuning pilot's {best:.4f}: " + (
            "better" if gap < 0
            else f"not worse by more than one standard error ({tolerance:.3f})" if gap <= tolerance
            else f"worse by more than one standard error ({tolerance:.3f}) after {retrain['mlm_steps']} masked-LM steps"
        )
    if hidden:
        reasons = bad + [probed]
        if compared is not None:
            reasons.append(compared + ("" if gap <= tolerance else "; pilots this short measure the first steps, and the rebuilt embeddings had few masked-LM steps to learn in"))
        return verdict("retrain", reasons)
    if compared is not None and gap <= tolerance:
        return verdict("retrain", bad + ([probed] if probe is not None else []) + [compared])
    if pick is None:
        if probe is None:
            return verdict("retrain", bad + ["no pilots were run (no budget) and no probe could be: the fit alone decides"])
        return verdict("full", bad + [probed, "no pilots were run (no budget): full fine-tuning is the plain default"])
    return verdict(pick["name"], bad + ([probed] if probe is not None else []) + [f"but {compared}; longer pretraining may still pay off", why_pick])


def token_probe(old, new, task_data, recipe: Recipe) -> dict[str, Any] | None:
    """What each tokenizer's tokens let a model read, in seconds: the validation accuracy of a
    logistic regression on TF-IDF weights of the token ids and id bigrams (the texts cut at
    data.max_length tokens, as the model sees them), trained on the training split.

    [UNK] is one id, so whatever the checkpoint's vocabulary turns into it is lost to the linear
    model as it is to the network. None where the task is not single-label text classification.
    """
    if recipe.task.type != "sequence_classification" or recipe.task.problem_type not in (None, "single_label_classification"):
        return None
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    splits = task_data.splits
    labels = {name: list(splits[name]["label"]) for name in ("train", "validation")}
    if len(set(labels["train"])) < 2:
        return None
    began = time.perf_counter()
    scores = {}
    for side, tokenizer in (("checkpoint", old), ("new", new)):

        def ids(name):
            encoded = tokenizer(list(splits[name]["text"]), add_special_tokens=False, truncation=True, max_length=recipe.data.max_length)
            return [[str(i) for i in row] for row in encoded["input_ids"]]

        vectorizer = TfidfVectorizer(analyzer=lambda row: row + [f"{a} {b}" for a, b in zip(row, row[1:])], sublinear_tf=True)
        classifier = LogisticRegression(C=4.0, max_iter=2000).fit(vectorizer.fit_transform(ids("train")), labels["train"])
        predicted = classifier.predict(vectorizer.transform(ids("validation")))
        scores[side] = sum(int(p == y) for p, y in zip(predicted, labels["validation"])) / len(predicted)
    size = len(labels["validation"])
    # one standard error of an accuracy near 50% on these validation texts
    return {**scores, "validation_size": size, "tolerance": math.sqrt(0.25 / size), "seconds": round(time.perf_counter() - began, 1)}


# --- checks and recipes ------------------------------------------------------------------------


def _check_budget(budget_steps: int | None, budget_minutes: float | None) -> int | None:
    """Steps per pilot for a step budget (None for a time budget, settled later, or none)."""
    if budget_steps is not None and budget_minutes is not None:
        raise HfadaptError("advise: give --budget-steps or --budget-minutes, not both")
    if budget_steps is not None:
        if isinstance(budget_steps, bool) or not isinstance(budget_steps, int):
            raise HfadaptError(f"--budget-steps: expected a whole number of steps, got {budget_steps!r}")
        if budget_steps < SHARES * MIN_STEPS:
            raise HfadaptError(
                f"--budget-steps {budget_steps} is too small for the pilots: they take {SHARES} equal shares "
                f"(frozen layers, LoRA, full fine-tuning, and retraining's masked-LM and fine-tuning steps) of at least {MIN_STEPS} steps each; "
                f"give at least {SHARES * MIN_STEPS}, or no budget for the tokenizer fit alone"
            )
        return budget_steps // SHARES
    if budget_minutes is not None and not budget_minutes > 0:
        raise HfadaptError(f"--budget-minutes: expected a positive number of minutes, got {budget_minutes!r}")
    return None


def _base_recipes(model: str, data: str, text_column: str | None, overrides: list[str]) -> tuple[Recipe, Recipe]:
    """The fine-tuning recipe every pilot starts from, and the same with retraining's sections; checked before anything runs."""
    for item in overrides:
        key = item.partition("=")[0]
        section = key.split(".")[0]
        if section in OWNED:
            raise HfadaptError(f"{item}: advise sets {section} itself ({OWNED[section]})")
        if key in ("training.max_steps", "pretrain.training.max_steps"):
            raise HfadaptError(f"{item}: the budget sets the pilots' steps (--budget-steps or --budget-minutes)")
    raw: dict[str, Any] = {"model": {"name_or_path": model}, "data": {"source": data}, "output": {"dir": "advice"}}
    if text_column is not None:
        raw["data"]["text_column"] = text_column
    retraining = ("corpus.", "tokenizer.", "pretrain.")
    base = load_recipe(raw=raw, overrides=[o for o in overrides if not o.startswith(retraining)])
    if base.data.text_pair_column:
        raise HfadaptError("data.text_pair_column: advise fits the tokenizer on single texts; text pairs are not supported yet")
    raw = base.to_dict()
    positions = model_lib.load_config(base.model).max_position_embeddings
    raw["corpus"] = {"sources": [data]}  # the data's training split only (pretraining holds out a share of it by a salted hash)
    raw["tokenizer"] = {"algorithm": "wordpiece", "vocab_size": 12000}  # room for the Han characters of a Chinese corpus (about 5,000) and its words
    raw["pretrain"] = {"init": "continue", "vocabulary": "replace", "block_size": min(128, positions)}
    retrain = load_recipe(raw=raw, overrides=[o for o in overrides if o.startswith(retraining)])
    return base, retrain


def _pilot_settings(base: Recipe, retraining: Recipe, overridden: set[str]) -> dict[str, dict[str, Any]]:
    """Each strategy as a whole recipe dict (without the pilots' step schedule); the user's overrides win over the pilots' settings."""
    config = model_lib.load_config(base.model)
    settings = {}
    for name in PILOTS:
        raw = (retraining if name == "retrain" else base).to_dict()
        raw["adapt"] = json.loads(json.dumps(PILOT_SETTINGS[name]["adapt"]))
        ours = {k: v for k, v in PILOT_SETTINGS[name]["training"].items() if f"training.{k}" not in overridden}
        raw["training"] = {**raw["training"], **ours}
        settings[name] = raw
    settings["freeze"]["adapt"]["freeze"] = {"embeddings": True, "layers": config.num_hidden_layers // 2}
    if config.model_type in LORA_TARGET_FAMILIES:
        settings["lora"]["adapt"]["lora"]["target_modules"] = list(LORA_TARGETS)
    return settings


def _recommended(raw: dict[str, Any], base: Recipe) -> Recipe:
    raw = json.loads(json.dumps(raw))
    source = Path(base.data.source.removeprefix("builtin:")).stem or "data"
    raw["output"] = {**raw["output"], "dir": f"runs/{re.sub(r'[^A-Za-z0-9_.-]+', '_', source)}_{'retrain' if raw.get('pretrain') else raw['adapt']['method']}"}
    return load_recipe(raw=raw)


def _main_metric(recipe: Recipe) -> str:
    from hfadapt import metrics

    return metrics.main_metric(recipe.task)


# --- the budget in minutes -------------------------------------------------------------------


def _steps_for_minutes(base: Recipe, tokenizer, task_data, minutes: float) -> int:
    """Steps per pilot that fit in `minutes`, from a timed full fine-tuning step on a real batch."""
    step = _time_one_step(base, tokenizer, task_data)
    per_pilot = int(minutes * 60 * MINUTES_FOR_STEPS / SHARES / step)
    if per_pilot < MIN_STEPS:
        need = SHARES * MIN_STEPS * step / 60 / MINUTES_FOR_STEPS
        raise HfadaptError(
            f"--budget-minutes {minutes:g} is too small for the pilots: one training step takes {step:.2f} s here, so {SHARES} equal shares "
            f"(frozen layers, LoRA, full fine-tuning, and retraining's masked-LM and fine-tuning steps) get {per_pilot} steps each, fewer than {MIN_STEPS}; "
            f"give at least {math.ceil(need * 10) / 10:g} minutes, or no budget for the tokenizer fit alone"
        )
    return per_pilot


def _time_one_step(base: Recipe, tokenizer, task_data) -> float:
    """Seconds of one full fine-tuning step (forward, backward, AdamW) on a training batch; nothing is written."""
    import datasets
    import torch

    config = model_lib.task_config(base.model, base.task, task_data.label_names)
    model, _ = model_lib.load_task_model(base.model, base.task, config)
    model.train()
    size = base.training["per_device_train_batch_size"]
    train = task_data.splits["train"].select(range(min(size, len(task_data.splits["train"]))))
    one = data_lib.TaskData(datasets.DatasetDict({"train": train}), task_data.label_names)
    rows = data_lib.tokenize(one, tokenizer, base.data, base.task)["train"]
    batch = data_lib.collator(tokenizer, base.task)([rows[i] for i in range(len(rows))])
    # where the pilots will train: the GPU when there is one, in bf16 autocast when the recipe asks
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    batch = {k: v.to(device) for k, v in batch.items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times = []
    for _ in range(3):  # the first step warms up allocators and kernels
        began = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bool(base.training.get("bf16"))):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
    del model, optimizer
    gc.collect()
    return min(times[1:])


# --- pilots ------------------------------------------------------------------------------------


def _run_pilot(name: str, raw: dict[str, Any], steps: int, folder: Path) -> dict[str, Any]:
    """Train one strategy for `steps` fine-tuning steps (retraining: as many masked-LM steps first) and measure it."""
    from hfadapt.finetune import finetune
    from hfadapt.retrain import retrain

    raw = json.loads(json.dumps(raw))
    schedule = {
        "max_steps": steps,
        "eval_strategy": "steps",
        "eval_steps": max(1, steps // 3),  # three points per curve; each evaluation costs about as much as a few steps
        "logging_steps": max(1, steps // 10),
        "save_strategy": "no",
        "disable_tqdm": True,
    }
    raw["training"] = {**raw["training"], **schedule}
    raw["data"]["max_eval_samples"] = raw["data"]["max_eval_samples"] or PILOT_EVAL_SAMPLES
    raw["output"] = {**raw["output"], "dir": str(folder), "overwrite": False, "resume": False}
    if raw.get("pretrain"):
        raw["pretrain"]["training"] = {**raw["pretrain"]["training"], **schedule, "eval_strategy": "no"}
    recipe = load_recipe(raw=raw)
    logger.info("pilot %s: %d steps", name, steps)
    gc.collect()
    with _PeakMemory() as memory:
        began = time.perf_counter()
        if name == "retrain":
            results = retrain(recipe)["finetune"]
            run = folder / "finetuned"
            pretrained = json.loads((folder / "pretrained" / "pretrain.json").read_text())
        else:
            results = finetune(recipe)
            run, pretrained = folder, None
        seconds = time.perf_counter() - began
    metric = results["main_metric"]
    parameters = results["parameters"]
    history = json.loads((run / "log_history.json").read_text())
    training = _training_seconds(results["train"]["train_runtime"], history)
    pilot = {
        "name": name,
        "steps": steps,
        "mlm_steps": pretrained["steps"] if pretrained else 0,
        "main_metric": metric,
        "validation_metric": results["validation"][f"validation_{metric}"],
        "validation_loss": results["validation"]["validation_loss"],
        "validation_size": results["data"]["sizes"]["validation"],
        "train_samples_per_second": results["train"]["train_samples_per_second"] * results["train"]["train_runtime"] / training,
        "seconds_per_step": training / steps,
        "seconds": round(seconds, 1),
        "peak_rss_growth_mb": memory.peak_growth_mb,
        "peak_cuda_mb": memory.cuda_mb,
        # weights (4 bytes each), and for the trainable ones a gradient and AdamW's two moments
        "training_state_mb": (4 * parameters["total"] + 12 * parameters["trainable"]) / 2**20,
        "parameters": parameters,
        "log_history": history,
        "learning_rate": recipe.training["learning_rate"],
    }
    if pretrained:
        pilot["pretrain"] = {
            "perplexity_before": pretrained["perplexity_before"],
            "perplexity": pretrained["perplexity"],
            "seconds_per_step": _training_seconds(pretrained["train"]["train_runtime"], json.loads((folder / "pretrained" / "log_history.json").read_text()))
            / max(pretrained["steps"], 1),
            "blocks": pretrained["packing"]["train"]["blocks"],
            "vocabulary": pretrained.get("vocabulary"),
        }
    logger.info("pilot %s: validation %s %.4f", name, metric, pilot["validation_metric"])
    return pilot


def _training_seconds(train_runtime: float, history: list[dict[str, Any]]) -> float:
    """Seconds spent in training steps: Trainer's train_runtime includes the evaluations run inside train()."""
    return train_runtime - sum(h["eval_runtime"] for h in history if "eval_runtime" in h)


class _PeakMemory:
    """The peak resident memory of this process while the block runs, above its level at the start.

    Sampled every 50 ms with psutil. Memory the process already holds (from loading libraries or
    an earlier pilot) and reuses is not counted again, so this is what the block added at its peak.
    On a GPU, also the peak memory allocated by PyTorch on it.
    """

    def __enter__(self):
        import psutil
        import torch

        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)

    def __exit__(self, *exc):
        import torch

        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.peak_growth_mb = (self.peak - self.start) / 2**20
        self.cuda_mb = torch.cuda.max_memory_allocated() / 2**20 if self.cuda else None
        return False


def _estimate(strategy: str, pilots: list[dict[str, Any]], recipe: Recipe, train_size: int) -> dict[str, Any] | None:
    """Steps and minutes of the recommended full run, from the pilot's measured seconds per step."""
    pilot = next((p for p in pilots if p["name"] == strategy), None)
    if pilot is None:
        return None
    args = recipe.training_arguments()
    batches = math.ceil(train_size / (args.per_device_train_batch_size * args.gradient_accumulation_steps))
    steps = math.ceil(batches * args.num_train_epochs)
    estimate = {"steps": steps, "seconds_per_step": pilot["seconds_per_step"], "train_seconds": steps * pilot["seconds_per_step"]}
    if strategy == "retrain":
        pretraining = recipe.pretrain.training_arguments(Path(recipe.output.dir) / "pretrained")
        blocks = math.ceil(pilot["pretrain"]["blocks"] / (pretraining.per_device_train_batch_size * pretraining.gradient_accumulation_steps))
        mlm = math.ceil(blocks * pretraining.num_train_epochs)
        estimate.update(mlm_steps=mlm, mlm_seconds_per_step=pilot["pretrain"]["seconds_per_step"])
        estimate["train_seconds"] += mlm * pilot["pretrain"]["seconds_per_step"]
    return estimate


# --- report ------------------------------------------------------------------------------------


def plot(pilots: list[dict[str, Any]], metric: str, path: str | Path, title: str = "") -> Path:
    """Validation loss and validation `metric` against fine-tuning steps, one line per pilot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for pilot in pilots:
        label = pilot["name"] + (f" (after {pilot['mlm_steps']} masked-LM steps)" if pilot["mlm_steps"] else "")
        history = pilot["log_history"]
        train = [(h["step"], h["loss"]) for h in history if "loss" in h]
        losses = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
        scores = [(h["step"], h[f"eval_{metric}"]) for h in history if f"eval_{metric}" in h]
        line = left.plot(*zip(*losses), "o-", label=f"{label}, validation") if losses else None
        color = line[0].get_color() if line else None
        if train:
            left.plot(*zip(*train), ":", color=color, alpha=0.6, label=f"{label}, training")
        if scores:
            right.plot(*zip(*scores), "o-", color=color, label=label)
    left.set_xlabel("fine-tuning step")
    left.set_ylabel("loss")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    right.set_xlabel("fine-tuning step")
    right.set_ylabel(f"validation {metric}")
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    return curves.save(figure, title, path)


def render(advice: dict[str, Any]) -> str:
    """advice.md: the fit, the pilots, the verdict with its reasons, the cost of the full run, the recipe."""
    fit, verdict, metric = advice["fit"], advice["verdict"], advice["main_metric"]
    lines = [
        f"# Advice: {advice['model']} on {advice['data']}",
        "",
        f"**Verdict: {_strategy_text(verdict['strategy'])}.**",
        "",
        *[f"- {reason}" for reason in verdict["reasons"]],
        "",
        f"## Tokenizer fit ({fit['texts']:,} training texts)",
        "",
        "| | checkpoint's tokenizer | WordPiece trained on these texts |",
        "|---|---|---|",
    ]
    rows = [
        ("[UNK] rate", "unk_rate", "{:.2%}"),
        ("tokens per character", "tokens_per_char", "{:.3f}"),
        ("tokens per word", "tokens_per_word", "{:.3f}"),
        ("words cut in 3+ pieces", "split_3plus", "{:.1%}"),
        ("coverage of the 1,000 most frequent characters", "char_coverage", "{:.1%}"),
        ("vocabulary size", "vocab_size", "{:,}"),
    ]
    for label, key, form in rows:
        values = [fit[side][key] for side in ("checkpoint", "new")]
        lines.append(f"| {label} | " + " | ".join("n/a" if v is None else form.format(v) for v in values) + " |")
    probe = advice["probe"]
    if probe is not None:
        lines += [
            "",
            "## What the tokens let a model read",
            "",
            f"A logistic regression on TF-IDF weights of token ids and id bigrams, trained on the {advice['data_report']['sizes']['train']:,} training texts "
            f"and scored on {probe['validation_size']:,} validation texts ({probe['seconds']:.0f} s; one standard error about {probe['tolerance']:.3f}). "
            "[UNK] is a single id: what a vocabulary cannot spell is lost to this model as it is to the network.",
            "",
            "| | checkpoint's tokenizer | WordPiece trained on these texts |",
            "|---|---|---|",
            f"| validation accuracy | {probe['checkpoint']:.4f} | {probe['new']:.4f} |",
        ]
    pilots = advice["pilots"]
    lines += ["", "## Pilots", ""]
    if not pilots:
        lines.append("None: no budget was given (`--budget-steps` or `--budget-minutes`).")
    else:
        lines += [
            (f"Each pilot fine-tunes for {advice['budget']['steps_per_pilot']} steps on the same split "
            f"(validation scored on at most {PILOT_EVAL_SAMPLES} texts; one standard error is about {verdict['tolerance']:.3f}); "
            "retraining first rebuilds the vocabulary and runs as many masked-LM steps. "
            "Peak memory is the growth of this process's resident memory above its level when the pilot started (sampled every 50 ms); "
            "training state is weights plus, for trainable weights, gradients and AdamW's two moments (fp32). "
            "Curves: pilots.png."),
            "",
            f"| pilot | trainable parameters | validation {metric} | validation loss | train samples/s | s/step | peak memory growth MB | training state MB | wall s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for p in pilots:
            name = p["name"] + (f" ({p['mlm_steps']} masked-LM steps, perplexity {p['pretrain']['perplexity_before']:.0f} -> {p['pretrain']['perplexity']:.0f})" if p["mlm_steps"] else "")
            lines.append(
                f"| {name} | {p['parameters']['trainable']:,} ({p['parameters']['trainable_percent']:.1f}%) | {p['validation_metric']:.4f} | {p['validation_loss']:.4f} | "
                f"{p['train_samples_per_second']:.1f} | {p['seconds_per_step']:.3f} | {p['peak_rss_growth_mb']:.0f} | {p['training_state_mb']:.1f} | {p['seconds']:.0f} |"
            )
    estimate = advice["estimate"]
    lines += ["", "## Cost of the full run", ""]
    if estimate is None:
        lines.append("Not estimated: no pilot measured the throughput.")
    else:
        text = f"{estimate['steps']:,} fine-tuning steps x {estimate['seconds_per_step']:.3f} s"
        if "mlm_steps" in estimate:
            text = f"{estimate['mlm_steps']:,} masked-LM steps x {estimate['mlm_seconds_per_step']:.3f} s + " + text
        lines.append(
            f"About {_duration(estimate['train_seconds'])} of training on this machine ({text}, the speeds measured in the pilot), plus evaluation and saving."
        )
    command = "retrain" if advice["recommended"].get("pretrain") else "finetune"
    lines += [
        "",
        "## Recipe",
        "",
        f"`recommended.yaml`, run with `hfadapt {command} recommended.yaml`:",
        "",
        "```yaml",
        dump_recipe(load_recipe(raw=advice["recommended"])).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} seconds" if seconds < 90 else f"{seconds / 60:.0f} minutes" if seconds < 5400 else f"{seconds / 3600:.1f} hours"


def _strategy_text(strategy: str) -> str:
    return {
        "retrain": "retrain: a tokenizer trained on the data, the vocabulary rebuilt, masked-LM pretraining, then fine-tuning (hfadapt retrain)",
        "freeze": "fine-tune with the embeddings and lower layers frozen (hfadapt finetune)",
        "lora": "fine-tune with LoRA adapters (hfadapt finetune)",
        "full": "full fine-tuning (hfadapt finetune)",
    }[strategy]
