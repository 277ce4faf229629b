"""Recipes: every shipped recipe validates; every kind of mistake is reported at once, by path, with a hint."""

from pathlib import Path

import pytest
import yaml

from hfadapt.recipe import RecipeError, load_recipe, parse_override_value, save_recipe

RECIPES = sorted(p for p in (Path(__file__).parent.parent / "recipes").glob("*.yaml"))


@pytest.mark.integration
@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.output.dir
    header = [line for line in path.read_text().splitlines()[:6] if line.startswith("#")]
    assert any("hfadapt " in line for line in header), "each recipe opens with a comment giving its launch command"


def problems_of(raw, overrides=()):
    with pytest.raises(RecipeError) as info:
        load_recipe(raw=raw, overrides=overrides)
    return info.value.problems


BASE = {"model": {"name_or_path": "m"}, "data": {"source": "d.csv"}, "output": {"dir": "out"}}


def with_(**sections):
    raw = {k: dict(v) for k, v in BASE.items()}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return raw


@pytest.mark.parametrize(
    "raw, expected",
    [
        (with_(adapt={"metod": "lora"}), "adapt.metod: unknown key (did you mean 'method'?)"),
        (
            with_(training={"learning_rate": "5e-4"}),
            "training.learning_rate: expected a number, got the string '5e-4' (YAML reads "
            "5e-4 as text: write it with a decimal point, e.g. 5.0e-4)",
        ),
        (with_(training={"learning_rat": 0.1}), "training.learning_rat: unknown key (did you mean 'learning_rate'?)"),
        (
            with_(training={"output_dir": "x"}),
            "training.output_dir: hfadapt sets this itself (set output.dir instead; "
            "checkpoints go to OUTPUT_DIR/checkpoints)",
        ),
        (
            with_(adapt={"method": "lora", "lora": {"r": "eight"}}),
            "adapt.lora.r: expected an integer, got the string 'eight'",
        ),
        (with_(adapt={"method": "lora", "lora": {"r": 0}}), "adapt.lora.r: the rank must be 1 or more, got 0"),
        (
            with_(adapt={"method": "lora", "lora": {"lora_dropout": -1}}),
            "adapt.lora.lora_dropout: must be at least 0 and below 1, got -1",
        ),
        (
            with_(adapt={"method": "lora", "lora": {"lora_alpha": 0}}),
            "adapt.lora.lora_alpha: must be above 0, got 0",
        ),
        (
            with_(adapt={"method": "prefix"}),
            "adapt.method: expected one of 'full', 'freeze', 'lora', got the string 'prefix'",
        ),
        (
            with_(data={"text_column": False}),
            "data.text_column: expected a string, got the boolean false (YAML reads "
            "yes/no/on/off/true/false as booleans: put the value in quotes)",
        ),
        (with_(data={"max_length": 12.5}), "data.max_length: expected an integer, got the number 12.5"),
        ({"model": {"name_or_path": "m"}, "output": {"dir": "o"}}, "data: missing (this field is required)"),
        (
            with_(adapt={"method": "lora", "freeze": {"layers": 2}}),
            "adapt.freeze: only used with adapt.method: freeze (method is 'lora'); remove it "
            "or set adapt.method: freeze",
        ),
        (
            with_(adapt={"method": "freeze"}),
            "adapt.freeze: adapt.method is freeze but nothing is frozen; set "
            "freeze.embeddings, freeze.layers or freeze.patterns",
        ),
        (
            with_(data={"test_fraction": 0.6, "validation_fraction": 0.5}),
            "data.validation_fraction + data.test_fraction: leave some examples for training "
            "(their sum must be below 1)",
        ),
        (
            with_(zzz={"a": 1}),
            "zzz: unknown key (known keys: model, data, output, task, adapt, training, early_stopping, hub, "
            "corpus, tokenizer, pretrain)",
        ),
        (
            with_(hub={"repo_id": "me/model", "token": "hf_x"}),
            "hub.token: a token never goes in a recipe (recipes are saved and pushed); set "
            "HF_TOKEN or run `hf auth login`",
        ),
        (
            with_(hub={"repo_id": "not a repo//id"}),
            "hub.repo_id: 'not a repo//id' is not a valid repo id; write it as NAME or "
            "ORG/NAME (letters, digits, '-', '_', '.')",
        ),
    ],
)
def test_each_mistake_has_its_own_message(raw, expected):
    assert problems_of(raw) == [expected]


