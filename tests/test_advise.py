"""Advice: the tokenizer fit, pilots within a budget, a verdict with its reasons, and a recipe that runs."""

import json
import math
import re

import numpy as np
import pytest
from conftest import sentiment_rows, write_csv

from hfadapt import advise, finetune, load_recipe, retrain
from hfadapt.advice import cost, run_minutes
from hfadapt.advice.compare import compare, majority
from hfadapt.advice.deadline import Deadline
from hfadapt.advice.pilots import run_pilot, steps_for_seconds
from hfadapt.advice.report import _notes, cost_line
from hfadapt.advice.verdict import PILOTS, decide, pilot_names
from hfadapt.cli import _parser, main
from hfadapt.errors import HfadaptError
from hfadapt.model.metrics import entity_scores
from hfadapt.recipe import TaskConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# The tiny random model learns only at a high rate; the budget gives each pilot 40 steps (2 epochs).
TINY = ["training.learning_rate=5e-3", "training.per_device_train_batch_size=16", "data.max_length=32"]
BUDGET = 200
# The same reviews, their words spelt in Cyrillic letters: a script the tiny tokenizer never saw.
CYRILLIC = str.maketrans("abcdefghijklmnopqrstuvwxyz", "абцдефгхийклмнопярстужвьыз")


def check_pilots(advice, names=PILOTS):
    """Every pilot trained its share and was scored; the comparison is consistent with itself."""
    pilots = {p["name"]: p for p in advice["pilots"]}
    assert list(pilots) == list(names)
    steps = BUDGET // (5 if "retrain" in names else 3)
    assert advice["budget"]["steps_per_pilot"] == steps
    reference = pilots[advice["comparison"]["reference"]]
    assert reference["difference"] == reference["difference_se"] == 0.0 and reference["tied"]
    for p in pilots.values():
        assert p["steps"] == p["planned_steps"] == steps and not p["stopped_at_deadline"]
        assert any("eval_loss" in h for h in p["log_history"]) and any("loss" in h for h in p["log_history"])
        assert 0.0 <= p["validation_metric"] <= 1.0 and p["train_samples_per_second"] > 0 and p["seconds_per_step"] > 0
        assert p["difference"] == pytest.approx(p["validation_metric"] - reference["validation_metric"])
        assert p["interval"][0] <= p["interval"][1] and p["difference_interval"][0] <= p["difference_interval"][1]
        # step time leaves out the evaluations that ran inside training
        runtime = next(h["train_runtime"] for h in p["log_history"] if "train_runtime" in h)
        evaluations = sum(h["eval_runtime"] for h in p["log_history"] if "eval_runtime" in h)
        assert evaluations > 0 and p["seconds_per_step"] * p["steps"] == pytest.approx(runtime - evaluations, rel=1e-3)
    if "retrain" in names:
        assert (
            pilots["retrain"]["mlm_steps"] == steps
            and pilots["retrain"]["pretrain"]["vocabulary"]["vocab_size"] == advice["fit"]["new"]["vocab_size"]
        )
    assert (
        pilots["freeze"]["parameters"]["trainable"]
        < pilots["full"]["parameters"]["trainable"]
        == pilots["full"]["parameters"]["total"]
    )
    assert pilots["lora"]["parameters"]["trainable"] < pilots["full"]["parameters"]["trainable"]
    return pilots


@pytest.mark.integration
def test_a_corpus_the_checkpoint_knows_gets_a_fine_tuning_verdict_and_no_retraining_pilot(
    tiny_checkpoint, sentiment_csv, tmp_path
):
    advice = advise(str(tiny_checkpoint), str(sentiment_csv), tmp_path / "advice", budget_steps=BUDGET, overrides=TINY)
    assert advice["fit"]["checkpoint"]["unk_rate"] < 0.05 and advice["fit"]["checkpoint"]["char_coverage"] >= 0.95
    # a tokenizer that fits is never retrained: no retraining pilot, and its two shares go to the others
    assert advice["skipped"] == ["retrain"]
    pilots = check_pilots(advice, names=("freeze", "lora", "full"))
    verdict = advice["verdict"]
    assert verdict["strategy"] in ("freeze", "lora", "full")
    # every pilot's accuracy is computed from its own predictions, and agrees with what its run reported
    for p in pilots.values():
        final = [h for h in p["log_history"] if "validation_accuracy" in h][-1]
        assert p["validation_metric"] == pytest.approx(final["validation_accuracy"])
        assert p["validation_size"] == advice["data_report"]["sizes"]["validation"]
    # the rule: among the pilots that left the baseline and are tied with the best, the fastest step (10%
    # slack), then the least memory, then the fewest trainable parameters
    tied = [p for p in pilots.values() if p["tied"] and not p["stuck"]]
    fastest = min(p["seconds_per_step"] for p in tied)
    quick = [p for p in tied if p["seconds_per_step"] <= 1.1 * fastest]
    cheapest = min(quick, key=lambda p: (p["training_state_mb"], p["parameters"]["trainable"]))
    assert verdict["strategy"] == cheapest["name"]
    assert verdict["reasons"][0].startswith("the checkpoint's tokenizer fits the texts")
    best = max(p["validation_metric"] for p in pilots.values())
    assert best > 0.9  # the pilots train: here full fine-tuning learns the task within its 66 steps
    assert not pilots["full"]["stuck"] and advice["comparison"]["baseline"]["label"] in ("positive", "negative")
    assert advice["fit"]["truncation"]["max_length"] == 32 and advice["fit"]["length"] is None

    folder = tmp_path / "advice"
    assert sorted(p.name for p in folder.iterdir()) == ["advice.json", "advice.md", "pilots.png", "recommended.yaml"]
    assert not (tmp_path / "advice.incomplete").exists()
    assert json.loads((folder / "advice.json").read_text()) == json.loads(json.dumps(advice))
    assert (folder / "pilots.png").read_bytes()[:4] == b"\x89PNG"
    report = (folder / "advice.md").read_text()
    assert "**Verdict: " in report and "| [UNK] rate | " in report and "hfadapt finetune recommended.yaml" in report
    assert "No retraining pilot: the checkpoint's tokenizer fits the texts" in report
    assert "| train | 319 | 0.0% | 100.0% |" in report and "Majority-class baseline (" in report
    # the TF-IDF baseline, on the validation examples the pilots predicted, and each pilot paired with it
    tfidf = advice["tfidf_baseline"]
    assert tfidf["eval_size"] == pilots["full"]["validation_size"] and tfidf["score"] > 0.9
    assert advice["comparison"]["tfidf"]["validation_metric"] == tfidf["score"]
    for p in pilots.values():
        assert p["tfidf_difference"] == pytest.approx(p["validation_metric"] - tfidf["score"])
    assert "## TF-IDF baseline" in report and "**Against the TF-IDF baseline:** " in report
    assert all(f"| {name} | {BUDGET // 3} | " in report for name in ("freeze", "lora", "full"))
    train = advice["data_report"]["sizes"]["train"]
    assert advice["estimate"]["steps"] == math.ceil(train / 16) * 3  # the recipe's 3 epochs at batch 16
    # the recommended recipe loads, keeps the overrides and the winning method, and trains as it is
    recipe = load_recipe(folder / "recommended.yaml")
    assert recipe.adapt.method == verdict["strategy"] and recipe.pretrain is None and recipe.data.max_length == 32
    assert recipe.training["learning_rate"] == 5e-3 and "max_steps" not in recipe.training
    assert recipe.training["bf16"] == "auto"  # bf16 where this machine runs it fast, every recipe's default
    assert recipe.training["train_sampling_strategy"] == "group_by_length"  # the measured best
    results = finetune(recipe, ["training.max_steps=2", f"output.dir={tmp_path / 'run'}"]).metrics
    assert results["parameters"]["trainable"] == pilots[verdict["strategy"]]["parameters"]["trainable"]
    with pytest.raises(HfadaptError, match=r"output.dir: .*advice is not empty"):
        advise(str(tiny_checkpoint), str(sentiment_csv), folder, overrides=TINY)


