"""The README's accuracy figures, reproduced by the shipped recipes on the full corpus (slow: minutes).

Run with `python -m pytest -m slow tests/test_targets.py`.
"""

import pytest

from hfadapt import finetune, load_recipe

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # slow tests are end to end too: not in the unit tier


@pytest.mark.parametrize(
    "recipe, target", [("recipes/rotten_tomatoes_lora.yaml", 0.82), ("recipes/rotten_tomatoes_full.yaml", 0.84)]
)
def test_rotten_tomatoes_reaches_its_target(recipe, target, tmp_path):
    results = finetune(load_recipe(recipe, [f"output.dir={tmp_path / 'run'}", "training.disable_tqdm=true"])).metrics
    assert results["test"]["test_accuracy"] >= target
    if "lora" in recipe:
        assert results["parameters"]["trainable_percent"] < 2.0
