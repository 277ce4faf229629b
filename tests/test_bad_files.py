"""Real files, read as they come: duplicate recipe keys, long fields, byte-order marks and UTF-16, headerless and
semicolon-separated tables, classes named like missing values; and the messages that left a user stuck.

Each case asserts the exact message (exit 2, nothing written) or, for good input, that the data reads as meant.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import sentiment_rows

from hfadapt import evaluate, finetune, load_recipe
from hfadapt.cli import main
from hfadapt.data.splits import load_splits
from hfadapt.errors import HfadaptError
from hfadapt.recipe import DataConfig, TaskConfig

ROWS = sentiment_rows(60)
BODY = "".join(f"{r['text']},{r['label']}\n" for r in ROWS)


def loaded(path: Path, task: dict | None = None, **data):
    return load_splits(DataConfig(source=str(path), **data), TaskConfig(**(task or {})))


def refused(path: Path, task: dict | None = None, **data) -> str:
    with pytest.raises(HfadaptError) as info:
        loaded(path, task, **data)
    return str(info.value).replace(str(path), "FILE")


def texts(data) -> list[str]:
    return [t for split in data.splits.values() for t in split["text"]]


# --- recipes: a key given twice, a folder for a file ------------------------------------------------------


RECIPE = "model:\n  name_or_path: m\ndata:\n  source: d.csv\noutput:\n  dir: out\n"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            RECIPE + "training:\n  learning_rate: 1.0e-3\ntraining:\n  num_train_epochs: 2\n",
            ["training: given twice, on lines 7 and 9 (YAML would keep only the second); merge the two into one"],
        ),
        (
            RECIPE + "training:\n  learning_rate: 1.0e-3\n  warmup_steps: 5\n  learning_rate: 3.0e-5\n",
            ["training.learning_rate: given twice, on lines 8 and 10 (YAML would keep only the second); keep one"],
        ),
        (
            RECIPE.replace("  source: d.csv\n", "  source: d.csv\n  source: e.csv\n")
            + "adapt: {method: lora, method: full}\n",
            [
                "data.source: given twice, on lines 4 and 5 (YAML would keep only the second); keep one",
                "adapt.method: given twice, on line 8 (YAML would keep only the second); keep one",
            ],
        ),
    ],
    ids=["section", "key-in-section", "every-one-at-once"],
)
def test_a_key_given_twice_is_refused_with_both_lines(tmp_path, capsys, text, expected):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    lines = "".join(f"  {p}\n" for p in expected)
    problems = f"{len(expected)} problem{'s' * (len(expected) > 1)}"
    assert capsys.readouterr().err == f"hfadapt: error: {path}: {problems}\n{lines}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]


def test_a_merge_key_may_be_overridden(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE + "training:\n  <<: {learning_rate: 1.0e-3, num_train_epochs: 2}\n  num_train_epochs: 3\n")
    training = load_recipe(path).training
    assert (training["learning_rate"], training["num_train_epochs"]) == (1.0e-3, 3)


def test_a_folder_given_as_the_recipe_is_named(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["validate", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (
        f"hfadapt: error: {tmp_path / 'run'} is a folder, not a recipe file; give the YAML file "
        f"(e.g. {tmp_path / 'run' / 'recipe.yaml'})\n"
    )
    (tmp_path / "run" / "sst2.yaml").write_text(RECIPE)
    assert main(["validate", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.endswith(f"(e.g. {tmp_path / 'run' / 'sst2.yaml'})\n")


# --- large fields, encodings and byte-order marks ---------------------------------------------------------


@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t")])
def test_a_field_of_megabytes_reads(tmp_path, suffix, delimiter):
    long = "word " * 520_000  # 2.6 MB: Python's csv module stops at 128 KiB by default
    path = tmp_path / f"a{suffix}"
    path.write_text(f"text{delimiter}label\n{long}{delimiter}positive\n" + BODY.replace(",", delimiter))
    assert long in texts(loaded(path))


ENCODED = {
    "utf-16": ("text,label\n" + BODY).encode("utf-16"),  # with its byte-order mark
    "utf-16-le-bom": b"\xff\xfe" + ("text,label\n" + BODY).encode("utf-16-le"),
    "utf-16-be-bom": b"\xfe\xff" + ("text,label\n" + BODY).encode("utf-16-be"),
    "utf-8-bom": ("text,label\n" + BODY).encode("utf-8-sig"),
    "utf-32": ("text,label\n" + BODY).encode("utf-32"),
}


@pytest.mark.parametrize("name", ENCODED)
@pytest.mark.parametrize("encoding", [None, "given"])
def test_a_byte_order_mark_is_honoured(tmp_path, name, encoding):
    path = tmp_path / "a.csv"
    path.write_bytes(ENCODED[name])
    data = loaded(path) if encoding is None else loaded(path, encoding=name.removesuffix("-bom"))
    assert texts(data) and data.label_names == ["negative", "positive"]  # the mark is not in the column's name


def test_utf16_json_lines_and_text_read(tmp_path):
    rows = [{"text": f"{r['text']} é", "label": r["label"]} for r in ROWS]
    path = tmp_path / "a.jsonl"
    path.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-16-be"))
    assert sorted(texts(loaded(path, encoding="utf-16-be"))) == sorted(r["text"] for r in rows)


@pytest.mark.parametrize(
    "content, data, expected",
    [
        (
            ("text,label\n" + BODY).encode("utf-16-le"),
            {},
            "data.source: FILE looks like UTF-16 text without a byte-order mark (every other byte is 0); give its "
            "encoding as data.encoding=utf-16-le",
        ),
        (
            ("text,label\n" + BODY).encode("utf-16"),
            {"encoding": "latin-1"},
            "data.source: FILE starts with a UTF-16 byte-order mark, but its encoding is given as latin-1; give "
            "data.encoding=utf-16",
        ),
    ],
    ids=["utf-16-without-mark", "mark-against-encoding"],
)
def test_utf16_that_cannot_be_read_as_given_is_named(tmp_path, content, data, expected):
    path = tmp_path / "a.csv"
    path.write_bytes(content)
    assert refused(path, **data) == expected


def test_utf16_without_a_mark_reads_with_its_encoding(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(("text,label\n" + BODY).encode("utf-16-le"))
    assert loaded(path, encoding="utf-16-le").label_names == ["negative", "positive"]


def test_predict_reads_a_file_with_a_byte_order_mark(tmp_path):
    from hfadapt.runs.inference import read_texts

    path = tmp_path / "a.csv"
    path.write_bytes("text\nfine film\ndull film\n".encode("utf-8-sig"))
    assert read_texts(path) == ["fine film", "dull film"]
    path.write_bytes("text;id\nfine film;1\ndull film;2\n".encode("utf-16"))
    assert read_texts(path) == ["fine film", "dull film"]


# --- headerless files and delimiters -------------------------------------------------------------------------

SMS = "".join(f"{'ham' if r['label'] == 'positive' else 'spam'}\t{r['text']}\n" for r in ROWS)


def test_a_headerless_tsv_is_named_with_the_fix(tmp_path):
    path = tmp_path / "sms.tsv"
    path.write_text(SMS)
    first = ROWS[0]["text"]
    assert refused(path) == (
        f"data.text_column: the train split of FILE has no column 'text'; its columns are spam, {first}; if its "
        "first line is an example, not a header, set data.header=false and name the columns in order, e.g. "
        "data.columns=[label,text]"
    )


def test_a_headerless_tsv_reads_with_its_column_names(tmp_path):
    path = tmp_path / "sms.tsv"
    path.write_text(SMS)
    data = loaded(path, header=False, columns=["label", "text"])
    assert data.label_names == ["ham", "spam"]
    assert data.report["rows_read"] == {"train": 60}  # the first line is an example too
    assert ROWS[0]["text"] in texts(data)


def test_a_headerless_file_names_its_lines_from_the_first(tmp_path):
    path = tmp_path / "sms.tsv"
    path.write_text("ham\tfine\textra\n" + SMS)
    assert refused(path, header=False, columns=["label", "text"]) == (
        "data.source: FILE: data.columns names 2 columns, but line 1 has 3 fields, split at a tab; name each "
        "column in data.columns, or quote the fields that contain a tab, or give the file's delimiter as "
        "data.delimiter"
    )


@pytest.mark.parametrize("delimiter", [";", "|", "\t"])
def test_the_delimiter_of_a_csv_file_is_found(tmp_path, delimiter):
    path = tmp_path / "a.csv"  # texts with commas: a comma splits them unevenly
    path.write_text(f"text{delimiter}label\n" + "".join(f"{r['text']}, really{delimiter}{r['label']}\n" for r in ROWS))
    data = loaded(path)
    assert data.label_names == ["negative", "positive"]
    assert f"{ROWS[0]['text']}, really" in texts(data)


def test_a_delimiter_given_is_used(tmp_path):
    path = tmp_path / "a.txt.csv"
    path.write_text("text;label\n" + BODY.replace(",", ";"))
    assert loaded(path, delimiter=";").label_names == ["negative", "positive"]
    assert load_recipe(raw={**BASE, "data": {"source": "d.csv", "delimiter": "\\t"}}).data.field_delimiter() == "\t"
    assert load_recipe(raw=BASE, overrides=["data.delimiter=|"]).data.field_delimiter() == "|"  # not a YAML block


def test_a_ragged_row_names_the_delimiter(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text;label\nfine;pos\nbad; awful;neg\n" + BODY.replace(",", ";"))
    assert refused(path, delimiter=";") == (
        "data.source: FILE: the header has 2 fields, but line 3 has 3, split at a semicolon; quote the fields "
        "that contain a semicolon, or give the file's delimiter as data.delimiter"
    )


BASE = {"model": {"name_or_path": "m"}, "data": {"source": "d.csv"}, "output": {"dir": "out"}}


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            {"header": False},
            "data.header: false needs data.columns, the names of the file's columns in order, "
            "e.g. data.columns=[label,text]",
        ),
        (
            {"columns": ["label", "text"]},
            "data.columns: names the columns of a file without a header line; set data.header=false too (a header "
            "line names the columns itself)",
        ),
        (
            {"header": False, "columns": ["text", "text"]},
            "data.columns: 'text' named twice; give each column its own name",
        ),
        (
            {"delimiter": "ab"},
            "data.delimiter: must be one character that is not a letter, digit, quote or line break, e.g. ';' or "
            "'|' (a tab: \\t), got 'ab'",
        ),
    ],
)
def test_layout_settings_that_cannot_read_a_file(data, expected):
    with pytest.raises(HfadaptError) as info:
        load_recipe(raw={**BASE, "data": {**BASE["data"], **data}})
    assert info.value.problems == [expected]


def test_a_table_setting_on_a_json_file_is_refused(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert (
        refused(path, delimiter=";")
        == "data.source: data.delimiter applies to CSV and TSV files; FILE is a .jsonl file"
    )


# --- classes named like missing values ------------------------------------------------------------------------

INTENTS = "text,label\n" + "".join(f"{r['text']},{'None' if r['label'] == 'positive' else 'NA'}\n" for r in ROWS)


def test_a_label_spelt_like_a_missing_value_is_refused_until_chosen(tmp_path):
    path = tmp_path / "intents.csv"
    path.write_text(INTENTS)
    assert refused(path) == (
        "data.missing_values: the labels of FILE include 'NA', 'None', which files written by R or pandas use for "
        "a missing value; set data.missing_values=[] to train them as classes, or data.missing_values=[NA, None] "
        "to read them as missing labels"
    )


def test_a_class_named_none_trains_with_the_setting(tmp_path):
    path = tmp_path / "intents.csv"
    path.write_text(INTENTS)
    data = loaded(path, missing_values=[])
    assert data.label_names == ["NA", "None"]
    assert sum(data.report["sizes"].values()) == 60


def test_missing_value_markers_are_missing(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text,label\nfine film,N/A\nnull,positive\n" + BODY)
    assert refused(path, missing_values=["N/A", "null"]) == (
        "data: 2 of 62 rows of FILE cannot be used:\n  no label: 1 row (line 2 of FILE)\n"
        "  empty text: 1 row (line 3 of FILE)\n"
        "fix them, or set data.drop_invalid=true to leave such rows out (their count goes into metrics.json)"
    )


def test_a_json_string_none_is_a_class_as_before(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(
        "".join(json.dumps({"text": r["text"], "label": str(i % 2 == 0 or None)}) + "\n" for i, r in enumerate(ROWS))
    )
    assert loaded(path).label_names == ["None", "True"]


def test_a_regression_target_that_is_not_a_number_is_no_label(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(
        "text,label\nfine film,nan\ngood film,inf\n" + "".join(f"{r['text']},{i / 10}\n" for i, r in enumerate(ROWS))
    )
    assert refused(path, {"problem_type": "regression"}) == (
        "data: 2 of 62 rows of FILE cannot be used:\n  no label: 1 row (line 2 of FILE)\n"
        "  label that is not a number (regression): 1 row (line 3 of FILE)\n"
        "fix them, or set data.drop_invalid=true to leave such rows out (their count goes into metrics.json)"
    )


# --- messages that left a user stuck ---------------------------------------------------------------------------


def test_a_relative_data_source_names_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HfadaptError) as info:
        load_splits(DataConfig(source="data/reviews.csv"), TaskConfig())
    assert str(info.value) == (
        f"data.source: data/reviews.csv does not exist (a relative path is read from the working folder, "
        f"{tmp_path}); give an existing file or folder, a Hub data set id, or builtin:NAME"
    )


def test_empty_seeds_are_refused(tmp_path, capsys, tiny_recipe):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe()))
    assert main(["finetune", str(path), "--seeds", ""]) == 2
    assert capsys.readouterr().err == (
        "hfadapt: error: --seeds: expected whole numbers separated by commas, e.g. --seeds 1,2,3; got ''\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]


@pytest.mark.parametrize("target", ["model.onnx", "model.onnx/onnx"])
def test_export_to_a_file_names_the_output_option(tmp_path, capsys, target):
    (tmp_path / "model.onnx").write_text("mine")
    assert main(["export", str(tmp_path / "run"), "--output", str(tmp_path / target)]) == 2
    what = "is a file" if target == "model.onnx" else f"is under {tmp_path / 'model.onnx'}, which is a file"
    assert capsys.readouterr().err == (
        f"hfadapt: error: export: --output {tmp_path / target} {what}; give a folder, where model.onnx and its "
        "tokenizer go\n"
    )
    assert (tmp_path / "model.onnx").read_text() == "mine"


def test_evaluate_takes_overrides_of_the_data_section_only(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "run"), "training.learning_rate=1"]) == 2
    assert capsys.readouterr().err == (
        "hfadapt: error: training.learning_rate=1: evaluate takes overrides of the data section only "
        "(data.KEY=VALUE), e.g. data.encoding=latin-1 or data.drop_invalid=true; the model and its task are "
        "the run's\n"
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_checkpoint, sentiment_csv):
    """A run trained on a UTF-16 file, read with data.encoding=utf-16 (the issue's case: a normal run)."""
    folder = tmp_path_factory.mktemp("evaluated")
    (folder / "reviews.csv").write_bytes(sentiment_csv.read_text(encoding="utf-8").encode("utf-16"))
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "data": {"source": str(folder / "reviews.csv"), "max_length": 32, "encoding": "utf-16"},
        "training": {"max_steps": 4, "per_device_train_batch_size": 8, "disable_tqdm": True, "eval_strategy": "no"},
        "output": {"dir": str(folder / "run")},
    }
    return finetune(raw).run_dir


