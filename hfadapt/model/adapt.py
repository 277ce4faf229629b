"""Adaptation: decide which weights train (all, all but the frozen ones, or LoRA adapters).

`freeze`, `add_lora` and `parameter_summary` take a model and plain arguments (or a `peft.LoraConfig`);
`apply` is the recipe's adapter over them.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hfadapt.errors import HfadaptError
from hfadapt.model import pretrained
from hfadapt.recipe import Recipe

if TYPE_CHECKING:
    from peft import LoraConfig, PeftModel
    from torch.nn import Module

logger = logging.getLogger(__name__)

# LoRA targets for BERT-style families that peft has no default for (peft's own table covers
# bert, roberta, xlm-roberta, electra, deberta-v2): the attention query and value projections.
LORA_DEFAULT_TARGETS = {
    "distilbert": ["q_lin", "v_lin"],
    "albert": ["query", "value"],
    "mpnet": ["q", "v"],
    "camembert": ["query", "value"],
}
# LoRA on attention and feed-forward, for the families whose linear layers have these names: what
# advise's LoRA pilot and the shipped LoRA recipe use (query and value alone underfit a 6-layer model).
LORA_WIDE_TARGETS = {
    family: ["query", "key", "value", "dense"] for family in ("bert", "roberta", "xlm-roberta", "camembert", "electra")
}


def apply(model, recipe: Recipe, fresh: list[str]):
    """Return the model to train, with `requires_grad` set as the recipe asks: the recipe's adapter over
    `freeze` and `add_lora`.

    `fresh` names the modules the checkpoint did not have (the task head): they always train,
    and under LoRA they are saved with the adapter.
    """
    adapt = recipe.adapt
    if adapt.method == "freeze":
        freeze(
            model,
            embeddings=adapt.freeze.embeddings,
            layers=adapt.freeze.layers,
            patterns=adapt.freeze.patterns,
            keep=fresh,
        )
        return model
    if adapt.method == "lora":
        return add_lora(model, recipe.lora_config(), keep=fresh)
    return model


def freeze(
    model: Module,
    embeddings: bool = False,
    layers: int = 0,
    patterns: Sequence[str] = (),
    keep: Sequence[str] = (),
) -> list[str]:
    """Freeze the embeddings, the first `layers` encoder layers and the parameters matching `patterns`, in place.

    Args:
        model: a transformers model (a task model or a bare encoder) of a BERT-style family.
        embeddings: freeze the input embeddings module (word, position, type embeddings and their norm).
        layers: freeze the first N encoder layers; 0 freezes none.
        patterns: regular expressions searched in parameter names (`model.named_parameters()`); the
            parameters they match freeze.
        keep: module names (e.g. `["classifier"]`) whose parameters never freeze, whatever matches them.

    Returns:
        The names of the parameters frozen.

    Raises:
        HfadaptError: `layers` negative or more than the model has, a pattern that is not a regular
            expression or matches no parameter, or a single string where a list is expected.
    """
    for name, value in (("patterns", patterns), ("keep", keep)):
        if isinstance(value, str):
            raise HfadaptError(f"freeze: {name} is the string {value!r}; give a list, e.g. [{value!r}]")
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 0:
        raise HfadaptError(f"freeze: layers must be a whole number, 0 or more; got {layers!r}")
    targets: list = []
    if embeddings:
        targets.append(pretrained.embeddings_module(model)[1])
    if layers:
        name, stack = pretrained.encoder_layers(model)
        if layers > len(stack):
            raise HfadaptError(
                f"adapt.freeze.layers: {layers} layers asked, but the model has {len(stack)} "
                f"({name}); use at most {len(stack)}"
            )
        targets.extend(stack[:layers])
    frozen_ids = {id(p) for module in targets for p in module.parameters()}
    compiled = []
    for i, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern))
        except (re.error, TypeError) as e:
            raise HfadaptError(f"freeze: patterns[{i}] {pattern!r} is not a regular expression ({e})") from None
    unmatched = [p.pattern for p in compiled if not any(p.search(n) for n, _ in model.named_parameters())]
    if unmatched:
        raise HfadaptError(
            f"adapt.freeze.patterns: {', '.join(map(repr, unmatched))} match no parameter "
            f"name; names look like {next(iter(dict(model.named_parameters())))!r}"
        )
    frozen = []
    for name, param in model.named_parameters():
        if any(name == k or name.startswith(k + ".") for k in keep):
            continue
        if id(param) in frozen_ids or any(p.search(name) for p in compiled):
            param.requires_grad_(False)
            frozen.append(name)
    logger.info("froze %d parameter tensors", len(frozen))
    return frozen


def add_lora(model: Module, config: LoraConfig | None = None, keep: Sequence[str] = (), **settings: Any) -> PeftModel:
    """Wrap `model` with peft LoRA adapters: its own weights freeze, the adapters (and `keep`) train.

    Where neither `config` nor `settings` names `target_modules`, the family's default is used: peft's
    own, or hfadapt's for DistilBERT, ALBERT, MPNet and CamemBERT (the attention query and value
    projections). Where the config has no `task_type`, it is taken from the model's class
    (`...ForSequenceClassification`: SEQ_CLS, `...ForTokenClassification`: TOKEN_CLS).

    Args:
        model: a transformers model of a BERT-style family (BERT, RoBERTa, XLM-R, ELECTRA, DeBERTa-v2,
            DistilBERT, ALBERT, MPNet, CamemBERT).
        config: a `peft.LoraConfig`; None builds one from `settings`.
        keep: module names (e.g. `["classifier"]`, a task head the checkpoint lacked) that train in full
            and are saved with the adapter (peft's `modules_to_save`).
        **settings: `peft.LoraConfig` fields under their own names (`r=8, lora_alpha=16, lora_dropout=0.1`),
            when `config` is None.

    Returns:
        The `peft.PeftModel`, ready for `Trainer`; `model.save_pretrained(folder)` saves the adapter.

    Raises:
        HfadaptError: both `config` and `settings`, fields `peft.LoraConfig` rejects, target modules the
            model lacks, a family without default targets, or a model peft cannot wrap.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    if isinstance(keep, str):
        raise HfadaptError(f"add_lora: keep is the string {keep!r}; give a list, e.g. [{keep!r}]")
    if config is None:
        try:
            config = LoraConfig(**settings)
        except (TypeError, ValueError) as e:
            raise HfadaptError(f"add_lora: peft.LoraConfig rejects {settings}: {e}") from None
    elif settings:
        raise HfadaptError(f"add_lora: give a LoraConfig or its fields as keywords, not both (got {sorted(settings)})")
    elif not isinstance(config, LoraConfig):
        raise HfadaptError(f"add_lora: config must be a peft.LoraConfig, got {type(config).__name__}")
    changes: dict[str, Any] = {}
    targets = config.target_modules
    if targets is not None:
        _check_targets(model, targets)
    else:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

        if model.config.model_type not in PEFT_TARGETS:
            default = LORA_DEFAULT_TARGETS.get(model.config.model_type)
            if default is None:
                raise HfadaptError(
                    f"adapt.lora.target_modules: no default for the {model.config.model_type} family; "
                    "name them, from its linear layers: "
                    f"{', '.join(pretrained.linear_module_names(model))}"
                )
            changes["target_modules"] = default
    if keep:
        saved = list(config.modules_to_save or [])
        changes["modules_to_save"] = saved + [k for k in keep if k not in saved]
    if config.task_type is None:
        kind = type(model).__name__
        if kind.endswith("ForSequenceClassification"):
            changes["task_type"] = TaskType.SEQ_CLS
        elif kind.endswith("ForTokenClassification"):
            changes["task_type"] = TaskType.TOKEN_CLS
    if changes:
        config = dataclasses.replace(config, **changes)
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as e:
        raise HfadaptError(f"adapt.lora: peft cannot add LoRA to this model: {e}") from None
    return peft_model


def _check_targets(model, targets: str | Sequence[str]) -> None:
    """Refuse LoRA target modules the model has no module of (`all-linear` always fits)."""
    if isinstance(targets, str) and targets == "all-linear":
        return
    wanted = [targets] if isinstance(targets, str) else list(targets)
    if isinstance(targets, (set, frozenset)):
        wanted.sort()
    names = {n for n, _ in model.named_modules()}
    missing = [t for t in wanted if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise HfadaptError(
            "adapt.lora.target_modules: the model has no module named "
            f"{', '.join(map(repr, missing))}; its linear layers are: "
            f"{', '.join(pretrained.linear_module_names(model))}"
        )


def parameter_summary(model: Module) -> dict[str, Any]:
    """Count the model's trainable and total parameters.

    Args:
        model: any torch module (a transformers model, a peft model after `add_lora`, one after `freeze`).

    Returns:
        `trainable` and `total` parameter counts, and `trainable_percent`, the share that trains (0-100).
    """
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "trainable": trainable,
        "total": total,
        "trainable_percent": round(100.0 * trainable / total, 4) if total else 0.0,
    }
