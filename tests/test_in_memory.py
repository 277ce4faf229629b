"""Data given in memory: a DataFrame, a `datasets.Dataset` or `DatasetDict`, a list of dicts, an iterable of texts.

Each must make what the same rows in a file make (splits, metrics, packed corpus), be named in the run's
recipe by a fingerprint of its content, and be refused with its fix when it cannot be read.
"""

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import CHINESE, chinese_retraining, sentiment_rows, write_csv
from datasets import Dataset, DatasetDict

from hfadapt import evaluate, finetune, prepare, retrain
from hfadapt.data import in_memory
from hfadapt.data.splits import load_splits
from hfadapt.errors import HfadaptError
from hfadapt.recipe import DataConfig, TaskConfig

NAME = re.compile(r"in-memory:sha256:[0-9a-f]{16}")
TIMING = ("_runtime", "_per_second")


def scores(run_dir) -> dict:
    """A finished run's test metrics, timings aside."""
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    return {k: v for k, v in test.items() if not k.endswith(TIMING)}


def not_saved(name: str) -> str:
    return (
        f"data.source: {name} names data that was given in memory, and runs do not save it; give it again "
        "(finetune(recipe, data=...), evaluate(run_dir, source=...)), or give a file, folder or Hub data set "
        "(data.source=PATH, or hfadapt evaluate RUN_DIR PATH)"
    )


def test_the_same_rows_have_one_name_whatever_holds_them():
    rows = sentiment_rows(30)
    names = {in_memory.load(data).name for data in (rows, pd.DataFrame(rows), Dataset.from_list(rows))}
    assert len(names) == 1 and NAME.fullmatch(names.pop())
    assert in_memory.load(rows).name != in_memory.load(sentiment_rows(30, seed=1)).name
    texts = [r["text"] for r in rows]
    assert in_memory.load_texts(texts).name == in_memory.load_texts(t for t in texts).name
    assert in_memory.load_texts(texts).name != in_memory.load_texts(texts[1:]).name


@pytest.mark.parametrize("labels", ["names", "numbers with a missing one"])
def test_a_dataframe_makes_the_splits_the_same_rows_in_a_csv_make(labels, tmp_path):
    rows = sentiment_rows(120)
    if labels != "names":  # a CSV reads these as floats (1.0, NaN), as pandas holds them
        rows = [{**r, "label": int(r["label"] == "positive")} for r in rows]
        rows[7]["label"] = None
    data = DataConfig(source=str(write_csv(tmp_path / "d.csv", rows)), drop_invalid=True)
    from_file = load_splits(data, TaskConfig())
    frame = pd.DataFrame(rows)
    from_frame = load_splits(data, TaskConfig(), given=in_memory.load(frame))
    assert from_frame.label_names == from_file.label_names
    for split in ("train", "validation", "test"):
        assert from_frame.splits[split].to_list() == from_file.splits[split].to_list()
    assert from_frame.report == from_file.report  # the fingerprint, the sizes, the rows dropped