@pytest.mark.integration
def test_evaluate_with_data_overrides(finished_run, tmp_path, capsys):
    path = tmp_path / "other.csv"
    path.write_bytes(("text,label\ncafé au lait,positive\n,negative\n" + BODY).encode("latin-1"))
    # another file is read as UTF-8 by default, not with the run's own data.encoding
    assert main(["evaluate", str(finished_run), str(path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"hfadapt: error: data.source: {path} is not valid utf-8: byte 0xe9 at line 2, column 4; give its "
        "encoding as data.encoding (e.g. data.encoding=latin-1), or save it as UTF-8"
    )
    assert main(["evaluate", str(finished_run), str(path), "data.encoding=latin-1", "data.drop_invalid=true"]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] >= 0
    scores = evaluate(finished_run, path, overrides=["data.encoding=latin-1", "data.drop_invalid=true"])
    assert "test_accuracy" in scores
    # no DATA: the overrides apply to the run's own source
    assert main(["evaluate", str(finished_run), "data.max_eval_samples=5"]) == 0
    assert "test_accuracy" in json.loads(capsys.readouterr().out)


@pytest.mark.integration
def test_evaluate_names_the_line_of_a_label_the_model_does_not_know(finished_run, tmp_path, capsys):
    path = tmp_path / "other.csv"
    path.write_text("text,label\nfine film,meh\n" + BODY)
    assert main(["evaluate", str(finished_run), str(path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (  # after the progress bars of loading
        f"hfadapt: error: data: line 2 of {path} has the label 'meh', which the model does not know; it knows "
        "negative, positive"
    )


@pytest.mark.integration
def test_a_resumed_runs_card_and_log_cover_the_whole_run(tiny_recipe, tmp_path, one_torch_thread):
    from transformers import TrainerCallback

    class FailAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 12:
                raise RuntimeError("crash")

    training = {"max_steps": 20, "save_strategy": "steps", "save_steps": 10, "eval_strategy": "no", "logging_steps": 5}
    raw = tiny_recipe(training=training)
    with pytest.raises(RuntimeError, match="crash"):
        finetune(raw, callbacks=[FailAt()])
    from hfadapt.runs.resume import totals

    first = totals(tmp_path / "run.incomplete" / "checkpoints" / "checkpoint-10")
    run = finetune(raw, ["output.resume=true"])
    metrics = run.metrics
    assert metrics["resumed_from"] == "checkpoint-10"
    assert metrics["train"]["train_runtime"] > first["compute_seconds"] > 0
    assert metrics["train"]["train_runtime"] == pytest.approx(metrics["compute_seconds"], abs=1.0)
    history = json.loads((run.run_dir / "log_history.json").read_text())
    summary = next(h for h in history if "train_loss" in h)  # Trainer's line at the end of training
    assert (summary["train_loss"], summary["train_runtime"]) == (
        metrics["train"]["train_loss"],
        metrics["train"]["train_runtime"],
    )
    card = (run.run_dir / "README.md").read_text()
    assert f"| compute | {metrics['compute_seconds']:.0f} s of training on" in card
