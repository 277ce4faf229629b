"""Advice: the tokenizer fit, pilots within a budget, a verdict with its reasons, and a recipe that runs."""

import json
import math

import pytest
from conftest import sentiment_rows, write_csv

from hfadapt import advise, finetune, load_recipe
from hfadapt.advise.verdict import PILOTS, decide
from hfadapt.cli import main
from hfadapt.errors import HfadaptError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# The tiny random model learns only at a high rate; the budget gives each pilot 40 steps (2 epochs).
TINY = ["training.learning_rate=5e-3", "training.per_device_train_batch_size=16", "data.max_length=32"]
BUDGET = 200
# The same reviews, their words spelt in Cyrillic letters: a script the tiny tokenizer never saw.
CYRILLIC = str.maketrans("abcdefghijklmnopqrstuvwxyz", "абцдефгхийклмнопярстужвьыз")


def check_pilots(advice):
    """Every pilot trained its share and was scored; the verdict follows its own rule."""
    pilots = {p["name"]: p for p in advice["pilots"]}
    assert list(pilots) == list(PILOTS)
    for p in pilots.values():
        assert p["steps"] == BUDGET // 5
        assert any("eval_loss" in h for h in p["log_history"]) and any("loss" in h for h in p["log_history"])
        assert 0.0 <= p["validation_metric"] <= 1.0 and p["train_samples_per_second"] > 0 and p["seconds_per_step"] > 0
        # step time leaves out the evaluations that ran inside training
        runtime = next(h["train_runtime"] for h in p["log_history"] if "train_runtime" in h)
        evaluations = sum(h["eval_runtime"] for h in p["log_history"] if "eval_runtime" in h)
        assert evaluations > 0 and p["seconds_per_step"] * p["steps"] == pytest.approx(runtime - evaluations, rel=1e-3)
    assert (
        pilots["retrain"]["mlm_steps"] == BUDGET // 5
        and pilots["retrain"]["pretrain"]["vocabulary"]["vocab_size"] == advice["fit"]["new"]["vocab_size"]
    )
    assert (
        pilots["freeze"]["parameters"]["trainable"]
        < pilots["full"]["parameters"]["trainable"]
        == pilots["full"]["parameters"]["total"]
    )
    assert pilots["lora"]["parameters"]["trainable"] < pilots["full"]["parameters"]["trainable"]
    return pilots


def test_a_corpus_the_checkpoint_knows_gets_a_fine_tuning_verdict(tiny_checkpoint, sentiment_csv, tmp_path):
    advice = advise(str(tiny_checkpoint), str(sentiment_csv), tmp_path / "advice", budget_steps=BUDGET, overrides=TINY)
    assert advice["fit"]["checkpoint"]["unk_rate"] < 0.05 and advice["fit"]["checkpoint"]["char_coverage"] >= 0.95
    pilots = check_pilots(advice)
    verdict = advice["verdict"]
    assert verdict["strategy"] in ("freeze", "lora", "full")
    # the rule: among fine-tuning pilots within one standard error of the best, the fewest trainable parameters
    tolerance = math.sqrt(0.25 / pilots["full"]["validation_size"])
    assert verdict["tolerance"] == pytest.approx(tolerance)
    best = max(pilots[n]["validation_metric"] for n in ("freeze", "lora", "full"))
    tied = [pilots[n] for n in ("freeze", "lora", "full") if pilots[n]["validation_metric"] >= best - tolerance]
    assert verdict["strategy"] == min(tied, key=lambda p: p["parameters"]["trainable"])["name"]
    assert verdict["reasons"][0].startswith("the checkpoint's tokenizer fits the texts")
    assert best > 0.9  # the pilots train: here full fine-tuning learns the task within its 40 steps

    folder = tmp_path / "advice"
    assert sorted(p.name for p in folder.iterdir()) == ["advice.json", "advice.md", "pilots.png", "recommended.yaml"]
    assert not (tmp_path / "advice.incomplete").exists()
    assert json.loads((folder / "advice.json").read_text()) == json.loads(json.dumps(advice))
    assert (folder / "pilots.png").read_bytes()[:4] == b"\x89PNG"
    report = (folder / "advice.md").read_text()
    assert "**Verdict: " in report and "| [UNK] rate | " in report and "hfadapt finetune recommended.yaml" in report
    assert all(f"| {name} | " in report or f"| {name} (" in report for name in PILOTS)
    train = advice["data_report"]["sizes"]["train"]
    assert advice["estimate"]["steps"] == math.ceil(train / 16) * 3  # the recipe's 3 epochs at batch 16
    # the recommended recipe loads, keeps the overrides and the winning method, and trains as it is
    recipe = load_recipe(folder / "recommended.yaml")
    assert recipe.adapt.method == verdict["strategy"] and recipe.pretrain is None and recipe.data.max_length == 32
    assert recipe.training["learning_rate"] == 5e-3 and "max_steps" not in recipe.training
    results = finetune(recipe, ["training.max_steps=2", f"output.dir={tmp_path / 'run'}"])
    assert results["parameters"]["trainable"] == pilots[verdict["strategy"]]["parameters"]["trainable"]
    with pytest.raises(HfadaptError, match=r"output.dir: .*advice is not empty"):
        advise(str(tiny_checkpoint), str(sentiment_csv), folder, overrides=TINY)


