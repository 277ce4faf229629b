"""ONNX export: the exported graph gives the run's logits under ONNX Runtime, for every kind of run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ner_rows

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


@pytest.mark.integration
def test_a_token_classification_run_exports_per_token_logits(tiny_checkpoint, tmp_path):
    (tmp_path / "ner.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ner_rows(60)))
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "task": {"type": "token_classification"},
        "data": {"source": str(tmp_path / "ner.jsonl"), "text_column": "tokens", "label_column": "tags"},
        "training": {"num_train_epochs": 1},
        "output": {"dir": str(tmp_path / "ner")},
    }
    finetune(raw)
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
