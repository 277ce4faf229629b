"""`Run`: what `finetune` returns and `Run.load` opens; `predict` as users expect it (order, scores, devices, entities
as character offsets); the deprecated dict and tuple spellings."""

import json
import warnings
from pathlib import Path

import pytest

import hfadapt
from hfadapt import HfadaptError, Run, finetune, load_recipe, load_run, predict
from hfadapt.runs import inference, tagging


@pytest.fixture(scope="module")
def sentiment_run(tiny_checkpoint, sentiment_csv, tmp_path_factory) -> Run:
    """One tiny sentiment run, trained once for this module's tests (which only read it)."""
    folder = tmp_path_factory.mktemp("sentiment")
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "data": {"source": str(sentiment_csv), "max_length": 32},
        "training": {"num_train_epochs": 2, "learning_rate": 5.0e-3, "per_device_train_batch_size": 16},
        "output": {"dir": str(folder / "run")},
    }
    raw["training"]["disable_tqdm"] = True
    with pytest.MonkeyPatch.context() as patch:  # its prepared data in its own cache, as conftest gives each test
        patch.setenv("HFADAPT_CACHE", str(folder / "cache"))
        return finetune(load_recipe(raw=raw))


TEXTS = [
    "good",
    "the film was really quite dull and the plot was flat and the acting was weak and messy and stale " * 2,
    "awful dull film",
    "a lovely and charming story with a smart cast, really moving and fresh, with brilliant acting",
    "bad",
    "the movie was superb",
]


def test_finetune_returns_a_run_with_plain_metrics_that_reloads(sentiment_run):
    run = sentiment_run
    assert isinstance(run, Run) and run.run_dir.is_dir()
    saved = json.loads((run.run_dir / "metrics.json").read_text())
    assert run.metrics == saved and json.loads(json.dumps(run.metrics)) == saved  # plain data
    assert run.main_metric == run.metrics["main_metric"] == "accuracy"
    assert run.label_names == ["negative", "positive"]
    assert load_recipe(run.run_dir / "recipe.yaml") == run.recipe
    assert repr(run) == f"Run({str(run.run_dir)!r}, test_accuracy={run.metrics['test']['test_accuracy']:.4f})"
    again = Run.load(run.run_dir)
    assert load_run(run.run_dir).metrics == again.metrics == run.metrics and again.recipe == run.recipe
    assert again.evaluate()["test_accuracy"] == run.metrics["test"]["test_accuracy"]
    assert type(hfadapt.Run) is type and "Run" in hfadapt.__all__


def test_run_predict_reuses_its_model_and_agrees_with_the_folder_function(sentiment_run, monkeypatch):
    run = Run.load(sentiment_run.run_dir)
    first = run.predict(TEXTS, progress=False)
    model = run.model

    def no_reloading(*args):
        raise AssertionError("the run's model was loaded again")

    monkeypatch.setattr(inference, "load_model", no_reloading)
    assert run.predict(TEXTS, progress=False) == first and run.model is model
    monkeypatch.undo()
    from_folder = predict(run.run_dir, TEXTS, progress=False)
    assert [r["label"] for r in from_folder] == [r["label"] for r in first]
    assert [r["score"] for r in from_folder] == pytest.approx([r["score"] for r in first], abs=1e-5)


def test_predict_gives_every_score_on_request(sentiment_run):
    plain = sentiment_run.predict(TEXTS, progress=False)
    full = sentiment_run.predict(TEXTS, progress=False, all_scores=True)
    assert all("scores" not in r for r in plain)
    for one, row in zip(plain, full, strict=True):
        assert set(row["scores"]) == {"negative", "positive"}
        assert sum(row["scores"].values()) == pytest.approx(1.0)
        assert row["label"] == one["label"] == max(row["scores"], key=row["scores"].get)
        assert row["score"] == one["score"] == row["scores"][row["label"]]


def test_predict_batches_longest_first_and_returns_the_input_order(sentiment_run):
    run = Run.load(sentiment_run.run_dir)
    alone = [run.predict([text], progress=False)[0] for text in TEXTS]
    lengths = []
    hook = run.model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    batched = run.predict(TEXTS, batch_size=2, progress=False)
    hook.remove()
    assert [r["text"] for r in batched] == TEXTS
    assert [r["label"] for r in batched] == [r["label"] for r in alone]
    assert [r["score"] for r in batched] == pytest.approx([r["score"] for r in alone], abs=1e-5)
    assert len(lengths) == 3 and lengths == sorted(lengths, reverse=True) and lengths[0] > lengths[-1]