@pytest.mark.integration
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
    # at chance, the fine-tuning pilots have not left the majority-class baseline: only retraining did
    assert [n for n, p in pilots.items() if p["stuck"]] == ["freeze", "lora", "full"]
    assert verdict["reasons"][-1] == (
        f"the retraining pilot reached {pilots['retrain']['validation_metric']:.4f} after 40 masked-LM steps: "
        "it left the majority-class baseline and no fine-tuning pilot did"
    )
    # the probe: a linear model reads the labels from the new tokens, and from the checkpoint's [UNK]s hardly at all
    probe = advice["probe"]
    assert probe["new"] > 0.9 and probe["difference_interval"][0] > 0
    assert probe["difference_interval"][0] < probe["new"] - probe["checkpoint"] < probe["difference_interval"][1]
    assert "hides" in verdict["reasons"][-2]
    recipe = load_recipe(tmp_path / "advice" / "recommended.yaml")
    assert (
        recipe.corpus.sources == [str(csv)]
        and recipe.tokenizer.algorithm == "wordpiece"
        and recipe.pretrain.vocabulary == "replace"
    )
    # the measured best (docs/pretraining_variants.md, bench_bf16): static new rows, bf16 where it is fast
    assert recipe.pretrain.new_rows == "static" and recipe.pretrain.training["bf16"] == "auto"
    # the default: a salted hash holds out a share
    assert recipe.training["learning_rate"] == 5e-3 and recipe.corpus.validation_fraction == 0.01
    report = (tmp_path / "advice" / "advice.md").read_text()
    assert "hfadapt retrain recommended.yaml" in report and "masked-LM steps x" in report


@pytest.mark.integration
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
    # the majority tag is O: its entity F1 is 0, which no fine-tuning pilot left
    assert advice["comparison"]["baseline"] == {"label": "O", "validation_metric": 0.0, "interval": [0.0, 0.0]}
    assert [n for n, p in pilots.items() if p["stuck"]] == ["freeze", "lora", "full"]
    best = max(pilots[n]["validation_metric"] for n in ("freeze", "lora", "full"))
    assert best < 0.5 < pilots["retrain"]["validation_metric"]
    recipe = load_recipe(tmp_path / "advice" / "recommended.yaml")
    assert recipe.task.type == "token_classification" and recipe.corpus.sources == [str(path)]


@pytest.mark.integration
def test_text_pairs_are_read_whole_by_the_fit_the_probe_and_the_pilots(tiny_checkpoint, tmp_path):
    # the label is in the second text alone: what reads only the first one stays at chance
    rows = [
        {"question": f"what did the critic say {i}", "review": r["text"], "label": r["label"]}
        for i, r in enumerate(sentiment_rows(400, seed=7))
    ]
    csv = write_csv(tmp_path / "pairs.csv", rows)
    pairs = TINY + ["data.text_column=question", "data.text_pair_column=review"]
    advice = advise(str(tiny_checkpoint), str(csv), budget_steps=150, overrides=pairs)
    assert advice["probe"]["checkpoint"] > 0.9 and advice["probe"]["new"] > 0.9
    assert [p["name"] for p in advice["pilots"]] == ["freeze", "lora", "full"]
    sizes = advice["data_report"]["sizes"]
    assert all(p["steps"] == 50 and p["validation_size"] == sizes["validation"] for p in advice["pilots"])
    assert max(p["validation_metric"] for p in advice["pilots"]) > 0.9  # the pilots read the pair too
    assert advice["recommended"]["data"]["text_pair_column"] == "review"
    assert advice["fit"]["texts"] == sizes["train"]
    # the fit reads each pair as one text
    from datasets import Dataset

    from hfadapt.advice.fit import texts

    assert texts(Dataset.from_dict({"text": ["is it good", "x"], "text_pair": ["yes", "y z"]})) == [
        "is it good yes",
        "x y z",
    ]


@pytest.mark.integration
def test_texts_cut_by_max_length_get_a_length_that_holds_most_of_them(tiny_checkpoint, sentiment_csv, tmp_path):
    from transformers import AutoTokenizer

    advice = advise(str(tiny_checkpoint), str(sentiment_csv), tmp_path / "advice", overrides=["data.max_length=8"])
    truncation, length = advice["fit"]["truncation"], advice["fit"]["length"]
    assert truncation["max_length"] == 8 and truncation["train"]["cut"] == 1.0
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    lengths = sorted(len(ids) for ids in tokenizer([r["text"] for r in sentiment_rows(400)])["input_ids"])
    assert length["length_90"] <= 16 < lengths[-1] + 8 and length["max_length"] == 16 and length["limit"] == 128
    assert length["advice"] == (
        f"100% of the training texts are longer than data.max_length=8 tokens and are cut "
        f"({truncation['train']['tokens_kept']:.0%} of their tokens kept); data.max_length=16 holds "
        f"{length['held_whole']:.0%} of them whole"
    )
    assert load_recipe(tmp_path / "advice" / "recommended.yaml").data.max_length == 16
    report = (tmp_path / "advice" / "advice.md").read_text()
    assert f"**Texts cut:** {length['advice']}." in report and "| train | 319 | 100.0% |" in report