def test_a_dataset_dict_keeps_its_splits_as_given():
    rows = sentiment_rows(90)
    given = DatasetDict(
        {
            "train": Dataset.from_list(rows[:60]),
            "validation": Dataset.from_list(rows[60:70]),
            "test": Dataset.from_list(rows[70:]),
        }
    )
    task_data = load_splits(DataConfig(source="unused"), TaskConfig(), given=in_memory.load(given))
    assert task_data.report["sizes"] == {"train": 60, "validation": 10, "test": 20}
    assert task_data.report["splits_made_by_hash"] == []
    for split in ("train", "validation", "test"):
        assert task_data.splits[split]["text"] == given[split]["text"]
        names = task_data.label_names
        assert [names[i] for i in task_data.splits[split]["label"]] == given[split]["label"]


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"text": ["good"], "label": ["positive"]},
            "data: got dict; give a datasets.Dataset or DatasetDict, a pandas.DataFrame, or a list of dicts; "
            "a dict of columns: pandas.DataFrame(data); a dict of splits: datasets.DatasetDict(data)",
        ),
        (
            np.array([["good", "positive"]]),
            "data: got numpy.ndarray; give a datasets.Dataset or DatasetDict, a pandas.DataFrame, or a list of dicts",
        ),
        (
            "reviews.csv",
            "data: got str; give a datasets.Dataset or DatasetDict, a pandas.DataFrame, or a list of dicts; "
            "a file or folder goes in data.source",
        ),
        (pd.DataFrame({"text": [], "label": []}), "data: the DataFrame has no rows; give examples"),
        ([], "data: the list has no rows; give one dict per example"),
        (
            [{"text": "good", "label": "positive"}, "bad"],
            "data: index 1 of the list is str, not a dict; give one dict per example, e.g. {'text': ..., 'label': ...}",
        ),
        (
            [{"text": "good", "label": 1}, {"text": "bad", "label": "negative"}],
            "data: column 'label' of the list holds a number (index 0) and text (index 1); give every value of a "
            "column the same type",
        ),
        (
            pd.DataFrame({"text": ["good", "bad", "dull"], "label": ["positive", ["negative"], "negative"]}),
            "data: column 'label' of the DataFrame holds text (index 0) and a list (index 1); give every value of a "
            "column the same type",
        ),
        (DatasetDict(), "data: the DatasetDict has no splits; give at least a train split"),
        (
            DatasetDict({"train": Dataset.from_list(sentiment_rows(5)), "test": Dataset.from_dict({"text": []})}),
            "data: the test split of the DatasetDict has no rows; give examples, or leave the split out (a missing "
            "validation or test split is made by text hash)",
        ),
    ],
    ids=[
        "dict of columns",
        "numpy array",
        "a path",
        "empty DataFrame",
        "empty list",
        "not a dict",
        "mixed labels",
        "mixed DataFrame column",
        "no splits",
        "empty split",
    ],
)
def test_data_that_cannot_be_read_is_refused_with_its_fix(data, message):
    with pytest.raises(HfadaptError) as error:
        in_memory.load(data)
    assert str(error.value) == message


@pytest.mark.parametrize(
    "corpus, message",
    [
        (
            "corpus.txt",
            "corpus: got str; give an iterable of texts (a list or a generator of str, a pandas Series); files and "
            "folders go in corpus.sources",
        ),
        (
            pd.DataFrame({"text": ["a"]}),
            "corpus: got pandas.DataFrame; give an iterable of texts (a list or a generator of str, a pandas "
            "Series); for a table, give its column of texts: corpus=df['text']",
        ),
        (
            ["一段文字", 3],
            "corpus: item 1 is int, not a text; give an iterable of texts (a list or a generator of str, a pandas "
            "Series)",
        ),
        ([None, " ", ""], "corpus: the texts given are all empty; give a corpus with non-empty texts"),
    ],
    ids=["a path", "a table", "not a text", "all empty"],
)
def test_a_corpus_that_cannot_be_read_is_refused_with_its_fix(corpus, message):
    with pytest.raises(HfadaptError) as error:
        in_memory.load_texts(corpus)
    assert str(error.value) == message


def test_unusable_rows_and_missing_columns_are_named_by_index():
    frame = pd.DataFrame(sentiment_rows(40), index=range(100, 140))
    frame.loc[103, "text"] = None
    frame.loc[109, "text"] = "  "
    frame.loc[107, "label"] = np.nan
    with pytest.raises(HfadaptError) as error:
        load_splits(DataConfig(source="unused"), TaskConfig(), given=in_memory.load(frame))
    assert str(error.value) == (
        "data: 3 of 40 rows of the DataFrame cannot be used:\n"
        "  empty text: 2 rows (index 103, index 109 of the DataFrame)\n"
        "  no label: 1 row (index 107 of the DataFrame)\n"
        "fix them, or set data.drop_invalid=true to leave such rows out (their count goes into metrics.json)"
    )
    dropped = load_splits(DataConfig(source="unused", drop_invalid=True), TaskConfig(), given=in_memory.load(frame))
    assert dropped.report["invalid_rows_dropped"] == {"train": {"empty text": 2, "no label": 1}}
    renamed = in_memory.load(frame.rename(columns={"text": "t"}))
    with pytest.raises(HfadaptError) as error:
        load_splits(DataConfig(source="unused"), TaskConfig(), given=renamed)
    assert str(error.value) == "data.text_column: the DataFrame has no column 'text'; its columns are t, label"
    split = DatasetDict({"train": Dataset.from_list(sentiment_rows(20)), "test": Dataset.from_dict({"review": ["a"]})})
    with pytest.raises(HfadaptError) as error:
        load_splits(DataConfig(source="unused"), TaskConfig(), given=in_memory.load(split))
    assert str(error.value) == (
        "data.text_column: the test split of the DatasetDict has no column 'text'; its columns are review"
    )


