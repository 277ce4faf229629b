"""The scripts in examples/, run on the tiny model: a plain Trainer script under a real 2-process
`accelerate launch`, a pandas pipeline, and labelling a corpus inside `datasets.map`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import CHINESE, sentiment_rows, write_csv

REPO = Path(__file__).parent.parent
EXAMPLES = REPO / "examples"
ACCELERATE = Path(sys.executable).parent / "accelerate"

pytestmark = pytest.mark.integration


def example(name: str):
    """An example script imported as a module (its `main` takes argv)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chinese_files(folder: Path) -> tuple[Path, Path]:
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(f"{t}{i}" for i, t in enumerate(CHINESE * 3)), encoding="utf-8")
    rows = [{"text": t + str(i), "label": "pos" if "好" in t else "neg"} for i, t in enumerate(CHINESE)]
    return corpus, write_csv(folder / "labelled.csv", rows)


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (apt-get install openmpi-bin), as setup.sh")
def test_the_trainer_script_runs_under_a_two_process_accelerate_launch(tiny_checkpoint, tmp_path):
    corpus, labelled = chinese_files(tmp_path)
    (tmp_path / "hostfile").write_text("localhost slots=2\n")
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    done = subprocess.run(
        [str(ACCELERATE), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1"]
        + ["--mpirun_hostfile", str(tmp_path / "hostfile"), str(EXAMPLES / "trainer_script.py")]
        + ["--model", str(tiny_checkpoint), "--corpus", str(corpus), "--data", str(labelled), "--output", str(out)]
        + ["--vocab-size", "200", "--block-size", "32", "--mlm-steps", "4", "--max-length", "32", "--epochs", "2"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((out / f"process-{i}.json").read_text()) for i in (0, 1)]
    assert [r["processes"] for r in ranks] == [2, 2], "two real processes"
    assert ranks[0]["trained_weight_sum"] == ranks[1]["trained_weight_sum"], "DDP kept the weights in step"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out / "pretrained")
    assert ranks[0]["vocabulary"]["vocab_size"] == len(tokenizer) and ranks[0]["vocabulary"]["copied"] > 0
    assert 0 < ranks[0]["parameters"]["trainable"] < ranks[0]["parameters"]["total"]  # LoRA: a small part trains
    assert (out / "finetuned" / "adapter_config.json").exists()


def test_the_pandas_pipeline_labels_a_column_and_the_run_reloads_in_transformers(tiny_checkpoint, tmp_path):
    csv = write_csv(tmp_path / "reviews.csv", sentiment_rows(300, seed=3))
    unseen = example("pandas_pipeline").main(
        ["--model", str(tiny_checkpoint), "--data", str(csv), "--output", str(tmp_path / "run")]
        + ["--max-length", "32", "--method", "full", "--epochs", "4", "--learning-rate", "5e-3", "--unseen", "30"]
    )
    assert list(unseen.columns) == ["text", "label", "score", "pipeline_label"] and len(unseen) == 30
    assert (unseen["label"] == unseen["pipeline_label"]).all(), "the saved model predicts as the run did"
    truth = pd.read_csv(csv).set_index("text")["label"]
    assert (unseen["label"] == truth.loc[unseen["text"]].to_numpy()).mean() >= 0.8
    saved = (tmp_path / "run" / "recipe.yaml").read_text()
    assert "source: in-memory:sha256:" in saved


def test_labelling_a_corpus_in_datasets_map_loads_the_model_once(tiny_checkpoint, tmp_path, monkeypatch):
    import hfadapt
    from hfadapt.runs import inference

    csv = write_csv(tmp_path / "reviews.csv", sentiment_rows(300, seed=3))
    example("pandas_pipeline").main(
        ["--model", str(tiny_checkpoint), "--data", str(csv), "--output", str(tmp_path / "run")]
        + ["--max-length", "32", "--method", "full", "--epochs", "4", "--learning-rate", "5e-3", "--unseen", "5"]
    )
    texts = [r["text"] for r in sentiment_rows(200, seed=11)]
    (tmp_path / "corpus.txt").write_text("\n".join(texts), encoding="utf-8")
    loads = []
    real = inference.load_model
    monkeypatch.setattr(inference, "load_model", lambda *a, **k: loads.append(1) or real(*a, **k))
    labelled = example("label_with_map").main(
        ["--run", str(tmp_path / "run"), "--texts", str(tmp_path / "corpus.txt"), "--output", str(tmp_path / "out")]
    )
    assert len(loads) == 1, "one load for 200 texts in 4 batches"
    assert labelled.column_names == ["text", "label", "score"] and len(labelled) == 200
    one_by_one = hfadapt.predict(tmp_path / "run", texts[:20], progress=False)
    assert labelled["label"][:20] == [p["label"] for p in one_by_one]