@pytest.mark.integration
def test_texts_longer_than_the_model_reads_are_pointed_to_windows(tiny_checkpoint, tmp_path):
    rows = [{"text": " ".join([r["text"]] * 25), "label": r["label"]} for r in sentiment_rows(200, seed=8)]
    csv = write_csv(tmp_path / "long.csv", rows)
    advice = advise(str(tiny_checkpoint), str(csv), tmp_path / "advice", overrides=["data.max_length=64"])
    length = advice["fit"]["length"]
    assert length["length_90"] > 128 and length["max_length"] == 128 and length["held_whole"] == 0.0
    recipe = load_recipe(tmp_path / "advice" / "recommended.yaml")
    assert recipe.data.max_length == 128
    assert length["long_texts"] == recipe.data.long_texts == "windows"
    assert length["advice"].endswith(
        f"90% of them have up to {length['length_90']} tokens, more than the model's 128 positions "
        "(data.max_length=128 holds 0% of them whole); data.long_texts=windows reads the rest in overlapping "
        "windows"
    )


def test_token_words_join_into_the_sentence_they_came_from():
    from hfadapt.data.splits import join_words

    assert join_words(["我", "们", "在", "Paris", "2024", "年"]) == "我们在Paris 2024年"
    assert join_words(["EU", "rejects", "German", "call"]) == "EU rejects German call"
    assert join_words([]) == ""


@pytest.mark.integration
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


@pytest.mark.integration
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
    out = capsys.readouterr().out
    assert "Verdict: retrain" in out
    advice = json.loads((tmp_path / "advice" / "advice.json").read_text())
    assert advice["pilots"] == [] and advice["estimate"] is None and advice["verdict"]["strategy"] == "retrain"
    assert not (tmp_path / "advice" / "pilots.png").exists()
    assert load_recipe(tmp_path / "advice" / "recommended.yaml").pretrain is not None
    # without pilots the run is priced all the same, and the summary's last line names the total
    assert out.rstrip().splitlines()[-1] == cost_line(advice)
    assert cost_line(advice).startswith("the recommended run takes about ") and "masked-LM pretraining" in out
    assert "| **total** | | | | **" in (tmp_path / "advice" / "advice.md").read_text()


# A compared pilot, as compare.compare leaves it, by where it stands against the best fine-tuning pilot
# (0.81): best, tied (the interval of the paired difference contains 0), below, above, or stuck at the
# majority-class baseline. Costs: freeze is the cheapest, then lora, then full.
STANDING = {
    "best": (0.0, [0.0, 0.0], True, False),
    "tied": (-0.01, [-0.03, 0.01], True, False),
    "below": (-0.11, [-0.15, -0.07], False, False),
    "above": (0.09, [0.05, 0.13], False, False),
    "stuck": (-0.31, [-0.36, -0.26], False, True),
}
COSTS = {
    "freeze": (0.010, 100, 500),
    "lora": (0.020, 150, 100),
    "full": (0.030, 400, 1000),
    "retrain": (0.030, 400, 1000),
}


def compared(name, standing):
    difference, interval, tied, stuck = STANDING[standing]
    step, memory, trainable = COSTS[name]
    return {
        "name": name,
        "steps": 40,
        "validation_metric": 0.81 + difference,
        "interval": [0.75 + difference, 0.87 + difference],
        "difference": difference,
        "difference_se": 0.02,
        "difference_interval": interval,
        "tied": tied,
        "stuck": stuck,
        "main_metric": "accuracy",
        "parameters": {"trainable": trainable},
        "seconds_per_step": step,
        "peak_cuda_mb": None,
        "training_state_mb": memory,
        "mlm_steps": 10,
    }


GOOD_FIT = {"unk_rate": 0.001, "char_coverage": 0.99}
BAD_FIT = {"unk_rate": 0.30, "char_coverage": 0.40}
BASELINE = {"label": "negative", "validation_metric": 0.5, "interval": [0.45, 0.55]}


# the checkpoint's tokens hide 15 points; then 1 point, within the paired interval
HIDES = {"checkpoint": 0.70, "new": 0.85, "difference_interval": [0.11, 0.19]}
HIDES_NOTHING = {"checkpoint": 0.84, "new": 0.85, "difference_interval": [-0.01, 0.03]}
TUNED_LORA_TIES = {"freeze": "below", "lora": "tied", "full": "best"}
TUNED_FULL_LEADS = {"freeze": "below", "lora": "below", "full": "best"}


@pytest.mark.parametrize(
    "fit, standings, probe, expected",
    [
        # tied with the best: the cheaper wins (lora's step is faster than full's)
        (GOOD_FIT, TUNED_LORA_TIES, None, "lora"),
        # the cheapest (freeze) is tied but has not left the baseline: it cannot win
        (GOOD_FIT, {"freeze": "stuck", "lora": "tied", "full": "best"}, None, "lora"),
        # below the best: the best wins, whatever it costs
        (GOOD_FIT, TUNED_FULL_LEADS, None, "full"),
        # a good fit never retrains, whatever the probe says
        (GOOD_FIT, TUNED_FULL_LEADS, HIDES, "full"),
        # not distinguishable from the best: retrain
        (BAD_FIT, {**TUNED_FULL_LEADS, "retrain": "tied"}, None, "retrain"),
        # clearly worse: fine-tune
        (BAD_FIT, {**TUNED_FULL_LEADS, "retrain": "below"}, None, "full"),
        # the probe shows what the short pilot cannot
        (BAD_FIT, {**TUNED_FULL_LEADS, "retrain": "below"}, HIDES, "retrain"),
        (BAD_FIT, {**TUNED_FULL_LEADS, "retrain": "below"}, HIDES_NOTHING, "full"),
        # the pilot alone suffices
        (BAD_FIT, {**TUNED_FULL_LEADS, "retrain": "tied"}, HIDES_NOTHING, "retrain"),
        (BAD_FIT, {**TUNED_FULL_LEADS, "retrain": "above"}, None, "retrain"),
        # a retraining pilot that has not left the baseline cannot win by itself
        (BAD_FIT, {**TUNED_FULL_LEADS, "retrain": "stuck"}, None, "full"),
        # low coverage alone
        ({"unk_rate": 0.01, "char_coverage": 0.50}, {**TUNED_LORA_TIES, "retrain": "tied"}, None, "retrain"),
    ],
)
def test_decision_rules(fit, standings, probe, expected):
    pilots = [compared(name, standing) for name, standing in standings.items()]
    verdict = decide(fit, pilots, probe=probe, baseline=BASELINE)
    assert verdict["strategy"] == expected, verdict["reasons"]
    if fit is BAD_FIT and expected == "full" and standings.get("retrain") == "below":
        assert verdict["reasons"][-2] == (
            "but the retraining pilot reached 0.7000 against the best fine-tuning pilot's 0.8100: worse after 10 "
            "masked-LM steps (the 95% interval of the paired difference is -0.1500 to -0.0700); longer "
            "pretraining may still pay off"
        )
    if probe is HIDES and fit is BAD_FIT:
        assert "the checkpoint's vocabulary hides 15.0 points of what the task needs" in verdict["reasons"][-2]
        assert "pilots this short measure the first steps" in verdict["reasons"][-1]


