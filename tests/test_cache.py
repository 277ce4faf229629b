"""Prepared data: made once on disk, reused by a second call and by training, keyed by data, tokenizer and settings."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import CHINESE, chinese_retraining
from transformers import AutoTokenizer

import hfadapt
from hfadapt.cli import main
from hfadapt.data import cache, tokenization
from hfadapt.errors import HfadaptError
from hfadapt.recipe import load_recipe
from hfadapt.retraining import mlm

TIMING = ("_runtime", "_per_second")


def fail(*args, **kwargs):
    pytest.fail("the data was tokenized again instead of loaded")


def test_prepare_writes_the_folder_once_and_a_second_call_reuses_it(
    tiny_recipe, tmp_path, prepared_cache, capsys, monkeypatch
):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(tiny_recipe()))
    assert main(["prepare", str(recipe_file)]) == 0
    first = json.loads(capsys.readouterr().out)["finetune"]
    folder = Path(first["folder"])
    assert first["made"] and folder.parent == prepared_cache / "prepared" and folder.name.startswith("finetune-")
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name, folder.name + ".lock"]
    assert sum(first["sizes"].values()) == 400
    stamp = (folder / "prepared.json").stat().st_mtime_ns
    monkeypatch.setattr(tokenization, "tokenize", fail)
    second = hfadapt.prepare(recipe_file)["finetune"]
    assert second == {**first, "made": False}
    assert (folder / "prepared.json").stat().st_mtime_ns == stamp
    assert not (tmp_path / "run").exists()  # preparing trains nothing and writes no run


@pytest.mark.integration
def test_another_max_length_or_tokenizer_gives_another_folder(tiny_recipe, tiny_checkpoint, tmp_path):
    base = hfadapt.prepare(load_recipe(raw=tiny_recipe()))["finetune"]["folder"]
    shorter = hfadapt.prepare(load_recipe(raw=tiny_recipe(data={"max_length": 16})))["finetune"]["folder"]
    other_model = shutil.copytree(tiny_checkpoint, tmp_path / "other-model")
    tokenizer = AutoTokenizer.from_pretrained(other_model)
    tokenizer.add_tokens(["wonderfully"])
    tokenizer.save_pretrained(other_model)
    other = hfadapt.prepare(load_recipe(raw=tiny_recipe(model={"name_or_path": str(other_model)})))["finetune"][
        "folder"
    ]
    assert len({base, shorter, other}) == 3
    # the same tokenizer has the same fingerprint, saved and reloaded, whatever its last call truncated to
    original = AutoTokenizer.from_pretrained(tiny_checkpoint)
    print_before = cache.tokenizer_fingerprint(original)
    original(["a wonderful film"], truncation=True, max_length=4)
    assert cache.tokenizer_fingerprint(original) == print_before
    original.save_pretrained(tmp_path / "again")
    assert cache.tokenizer_fingerprint(AutoTokenizer.from_pretrained(tmp_path / "again")) == print_before


@pytest.mark.integration
def test_a_killed_or_failed_preparation_is_never_taken_for_prepared(tiny_recipe, monkeypatch):
    from datasets import load_from_disk

    recipe = load_recipe(raw=tiny_recipe())
    folder = Path(hfadapt.prepare(recipe)["finetune"]["folder"])
    shutil.rmtree(folder)
    side = folder.with_name(folder.name + ".incomplete")  # what a kill half-way leaves behind
    (side / "data").mkdir(parents=True)
    (side / "data" / "dataset_dict.json").write_text('{"splits": ["train"]')
    again = hfadapt.prepare(recipe)["finetune"]
    assert again["made"] and not side.exists()
    assert load_from_disk(str(folder / "data"))["test"].num_rows == again["sizes"]["test"]
    # a preparation that fails (here: interrupted) leaves neither the folder nor its side folder
    shutil.rmtree(folder)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(tokenization, "tokenize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        hfadapt.prepare(recipe)
    assert not folder.exists() and not side.exists()


@pytest.mark.integration
def test_finetuning_from_prepared_data_gives_the_metrics_of_tokenizing_in_memory(tiny_recipe, tmp_path, monkeypatch):
    raw = tiny_recipe(training={"num_train_epochs": 1})
    assert hfadapt.prepare(load_recipe(raw=raw))["finetune"]["made"]
    with monkeypatch.context() as patched:
        patched.setattr(tokenization, "tokenize", fail)  # training loads what prepare made
        from_disk = hfadapt.finetune(load_recipe(raw=raw)).metrics
    # as before prepared data existed: tokenized in memory, nothing on disk
    monkeypatch.setattr(cache, "tokenized", lambda *args: SimpleNamespace(data=tokenization.tokenize(*args)))
    raw["output"]["dir"] = str(tmp_path / "in-memory")
    in_memory = hfadapt.finetune(load_recipe(raw=raw)).metrics
    for split in ("train", "validation", "test"):
        scores = {k: v for k, v in from_disk[split].items() if not k.endswith(TIMING)}
        assert scores == {k: v for k, v in in_memory[split].items() if not k.endswith(TIMING)}
    assert "test_accuracy" in from_disk["test"]


def test_prepare_with_a_missing_text_column_is_one_error_and_writes_nothing(
    tiny_recipe, sentiment_csv, tmp_path, prepared_cache, capsys
):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(tiny_recipe(data={"text_column": "review"})))
    assert main(["prepare", str(recipe_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("hfadapt: error:") == 1
    assert (
        f"data.text_column: the train split of {sentiment_csv} has no column 'review'; its columns are text, label"
    ) in err
    assert list(prepared_cache.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]


@pytest.mark.integration
def test_retraining_loads_the_blocks_and_tokens_prepared_ahead(tiny_checkpoint, tmp_path, prepared_cache, monkeypatch):
    from datasets import Dataset

    from hfadapt.retraining.corpus import corpus_documents
    from hfadapt.retraining.pipeline import retrain

    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=2)
    recipe = load_recipe(raw=raw)
    ahead = hfadapt.prepare(recipe)
    assert ahead["pretrain"]["made"] and ahead["finetune"]["made"]
    # the blocks on disk are the packer's, every token of the corpus in them
    stats: dict = {}
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run" / "tokenizer")
    expected = list(mlm.blocks(tokenizer, corpus_documents(recipe, "train"), 32, stats))
    assert Dataset.from_file(str(Path(ahead["pretrain"]["folder"]) / "train.arrow")).to_list() == expected
    assert ahead["pretrain"]["packing"]["train"] == stats and stats["tokens"] > 1000
    made = sorted(p.name for p in (prepared_cache / "prepared").iterdir())
    # pretraining and fine-tuning (on the pretrained checkpoint's tokenizer) load them: nothing is packed or tokenized
    # again
    monkeypatch.setattr(mlm, "blocks", fail)
    monkeypatch.setattr(tokenization, "tokenize", fail)
    results = retrain(recipe).stages
    assert results["pretrained"]["packing"] == ahead["pretrain"]["packing"]
    assert "test_accuracy" in results["finetuned"]["test"]
    assert sorted(p.name for p in (prepared_cache / "prepared").iterdir()) == made


def test_an_empty_validation_share_is_named_and_leaves_nothing(
    tiny_checkpoint, sentiment_csv, tmp_path, prepared_cache
):
    from hfadapt.retraining.corpus import pretraining_data

    (tmp_path / "corpus.txt").write_text("\n".join(CHINESE))
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "data": {"source": str(sentiment_csv)},
        "corpus": {"sources": [str(tmp_path / "corpus.txt")], "validation_fraction": 1e-6},
        "pretrain": {},
        "output": {"dir": str(tmp_path / "run")},
    }
    recipe = load_recipe(raw=raw)
    with pytest.raises(
        HfadaptError,
        match="corpus: the validation share of the corpus is empty; give more text or change "
        "corpus.validation_fraction",
    ):
        pretraining_data(recipe, AutoTokenizer.from_pretrained(tiny_checkpoint))
    assert [p.suffix for p in (prepared_cache / "prepared").iterdir()] == [".lock"]
