"""hfadapt: adapt pretrained language models to a new task or language on Hugging Face."""

from hfadapt import recipe
from hfadapt.advice import advise
from hfadapt.errors import HfadaptError
from hfadapt.finetune import finetune
from hfadapt.hub import push
from hfadapt.predict import evaluate, load_run, predict, read_texts
from hfadapt.prepared import prepare
from hfadapt.recipe import Recipe, RecipeError, load_recipe
from hfadapt.retrain import retrain
from hfadapt.seeds import finetune_seeds

__all__ = ["HfadaptError", "Recipe", "RecipeError", "advise", "evaluate", "finetune", "finetune_seeds", "load_recipe", "load_run", "predict", "prepare", "push", "read_texts", "recipe", "retrain"]
__version__ = "0.1.0"
