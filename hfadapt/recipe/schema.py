"""The recipe schema: one dataclass per section, each field with its default and its help.

The help lives on the field (`field(metadata={"help": ...})`), so `hfadapt validate` and the
generated reference (docs/recipe.md) print the same text. Each section checks itself
(`problems()`), returning every problem as `dotted.path: problem; fix` instead of raising, so a
recipe's mistakes are all reported at once. The `training` sections pass unchanged to
`transformers.TrainingArguments` and `adapt.lora` to `peft.LoraConfig`: their fields are theirs.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hfadapt.errors import RecipeError
from hfadapt.recipe import arguments, typecheck
from hfadapt.recipe.data import DataConfig
from hfadapt.recipe.defaults import LORA_OWNED, TRAINING_DEFAULTS, training_field
from hfadapt.recipe.output import HubConfig, OutputConfig
from hfadapt.recipe.retraining import CorpusConfig, PretrainConfig, TokenizerConfig
from hfadapt.recipe.typecheck import option


@dataclass
class ModelConfig:
    """The checkpoint to adapt."""

    name_or_path: str = option(help="a local checkpoint folder, a Hub model id, or builtin:minilm")
    revision: str | None = option(None, help="a Hub branch, tag or commit")


# What each kind of task reports besides `loss` (model/metrics.py; tests/test_bad_runs.py checks the names).
_CLASSES = ("accuracy", "f1_macro", "f1_micro", "precision_macro", "precision_micro", "recall_macro", "recall_micro")
TASK_METRICS = {
    "token_classification": ("f1", "precision", "recall", "accuracy"),
    "regression": ("pearson", "spearman", "mse"),
    "multi_label_classification": _CLASSES,
    "single_label_classification": (*_CLASSES, "matthews_correlation"),
}


@dataclass
class TaskConfig:
    """The head put on the checkpoint, and how it is scored."""

    type: Literal["sequence_classification", "token_classification"] = option(
        "sequence_classification", help="one label per text, or one per word (tagging, NER)"
    )
    problem_type: Literal["single_label_classification", "multi_label_classification", "regression"] = option(
        "single_label_classification", help="sequence classification: one class, several classes, or a number"
    )
    main_metric: str | None = option(
        None,
        help="the metric that names the best checkpoint and heads the curves; empty: accuracy for "
        "classification (f1_macro with class_weights), pearson for regression, entity f1 for token classification",
    )
    evaluate_modules: list[str] = option(
        factory=list, help="extra `evaluate` metric modules: local paths, or Hub names when online"
    )
    class_weights: str | list[float] | dict[str, float] | None = option(
        None,
        help="weights of the classes in the loss, for imbalanced labels: auto (inverse to their training counts), "
        "a list in label order, or a mapping by label name; multi-label: the weights of positives (pos_weight)",
    )

    def metric(self) -> str:
        """The main metric's name: `main_metric`, or the task's default."""
        if self.main_metric:
            return self.main_metric
        if self.type == "token_classification":
            return "f1"
        if self.problem_type == "regression":
            return "pearson"
        return "f1_macro" if self.class_weights is not None else "accuracy"

    def metric_names(self) -> tuple[str, ...]:
        """The metrics this task reports (and `loss`); extra `evaluate_modules` add their own."""
        kind = self.type if self.type == "token_classification" else self.problem_type
        return (*TASK_METRICS[kind], "loss")

    def problems(self) -> list[str]:
        found = []
        names, wanted = self.metric_names(), self.main_metric
        if wanted and wanted not in names and not self.evaluate_modules:  # an evaluate module's names are its own
            close = "".join(f" (did you mean {m!r}?)" for m in difflib.get_close_matches(wanted, names, n=1))
            found.append(f"task.main_metric: {wanted!r} is not a metric of this task{close}; use {', '.join(names)}")
        if self.type == "token_classification" and self.problem_type != "single_label_classification":
            found.append(
                "task.problem_type: token classification takes one label per token; use single_label_classification"
            )
        weights = self.class_weights
        if weights is None:
            return found
        if self.problem_type == "regression":
            found.append("task.class_weights: regression has no classes; remove task.class_weights")
        elif isinstance(weights, str) and weights != "auto":
            found.append(f"task.class_weights: {weights!r} is not auto, a list or a mapping of label names to weights")
        values = weights if isinstance(weights, list) else list(weights.values()) if isinstance(weights, dict) else []
        if any(not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0 for v in values):
            found.append("task.class_weights: every weight must be a number above 0")
        return found


@dataclass
class FreezeConfig:
    """What stays fixed when `adapt.method` is `freeze`."""

    embeddings: bool = option(False, help="freeze the input embeddings (word, position, type, their norm)")
    layers: int = option(0, help="freeze the first N encoder layers")
    patterns: list[str] = option(factory=list, help="freeze parameters whose names match these regular expressions")


@dataclass
class AdaptConfig:
    """How the checkpoint's weights are adapted."""

    method: Literal["full", "freeze", "lora"] = option(
        "full", help="train every weight, all but the frozen ones, or LoRA adapters"
    )
    freeze: FreezeConfig = option(factory=FreezeConfig, help="what stays fixed (method: freeze)")
    lora: dict[str, Any] = option(
        factory=dict,
        help="peft.LoraConfig fields, by their own names (method: lora); without target_modules, "
        "peft's default for the model family",
        library="LoraConfig",
        defaults={},
        owned=LORA_OWNED,
    )
    merge_lora: bool = option(True, help="also save the merged model, which loads without peft")

    def problems(self) -> list[str]:
        found = []
        if self.method != "freeze" and self.freeze != FreezeConfig():
            found.append(
                f"adapt.freeze: only used with adapt.method: freeze (method is {self.method!r}); "
                "remove it or set adapt.method: freeze"
            )
        if self.method != "lora" and self.lora:
            found.append(
                f"adapt.lora: only used with adapt.method: lora (method is {self.method!r}); "
                "remove it or set adapt.method: lora"
            )
        if self.method == "freeze" and self.freeze == FreezeConfig():
            found.append(
                "adapt.freeze: adapt.method is freeze but nothing is frozen; "
                "set freeze.embeddings, freeze.layers or freeze.patterns"
            )
        if self.freeze.layers < 0:
            found.append("adapt.freeze.layers: must be 0 or more")
        found += _lora_value_problems(self.lora)
        for i, pattern in enumerate(self.freeze.patterns):
            try:
                re.compile(pattern)
            except re.error as e:
                found.append(f"adapt.freeze.patterns[{i}]: not a regular expression ({e})")
        return found


