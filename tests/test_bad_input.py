"""Bad input, as a hostile user gives it: one clear message naming the problem and the fix, exit 2, nothing written.

Each table row is a case and its exact message (or its exact start where the rest names a temporary
path). The checks run before any weight loads, so each case takes well under a second.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import sentiment_rows

from hfadapt import finetune, load_recipe
from hfadapt.cli import main
from hfadapt.errors import HfadaptError, RecipeError


def problems(raw: dict, overrides=()) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(raw=raw, overrides=overrides)
    return info.value.problems


BASE = {"model": {"name_or_path": "m"}, "data": {"source": "d.csv"}, "output": {"dir": "out"}}
RETRAIN = {**BASE, "corpus": {"sources": ["c.txt"]}, "tokenizer": {}, "pretrain": {}}


@pytest.mark.parametrize(
    "raw, override, expected",
    [
        (BASE, "training.learning_rate=-1.0", "training.learning_rate: must be above 0, got -1.0"),
        (BASE, "training.learning_rate=0", "training.learning_rate: must be above 0, got 0"),
        (
            BASE,
            "training.per_device_train_batch_size=0",
            "training.per_device_train_batch_size: must be 1 or more, got 0",
        ),
        (
            BASE,
            "training.per_device_eval_batch_size=-4",
            "training.per_device_eval_batch_size: must be 1 or more, got -4",
        ),
        (
            BASE,
            "training.gradient_accumulation_steps=0",
            "training.gradient_accumulation_steps: must be 1 or more, got 0",
        ),
        (BASE, "training.weight_decay=-0.1", "training.weight_decay: must be 0 or more, got -0.1"),
        (
            BASE,
            "training.num_train_epochs=0",
            "training.num_train_epochs: 0 epochs trains nothing; give 1 or more, or set training.max_steps",
        ),
        (
            BASE,
            "training.max_steps=0",
            "training.max_steps: 0 steps trains nothing; give 1 or more, or -1 to train by epochs",
        ),
        (
            RETRAIN,
            "pretrain.training.learning_rate=-5.0e-4",
            "pretrain.training.learning_rate: must be above 0, got -0.0005",
        ),
        (
            RETRAIN,
            "tokenizer.vocab_size=0",
            "tokenizer.vocab_size: 0 cannot hold the 5 special tokens and an alphabet; use at least a few hundred",
        ),
        (RETRAIN, "tokenizer.min_frequency=0", "tokenizer.min_frequency: must be 1 or more, got 0"),
        (
            RETRAIN,
            "pretrain.training.ddp_timeout=60",
            "pretrain.training.ddp_timeout: the stages share one process group, which waits training.ddp_timeout "
            "for a rank; set training.ddp_timeout instead",
        ),
        (
            RETRAIN,
            "corpus.validation_fraction=1.5",
            "corpus.validation_fraction: must be above 0 and below 1, got 1.5",
        ),
        (RETRAIN, "corpus.max_texts=0", "corpus.max_texts: must be 1 or more (or null for all)"),
        (BASE, "data.drop_invalid=maybe", "data.drop_invalid: expected true or false, got the string 'maybe'"),
    ],
)
def test_values_no_run_can_train_with_are_recipe_problems(raw, override, expected):
    assert problems(raw, [override]) == [expected]


def test_a_binary_recipe_file_is_named(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"hfadapt: error: {path} is not a text file; give the path of a YAML recipe (see recipes/)\n"
    )


# --- data: every case refused before a weight loads, with its place -------------------------------------


def data_error(tmp_path: Path, name: str, content, **data) -> str:
    """The message `hfadapt validate`-checked data gets from load_splits (no model is loaded)."""
    from hfadapt.data.splits import load_splits
    from hfadapt.recipe import DataConfig, TaskConfig

    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(HfadaptError) as info:
        load_splits(DataConfig(source=str(path), **data), TaskConfig())
    return str(info.value).replace(str(path), "FILE")


GOOD = "".join(f"{r['text']},{r['label']}\n" for r in sentiment_rows(40))


@pytest.mark.parametrize(
    "name, content, data, expected",
    [
        ("a.csv", b"", {}, "data.source: FILE is empty; give a file with examples"),
        ("a.csv", "text,label\n", {}, "data.source: FILE has a header line but no rows; give a file with examples"),
        (
            "a.csv",
            b"text,label\n" + "café au lait,pos\n".encode("latin-1") + GOOD.encode(),
            {},
            "data.source: FILE is not valid utf-8: byte 0xe9 at line 2, column 4; give its encoding as data.encoding "
            "(e.g. data.encoding=latin-1), or save it as UTF-8",
        ),
        (
            "a.csv",
            "text,label\nfine film,pos\nbad, awful film,neg\n" + GOOD,
            {},
            "data.source: FILE: the header has 2 fields, but line 3 has 3, split at a comma; quote the fields that "
            "contain a comma, or give the file's delimiter as data.delimiter",
        ),
        (
            "a.jsonl",
            '{"text": "fine", "label": "pos"}\n{"text": "bad", "label": "neg"}\n{"text": "cut off", "lab\n',
            {},
            "data.source: FILE line 3 is not valid JSON (Unterminated string starting at, column 21); "
            "each line of a JSON lines file holds one object",
        ),
        (
            "a.jsonl",
            '["a list", "per line"]\n',
            {},
            "data.source: FILE line 1 is not a JSON object; each line holds one object",
        ),
        (
            "a.csv",
            b"text,label\n\x00\x01\x02\x03binary",
            {},
            "data.source: FILE is not a text file (it holds binary data); give a CSV, TSV, JSON lines or text file",
        ),
        (
            "a.parquet",
            b"not parquet at all",
            {},
            "data.source: FILE is not a readable Parquet file (cut off, or another format)",
        ),
        (
            "a.xlsx",
            "x",
            {},
            "data.source: FILE has the unsupported file type '.xlsx'; use one of .csv, .tsv, "
            ".json, .jsonl, .parquet, .txt",
        ),
        (
            "a.csv",
            "text,label\n" + GOOD,
            {"encoding": "klingon"},
            "data.encoding: 'klingon' is not an encoding Python knows; e.g. utf-8, latin-1",
        ),
    ],
)
def test_a_file_that_cannot_be_read_is_named_with_its_cause(tmp_path, name, content, data, expected):
    assert data_error(tmp_path, name, content, **data) == expected


def test_a_latin1_file_reads_with_its_encoding(tmp_path):
    from hfadapt.data.splits import load_splits
    from hfadapt.recipe import DataConfig, TaskConfig

    path = tmp_path / "a.csv"
    path.write_bytes(("text,label\ncafé au lait,positive\n" + GOOD).encode("latin-1"))
    splits = load_splits(DataConfig(source=str(path), encoding="latin-1"), TaskConfig()).splits
    assert "café au lait" in [t for s in splits.values() for t in s["text"]]


@pytest.mark.parametrize(
    "name, content, expected",
    [
        (
            "a.csv",
            "text,label\ngood film,pos\nbad film,\n" + GOOD + "nice,\n",
            "data: 2 of 43 rows of FILE cannot be used:\n  no label: 2 rows (line 3, line 44 of FILE)\n"
            "fix them, or set data.drop_invalid=true to leave such rows out (their count goes into metrics.json)",
        ),
        (
            "a.csv",
            'text,label\n"",pos\n' + GOOD,
            "data: 1 of 41 rows of FILE cannot be used:\n  empty text: 1 row (line 2 of FILE)\n"
            "fix them, or set data.drop_invalid=true to leave such rows out (their count goes into metrics.json)",
        ),
        (
            "a.jsonl",
            '{"text": "good", "label": NaN}\n{"text": null, "label": "pos"}\n{"text": "odd", "label": {"a": 1}}\n'
            + "".join(json.dumps(r) + "\n" for r in sentiment_rows(40)),
            "data: 3 of 43 rows of FILE cannot be used:\n  no label: 1 row (line 1 of FILE)\n"
            "  empty text: 1 row (line 2 of FILE)\n  label of the wrong type: 1 row (line 3 of FILE)\n"
            "fix them, or set data.drop_invalid=true to leave such rows out (their count goes into metrics.json)",
        ),
    ],
)
def test_unusable_rows_are_refused_with_their_lines(tmp_path, name, content, expected):
    assert data_error(tmp_path, name, content) == expected


def test_drop_invalid_leaves_the_rows_out_and_counts_them(tmp_path):
    from hfadapt.data.splits import load_splits
    from hfadapt.recipe import DataConfig, TaskConfig

    path = tmp_path / "a.csv"
    path.write_text("text,label\ngood film,pos\nbad film,\n,neg\n" + GOOD)
    data = load_splits(DataConfig(source=str(path), drop_invalid=True), TaskConfig())
    assert data.report["invalid_rows_dropped"] == {"train": {"no label": 1, "empty text": 1}}
    assert data.report["rows_read"] == {"train": 43}
    assert sum(data.report["sizes"].values()) == 41


@pytest.mark.parametrize(
    "rows, task, expected",
    [
        (
            [{"text": f"review {i}", "label": "pos"} for i in range(30)],
            {},
            "data.label_column: every training example of FILE has the label 'pos'; a classifier needs examples "
            "of two classes or more (check data.label_column)",
        ),
        (
            [{"text": f"review {i}", "label": [1, "1"][i % 2]} for i in range(30)],
            {},
            "data.label_column: the labels of FILE mix numbers and text (1 and '1' read the same); write every "
            "label the same way",
        ),
        (
            [{"text": f"review {i}", "label": ["a", None]} for i in range(30)],
            {"problem_type": "multi_label_classification"},
            "data: 30 of 30 rows of FILE cannot be used:\n  no label: 30 rows (line 1, line 2, line 3, line 4, "
            "line 5 and 25 more of FILE)\nfix them, or set data.drop_invalid=true to leave such rows out (their "
            "count goes into metrics.json)",
        ),
        (
            [{"text": "same text", "label": ["pos", "neg"][i % 2]} for i in range(6)],
            {},
            "data.source: FILE has no training examples left: 6 read, 0 duplicates and 1 text with conflicting "
            "labels removed; give a data set with examples",
        ),
    ],
)
def test_labels_that_cannot_train_a_classifier(tmp_path, rows, task, expected):
    from hfadapt.data.splits import load_splits
    from hfadapt.recipe import DataConfig, TaskConfig

    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(HfadaptError) as info:
        load_splits(DataConfig(source=str(path)), TaskConfig(**task))
    assert str(info.value).replace(str(path), "FILE") == expected


def test_a_folder_without_data_files_is_not_read_as_images(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.md").write_text("# notes")
    (tmp_path / "d" / "plot.png").write_bytes(b"\x89PNG")
    from hfadapt.data.splits import load_splits
    from hfadapt.recipe import DataConfig, TaskConfig

    with pytest.raises(HfadaptError) as info:
        load_splits(DataConfig(source=str(tmp_path / "d")), TaskConfig())
    assert str(info.value) == (
        f"data.source: {tmp_path / 'd'} holds no data files (.csv, .tsv, .json, .jsonl, .parquet, .txt); found: "
        "notes.md, plot.png; give a folder of data files named by split (train.csv, test.csv), or a file"
    )


# --- the model: checked before training ------------------------------------------------------------------


@pytest.fixture
def broken_checkpoint(tiny_checkpoint, tmp_path):
    def make(remove=(), cut=None) -> Path:
        folder = tmp_path / "ckpt"
        shutil.copytree(tiny_checkpoint, folder)
        for name in remove:
            (folder / name).unlink()
        if cut:
            data = (folder / cut).read_bytes()
            (folder / cut).write_bytes(data[: len(data) // 2])
        return folder

    return make


@pytest.mark.parametrize(
    "remove, cut, override, expected",
    [
        (
            ["tokenizer.json", "tokenizer_config.json"],
            None,
            [],
            "model.name_or_path: CKPT has no tokenizer files (tokenizer.json, vocab.txt, vocab.json, ...); save the "
            "tokenizer beside the model (tokenizer.save_pretrained(FOLDER))",
        ),
        (
            ["model.safetensors"],
            None,
            [],
            "model.name_or_path: CKPT has no weights (model.safetensors or pytorch_model.bin); give a folder saved "
            "with save_pretrained, with its weights",
        ),
        (
            [],
            None,
            ["data.max_length=100000"],
            "data.max_length: 100000 is more than the model's 128 positions; use at most 128",
        ),
    ],
)
def test_a_broken_checkpoint_is_refused_before_training(
    broken_checkpoint, tiny_recipe, tmp_path, remove, cut, override, expected
):
    folder = broken_checkpoint(remove, cut)
    with pytest.raises(HfadaptError) as info:
        finetune(load_recipe(raw=tiny_recipe(model={"name_or_path": str(folder)}), overrides=override))
    assert str(info.value).replace(str(folder), "CKPT") == expected
    assert not any(p.name.startswith("run") for p in tmp_path.iterdir()), "nothing is written"


def test_a_truncated_weights_file_is_named(broken_checkpoint, tiny_recipe, tmp_path):
    folder = broken_checkpoint(cut="model.safetensors")
    with pytest.raises(HfadaptError) as info:
        finetune(load_recipe(raw=tiny_recipe(model={"name_or_path": str(folder)})))
    assert str(info.value).startswith(f"model.name_or_path: {folder / 'model.safetensors'} cannot be read (")
    assert str(info.value).endswith("the file is cut off or corrupt: save or copy the checkpoint again")


# --- the output folder -------------------------------------------------------------------------------------


def test_an_output_dir_under_a_file_is_refused(tiny_recipe, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(HfadaptError) as info:
        finetune(load_recipe(raw=tiny_recipe(output={"dir": str(tmp_path / "afile" / "run")})))
    assert str(info.value) == (
        f"output.dir: {tmp_path / 'afile'} is a file, not a folder; choose an output.dir inside a folder"
    )


def test_a_second_run_into_a_running_runs_folder_is_refused(tiny_recipe, tmp_path):
    from hfadapt.runs import output

    raw = tiny_recipe(output={"overwrite": True})
    with output.lock(raw["output"]["dir"]):  # a run in progress
        with pytest.raises(HfadaptError) as info:
            finetune(load_recipe(raw=raw))
    assert str(info.value) == (
        f"output.dir: another hfadapt run (process {os.getpid()}) is writing {tmp_path / 'run'}; wait for it to "
        "finish, or choose another output.dir"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "the lock files go with the lock"


@pytest.mark.integration
def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(tiny_recipe, tmp_path, monkeypatch):
    import transformers

    def fail(self, *args, **kwargs):
        raise RuntimeError("the optimizer refused")

    monkeypatch.setattr(transformers.Trainer, "train", fail)
    raw = tiny_recipe()
    with pytest.raises(RuntimeError):
        finetune(load_recipe(raw=raw))
    assert list(tmp_path.iterdir()) == [], "no .incomplete folder that the next run would take for a stopped run"


# --- predict ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, args, expected",
    [
        ("t.txt", "", [], "--file: FILE is empty; give a file with examples"),
        ("t.txt", "\n\n  \n", [], "--file: FILE is empty; give a file with examples"),
        (
            "t.jsonl",
            '{"text": "fine"}\n{"text": "broken\n',
            [],
            "--file: FILE line 2 is not valid JSON (Unterminated string starting at, column 10); each line of a "
            "JSON lines file holds one object",
        ),
        (
            "t.csv",
            b"\x00\x01\x02binary",
            [],
            "--file: FILE is not a text file (it holds binary data); give a CSV, TSV, JSON lines or text file",
        ),
        ("t.csv", "review\nfine\n", [], "--column: FILE has no column 'text'; its columns are review"),
        ("t.csv", "text\n", [], "--file: FILE has a header line but no rows; give a file with examples"),
        ("t.json", "[]", [], "--file: FILE has no rows; give a file with examples"),
        (
            "t.json",
            '{\n "text": ["fine"]\n}\n',
            [],
            '--file: FILE is one JSON value but not an array of objects; give [{"text": ...}, ...] or JSON lines, '
            "one object a line",
        ),
        ("t.csv", 'text\nfine\n""\n', [], "--file: FILE has 1 empty text (line 3); remove it"),
        ("t.txt", "fine\n", ["--batch-size", "0"], "--batch-size: must be 1 or more, got 0"),
        (
            "t.txt",
            "café\n".encode("latin-1"),
            [],
            "--file: FILE is not valid utf-8: byte 0xe9 at line 1, column 4; give it with --encoding (e.g. --encoding "
            "latin-1), or save it as UTF-8",
        ),
        (
            "t.txt",
            "fine\n",
            ["--output", "missing/out.jsonl"],
            "--output missing/out.jsonl: the folder missing does not exist; create it",
        ),
    ],
)
def test_predict_input_is_held_to_the_same_standard(tmp_path, capsys, monkeypatch, name, content, args, expected):
    path = tmp_path / name
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(tmp_path / "no-run"), "--file", str(path), *args]) == 2
    assert capsys.readouterr().err == f"hfadapt: error: {expected.replace('FILE', str(path))}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name], "nothing is written"


def test_predict_reads_a_pretty_printed_json_array(tmp_path):
    from hfadapt.runs.inference import read_texts

    path = tmp_path / "texts.json"
    path.write_text('[\n  {"text": "good", "id": 1},\n  {"text": "bad", "id": 2}\n]\n')
    assert read_texts(path) == ["good", "bad"]
    (tmp_path / "lines.jsonl").write_text('{"review": "good"}\n\n{"review": "bad"}\n')
    assert read_texts(tmp_path / "lines.jsonl", column="review") == ["good", "bad"]


@pytest.mark.integration
def test_predict_on_a_run_whose_weights_were_cut_off(tiny_recipe, tmp_path, capsys):
    raw = tiny_recipe(training={"max_steps": 2})
    finetune(load_recipe(raw=raw))
    run = Path(raw["output"]["dir"])
    weights = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(weights[:1000])
    assert main(["predict", str(run), "a fine film"]) == 2
    err = capsys.readouterr().err
    assert f"hfadapt: error: run: {run / 'model.safetensors'} cannot be read (" in err


# --- retraining stages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "corpus, expected",
    [
        (
            "missing.txt",
            "corpus.sources: DIR/missing.txt does not exist; give an existing file or folder, "
            "a Hub data set id, or builtin:NAME",
        ),
        ("empty.txt", "corpus.sources: DIR/empty.txt is empty; give a file with examples"),
    ],
)
def test_a_bad_corpus_leaves_no_output_folder(tiny_checkpoint, sentiment_csv, tmp_path, capsys, corpus, expected):
    (tmp_path / "empty.txt").write_text("")
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "data": {"source": str(sentiment_csv)},
        "corpus": {"sources": [str(tmp_path / corpus)]},
        "tokenizer": {"vocab_size": 200},
        "pretrain": {},
        "output": {"dir": str(tmp_path / "out" / "run")},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    assert main(["tokenizer", str(tmp_path / "r.yaml")]) == 2
    assert capsys.readouterr().err == f"hfadapt: error: {expected.replace('DIR', str(tmp_path))}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("tensorboard") is not None, reason="tensorboard is installed here"
)
def test_a_tracker_that_is_not_installed_is_refused_before_any_weight():
    assert problems(BASE, ["training.report_to=tensorboard"]) == [
        "training.report_to: tensorboard is not installed; pip install tensorboard, or set report_to: none"
    ]
    assert problems(BASE, ["training.report_to=[none, tensorbord]"])[0].startswith(
        "training.report_to: 'tensorbord' is not a tracker; use none, all, or one of tensorboard, trackio, wandb"
    )