def test_tied_pilots_go_to_the_cheapest_and_a_stuck_one_is_named():
    pilots = [
        compared(name, standing) for name, standing in {"freeze": "stuck", "lora": "tied", "full": "best"}.items()
    ]
    verdict = decide(GOOD_FIT, pilots, baseline=BASELINE)
    assert verdict["reasons"][1] == (
        "lora reached a validation accuracy of 0.8000 (95% interval 0.7400 to 0.8600); lora, full are tied with "
        "the best, full (the 95% interval of each one's paired difference to it contains 0), and lora costs least: "
        "0.020 s a step, 150 MB training state, 100 trainable parameters; freeze has not left the majority-class "
        "baseline (negative for every example: validation accuracy 0.5000), and cannot win"
    )
    # a step within 10% of the fastest counts as equally fast: then the least memory decides
    pilots[2]["seconds_per_step"] = 0.021
    pilots[2]["training_state_mb"] = 120
    assert decide(GOOD_FIT, pilots, baseline=BASELINE)["strategy"] == "full"


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
    verdict = decide(fit, [], probe=probe)
    assert verdict["strategy"] == expected, verdict["reasons"]
    if probe is HIDES:  # the probe's measured gap is the last reason: retraining is chosen on it
        assert "hides 15.0 points of what the task needs" in verdict["reasons"][-1]
        assert not any("no pilots were run" in reason for reason in verdict["reasons"])
    else:
        assert "no pilots were run (no budget)" in verdict["reasons"][-1]


@pytest.mark.parametrize("fit, probe, expected", [(GOOD_FIT, None, "full"), (BAD_FIT, None, "retrain")])
def test_when_no_pilot_left_the_baseline_the_verdict_says_to_train_longer(fit, probe, expected):
    names = PILOTS if fit is BAD_FIT else ("freeze", "lora", "full")
    verdict = decide(fit, [compared(name, "stuck") for name in names], probe=probe, baseline=BASELINE)
    assert verdict["strategy"] == expected
    stuck = (
        "no pilot has left the majority-class baseline (negative for every example: validation accuracy 0.5000) "
        "in 40 steps, so the pilots cannot rank the strategies; train longer: a larger --budget-steps or "
        "--budget-minutes, or a higher training.learning_rate"
    )
    last = {"full": f"{stuck}: full fine-tuning is the plain default", "retrain": f"{stuck} and no probe could be: "}
    assert verdict["reasons"][-1].startswith(last[expected])


def test_a_fitting_tokenizer_gets_no_retraining_pilot():
    assert pilot_names(GOOD_FIT) == ("freeze", "lora", "full")
    assert pilot_names(BAD_FIT) == PILOTS
    assert pilot_names({"unk_rate": 0.06, "char_coverage": 0.99}) == PILOTS


def labels_and_guesses(size, right):
    """Gold labels 0/1 alternating, and a guess for each pilot right on exactly the examples in right[name]."""
    truth = np.arange(size) % 2
    guesses = {name: np.where(np.isin(np.arange(size), list(hits)), truth, 1 - truth) for name, hits in right.items()}
    return truth, guesses


SEQUENCE = TaskConfig()


def test_near_99_percent_the_paired_rule_separates_what_one_standard_error_at_50_percent_tied():
    # 500 validation examples: full right on 495, lora on 485 of those, freeze on 480 of those
    truth, guesses = labels_and_guesses(500, {"full": range(495), "lora": range(485), "freeze": range(480)})
    result = compare(SEQUENCE, "accuracy", ["a", "b"], truth, guesses)
    scores = {name: p["validation_metric"] for name, p in result["pilots"].items()}
    assert scores == {"full": 0.99, "lora": 0.97, "freeze": 0.96}
    # the old rule: within sqrt(0.25 / n) of the best counted as tied, and lora (the cheapest) won
    old = math.sqrt(0.25 / 500)
    assert [n for n in ("freeze", "lora", "full") if scores[n] >= 0.99 - old] == ["lora", "full"]
    # paired: lora differs from full on 10 examples, all of them full's; the interval stays below 0
    lora = result["pilots"]["lora"]
    assert lora["difference"] == pytest.approx(-0.02) and lora["difference_interval"][1] < 0 and not lora["tied"]
    pilots = [{**compared(name, "best"), **result["pilots"][name]} for name in ("freeze", "lora", "full")]
    assert decide(GOOD_FIT, pilots)["strategy"] == "full"


