"""The advice as a report: advice.md, and the pilots' curves in pilots.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hfadapt import curves
from hfadapt.advise.pilots import PILOT_EVAL_SAMPLES
from hfadapt.recipe import dump_recipe, load_recipe


def plot(pilots: list[dict[str, Any]], metric: str, path: str | Path, title: str = "") -> Path:
    """Validation loss and validation `metric` against fine-tuning steps, one line per pilot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for pilot in pilots:
        label = pilot["name"] + (f" (after {pilot['mlm_steps']} masked-LM steps)" if pilot["mlm_steps"] else "")
        history = pilot["log_history"]
        train = [(h["step"], h["loss"]) for h in history if "loss" in h]
        losses = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
        scores = [(h["step"], h[f"eval_{metric}"]) for h in history if f"eval_{metric}" in h]
        line = left.plot(*zip(*losses, strict=True), "o-", label=f"{label}, validation") if losses else None
        color = line[0].get_color() if line else None
        if train:
            left.plot(*zip(*train, strict=True), ":", color=color, alpha=0.6, label=f"{label}, training")
        if scores:
            right.plot(*zip(*scores, strict=True), "o-", color=color, label=label)
    left.set_xlabel("fine-tuning step")
    left.set_ylabel("loss")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    right.set_xlabel("fine-tuning step")
    right.set_ylabel(f"validation {metric}")
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    return curves.save(figure, title, path)


def render(advice: dict[str, Any]) -> str:
    """advice.md: the fit, the pilots, the verdict with its reasons, the cost of the full run, the recipe."""
    verdict = advice["verdict"]
    lines = [
        f"# Advice: {advice['model']} on {advice['data']}",
        "",
        f"**Verdict: {_strategy_text(verdict['strategy'])}.**",
        "",
        *[f"- {reason}" for reason in verdict["reasons"]],
    ]
    lines += _fit_section(advice) + _probe_section(advice) + _pilots_section(advice) + _cost_section(advice)
    command = "retrain" if advice["recommended"].get("pretrain") else "finetune"
    lines += [
        "",
        "## Recipe",
        "",
        f"`recommended.yaml`, run with `hfadapt {command} recommended.yaml`:",
        "",
        "```yaml",
        dump_recipe(load_recipe(raw=advice["recommended"])).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


FIT_ROWS = [
    ("[UNK] rate", "unk_rate", "{:.2%}"),
    ("tokens per character", "tokens_per_char", "{:.3f}"),
    ("tokens per word", "tokens_per_word", "{:.3f}"),
    ("words cut in 3+ pieces", "split_3plus", "{:.1%}"),
    ("coverage of the 1,000 most frequent characters", "char_coverage", "{:.1%}"),
    ("vocabulary size", "vocab_size", "{:,}"),
]


def _fit_section(advice: dict[str, Any]) -> list[str]:
    fit = advice["fit"]
    lines = [
        "",
        f"## Tokenizer fit ({fit['texts']:,} training texts)",
        "",
        "| | checkpoint's tokenizer | WordPiece trained on these texts |",
        "|---|---|---|",
    ]
    for label, key, form in FIT_ROWS:
        values = [fit[side][key] for side in ("checkpoint", "new")]
        lines.append(f"| {label} | " + " | ".join("n/a" if v is None else form.format(v) for v in values) + " |")
    return lines


def _probe_section(advice: dict[str, Any]) -> list[str]:
    probe = advice["probe"]
    if probe is None:
        return []
    return [
        "",
        "## What the tokens let a model read",
        "",
        "A logistic regression on TF-IDF weights of token ids and id bigrams, trained on the "
        f"{advice['data_report']['sizes']['train']:,} training texts and scored on {probe['validation_size']:,} "
        f"validation texts ({probe['seconds']:.0f} s; one standard error about {probe['tolerance']:.3f}). "
        "[UNK] is a single id: what a vocabulary cannot spell is lost to this model as it is to the network.",
        "",
        "| | checkpoint's tokenizer | WordPiece trained on these texts |",
        "|---|---|---|",
        f"| validation accuracy | {probe['checkpoint']:.4f} | {probe['new']:.4f} |",
    ]


def _pilots_section(advice: dict[str, Any]) -> list[str]:
    pilots, metric = advice["pilots"], advice["main_metric"]
    if not pilots:
        return ["", "## Pilots", "", "None: no budget was given (`--budget-steps` or `--budget-minutes`)."]
    lines = [
        "",
        "## Pilots",
        "",
        f"Each pilot fine-tunes for {advice['budget']['steps_per_pilot']} steps on the same split "
        f"(validation scored on at most {PILOT_EVAL_SAMPLES} texts; one standard error is about "
        f"{advice['verdict']['tolerance']:.3f}); retraining first rebuilds the vocabulary and runs as many masked-LM "
        "steps. Peak memory is the growth of this process's resident memory above its level when the pilot started "
        "(sampled every 50 ms); training state is weights plus, for trainable weights, gradients and AdamW's two "
        "moments (fp32). Curves: pilots.png.",
        "",
        f"| pilot | trainable parameters | validation {metric} | validation loss | train samples/s | s/step "
        "| peak memory growth MB | training state MB | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in pilots:
        name = p["name"]
        if p["mlm_steps"]:
            before, after = p["pretrain"]["perplexity_before"], p["pretrain"]["perplexity"]
            name += f" ({p['mlm_steps']} masked-LM steps, perplexity {before:.0f} -> {after:.0f})"
        trainable = f"{p['parameters']['trainable']:,} ({p['parameters']['trainable_percent']:.1f}%)"
        lines.append(
            f"| {name} | {trainable} | {p['validation_metric']:.4f} | {p['validation_loss']:.4f} | "
            f"{p['train_samples_per_second']:.1f} | {p['seconds_per_step']:.3f} | {p['peak_rss_growth_mb']:.0f} | "
            f"{p['training_state_mb']:.1f} | {p['seconds']:.0f} |"
        )
    return lines


def _cost_section(advice: dict[str, Any]) -> list[str]:
    estimate = advice["estimate"]
    if estimate is None:
        return ["", "## Cost of the full run", "", "Not estimated: no pilot measured the throughput."]
    text = f"{estimate['steps']:,} fine-tuning steps x {estimate['seconds_per_step']:.3f} s"
    if "mlm_steps" in estimate:
        text = f"{estimate['mlm_steps']:,} masked-LM steps x {estimate['mlm_seconds_per_step']:.3f} s + " + text
    return [
        "",
        "## Cost of the full run",
        "",
        f"About {_duration(estimate['train_seconds'])} of training on this machine ({text}, the speeds measured in "
        "the pilot), plus evaluation and saving.",
    ]


def _duration(seconds: float) -> str:
    return (
        f"{seconds:.0f} seconds"
        if seconds < 90
        else f"{seconds / 60:.0f} minutes"
        if seconds < 5400
        else f"{seconds / 3600:.1f} hours"
    )


def _strategy_text(strategy: str) -> str:
    return {
        "retrain": "retrain: a tokenizer trained on the data, the vocabulary rebuilt, masked-LM "
        "pretraining, then fine-tuning (hfadapt retrain)",
        "freeze": "fine-tune with the embeddings and lower layers frozen (hfadapt finetune)",
        "lora": "fine-tune with LoRA adapters (hfadapt finetune)",
        "full": "full fine-tuning (hfadapt finetune)",
    }[strategy]