def test_all_problems_are_reported_at_once():
    raw = with_(
        adapt={"metod": "lora"}, training={"learning_rate": "5e-4", "num_train_epoch": 3}, data={"max_length": "long"}
    )
    problems = problems_of(raw)
    assert len(problems) == 4
    assert {p.split(":")[0] for p in problems} == {
        "adapt.metod",
        "training.learning_rate",
        "training.num_train_epoch",
        "data.max_length",
    }


def test_training_arguments_own_checks_are_reported_before_any_weight():
    problems = problems_of(
        with_(
            training={
                "load_best_model_at_end": True,
                "eval_strategy": "epoch",
                "save_strategy": "steps",
                "save_steps": 7,
            }
        )
    )
    assert len(problems) == 1 and problems[0].startswith("training: transformers.TrainingArguments rejects it:")


def test_overrides_take_numbers_as_numbers_and_set_nested_keys():
    recipe = load_recipe(
        raw=with_(adapt={"method": "lora"}),
        overrides=["training.learning_rate=3e-5", "adapt.lora.r=16", "data.max_length=64", "output.overwrite=true"],
    )
    assert recipe.training["learning_rate"] == 3e-5 and isinstance(recipe.training["learning_rate"], float)
    assert recipe.adapt.lora == {"r": 16}
    assert recipe.data.max_length == 64 and recipe.output.overwrite is True
    assert (
        parse_override_value("1e3") == 1000.0
        and parse_override_value("7") == 7
        and parse_override_value("[a, b]") == ["a", "b"]
    )
    assert (
        parse_override_value("no") == "no"
        and parse_override_value("true") is True
        and parse_override_value("null") is None
    )


def test_malformed_override_is_a_recipe_problem():
    assert problems_of(BASE, overrides=["training.learning_rate"]) == [
        "training.learning_rate: an override is written key=value, e.g. training.learning_rate=3e-5"
    ]


def test_hub_section_is_optional_and_checked():
    assert load_recipe(raw=BASE).hub is None
    assert load_recipe(raw=with_(hub={"repo_id": "me/model"})).hub.private is False


def test_defaults_are_resolved_and_round_trip(tmp_path):
    recipe = load_recipe(raw=with_(training={"learning_rate": 2.0e-5}))
    assert recipe.training["seed"] == 42 and "train_sampling_strategy" not in recipe.training
    assert recipe.training["learning_rate"] == 2.0e-5
    save_recipe(recipe, tmp_path / "recipe.yaml")
    assert load_recipe(tmp_path / "recipe.yaml") == recipe


def test_not_a_mapping_and_not_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(Exception, match="is not valid YAML"):
        load_recipe(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(RecipeError, match=r"\(top level\): expected a mapping of sections, got a list"):
        load_recipe(listed)


def test_bf16_works_without_a_gpu():
    import torch

    # transformers refuses bf16 without a GPU unless told use_cpu; hfadapt tells it, and only then
    recipe = load_recipe(raw=with_(training={"bf16": True}))
    args = recipe.training_arguments()
    assert args.bf16
    assert args.use_cpu == (not torch.cuda.is_available())
    assert "use_cpu" not in recipe.training  # the saved recipe stays as written


def test_memory_is_pinned_only_for_an_accelerator():
    from hfadapt.recipe.arguments import has_accelerator

    assert load_recipe(raw=with_()).training_arguments().dataloader_pin_memory == has_accelerator()
    kept = with_(training={"dataloader_pin_memory": True, "bf16": False})  # bf16 on a CPU sets use_cpu, which unpins
    assert load_recipe(raw=kept).training_arguments().dataloader_pin_memory


def test_a_run_is_cloned_through_the_recipe():
    recipe = load_recipe(raw=with_(training={"learning_rate": 2.0e-5}, output={"dir": "out", "overwrite": True}))
    other = recipe.with_seed(7).with_output("elsewhere")
    assert other.training["seed"] == 7 and other.training["learning_rate"] == 2.0e-5
    assert (other.output.dir, other.output.overwrite, other.output.resume) == ("elsewhere", False, False)
    assert recipe.training["seed"] == 42 and recipe.output.dir == "out"  # the original is unchanged
    changed = recipe.updated({"adapt": {"method": "lora", "lora": {"r": 4}}, "hub": {"repo_id": "me/m"}})
    assert changed.adapt.lora == {"r": 4} and changed.hub.repo_id == "me/m" and changed.data == recipe.data
    assert changed.updated({"hub": None}).hub is None
    with pytest.raises(RecipeError, match=r"adapt.method: expected one of 'full', 'freeze', 'lora'"):
        recipe.updated({"adapt": {"method": "prefix"}})
