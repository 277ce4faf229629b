"""ONNX export: the exported graph gives the run's logits under ONNX Runtime, for every kind of run."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from conftest import ner_rows, sentiment_rows, write_csv

from hfadapt import export_onnx, finetune, load_run
from hfadapt.errors import HfadaptError

onnxruntime = pytest.importorskip("onnxruntime")


def _onnx_logits(folder, inputs: dict) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return session.run(["logits"], {k: v.numpy() for k, v in inputs.items() if k in names})[0]


@pytest.mark.integration
@pytest.mark.parametrize("adapt", [{"method": "full"}, {"method": "lora", "merge_lora": False}])
def test_an_exported_run_gives_its_logits_under_onnx_runtime(tiny_recipe, tmp_path, adapt):
    finished = finetune(tiny_recipe(adapt=adapt, training={"num_train_epochs": 1}))
    run = tmp_path / "run"
    info = finished.export_onnx()
    folder = run / "onnx"
    assert json.loads((folder / "export.json").read_text()) == info
    assert all(c["max_abs_difference"] <= 1e-4 for c in info["check"]) and len(info["check"]) == 3
    model, tokenizer = finished.model, finished.tokenizer
    texts = ["the film was good", "a dull and boring story with the cast and the plot", "great"]
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits.numpy()
    got = _onnx_logits(folder, inputs)
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (folder / "tokenizer.json").exists() and (folder / "config.json").exists()
    # an export is not replaced unless asked
    with pytest.raises(HfadaptError, match="already holds"):
        export_onnx(run)
    export_onnx(run, overwrite=True)


def ner_run(tiny_checkpoint, tmp_path):
    """A token-classification run on the tiny model, one epoch, in TMP/ner."""
    (tmp_path / "ner.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ner_rows(60)))
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "task": {"type": "token_classification"},
        "data": {"source": str(tmp_path / "ner.jsonl"), "text_column": "tokens", "label_column": "tags"},
        "training": {"num_train_epochs": 1},
        "output": {"dir": str(tmp_path / "ner")},
    }
    return finetune(raw)


@pytest.mark.integration
def test_a_token_classification_run_exports_per_token_logits(tiny_checkpoint, tmp_path):
    ner_run(tiny_checkpoint, tmp_path)
    export_onnx(tmp_path / "ner", tmp_path / "ner.onnx")
    ner = load_run(tmp_path / "ner")
    model, tokenizer = ner.model, ner.tokenizer
    inputs = tokenizer(["we went to paris today", "london"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits.numpy()
    np.testing.assert_allclose(_onnx_logits(tmp_path / "ner.onnx", inputs), expected, atol=1e-4)


@pytest.mark.integration
def test_an_export_that_fails_its_check_writes_nothing(tiny_recipe, tmp_path, monkeypatch):
    from hfadapt.runs import export

    finetune(tiny_recipe(training={"num_train_epochs": 1}))
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # no difference can pass
    with pytest.raises(HfadaptError, match="ONNX Runtime's logits differ from PyTorch's"):
        export_onnx(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if "onnx" in p.name) == []


@pytest.mark.integration
def test_an_int8_export_scores_the_runs_test_split_as_the_run_did(tiny_recipe, tmp_path, capsys):
    from hfadapt.cli import main

    finished = finetune(tiny_recipe())  # two epochs: the task is learnt
    capsys.readouterr()  # the run's own printing
    assert main(["export", str(tmp_path / "run"), "--output", str(tmp_path / "onnx"), "--quantize", "int8"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "onnx" / "export.json").read_text()) == info
    int8 = info["int8"]
    assert {k: int8[k] for k in ("file", "metric", "tolerance")} == {
        "file": "model.int8.onnx",
        "metric": "test_accuracy",
        "tolerance": 0.01,
    }
    # the fp32 graph reproduces the run's own test score, on every test example
    assert int8["fp32"] == pytest.approx(finished.metrics["test"]["test_accuracy"], abs=1e-9)
    assert int8["examples"] == finished.metrics["data"]["sizes"]["test"]
    assert int8["int8"] >= int8["fp32"] - 0.01
    assert set(int8["seconds"]) == {"fp32", "int8"} and all(s > 0 for s in int8["seconds"].values())
    # its weights are int8, and its logits stay near the fp32 graph's
    import onnx

    stored = {t.data_type for t in onnx.load(str(tmp_path / "onnx" / "model.int8.onnx")).graph.initializer}
    assert onnx.TensorProto.INT8 in stored
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.int8.onnx"))
    inputs = finished.tokenizer(["the film was good", "a dull and boring story"], padding=True, return_tensors="np")
    got = session.run(["logits"], {i.name: inputs[i.name] for i in session.get_inputs()})[0]
    np.testing.assert_allclose(got, _onnx_logits(tmp_path / "onnx", dict(inputs.convert_to_tensors("pt"))), atol=0.1)


@pytest.mark.integration
def test_an_int8_export_that_scores_too_low_writes_nothing(tiny_recipe, tmp_path):
    finetune(tiny_recipe(training={"max_steps": 4}))
    with pytest.raises(HfadaptError) as refused:
        export_onnx(tmp_path / "run", tmp_path / "onnx", quantize="int8", int8_tolerance=-1.0)  # nothing can pass
    message = str(refused.value)
    scores = re.fullmatch(
        r"export: --quantize int8: the int8 model scores test accuracy (\d\.\d{4}) against the fp32 model's "
        r"(\d\.\d{4}), -?\d\.\d{4} worse \(at most -1\.0 allowed\); nothing is written: export without --quantize "
        r"and use the fp32 model\.onnx",
        message,
    )
    assert scores, message
    assert sorted(p.name for p in tmp_path.iterdir() if "onnx" in p.name) == []


def kinds_of_run(tmp_path, kind: str) -> dict:
    """The sections that make the tiny sentiment run of `kind`: its data file and task."""
    rows = sentiment_rows(300)
    if kind == "regression":  # a score: 1 for positive reviews, 0 for negative ones
        path = write_csv(tmp_path / "scores.csv", [{**r, "label": float(r["label"] == "positive")} for r in rows])
        return {"data": {"source": str(path)}, "task": {"problem_type": "regression"}}
    if kind == "multi_label":  # positive or negative, and "great" for the reviews that say it
        path = tmp_path / "tags.jsonl"
        lines = [{"text": r["text"], "label": [r["label"]] + ["great"] * ("great" in r["text"].split())} for r in rows]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return {"data": {"source": str(path)}, "task": {"problem_type": "multi_label_classification"}}
    return {"data": {"max_length": 8, "long_texts": "windows"}}  # every text makes two windows or more


@pytest.mark.integration
@pytest.mark.parametrize(
    "kind, metric", [("regression", "test_pearson"), ("multi_label", "test_accuracy"), ("windows", "test_accuracy")]
)
def test_int8_checks_each_kind_of_sequence_run_on_its_own_metric(tiny_recipe, tmp_path, kind, metric):
    sections = kinds_of_run(tmp_path, kind)
    # in fp32, as the graph the export scores: bf16 rounds the untrained regression outputs together
    run = finetune(tiny_recipe(training={"max_steps": 10, "bf16": False}, **sections))
    int8 = export_onnx(run, tmp_path / "onnx", quantize="int8", int8_tolerance=1.0)["int8"]
    assert int8["metric"] == metric
    # the run's own test score, up to the ONNX graph's logits (within 1e-4 of PyTorch's) moving a Pearson r
    assert int8["fp32"] == pytest.approx(run.metrics["test"][metric], abs=1e-4)
    assert int8["examples"] == run.metrics["data"]["sizes"]["test"]  # texts, not windows


@pytest.mark.integration
def test_a_token_classification_run_exports_to_int8(tiny_checkpoint, tmp_path):
    ner = ner_run(tiny_checkpoint, tmp_path)
    int8 = export_onnx(tmp_path / "ner", tmp_path / "ner.onnx", quantize="int8", int8_tolerance=1.0)["int8"]
    assert int8["metric"] == "test_f1"
    assert int8["fp32"] == pytest.approx(ner.metrics["test"]["test_f1"], abs=1e-9)
    assert (tmp_path / "ner.onnx" / "model.int8.onnx").exists()


@pytest.mark.integration
def test_int8_is_refused_for_data_given_in_memory_before_anything_is_written(tiny_recipe, tmp_path):
    run = finetune(tiny_recipe(training={"max_steps": 2}), data=sentiment_rows(200))
    source = run.recipe.data.source
    with pytest.raises(HfadaptError) as refused:
        run.export_onnx(quantize="int8")
    assert str(refused.value) == (
        f"export: --quantize int8: the run's data were given in memory ({source}), so its test split, on which "
        "the int8 model is checked, cannot be read again; export it without --quantize"
    )
    with pytest.raises(HfadaptError, match=r"^export: --quantize 'int4': choose int8$"):
        run.export_onnx(quantize="int4")
    assert not (tmp_path / "run" / "onnx").exists()
