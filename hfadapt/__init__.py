"""hfadapt: adapt pretrained language models to a new task or language on Hugging Face.

The public API, loaded on first use so that `import hfadapt` (and `hfadapt --help`) stays fast:
torch and transformers are imported only when a function that needs them is called.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_API = {
    "HfadaptError": "hfadapt.errors",
    "RecipeError": "hfadapt.errors",
    "Recipe": "hfadapt.recipe",
    "load_recipe": "hfadapt.recipe",
    "finetune": "hfadapt.finetune",
    "finetune_seeds": "hfadapt.seeds",
    "search": "hfadapt.search",
    "retrain": "hfadapt.retrain",
    "prepare": "hfadapt.prepare",
    "advise": "hfadapt.advise",
    "predict": "hfadapt.predict",
    "evaluate": "hfadapt.predict",
    "load_run": "hfadapt.predict",
    "read_texts": "hfadapt.predict",
    "push": "hfadapt.hub",
    "export_onnx": "hfadapt.export",
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
    "recipe",
    "retrain",
    "search",
]

if TYPE_CHECKING:
    from hfadapt import recipe
    from hfadapt.advise import advise
    from hfadapt.errors import HfadaptError, RecipeError
    from hfadapt.finetune import finetune
    from hfadapt.hub import push
    from hfadapt.predict import evaluate, load_run, predict, read_texts
    from hfadapt.prepare import prepare
    from hfadapt.recipe import Recipe, load_recipe
    from hfadapt.retrain import retrain
    from hfadapt.search import search
    from hfadapt.seeds import finetune_seeds


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'hfadapt' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package module: a submodule named like a public function (`hfadapt.finetune`, the module
    that defines `finetune`) never replaces the function as the package's attribute when imported."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
