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
    "load_run": "hfadapt.runs.inference",
    "read_texts": "hfadapt.runs.inference",
    "push": "hfadapt.runs.hub",
    "export_onnx": "hfadapt.runs.export",
}
__all__ = [
    "HfadaptError",
    "Recipe",
    "RecipeError",
    "advise",
    "evaluate",
    "export_onnx",
    "finetune",
    "finetune_seeds",
    "load_recipe",
    "load_run",
    "predict",
    "prepare",
    "push",
    "read_texts",
    "retrain",
    "search",
]

if TYPE_CHECKING:
    from hfadapt.advice.pipeline import advise
    from hfadapt.errors import HfadaptError, RecipeError
    from hfadapt.recipe import Recipe, load_recipe
    from hfadapt.retraining.pipeline import retrain
    from hfadapt.runs.hub import push
    from hfadapt.runs.inference import evaluate, load_run, predict, read_texts
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
