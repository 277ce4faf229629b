"""Adaptation: decide which weights train (all, all but the frozen ones, or LoRA adapters)."""

from __future__ import annotations

import logging
import re
from typing import Any

from hfadapt.errors import HfadaptError
from hfadapt.model import pretrained
from hfadapt.recipe import Recipe

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
    """Return the model to train, with `requires_grad` set as the recipe asks.

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
        return add_lora(model, recipe, fresh)
    return model


def freeze(
    model, embeddings: bool = False, layers: int = 0, patterns: list[str] = (), keep: list[str] = ()
) -> list[str]:
    """Freeze the embeddings, the first `layers` encoder layers and parameters matching `patterns`.

    Returns the names of the frozen parameters. Parameters of the modules in `keep` never freeze.
    """
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
    compiled = [re.compile(p) for p in patterns]
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


def add_lora(model, recipe: Recipe, fresh: list[str]):
    """Wrap the model with peft LoRA adapters; the fresh modules train in full and save with the adapter."""
    from peft import get_peft_model

    targets = recipe.adapt.lora.get("target_modules")
    if targets is not None:
        available = pretrained.linear_module_names(model)
        wanted = [targets] if isinstance(targets, str) else list(targets)
        if not (isinstance(targets, str) and targets == "all-linear"):
            names = {n for n, _ in model.named_modules()}
            missing = [t for t in wanted if not any(n == t or n.endswith("." + t) for n in names)]
            if missing:
                raise HfadaptError(
                    "adapt.lora.target_modules: the model has no module named "
                    f"{', '.join(map(repr, missing))}; its linear layers are: {', '.join(available)}"
                )
    default = None
    if targets is None:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

        if model.config.model_type not in PEFT_TARGETS:
            default = LORA_DEFAULT_TARGETS.get(model.config.model_type)
            if default is None:
                raise HfadaptError(
                    f"adapt.lora.target_modules: no default for the {model.config.model_type} family; "
                    "name them, from its linear layers: "
                    f"{', '.join(pretrained.linear_module_names(model))}"
                )
    config = recipe.lora_config(target_modules=default, modules_to_save=fresh or None)
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as e:
        raise HfadaptError(f"adapt.lora: peft cannot add LoRA to this model: {e}") from None
    return peft_model


def parameter_summary(model) -> dict[str, Any]:
    """Trainable and total parameter counts, and the share that trains."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "trainable": trainable,
        "total": total,
        "trainable_percent": round(100.0 * trainable / total, 4) if total else 0.0,
    }