def test_a_script_the_vocabulary_lacks_gets_a_retraining_verdict(tiny_checkpoint, tmp_path):
    rows = [{"text": r["text"].translate(CYRILLIC), "label": r["label"]} for r in sentiment_rows(400, seed=5)]
    csv = write_csv(tmp_path / "cyrillic.csv", rows)
    advice = advise(str(tiny_checkpoint), str(csv), tmp_path / "advice", budget_steps=BUDGET, overrides=TINY)
    assert advice["fit"]["checkpoint"]["unk_rate"] > 0.5 and advice["fit"]["new"]["unk_rate"] == 0.0
    assert advice["fit"]["checkpoint"]["char_coverage"] < 0.5 and advice["fit"]["new"]["char_coverage"] == 1.0
    pilots = check_pilots(advice)
    verdict = advice["verdict"]
    assert verdict["strategy"] == "retrain", verdict
    assert "[UNK]" in verdict["reasons"][0]
    # the fine-tuning pilots see [UNK] for every word and stay at chance; the retrained vocabulary lets it learn
    best = max(pilots[n]["validation_metric"] for n in ("freeze", "lora", "full"))
    assert best < 0.7 < pilots["retrain"]["validation_metric"]
    assert "the retraining pilot reached" in verdict["reasons"][-1] and ": better" in verdict["reasons"][-1]
    # the probe: a linear model reads the labels from the new tokens, and from the checkpoint's [UNK]s hardly at all
    probe = advice["probe"]
    assert probe["new"] > 0.9 and probe["new"] - probe["checkpoint"] > probe["tolerance"] == pytest.approx(
        math.sqrt(0.25 / probe["validation_size"])
    )
    assert "hides" in verdict["reasons"][-2]
    recipe = load_recipe(tmp_path / "advice" / "recommended.yaml")
    assert (
        recipe.corpus.sources == [str(csv)]
        and recipe.tokenizer.algorithm == "wordpiece"
        and recipe.pretrain.vocabulary == "replace"
    )
    # the default: a salted hash holds out a share
    assert recipe.training["learning_rate"] == 5e-3 and recipe.corpus.validation_fraction == 0.01
    report = (tmp_path / "advice" / "advice.md").read_text()
    assert "hfadapt retrain recommended.yaml" in report and "masked-LM steps x" in report


