"""hfadapt: adapt pretrained language models to a new task or language on Hugging Face.

The public API, loaded on first use so that `import hfadapt` (and `hfadapt --help`) stays fast:
torch and transformers are imported only when a function that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_API = {
    "HfadaptError": "hfadapt.errors",
    "RecipeError": "hfadapt.errors",
    "Recipe": "hfadapt.recipe",
    "load_recipe": "hfadapt.recipe",
    "finetune": "hfadapt.training.finetuning",
    "finetune_seeds": "hfadapt.training.seeds",
    "search": "hfadapt.training.hparam_search",
    "retrain": "hfadapt.retraining.pipeline",
    "prepare": "hfadapt.training.preparation",
    "advise": "hfadapt.advice.pipeline",
    "predict": "hfadapt.runs.inference",
    "evaluate": "hfadapt.runs.inference",
    "Run": "hfadapt.runs.run",
    "load_run": "hfadapt.runs.run",
    "read_texts": "hfadapt.runs.inference",
    "push": "hfadapt.runs.hub",
    "export_onnx": "hfadapt.runs.export",
    # pieces for a Trainer script of your own: plain arguments, no recipe
    "freeze": "hfadapt.model.adapt",
    "add_lora": "hfadapt.model.adapt",
    "parameter_summary": "hfadapt.model.adapt",
    "class_weights": "hfadapt.model.loss",
    "weighted_loss": "hfadapt.model.loss",
    "LengthGroupedByLabelSampler": "hfadapt.data.sampler",
    "SortedEvaluation": "hfadapt.data.sampler",
    "encode_windows": "hfadapt.data.long_texts",
    "pool_windows": "hfadapt.data.long_texts",
    "WindowPooling": "hfadapt.data.long_texts",
    "train_tokenizer": "hfadapt.retraining.tokenizer",
    "extend_tokenizer": "hfadapt.retraining.vocab",
    "rebuild_vocabulary": "hfadapt.retraining.vocab",
    "pack_blocks": "hfadapt.retraining.mlm",
    "WholeWordMaskCollator": "hfadapt.retraining.mlm",
    "MaskedLMTrainer": "hfadapt.retraining.mlm",
}
__all__ = [
    "HfadaptError",
    "LengthGroupedByLabelSampler",
    "MaskedLMTrainer",
    "Recipe",
    "RecipeError",
    "Run",
    "SortedEvaluation",
    "WholeWordMaskCollator",
    "WindowPooling",
    "add_lora",
    "advise",
    "class_weights",
    "encode_windows",
    "evaluate",
    "export_onnx",
    "extend_tokenizer",
    "finetune",
    "finetune_seeds",
    "freeze",
    "load_recipe",
    "load_run",
    "pack_blocks",
    "parameter_summary",
    "pool_windows",
    "predict",
    "prepare",
    "push",
    "read_texts",
    "rebuild_vocabulary",
    "retrain",
    "search",
    "train_tokenizer",
    "weighted_loss",
]

if TYPE_CHECKING:
    from hfadapt.advice.pipeline import advise
    from hfadapt.data.long_texts import WindowPooling, encode_windows, pool_windows
    from hfadapt.data.sampler import LengthGroupedByLabelSampler, SortedEvaluation
    from hfadapt.errors import HfadaptError, RecipeError
    from hfadapt.model.adapt import add_lora, freeze, parameter_summary
    from hfadapt.model.loss import class_weights, weighted_loss
    from hfadapt.recipe import Recipe, load_recipe
    from hfadapt.retraining.mlm import MaskedLMTrainer, WholeWordMaskCollator, pack_blocks
    from hfadapt.retraining.pipeline import retrain
    from hfadapt.retraining.tokenizer import train_tokenizer
    from hfadapt.retraining.vocab import extend_tokenizer, rebuild_vocabulary
    from hfadapt.runs.hub import push
    from hfadapt.runs.inference import evaluate, predict, read_texts
    from hfadapt.runs.run import Run, load_run
    from hfadapt.training.finetuning import finetune
    from hfadapt.training.hparam_search import search
    from hfadapt.training.preparation import prepare
    from hfadapt.training.seeds import finetune_seeds


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'hfadapt' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