def _lora_value_problems(lora: dict[str, Any]) -> list[str]:
    """The LoRA values peft takes without a check: a rank, a scale and a dropout that cannot train."""
    found = []
    rank, alpha, dropout = lora.get("r"), lora.get("lora_alpha"), lora.get("lora_dropout")
    if isinstance(rank, int) and rank < 1:
        found.append(f"adapt.lora.r: the rank must be 1 or more, got {rank}")
    if isinstance(alpha, (int, float)) and alpha <= 0:
        found.append(f"adapt.lora.lora_alpha: must be above 0, got {alpha}")
    if isinstance(dropout, (int, float)) and not 0 <= dropout < 1:
        found.append(f"adapt.lora.lora_dropout: must be at least 0 and below 1, got {dropout}")
    return found


@dataclass
class EarlyStoppingConfig:
    """Stop when the validation main metric stops improving, and keep the best checkpoint."""

    patience: int = option(2, help="evaluations without improvement before training stops")
    threshold: float = option(0.0, help="the least change of the main metric that counts as an improvement")

    def problems(self, training: dict[str, Any]) -> list[str]:
        found = []
        if self.patience < 1:
            found.append(f"early_stopping.patience: must be 1 or more, got {self.patience}")
        if self.threshold < 0:
            found.append(f"early_stopping.threshold: must be 0 or more, got {self.threshold}")
        if training.get("eval_strategy") in ("no", None):
            found.append("early_stopping: needs evaluations; set training.eval_strategy to epoch or steps")
        return found