def test_token_classification_in_a_script_the_vocabulary_lacks_gets_a_retraining_verdict(tiny_checkpoint, tmp_path):
    # Chinese sentences, one character a token as in MSRA, with a city (B-LOC I-LOC) at a varying
    # place; none of these characters is in the tiny vocabulary, so to the checkpoint all are [UNK]
    import random

    rng = random.Random(3)
    filler, cities = list("我们你他去了在的很好看说到这那天"), ["巴黎", "伦敦", "柏林", "罗马", "东京"]
    rows = []
    for _ in range(400):
        before, after = rng.choices(filler, k=rng.randint(0, 6)), rng.choices(filler, k=rng.randint(1, 6))
        city = list(rng.choice(cities))
        rows.append(
            {"tokens": before + city + after, "tags": ["O"] * len(before) + ["B-LOC", "I-LOC"] + ["O"] * len(after)}
        )
    path = tmp_path / "ner.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    overrides = TINY + ["task.type=token_classification", "data.text_column=tokens", "data.label_column=tags"]
    advice = advise(str(tiny_checkpoint), str(path), tmp_path / "advice", budget_steps=BUDGET, overrides=overrides)
    assert advice["main_metric"] == "f1"
    assert advice["fit"]["checkpoint"]["unk_rate"] > 0.9 and advice["fit"]["new"]["unk_rate"] == 0.0
    pilots = check_pilots(advice)
    assert advice["verdict"]["strategy"] == "retrain", advice["verdict"]
    best = max(pilots[n]["validation_metric"] for n in ("freeze", "lora", "full"))
    assert best < 0.5 < pilots["retrain"]["validation_metric"]
    recipe = load_recipe(tmp_path / "advice" / "recommended.yaml")
    assert recipe.task.type == "token_classification" and recipe.corpus.sources == [str(path)]


def test_token_words_join_into_the_sentence_they_came_from():
    from hfadapt.data import join_words

    assert join_words(["我", "们", "在", "Paris", "2024", "年"]) == "我们在Paris 2024年"
    assert join_words(["EU", "rejects", "German", "call"]) == "EU rejects German call"
    assert join_words([]) == ""


def test_a_budget_too_small_for_the_pilots_is_refused_before_anything_is_written(
    tiny_checkpoint, sentiment_csv, tmp_path
):
    with pytest.raises(HfadaptError) as caught:
        advise(str(tiny_checkpoint), str(sentiment_csv), tmp_path / "advice", budget_steps=49)
    assert str(caught.value) == (
        "--budget-steps 49 is too small for the pilots: they take 5 equal shares (frozen "
        "layers, LoRA, full fine-tuning, "
        "and retraining's masked-LM and fine-tuning steps) of at least 10 steps each; "
        "give at least 50, or no budget for the tokenizer fit alone"
    )
    with pytest.raises(
        HfadaptError,
        match=r"--budget-minutes 0.0001 is too small for the pilots: one training step takes \d+\.\d\d "
        r"s here, so 5 equal shares .* get 0 steps each, fewer than 10; give at least "
        r"[\d.]+ minutes",
    ):
        advise(str(tiny_checkpoint), str(sentiment_csv), tmp_path / "advice", budget_minutes=0.0001)
    with pytest.raises(HfadaptError, match="advise: give --budget-steps or --budget-minutes, not both"):
        advise(str(tiny_checkpoint), str(sentiment_csv), tmp_path / "advice", budget_steps=100, budget_minutes=5)
    with pytest.raises(
        HfadaptError, match=r"adapt.method=lora: advise sets adapt itself \(the pilots compare adaptation " r"methods\)"
    ):
        advise(str(tiny_checkpoint), str(sentiment_csv), tmp_path / "advice", overrides=["adapt.method=lora"])
    assert list(tmp_path.iterdir()) == []


def test_cli_without_a_budget_gives_the_fit_and_a_recipe(tiny_checkpoint, tmp_path, capsys):
    rows = [{"text": r["text"].translate(CYRILLIC), "label": r["label"]} for r in sentiment_rows(200, seed=6)]
    csv = write_csv(tmp_path / "cyrillic.csv", rows)
    assert main(["advise", "--model", str(tiny_checkpoint), "--data", str(csv), "--budget-steps", "20"]) == 2
    assert "--budget-steps 20 is too small for the pilots" in capsys.readouterr().err
    assert (
        main(
            [
                "advise",
                "--model",
                str(tiny_checkpoint),
                "--data",
                str(csv),
                "--output",
                str(tmp_path / "advice"),
                "data.max_length=32",
            ]
        )
        == 0
    )
    assert "Verdict: retrain" in capsys.readouterr().out
    advice = json.loads((tmp_path / "advice" / "advice.json").read_text())
    assert advice["pilots"] == [] and advice["estimate"] is None and advice["verdict"]["strategy"] == "retrain"
    assert not (tmp_path / "advice" / "pilots.png").exists()
    assert load_recipe(tmp_path / "advice" / "recommended.yaml").pretrain is not None