def test_data_replaces_data_source_and_the_corpus_source_that_named_it(tiny_checkpoint, tmp_path):
    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=1)
    rows = [{"text": t + str(i), "label": "pos" if "好" in t else "neg"} for i, t in enumerate(CHINESE)]
    given = in_memory.load(rows)
    recipe = in_memory.recipe_with(raw, (), given)
    assert recipe.data.source == given.name
    assert recipe.corpus.sources == [str(tmp_path / "corpus.txt"), given.name]  # its training split, as before
    texts = in_memory.load_texts(CHINESE)
    assert in_memory.recipe_with(raw, (), given, texts).corpus.sources == [texts.name]
    with pytest.raises(HfadaptError) as error:
        in_memory.recipe_with(raw, ["data.files={train: data.jsonl}"], given)
    assert str(error.value) == (
        "data.files: locates data in data.source, which the data given in memory replaces; remove it "
        "(overrides=['data.files=null'])"
    )


@pytest.mark.integration
def test_a_recipe_naming_data_in_memory_needs_it_again(tiny_recipe, tiny_checkpoint, tmp_path):
    name = in_memory.load(sentiment_rows(20)).name
    with pytest.raises(HfadaptError) as error:
        finetune(tiny_recipe(data={"source": name}))
    assert str(error.value) == not_saved(name)
    assert not (tmp_path / "run").exists()
    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=1)
    texts = in_memory.load_texts(CHINESE).name
    raw["corpus"]["sources"] = [texts]
    with pytest.raises(HfadaptError) as error:
        retrain(raw, until="tokenizer")
    assert str(error.value) == (
        f"corpus.sources: {texts} names texts that were given in memory, and runs do not save them; give them "
        "again (retrain(recipe, corpus=texts)), or list files, folders or Hub data sets in corpus.sources"
    )
    raw["corpus"]["sources"] = [str(tmp_path / "corpus.txt")]
    raw["data"]["source"] = name
    retrain(raw, until="tokenizer")  # the tokenizer stage reads no fine-tuning data
    assert (tmp_path / "run" / "tokenizer").is_dir()
    with pytest.raises(HfadaptError) as error:
        retrain(raw)  # fine-tuning needs it: refused before pretraining starts
    assert str(error.value) == not_saved(name)
    assert not (tmp_path / "run" / "pretrained").exists()


def test_different_data_in_memory_never_shares_a_prepared_cache(tiny_recipe):
    first, second = pd.DataFrame(sentiment_rows(60)), pd.DataFrame(sentiment_rows(60, seed=1))
    made = prepare(tiny_recipe(), data=first)["finetune"]
    other = prepare(tiny_recipe(), data=second)["finetune"]
    again = prepare(tiny_recipe(), data=first.copy())["finetune"]
    assert made["made"] and other["made"] and other["folder"] != made["folder"]
    assert not again["made"] and again["folder"] == made["folder"]


@pytest.mark.integration
def test_finetune_on_a_dataframe_scores_as_on_the_same_rows_in_a_csv(
    tiny_recipe, sentiment_csv, tmp_path, one_torch_thread
):
    from_file = tmp_path / "from_file"
    finetune(tiny_recipe(output={"dir": str(from_file)}))  # data.source: the sentiment CSV, sentiment_rows(400)
    frame = pd.DataFrame(sentiment_rows(400))
    from_frame = tmp_path / "from_frame"
    finetune(tiny_recipe(output={"dir": str(from_frame)}), data=frame)
    assert scores(from_frame) == scores(from_file)
    assert scores(from_frame)["test_accuracy"] > 0.8  # the task was learnt: equal figures, not two failures
    manifests = [json.loads((run / "manifest.json").read_text())["data"] for run in (from_file, from_frame)]
    assert manifests[1]["fingerprint"] == manifests[0]["fingerprint"]
    assert manifests[1]["source"] == in_memory.load(frame).name != manifests[0]["source"]