def test_the_paired_standard_error_is_the_standard_error_of_the_per_example_differences():
    # 20 examples: full right on 18, lora on 16; full alone right on 3 of them, lora alone on 1
    truth, guesses = labels_and_guesses(20, {"full": range(18), "lora": [*range(15), 19]})
    result = compare(SEQUENCE, "accuracy", ["a", "b"], truth, guesses)
    lora = result["pilots"]["lora"]
    # per example, lora - full is -1 three times, +1 once, 0 sixteen times: mean -0.1, and the standard error
    # of a mean of 20 draws from those values is sqrt((4 / 20 - 0.1 ** 2) / 20)
    assert lora["difference"] == pytest.approx(-0.1)
    hand = math.sqrt((4 / 20 - 0.1**2) / 20)
    assert hand == pytest.approx(0.09747, abs=1e-5)
    assert lora["difference_se"] == pytest.approx(hand, rel=0.05)  # 1,000 resamples: within a few percent
    assert lora["tied"] and lora["difference_interval"][0] < 0 < lora["difference_interval"][1]
    # the same resamples every time
    assert compare(SEQUENCE, "accuracy", ["a", "b"], truth, guesses)["pilots"]["lora"] == lora


def test_a_pilot_at_the_majority_class_is_flagged_and_cannot_win():
    # 1,000 examples, 800 negative (0): the baseline's accuracy is 0.80
    truth = np.array([0] * 800 + [1] * 200)
    freeze = truth.copy()
    freeze[810:] = 0  # says negative for 99% of the examples: right on all negatives and 10 positives
    full = truth.copy()
    full[813:] = 0  # 3 positives more than freeze: above the baseline, but not clearly above freeze
    lora = np.zeros(1000, dtype=np.int64)  # the majority class alone
    result = compare(
        SEQUENCE,
        "accuracy",
        ["negative", "positive"],
        truth,
        {"freeze": freeze, "lora": lora, "full": full},
        baseline=("negative", np.zeros(1000, dtype=np.int64)),
    )
    assert result["baseline"]["validation_metric"] == 0.8 and result["reference"] == "full"
    stand = result["pilots"]
    assert stand["freeze"]["majority_share"] == 0.99 and stand["freeze"]["stuck"] and stand["freeze"]["tied"]
    assert stand["lora"]["majority_share"] == 1.0 and stand["lora"]["stuck"]
    assert stand["full"]["majority_share"] == 0.987 and not stand["full"]["stuck"]
    assert stand["full"]["baseline_difference_interval"][0] > 0
    # freeze is tied with full and cheaper, but it has not left the baseline
    pilots = [{**compared(name, "best"), **stand[name]} for name in ("freeze", "lora", "full")]
    verdict = decide(GOOD_FIT, pilots, baseline={**result["baseline"], "label": "negative"})
    assert verdict["strategy"] == "full"
    assert verdict["reasons"][1].endswith(
        "freeze, lora have not left the majority-class baseline (negative for every example: validation "
        "accuracy 0.8000), and cannot win"
    )


def test_entity_f1_resampled_by_sentence_agrees_with_the_metric():
    truth = [["B-LOC", "I-LOC", "O"], ["O", "S-PER"], ["B-ORG", "O", "O", "B-LOC"]]
    guess = [["B-LOC", "I-LOC", "O"], ["O", "O"], ["B-ORG", "O", "O", "B-PER"]]
    task = TaskConfig(type="token_classification")
    result = compare(task, "f1", ["O", "B-LOC", "I-LOC", "S-PER", "B-ORG", "B-PER"], truth, {"full": guess})
    assert result["pilots"]["full"]["validation_metric"] == pytest.approx(entity_scores(truth, guess)["f1"])
    # the majority tag of the training words, for every word
    names = ["O", "B-LOC", "I-LOC", "S-PER", "B-ORG", "B-PER"]
    assert majority(task, names, {"label": [[0, 1, 2, 0], [4, 0]]}, truth) == (
        "O",
        [["O"] * 3, ["O"] * 2, ["O"] * 4],
    )


def test_the_deadline_stops_training_after_the_step_that_reaches_it():
    from transformers import TrainerControl, TrainerState

    now = [0.0]
    deadline = Deadline(5.0, clock=lambda: now[0])
    state, control = TrainerState(max_steps=100), TrainerControl()
    deadline.on_train_begin(None, state, control)
    for step, seconds in enumerate([1.0, 3.0, 4.9], start=1):
        now[0], state.global_step = seconds, step
        deadline.on_step_end(None, state, control)
        assert not control.should_training_stop
    now[0], state.global_step = 5.2, 4
    deadline.on_step_end(None, state, control)
    assert control.should_training_stop
    deadline.on_train_end(None, state, control)
    # the next training run (retraining's fine-tuning after its masked-LM steps) starts its own clock
    control = TrainerControl()
    deadline.on_train_begin(None, state, control)
    now[0] = 9.0
    deadline.on_step_end(None, state, control)
    assert not control.should_training_stop
    deadline.on_train_end(None, state, control)
    assert deadline.runs == [
        {"steps": 4, "seconds": 5.2, "stopped_at_deadline": True},
        {"steps": 4, "seconds": pytest.approx(3.8), "stopped_at_deadline": False},
    ]


@pytest.mark.integration
def test_a_pilot_is_stopped_at_its_deadline(tiny_recipe, tmp_path):
    from hfadapt.data.splits import load_splits

    setting = load_recipe(raw=tiny_recipe())
    validation = load_splits(setting.data, setting.task).splits["validation"]
    pilot, predictions = run_pilot("full", setting, 40, tmp_path / "pilot", validation, seconds=0.0)
    # a deadline of 0 s: training stops after its first step, and says so
    assert pilot["steps"] == 1 and pilot["planned_steps"] == 40 and pilot["stopped_at_deadline"]
    assert len(predictions) == len(validation) and set(predictions) <= {0, 1}
    assert _notes({**pilot, "stuck": False, "tied": True}, "full") == (
        "best fine-tuning pilot; stopped at the deadline (0 s a run)"
    )


def test_a_budget_in_minutes_counts_the_fit_it_spent():
    with pytest.raises(HfadaptError) as caught:
        steps_for_seconds(10.0, 1.0, ("freeze", "lora", "full"), 0.5, spent=20.0)
    assert str(caught.value) == (
        "--budget-minutes 0.5 is too small for the pilots: the tokenizer fit and the probe took 20 s of it, and one "
        "training step takes 1.00 s here, so 3 equal shares (frozen layers, LoRA and full fine-tuning) get 2 steps "
        "each, fewer than 10; give at least 1 minute, or no budget for the tokenizer fit alone"
    )
    assert steps_for_seconds(100.0, 1.0, PILOTS, 2.0, spent=20.0) == 17  # 85% of 100 s in 5 shares of 1 s steps


