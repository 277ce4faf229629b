"""Every shipped recipe's tiny twin: the real packaged checkpoint and corpus, a few training steps."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hfadapt import builtin, finetune, load_recipe

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))
TINY = [
    "data.max_train_samples=48",
    "data.max_eval_samples=16",
    "training.max_steps=3",
    "training.logging_steps=1",
    "training.disable_tqdm=true",
]

pytestmark = pytest.mark.integration


RETRAIN_TINY = [
    "corpus.max_texts=300",
    "pretrain.training.max_steps=2",
    "pretrain.training.eval_strategy=no",
    "pretrain.training.save_strategy=no",
    "pretrain.training.disable_tqdm=true",
]


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_tiny_twin_trains(path, tmp_path):
    recipe = load_recipe(path, TINY + [f"output.dir={tmp_path / 'run'}"])
    if recipe.pretrain is not None:
        from hfadapt.retraining.pipeline import retrain

        staged = retrain(load_recipe(path, TINY + RETRAIN_TINY + [f"output.dir={tmp_path / 'stages'}"]))
        assert staged.stages["tokenizer"]["new"]["unk_rate"] < staged.stages["tokenizer"]["old"]["unk_rate"]
        assert staged.stages["pretrained"]["steps"] == 2
        if recipe.pretrain.init == "continue":
            assert staged.stages["pretrained"]["vocabulary"]["copied"] > 0
        results = staged.metrics
        run = staged.run_dir
        assert run == tmp_path / "stages" / "finetuned"
    else:
        results = finetune(recipe).metrics
        run = tmp_path / "run"
    assert (run / "metrics.json").exists() and (run / "README.md").exists()
    main = results["main_metric"]
    assert 0.0 <= results["test"][f"test_{main}"] <= 1.0
    assert results["data"]["sizes"]["train"] == 48
    from huggingface_hub import ModelCard

    if recipe.pretrain is None:
        assert ModelCard.load(run / "README.md").data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    if recipe.adapt.method == "lora":
        # LoRA on the real checkpoint trains under 2% of the weights and leaves the rest untouched
        assert results["parameters"]["trainable_percent"] < 2.0
        before = load_file(str(builtin.checkpoint_path(recipe.model.name_or_path) / "model.safetensors"))
        merged = load_file(str(run / "model.safetensors"))
        targets = tuple(recipe.adapt.lora["target_modules"])
        untouched = [n for n in before if not n.endswith("position_ids") and not n.rsplit(".", 2)[-2].endswith(targets)]
        assert untouched and all(torch.equal(merged["bert." + n], before[n]) for n in untouched)