@pytest.mark.integration
def test_a_run_on_a_list_of_dicts_records_its_data_and_needs_it_again(tiny_recipe, tmp_path, one_torch_thread):
    rows = sentiment_rows(300, seed=2)
    finetune(tiny_recipe(), data=rows)
    run = tmp_path / "run"
    name = in_memory.load(rows).name
    saved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert saved["data"]["source"] == name
    assert json.loads((run / "manifest.json").read_text())["data"]["source"] == name
    assert f"`{name}`" in (run / "README.md").read_text()
    with pytest.raises(HfadaptError) as error:
        evaluate(run)
    assert str(error.value) == not_saved(name)
    with pytest.raises(HfadaptError) as error:
        finetune(run / "recipe.yaml", [f"output.dir={tmp_path / 'again'}"])
    assert str(error.value) == not_saved(name)
    # the same rows as a DataFrame: the same hash splits, so the run's own test figures
    again = evaluate(run, source=pd.DataFrame(rows))
    assert again["test_accuracy"] == pytest.approx(scores(run)["test_accuracy"])


@pytest.mark.integration
def test_finetune_on_a_dataset_dict_trains_and_scores_on_its_given_splits(tiny_recipe, tmp_path, one_torch_thread):
    rows = sentiment_rows(200, seed=3)
    given = DatasetDict(
        {
            "train": Dataset.from_list(rows[:150]),
            "validation": Dataset.from_list(rows[150:170]),
            "test": Dataset.from_list(rows[170:]),
        }
    )
    finetune(tiny_recipe(training={"max_steps": 5}), data=given)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"]["sizes"] == {"train": 150, "validation": 20, "test": 30}
    assert metrics["data"]["splits_made_by_hash"] == []
    assert sum(c["support"] for c in metrics["per_class"]["test"]["classes"].values()) == 30


def test_a_corpus_in_memory_reads_as_the_same_texts_in_a_file(tiny_checkpoint, tmp_path):
    from hfadapt.retraining.corpus import corpus_documents, corpus_key, reading_once

    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=1)
    raw["corpus"]["sources"] = [str(tmp_path / "corpus.txt")]
    texts = in_memory.load_texts(iter((tmp_path / "corpus.txt").read_text().splitlines()))
    from_file = in_memory.recipe_with(raw)
    from_memory = in_memory.recipe_with(raw, (), None, texts)
    with reading_once(texts):
        for split in ("train", "validation"):
            assert list(corpus_documents(from_memory, split)) == list(corpus_documents(from_file, split))
        assert corpus_key(from_memory)["sources"] == [texts.digest]
    with pytest.raises(HfadaptError, match="names texts that were given in memory"):
        list(corpus_documents(from_memory, "train"))  # outside the pipeline that was given them


@pytest.mark.integration
def test_retrain_on_texts_in_memory_pretrains_as_on_the_same_texts_in_a_file(
    tiny_checkpoint, tmp_path, one_torch_thread
):
    # the model's own tokenizer: a trained one differs from run to run (the tokenizers trainer breaks ties
    # in hash order), so only without one can two pretraining runs be compared figure for figure
    raw = chinese_retraining(tiny_checkpoint, tmp_path, steps=2)
    raw["corpus"]["sources"] = [str(tmp_path / "corpus.txt")]
    del raw["tokenizer"]
    retrain(raw, until="pretrained")
    texts = (tmp_path / "corpus.txt").read_text().splitlines()
    rows = [json.loads(line) for line in (tmp_path / "data.jsonl").read_text().splitlines()]
    raw["output"]["dir"] = str(tmp_path / "in_memory")
    retrain(raw, corpus=(t for t in texts), data=rows)  # a generator, read once; then fine-tuned on the rows
    file_run, memory_run = tmp_path / "run", tmp_path / "in_memory"
    ours, theirs = (json.loads((run / "pretrained" / "pretrain.json").read_text()) for run in (memory_run, file_run))
    assert ours["packing"] == theirs["packing"]
    assert ours["perplexity"] == theirs["perplexity"]
    saved = yaml.safe_load((memory_run / "recipe.yaml").read_text())
    assert saved["corpus"]["sources"] == [in_memory.load_texts(texts).name]
    assert saved["data"]["source"] == in_memory.load(rows).name
    finetuned = yaml.safe_load((memory_run / "finetuned" / "recipe.yaml").read_text())
    assert finetuned["data"]["source"] == in_memory.load(rows).name
    assert (memory_run / "finetuned" / "metrics.json").exists()