@pytest.mark.integration
def test_a_pilot_reading_long_texts_in_windows_predicts_one_label_per_text(tiny_recipe, tmp_path):
    from hfadapt.data.splits import load_splits

    setting = load_recipe(raw=tiny_recipe(data={"max_length": 8, "long_texts": "windows"}))
    validation = load_splits(setting.data, setting.task).splits["validation"]
    pilot, predictions = run_pilot("full", setting, 5, tmp_path / "pilot", validation)
    # every text makes two windows or more at 8 tokens: the windows' predictions are pooled per text
    assert pilot["steps"] == 5 and not pilot["stopped_at_deadline"] and pilot["deadline_seconds"] is None
    assert len(predictions) == len(validation) and set(predictions) <= {0, 1}


@pytest.mark.integration
def test_imbalanced_classes_are_weighed_and_compared_by_macro_f1(tiny_checkpoint, tmp_path):
    # a positive review for every five negative ones: always saying negative scores an accuracy of about 0.83
    rows = [r for r in sentiment_rows(600, seed=9) if r["label"] == "negative"][:250]
    rows += [r for r in sentiment_rows(600, seed=9) if r["label"] == "positive"][:50]
    csv = write_csv(tmp_path / "imbalanced.csv", rows)
    advice = advise(str(tiny_checkpoint), str(csv), overrides=["data.max_length=32"])
    assert (
        advice["data_report"]["class_counts"]["train"]["negative"]
        >= 4 * (advice["data_report"]["class_counts"]["train"]["positive"])
    )
    # the classes are weighed in the loss, which makes macro F1 the main metric
    assert advice["main_metric"] == "f1_macro" and advice["recommended"]["task"]["class_weights"] == "auto"
    assert load_recipe(raw=advice["recommended"]).task.metric() == "f1_macro"
    # a metric the user chose stays
    chosen = advise(str(tiny_checkpoint), str(csv), overrides=["data.max_length=32", "task.main_metric=accuracy"])
    assert chosen["main_metric"] == "accuracy" and chosen["recommended"]["task"]["main_metric"] == "accuracy"


def check_price(price):
    """Every stage costs something; a timed stage costs its steps x its seconds a step; the total is their sum."""
    for stage in price["stages"]:
        assert stage["seconds"] > 0 and stage["rows"] > 0 and stage["basis"], stage
        if stage["stage"] != "tokenizer":
            assert stage["seconds"] == pytest.approx(stage["steps"] * stage["seconds_per_step"])
    assert price["seconds"] == pytest.approx(sum(stage["seconds"] for stage in price["stages"]))
    assert price["machine"]["device"] == "cpu" and price["machine"]["name"] == "CPU, 1 torch thread"
    return {stage["stage"]: stage for stage in price["stages"]}


@pytest.mark.integration
def test_without_a_budget_a_retraining_recipe_is_priced_stage_by_stage(tiny_checkpoint, tmp_path):
    rows = [{"text": r["text"].translate(CYRILLIC), "label": r["label"]} for r in sentiment_rows(400, seed=5)]
    csv = write_csv(tmp_path / "cyrillic.csv", rows)
    # blocks of 16 tokens: the corpus makes a few hundred, so masked-LM takes several steps of 32
    advice = advise(str(tiny_checkpoint), str(csv), overrides=["data.max_length=32", "pretrain.block_size=16"])
    assert advice["pilots"] == [] and advice["verdict"]["strategy"] == "retrain"
    stages = check_price(advice["cost"])
    assert list(stages) == ["tokenizer", "pretraining", "pretraining_evaluation", "finetuning", "evaluation"]
    # the fit timed this tokenizer on the training texts; the corpus is those less the 1% it holds out by hash
    fit_seconds = advice["fit"]["tokenizer_seconds"]
    assert 0.95 * fit_seconds < stages["tokenizer"]["seconds"] <= fit_seconds
    sizes = advice["data_report"]["sizes"]
    assert (
        stages["finetuning"]["steps"] == math.ceil(sizes["train"] / 32) * 3
        and stages["finetuning"]["rows"] == sizes["train"]
    )
    # validation after each of the 3 epochs and once more after training, the test split once; one batch each
    assert stages["evaluation"]["passes"] == {"validation": 4, "test": 1} and stages["evaluation"]["steps"] == 5
    # the blocks and masked-LM steps the recommended recipe really trains, counted by its own pretraining stage
    recipe = load_recipe(raw=advice["recommended"]).with_output(tmp_path / "run")
    packing = retrain(recipe, until="pretrained")["pretrained"]["packing"]
    priced = stages["pretraining"]
    assert packing["train"]["blocks"] > 100
    assert priced["rows"] == pytest.approx(packing["train"]["blocks"], rel=0.03)
    assert priced["steps"] == math.ceil(priced["rows"] / 32)
    assert abs(stages["pretraining_evaluation"]["rows"] - packing["validation"]["blocks"]) <= 1
    assert stages["pretraining_evaluation"]["passes"] == {"validation": 2}  # before and after; every 500 steps: none


@pytest.mark.integration
def test_run_minutes_spends_the_time_a_retraining_recipe_leaves_on_masked_lm_steps(tiny_checkpoint, tmp_path):
    rows = [{"text": r["text"].translate(CYRILLIC), "label": r["label"]} for r in sentiment_rows(400, seed=5)]
    csv = write_csv(tmp_path / "cyrillic.csv", rows)
    overrides = ["data.max_length=32", "pretrain.block_size=16"]
    advice = advise(str(tiny_checkpoint), str(csv), tmp_path / "advice", run_minutes=600, overrides=overrides)
    assert advice["verdict"]["strategy"] == "retrain"
    fitted, stages = advice["cost"]["fitted"], check_price(advice["cost"])
    # ten hours leave far more than masked-LM steps may take: 10 passes over the corpus, no more
    per_pass, steps = stages["pretraining"]["per_pass"], stages["pretraining"]["steps"]
    assert per_pass == math.ceil(stages["pretraining"]["rows"] / 32) and steps == 10 * per_pass
    [change] = fitted["changes"]
    assert change["change"] == f"masked-LM steps {per_pass:,} -> {steps:,}, 10 passes over the corpus"
    assert change["spends"] > 0 and "saves" not in change
    assert advice["cost"]["seconds"] == pytest.approx(fitted["seconds_before"] + change["spends"])
    assert advice["cost"]["seconds"] <= 600 * 60 * run_minutes.FIT_SHARE
    report = (tmp_path / "advice" / "advice.md").read_text()
    assert f"{change['change']} (spends " in report
    # the written recipe trains those steps: its own pretraining stage counts them
    recipe = load_recipe(tmp_path / "advice" / "recommended.yaml").with_output(tmp_path / "run")
    assert recipe.pretrain.training["max_steps"] == steps
    assert retrain(recipe, until="pretrained")["pretrained"]["steps"] == steps