def test_predict_takes_a_device_and_refuses_one_that_is_not_here(sentiment_run):
    import torch

    assert inference.resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    [row] = sentiment_run.predict(["good"], device="cpu", progress=False)
    assert row["label"] in ("negative", "positive") and sentiment_run.model.device.type == "cpu"
    with pytest.raises(HfadaptError, match=r"device 'meta': use cpu, cuda, cuda:N or mps"):
        sentiment_run.predict(["good"], device="meta")
    with pytest.raises(HfadaptError, match=r"device 'gpu please': not a device; use cpu, cuda, cuda:N or mps"):
        predict(sentiment_run.run_dir, ["good"], device="gpu please")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    expected = (
        r"device 'cuda:99': this machine has no CUDA GPU; use device='cpu' \(or leave it unset\)"
        if count == 0
        else rf"device 'cuda:99': this machine has {count} CUDA GPU\(s\): cuda:0 to cuda:{count - 1}"
    )
    with pytest.raises(HfadaptError, match=expected):
        sentiment_run.predict(["good"], device="cuda:99")


@pytest.mark.integration
def test_the_folder_functions_take_a_run_too(sentiment_run, tmp_path):
    pytest.importorskip("onnxruntime")
    info = hfadapt.export_onnx(sentiment_run, tmp_path / "onnx")
    assert (tmp_path / "onnx" / "model.onnx").is_file() and info["check"]
    assert hfadapt.evaluate(sentiment_run)["test_accuracy"] == sentiment_run.metrics["test"]["test_accuracy"]


def test_a_folder_that_is_not_a_finished_run_is_refused_clearly(tmp_path):
    with pytest.raises(HfadaptError, match="does not exist; give the output folder of a finished hfadapt run"):
        Run.load(tmp_path / "missing")
    root = tmp_path / "retrained"
    (root / "finetuned").mkdir(parents=True)
    (root / "recipe.yaml").write_text(
        "model: {name_or_path: m}\ndata: {source: d.csv}\noutput: {dir: " + str(root) + "}\n"
    )
    with pytest.raises(HfadaptError, match="it is a retraining run: give its fine-tuned stage, .*retrained/finetuned"):
        Run.load(root)


def test_the_deprecated_dict_and_tuple_spellings_warn_and_still_work(tiny_recipe):
    recipe = load_recipe(raw=tiny_recipe())
    run = Run(Path("somewhere"), {"main_metric": "accuracy", "test": {"test_accuracy": 0.75}}, recipe)
    run._model, run._tokenizer = "the model", "the tokenizer"
    with pytest.warns(DeprecationWarning, match=r"run\['test'\] is deprecated .*; write run.metrics\['test'\]"):
        assert run["test"] == {"test_accuracy": 0.75}
    with pytest.warns(DeprecationWarning, match=r"write '\w+' in run.metrics"):
        assert "test" in run and "train" not in run
    with pytest.warns(DeprecationWarning, match=r"write run.metrics.get\('main_metric'\)"):
        assert run.get("main_metric") == "accuracy"
    with pytest.warns(DeprecationWarning, match=r"load_run\(run_dir\) is deprecated .*write run.recipe, run.model"):
        same_recipe, model, tokenizer = run
    assert (same_recipe, model, tokenizer) == (recipe, "the model", "the tokenizer")
    # retrain's Run: its stage reports under their old keys
    run.stages = {"tokenizer": {"fit": 1}, "pretrained": {"steps": 2}, "finetuned": run.metrics}
    with pytest.warns(DeprecationWarning, match=r"write run.stages\['pretrained'\]"):
        assert run["pretrain"] == {"steps": 2}
    with pytest.warns(DeprecationWarning, match=r"write run.stages\['finetuned'\]"):
        assert run["finetune"]["test"] == {"test_accuracy": 0.75}
    with warnings.catch_warnings():  # the new spellings are quiet
        warnings.simplefilter("error")
        assert run.metrics["test"] and run.stages["pretrained"] and run.recipe is recipe and run.model


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("we went to paris", ["we", "went", "to", "paris"]),
        ("  we   went\tto  paris, today. ", ["we", "went", "to", "paris,", "today."]),
        ("我们去北京了", list("我们去北京了")),
        (" 上海，中国。", list("上海，中国。")),
        ("我 去 北京", ["我", "去", "北京"]),
        ("", []),
    ],
)
def test_words_keep_their_character_spans(text, words):
    spans = tagging.words(text)
    assert [text[s:e] for s, e in spans] == words