@dataclass
class Recipe:
    """A whole run: fine-tuning, and with corpus/tokenizer/pretrain sections, retraining first.

    Build one with `load_recipe(path)` or `load_recipe(raw=dict)`, which check it whole; each section
    is a dataclass of its own, every field documented in docs/recipe.md.

    Args:
        model: the checkpoint to adapt (`ModelConfig`).
        data: the examples to fine-tune on (`DataConfig`).
        output: where the run's results go (`OutputConfig`).
        task: the task head and its metrics.
        adapt: which weights train (full, freeze or lora).
        training: `transformers.TrainingArguments` fields, over hfadapt's defaults.
        early_stopping: stop when the validation main metric stops improving.
        hub: push to the Hugging Face Hub when training ends.
        corpus: retraining: the texts for the tokenizer and pretraining.
        tokenizer: retraining: train a new tokenizer on the corpus.
        pretrain: retraining: masked-LM pretraining before fine-tuning.
    """

    model: ModelConfig = option(help="the checkpoint to adapt")
    data: DataConfig = option(help="the examples to fine-tune on")
    output: OutputConfig = option(help="where the run's results go")
    task: TaskConfig = option(factory=TaskConfig, help="the task head and its metrics")
    adapt: AdaptConfig = option(factory=AdaptConfig, help="which weights train")
    training: dict[str, Any] = training_field(TRAINING_DEFAULTS, "fine-tuning")
    early_stopping: EarlyStoppingConfig | None = option(
        None, help="stop when the validation main metric stops improving; the best checkpoint is kept"
    )
    hub: HubConfig | None = option(None, help="push to the Hugging Face Hub when training ends")
    corpus: CorpusConfig | None = option(None, help="retraining: the texts for the tokenizer and pretraining")
    tokenizer: TokenizerConfig | None = option(None, help="retraining: train a new tokenizer on the corpus")
    pretrain: PretrainConfig | None = option(None, help="retraining: masked-LM pretraining before fine-tuning")

    @classmethod
    def from_dict(cls, raw: Any, source: str = "recipe") -> Recipe:
        """Build and check a recipe from its dict form; raises `RecipeError` listing every problem at once."""
        problems: list[str] = []
        if not isinstance(raw, dict):
            raise RecipeError([f"(top level): expected a mapping of sections, got {typecheck.describe(raw)}"], source)
        recipe = typecheck.build(cls, raw, "", problems)
        if not problems:
            problems += recipe.problems()
        if problems:
            raise RecipeError(problems, source)
        return recipe

    def problems(self) -> list[str]:
        """What needs more than one field to see, and the libraries' own checks of their sections."""
        found = self.task.problems() + self.adapt.problems() + self.data.problems() + self.output.problems()
        if self.task.type == "token_classification" and self.data.text_pair_column:
            found.append("data.text_pair_column: token classification reads one sequence of words; remove it")
        if self.task.type == "token_classification" and self.data.long_texts == "head_tail":
            found.append(
                "data.long_texts: head_tail drops the middle of a text, and token classification tags every "
                "word; use windows (long sentences read in overlapping windows) or truncate"
            )
        found += arguments.training_problems("training", self.training)
        found += arguments.tracker_problems("training", self.training.get("report_to"))
        if self.early_stopping is not None:
            found += self.early_stopping.problems(self.training)
        if self.pretrain is not None:
            found += arguments.training_problems("pretrain.training", self.pretrain.training)
        found += self._retraining_problems()
        if self.hub is not None:
            found += self.hub.problems()
        if found:
            return found
        found += arguments.library_problems("training", lambda: self.training_arguments())
        if self.pretrain is not None:
            found += arguments.library_problems(
                "pretrain.training", lambda: self.pretrain.training_arguments(Path(self.output.dir) / "pretrained")
            )
        if self.adapt.method == "lora":
            found += arguments.library_problems("adapt.lora", self.lora_config, library="peft.LoraConfig")
        return found

    def _retraining_problems(self) -> list[str]:
        found = []
        if (self.tokenizer is not None or self.pretrain is not None) and self.corpus is None:
            found.append(
                "corpus: the tokenizer and pretrain stages read a corpus; add a corpus section with its sources"
            )
        if self.corpus is not None and not self.corpus.sources:
            found.append("corpus.sources: empty; name at least one file, folder, Hub id or builtin:NAME")
        tokenizer = self.tokenizer
        if tokenizer is not None:
            found += tokenizer.problems()
        if self.corpus is not None:
            found += self.corpus.problems()
        if (
            tokenizer is not None
            and tokenizer.words
            and (tokenizer.algorithm != "wordpiece" or not tokenizer.split_han)
        ):
            found.append(
                "tokenizer.words: keeps whole Han words inside a wordpiece tokenizer that splits Han characters; "
                "set tokenizer.algorithm: wordpiece and tokenizer.split_han: true "
                f"(got {tokenizer.algorithm}, split_han {tokenizer.split_han}), or tokenizer.words: false"
            )
        if self.pretrain is not None and self.pretrain.new_rows == "static" and tokenizer is None:
            found.append(
                "pretrain.new_rows: static places the rows of a new tokenizer's tokens; add a tokenizer section "
                "or set pretrain.new_rows: draw"
            )
        if self.pretrain is not None and self.pretrain.init == "scratch" and tokenizer is None:
            found.append("pretrain.init: scratch needs a tokenizer section to build the vocabulary from")
        if self.pretrain is not None:
            found += self.pretrain.problems(self.corpus.sources if self.corpus is not None else [])
        timeout = self.pretrain.training.get("ddp_timeout") if self.pretrain is not None else None
        if timeout is not None and timeout != self.training.get("ddp_timeout"):
            found.append(
                "pretrain.training.ddp_timeout: the stages share one process group, which waits "
                "training.ddp_timeout for a rank; set training.ddp_timeout instead"
            )
        return found

    def output_path(self) -> Path:
        """The run folder, `output.dir`."""
        return Path(self.output.dir)

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe: every field, defaults included, as it would be written in YAML."""
        return dataclasses.asdict(self)

    def updated(self, changes: dict[str, Any]) -> Recipe:
        """A checked copy with `changes` merged in: nested mappings merge key by key, other values replace.

        `recipe.updated({"training": {"max_steps": 10}, "corpus": None})` sets one training field and
        drops a section.
        """
        return Recipe.from_dict(_merge(self.to_dict(), changes))

    def with_output(self, folder: str | Path) -> Recipe:
        """The same run written to `folder`: a fresh run there (no overwrite, no resume)."""
        return self.updated({"output": {"dir": str(folder), "overwrite": False, "resume": False}})

    def with_seed(self, seed: int) -> Recipe:
        """The same run with another fine-tuning seed."""
        return self.updated({"training": {"seed": seed}})

    @property
    def retraining(self) -> bool:
        """Whether the recipe has retraining stages (corpus, tokenizer, pretrain)."""
        return self.corpus is not None or self.tokenizer is not None or self.pretrain is not None

    def training_arguments(self, output_dir: str | Path | None = None):
        """`transformers.TrainingArguments` from the `training` section, checkpoints in `output_dir`."""
        settings = dict(self.training)
        if self.early_stopping is not None:  # the kept model is the best one by the main metric (unless set)
            metric = self.task.metric()
            settings.setdefault("load_best_model_at_end", True)
            settings.setdefault("metric_for_best_model", metric)
            settings.setdefault("greater_is_better", metric not in ("loss", "mse"))
        return arguments.training_arguments(output_dir or Path(self.output.dir) / "checkpoints", settings)

    def lora_config(self, target_modules: list[str] | None = None, modules_to_save: list[str] | None = None):
        """`peft.LoraConfig` from `adapt.lora`, for this recipe's task."""
        return arguments.lora_config(self.task.type, self.adapt.lora, target_modules, modules_to_save)


def _merge(base: Any, changes: Any) -> Any:
    if not isinstance(base, dict) or not isinstance(changes, dict):
        return copy.deepcopy(changes)
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _merge(base.get(key), value) if value is not None else None
    return merged