@pytest.mark.integration
def test_a_fine_tuning_recipe_is_priced_for_its_steps_and_evaluations(tiny_checkpoint, sentiment_csv, tmp_path):
    advice = advise(str(tiny_checkpoint), str(sentiment_csv), overrides=["data.max_length=32"])
    assert advice["verdict"]["strategy"] == "full"
    stages = check_price(advice["cost"])
    assert list(stages) == ["finetuning", "evaluation"]
    # the steps and evaluations the recipe really runs
    recipe = load_recipe(raw=advice["recommended"]).with_output(tmp_path / "run")
    history = json.loads((finetune(recipe).run_dir / "log_history.json").read_text())
    assert stages["finetuning"]["steps"] == max(h["step"] for h in history) == 30
    evaluations = [h for h in history if "eval_runtime" in h]  # during training; then validation and test once
    assert stages["evaluation"]["passes"] == {"validation": len(evaluations) + 1, "test": 1}


@pytest.mark.integration
def test_texts_read_in_windows_are_priced_as_the_rows_they_make(tiny_checkpoint, tmp_path):
    from transformers import AutoTokenizer

    from hfadapt.data.long_texts import encode_windows
    from hfadapt.data.splits import load_splits

    rows = [{"text": " ".join([r["text"]] * 25), "label": r["label"]} for r in sentiment_rows(200, seed=8)]
    csv = write_csv(tmp_path / "long.csv", rows)
    advice = advise(str(tiny_checkpoint), str(csv), overrides=["data.max_length=64"])
    recipe = load_recipe(raw=advice["recommended"])
    assert recipe.data.long_texts == "windows" and recipe.data.max_length == 128
    stages = check_price(advice["cost"])
    # every training text's windows, counted here without advise: the rows the run trains on
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    train = load_splits(recipe.data, recipe.task).splits["train"]
    windows = len(encode_windows(tokenizer, list(train["text"]), 128, 32)["input_ids"])
    assert windows > 2 * len(train)
    assert stages["finetuning"]["rows"] == windows
    assert stages["finetuning"]["steps"] == math.ceil(windows / 32) * 3
    assert "windows a text" in stages["finetuning"]["basis"]


@pytest.mark.integration
def test_run_minutes_cuts_the_recipe_until_its_price_fits(tiny_checkpoint, tmp_path):
    rows = [{"text": " ".join([r["text"]] * 25), "label": r["label"]} for r in sentiment_rows(200, seed=8)]
    csv = write_csv(tmp_path / "long.csv", rows)
    whole = advise(str(tiny_checkpoint), str(csv), overrides=["data.max_length=64"])
    minutes = whole["cost"]["seconds"] * 0.3 / 60
    advice = advise(
        str(tiny_checkpoint), str(csv), tmp_path / "advice", run_minutes=minutes, overrides=["data.max_length=64"]
    )
    fitted = advice["cost"]["fitted"]
    assert advice["cost"]["seconds"] <= minutes * 60 * run_minutes.FIT_SHARE and fitted["minutes"] == minutes
    assert fitted["changes"] and all(change["saves"] > 0 for change in fitted["changes"])  # a fine-tuning recipe
    assert fitted["seconds_before"] - advice["cost"]["seconds"] == pytest.approx(
        sum(change["saves"] for change in fitted["changes"])
    )
    # what each change names is what the written recipe differs by, and nothing else
    before, after = load_recipe(raw=whole["recommended"]), load_recipe(tmp_path / "advice" / "recommended.yaml")
    expected = before.to_dict()
    for change in fitted["changes"]:
        setting, old, _, new = change["change"].rsplit(" ", 3)
        if setting == "epochs":
            assert before.training["num_train_epochs"] == float(old)
            expected["training"]["num_train_epochs"] = float(new)
        elif setting == "data.long_texts":
            assert (old, new) == ("windows", "head_tail")
            expected["data"].update(long_texts="head_tail", stride=None)
        else:
            assert setting == "data.max_length" and before.data.max_length == int(old) and int(new) >= 64
            expected["data"]["max_length"] = int(new)
    assert after.to_dict() == expected
    report = (tmp_path / "advice" / "advice.md").read_text()
    assert f"To fit {minutes:g} minutes (`--run-minutes`; its price may fill 85% of them, " in report
    assert all(f"{change['change']} (saves " in report for change in fitted["changes"])


@pytest.mark.integration
def test_a_run_minutes_no_recipe_can_fit_is_refused_before_anything_is_written(
    tiny_checkpoint, sentiment_csv, tmp_path
):
    with pytest.raises(HfadaptError) as caught:
        advise(str(tiny_checkpoint), str(sentiment_csv), tmp_path / "advice", run_minutes=1e-6)
    message = str(caught.value)
    assert message.startswith("--run-minutes 1e-06: the recommended recipe takes about ")
    # 3 epochs cut to 1; max_length 128 is the default, cut to the floor of 64; it still does not fit
    assert "(epochs 3 -> 1; data.max_length 128 -> 64) still about " in message
    given = re.search(r"give --run-minutes ([\d.]+) or more \(its price may fill 85% of them\), or train on", message)
    least = float(given.group(1))
    assert least >= 0.1
    assert list(tmp_path.iterdir()) == []  # no advice folder, no advice.incomplete


def test_run_minutes_must_be_a_positive_number(capsys):
    args = ["advise", "--model", "no-such-model", "--data", "no-such.csv", "--run-minutes"]
    assert _parser().parse_args([*args, "20"]).run_minutes == 20.0
    for bad in ("0", "-5"):
        assert main([*args, bad]) == 2
        assert capsys.readouterr().err == (
            f"hfadapt: error: --run-minutes: expected a positive number of minutes, got {float(bad)!r}\n"
        )
    for bad in (True, "20", float("nan")):
        with pytest.raises(HfadaptError, match=r"--run-minutes: expected a positive number of minutes, got "):
            advise("no-such-model", "no-such.csv", run_minutes=bad)


