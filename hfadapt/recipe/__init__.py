"""Recipes: one YAML file read into dataclasses, checked completely before any weight is loaded.

- `defaults`: hfadapt's changes to TrainingArguments' defaults;
- `schema`: the sections, each field with its default and help, and their checks (`retraining`: the
  corpus, tokenizer and pretrain sections);
- `data`: the data section (source, columns, splits, lengths, long texts);
- `output`: the output and hub sections (where a run's results go, when it stops);
- `typecheck`: building the dataclasses from YAML values, type by type;
- `loading`: files and `key=value` overrides;
- `arguments`: `TrainingArguments` and `peft.LoraConfig` from their sections;
- `reference`: the field reference in docs/recipe.md, generated from the schema.
"""

from hfadapt.errors import RecipeError
from hfadapt.recipe.defaults import PRETRAIN_DEFAULTS, TRAINING_DEFAULTS
from hfadapt.recipe.loading import as_recipe, dump_recipe, load_recipe, parse_override_value, save_recipe
from hfadapt.recipe.schema import (
    AdaptConfig,
    CorpusConfig,
    DataConfig,
    FreezeConfig,
    HubConfig,
    ModelConfig,
    OutputConfig,
    PretrainConfig,
    Recipe,
    TaskConfig,
    TokenizerConfig,
)

__all__ = [
    "PRETRAIN_DEFAULTS",
    "TRAINING_DEFAULTS",
    "AdaptConfig",
    "CorpusConfig",
    "DataConfig",
    "FreezeConfig",
    "HubConfig",
    "ModelConfig",
    "OutputConfig",
    "PretrainConfig",
    "Recipe",
    "RecipeError",
    "TaskConfig",
    "TokenizerConfig",
    "as_recipe",
    "dump_recipe",
    "load_recipe",
    "parse_override_value",
    "save_recipe",
]