def ner_run(tiny_checkpoint, folder: Path, rows: list[dict]) -> Run:
    (folder / "ner.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    raw = {
        "model": {"name_or_path": str(tiny_checkpoint)},
        "task": {"type": "token_classification"},
        "data": {"source": str(folder / "ner.jsonl"), "text_column": "tokens", "label_column": "tags"},
        "training": {"num_train_epochs": 4, "learning_rate": 1.0e-2, "disable_tqdm": True},
        "output": {"dir": str(folder / "ner")},
    }
    return finetune(load_recipe(raw=raw))


def check_entities(results: list[dict], expected: list[list[str]]) -> None:
    for row, cities in zip(results, expected, strict=True):
        text = row["text"]
        for entity in row["entities"]:
            assert text[entity["start"] : entity["end"]] == entity["text"], (text, entity)
            assert 0 < entity["score"] <= 1
        found = [(e["type"], e["text"], e["start"]) for e in row["entities"]]
        assert found == [("LOC", city, text.index(city)) for city in cities], (text, row["tags"])


@pytest.mark.integration
def test_ner_entities_are_character_offsets_into_english_text(tiny_checkpoint, tmp_path):
    from conftest import ner_rows

    run = ner_run(tiny_checkpoint, tmp_path, ner_rows(120))
    texts = ["we went to paris today", "  we   went to  london,  today 7", "we went to berlin. today"]
    results = run.predict(texts, batch_size=2, progress=False)
    check_entities(results, [["paris"], ["london"], ["berlin"]])
    assert results[1]["tags"] == ["O", "O", "O", "S-LOC", "O", "O"]  # one tag per whitespace-separated word


@pytest.mark.integration
def test_ner_entities_are_character_offsets_into_chinese_text(tiny_checkpoint, tmp_path):
    cities, before, after = ["北京", "上海", "中国"], ["我们去", "希望去", "当"], ["了", "工程", ""]
    rows = []
    for i in range(150):
        city, head, tail = cities[i % 3], before[i % 3 - 1], after[(i // 3) % 3]
        tags = ["O"] * len(head) + ["B-LOC", "E-LOC"] + ["O"] * len(tail)
        rows.append({"tokens": list(head + city + tail), "tags": tags})
    run = ner_run(tiny_checkpoint, tmp_path, rows)
    texts = ["我们去北京了", " 希望去上海，工程。", "希望去中国了"]
    results = predict(run.run_dir, texts, progress=False)
    check_entities(results, [["北京"], ["上海"], ["中国"]])
    assert len(results[1]["tags"]) == len("希望去上海，工程。")  # one tag per character


def test_predict_runs_in_bf16_where_the_cpu_runs_it_fast_and_refuses_other_precisions(sentiment_run, monkeypatch):
    import torch

    seen = []
    hook = sentiment_run.model.register_forward_hook(lambda module, args, out: seen.append(out.logits.dtype))
    try:
        fp32 = sentiment_run.predict(TEXTS, progress=False, device="cpu", precision="fp32")
        bf16 = sentiment_run.predict(TEXTS, progress=False, device="cpu", precision="bf16")
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
        sentiment_run.predict(TEXTS, progress=False, device="cpu")  # auto, on a CPU without fast bf16: fp32
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
        sentiment_run.predict(TEXTS, progress=False, device="cpu")  # auto, on a CPU with it: bf16
    finally:
        hook.remove()
    assert seen == [torch.float32, torch.bfloat16, torch.float32, torch.bfloat16]
    assert [r["text"] for r in bf16] == TEXTS
    assert [r["score"] for r in bf16] == pytest.approx([r["score"] for r in fp32], abs=0.05)
    with pytest.raises(HfadaptError, match=r"precision 'fp16': use auto \(bf16 where the device runs it fast\)"):
        predict(sentiment_run.run_dir, ["good"], precision="fp16")