class PricedByFormula:
    """A stand-in for the pricer: masked-LM costs 1 s a step (1,445 steps unless set; 1,000 a pass over the
    corpus), fine-tuning 600 s an epoch at data.max_length 512 (in proportion to it), twice that in windows,
    and evaluation 10 s."""

    began = 0.0

    def __init__(self, *args):
        pass

    def close(self):
        pass

    def price(self, recipe):
        steps = recipe.pretrain.training.get("max_steps", 1445) if recipe.pretrain is not None else 0
        epochs = recipe.training["num_train_epochs"]
        windows = 2 if recipe.data.long_texts == "windows" else 1
        tuning = epochs * 600 * windows * recipe.data.max_length / 512
        stages = [
            {"stage": "finetuning", "title": "fine-tuning", "seconds": tuning},
            {"stage": "evaluation", "title": "evaluation", "seconds": 10.0},
        ]
        if recipe.pretrain is not None:
            stages.insert(0, {"stage": "pretraining", "title": "masked-LM pretraining", "steps": steps})
            stages[0].update(seconds_per_step=1.0, per_pass=1000, seconds=float(steps))
        return {"stages": stages, "seconds": sum(s["seconds"] for s in stages)}


NEWS = {
    "model": {"name_or_path": "builtin:minilm"},
    "data": {"source": "news.csv", "max_length": 512, "long_texts": "windows"},
    "corpus": {"sources": ["news.csv"]},
    "tokenizer": {},
    "pretrain": {},
    "output": {"dir": "runs/news"},
}


@pytest.mark.parametrize(
    "minutes, changes",
    [
        # 5,055 s fits 85% of 110 minutes (5,610 s); the 555 s left buy as many masked-LM steps
        (110, ["masked-LM steps 1,445 -> 2,000"]),
        # ... but never more than 10 passes over the corpus
        (400, ["masked-LM steps 1,445 -> 10,000, 10 passes over the corpus"]),
        # epochs, a whole one at a time: 2 make 3,855 s, under 85% of 80 minutes (4,080 s); 225 s left
        (80, ["epochs 3 -> 2", "masked-LM steps 1,445 -> 1,670"]),
        # 1 epoch makes 2,655 s; then as many masked-LM steps fewer as the excess over 1,530 s takes
        (30, ["epochs 3 -> 1", "masked-LM steps 1,445 -> 320"]),
        # not below 300 steps (1,510 s); then head and tail in place of windows (910 s)
        (25, ["epochs 3 -> 1", "masked-LM steps 1,445 -> 300", "data.long_texts windows -> head_tail"]),
        # max_length 512, 384, 288, 216, 160: 160 is the first to fit 510 s
        (
            10,
            [
                "epochs 3 -> 1",
                "masked-LM steps 1,445 -> 300",
                "data.long_texts windows -> head_tail",
                "data.max_length 512 -> 160",
            ],
        ),
    ],
)
def test_run_minutes_fits_the_recipe_in_order_each_setting_only_as_far_as_it_must(monkeypatch, minutes, changes):
    monkeypatch.setattr(cost, "Pricer", PricedByFormula)
    recipe, price = run_minutes.fit_minutes(load_recipe(raw=NEWS), minutes, None, None, {})
    assert [c["change"] for c in price["fitted"]["changes"]] == changes
    assert price["seconds"] <= minutes * 60 * 0.85 and price["fitted"]["seconds_before"] == 5055
    assert price["seconds"] == PricedByFormula().price(recipe)["seconds"]
    spent = [c["spends"] for c in price["fitted"]["changes"] if "spends" in c]
    saved = [c["saves"] for c in price["fitted"]["changes"] if "saves" in c]
    assert price["seconds"] == pytest.approx(5055 - sum(saved) + sum(spent))
    assert all(s > 0 for s in spent + saved)


def test_run_minutes_leaves_a_fine_tuning_recipe_that_fits_as_it_is(monkeypatch):
    monkeypatch.setattr(cost, "Pricer", PricedByFormula)
    tuning = {k: v for k, v in NEWS.items() if k not in ("corpus", "tokenizer", "pretrain")}
    recipe, price = run_minutes.fit_minutes(load_recipe(raw=tuning), 200, None, None, {})
    assert price["fitted"]["changes"] == [] and price["seconds"] == 3610
    assert recipe.to_dict() == load_recipe(raw=tuning).to_dict()


def test_run_minutes_below_the_least_recipe_is_refused_with_the_minutes_it_needs(monkeypatch):
    monkeypatch.setattr(cost, "Pricer", PricedByFormula)
    with pytest.raises(HfadaptError) as caught:
        run_minutes.fit_minutes(load_recipe(raw=NEWS), 5, None, None, {})
    # at its floors: 300 masked-LM steps, 1 epoch, head and tail, 64 tokens: 300 + 75 + 10 = 385 s
    assert str(caught.value) == (
        "--run-minutes 5: the recommended recipe takes about 84.2 minutes on this machine, and cut as far as advise "
        "cuts it (epochs 3 -> 1; masked-LM steps 1,445 -> 300; data.long_texts windows -> head_tail; "
        "data.max_length 512 -> 64) still about 6.4 minutes (masked-LM pretraining 5.0 minutes, fine-tuning 1.2 "
        "minutes, evaluation 0.2 minutes); give --run-minutes 7.6 or more (its price may fill 85% of them), or "
        "train on fewer texts (data.max_train_samples=N), or run on a faster machine (a GPU)"
    )


def test_batches_are_priced_at_the_padded_lengths_their_sampler_makes():
    from hfadapt.advice.timing import shapes

    # sorted longest first, batches of 4 of the lengths 1..16 pad to 16, 12, 8 and 4; in three groups of
    # those, each at its median rounded up to a multiple of 8 (never past the longest row)
    assert shapes(list(range(1, 17)), 4, "sorted", 0) == [(8, 0.5), (16, 0.5)]
    lengths = np.random.default_rng(0).integers(8, 128, 2000).tolist()
    shares = {order: dict(shapes(lengths, 32, order, 0)) for order in ("random", "grouped")}
    # random batches of 32 almost always hold a row near the longest; batches grouped by length do not
    assert list(shares["random"]) == [max(lengths)]
    assert len(shares["grouped"]) == 3 and max(shares["grouped"]) <= max(lengths)
    for found in shares.values():
        assert sum(found.values()) == pytest.approx(1.0)