def pilot(name, score, trainable):
    return {
        "name": name,
        "validation_metric": score,
        "main_metric": "accuracy",
        "parameters": {"trainable": trainable},
        "mlm_steps": 10,
    }


GOOD_FIT = {"unk_rate": 0.001, "char_coverage": 0.99}
BAD_FIT = {"unk_rate": 0.30, "char_coverage": 0.40}


HIDES = {"checkpoint": 0.70, "new": 0.85, "tolerance": 0.02}  # the checkpoint's tokens hide 15 points
HIDES_NOTHING = {"checkpoint": 0.84, "new": 0.85, "tolerance": 0.02}


@pytest.mark.parametrize(
    "fit, scores, probe, expected",
    [
        # a tie within 0.02: fewer parameters
        (GOOD_FIT, {"freeze": 0.70, "lora": 0.80, "full": 0.81, "retrain": 0.90}, None, "lora"),
        # a good fit never retrains
        (GOOD_FIT, {"freeze": 0.70, "lora": 0.75, "full": 0.81, "retrain": 0.90}, None, "full"),
        # ... whatever the probe says
        (GOOD_FIT, {"freeze": 0.70, "lora": 0.75, "full": 0.81, "retrain": 0.90}, HIDES, "full"),
        # not worse by more than 0.02
        (BAD_FIT, {"freeze": 0.70, "lora": 0.75, "full": 0.81, "retrain": 0.80}, None, "retrain"),
        # clearly worse: fine-tune
        (BAD_FIT, {"freeze": 0.70, "lora": 0.75, "full": 0.81, "retrain": 0.70}, None, "full"),
        # the probe shows what the short pilot cannot
        (BAD_FIT, {"freeze": 0.70, "lora": 0.75, "full": 0.81, "retrain": 0.70}, HIDES, "retrain"),
        (BAD_FIT, {"freeze": 0.70, "lora": 0.75, "full": 0.81, "retrain": 0.70}, HIDES_NOTHING, "full"),
        # the pilot alone suffices
        (BAD_FIT, {"freeze": 0.70, "lora": 0.75, "full": 0.81, "retrain": 0.80}, HIDES_NOTHING, "retrain"),
        # low coverage alone
        (
            {"unk_rate": 0.01, "char_coverage": 0.50},
            {"freeze": 0.5, "lora": 0.5, "full": 0.5, "retrain": 0.5},
            None,
            "retrain",
        ),
    ],
)
def test_decision_rules(fit, scores, probe, expected):
    trainable = {"freeze": 500, "lora": 100, "full": 1000, "retrain": 1000}
    verdict = decide(fit, [pilot(n, scores[n], trainable[n]) for n in PILOTS], tolerance=0.02, probe=probe)
    assert verdict["strategy"] == expected, verdict["reasons"]
    if fit is BAD_FIT and expected == "full":
        assert (
            "but the retraining pilot reached 0.7000 against the best fine-tuning pilot's "
            "0.8100: worse by more than one standard error (0.020)"
        ) in verdict["reasons"][-2]
    if probe is HIDES and fit is BAD_FIT:
        assert "the checkpoint's vocabulary hides 15.0 points of what the task needs" in verdict["reasons"][-2]
        assert "pilots this short measure the first steps" in verdict["reasons"][-1]


@pytest.mark.parametrize(
    "fit, probe, expected",
    [
        (GOOD_FIT, None, "full"),
        (BAD_FIT, None, "retrain"),
        (BAD_FIT, HIDES, "retrain"),
        (BAD_FIT, HIDES_NOTHING, "full"),
    ],
)
def test_decision_rules_without_pilots(fit, probe, expected):
    verdict = decide(fit, [], tolerance=None, probe=probe)
    assert verdict["strategy"] == expected, verdict["reasons"]
    assert "no pilots were run (no budget)" in verdict["reasons"][-1] or probe is HIDES
