"""The advice as a report: advice.md, and the pilots' curves in pilots.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hfadapt.recipe import dump_recipe, load_recipe
from hfadapt.runs import curves


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
    if verdict.get("tfidf_baseline"):
        lines += ["", f"**Against the TF-IDF baseline:** {verdict['tfidf_baseline']}."]
    if advice["fit"].get("length") is not None:
        lines += ["", f"**Texts cut:** {advice['fit']['length']['advice']}."]
    lines += _fit_section(advice) + _probe_section(advice) + _baseline_section(advice)
    lines += _pilots_section(advice) + _cost_section(advice)
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
    truncation = fit.get("truncation")
    if truncation is None:
        return lines
    lines += [
        "",
        f"At the recipe's data.max_length={truncation['max_length']}, with the checkpoint's tokenizer:",
        "",
        "| split | texts measured | texts cut | tokens kept |",
        "|---|---|---|---|",
    ]
    for split in ("train", "validation", "test"):
        row = truncation[split]
        lines.append(f"| {split} | {row['texts']:,} | {row['cut']:.1%} | {row['tokens_kept']:.1%} |")
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
        f"validation texts ({probe['seconds']:.0f} s); the two are compared on the same texts (paired bootstrap: "
        f"difference {100 * (probe['new'] - probe['checkpoint']):+.1f} points, SE {100 * probe['difference_se']:.1f}, "
        f"95% interval {100 * probe['difference_interval'][0]:+.1f} to {100 * probe['difference_interval'][1]:+.1f}). "
        "[UNK] is a single id: what a vocabulary cannot spell is lost to this model as it is to the network.",
        "",
        "| | checkpoint's tokenizer | WordPiece trained on these texts |",
        "|---|---|---|",
        f"| validation accuracy | {probe['checkpoint']:.4f} | {probe['new']:.4f} |",
    ]


def _baseline_section(advice: dict[str, Any]) -> list[str]:
    """The TF-IDF baseline's validation score, and each pilot's paired difference to it."""
    tfidf = advice.get("tfidf_baseline")
    if tfidf is None:
        return []
    lines = ["", "## TF-IDF baseline", ""]
    if tfidf["score"] is None:
        return lines + [f"None: {tfidf['reason']}."]
    metric = advice["main_metric"]
    comparison = (advice["comparison"] or {}).get("tfidf")
    if comparison:
        low, high = comparison["interval"]
        figure = f"{metric} {comparison['validation_metric']:.4f} (95% interval {low:.4f} to {high:.4f})"
    else:
        figure = f"{tfidf['metric']} {tfidf['score']:.4f}"
    lines.append(
        f"{tfidf['method']}, trained on the {tfidf['train_size']:,} training texts and scored on the "
        f"{tfidf['eval_size']:,} validation texts the pilots predict, in {tfidf['seconds']:.0f} s: validation "
        f"{figure}. What a cheap model reaches in seconds on a CPU: the bar a run's hours must clear."
    )
    if not comparison:
        return lines
    lines += [
        "",
        "Each pilot against it, paired on the same resamples as the pilots' comparison: pilot less baseline.",
        "",
        f"| pilot | validation {metric} | difference to the baseline | SE | 95% interval of the difference |",
        "|---|---|---|---|---|",
    ]
    for p in advice["pilots"]:
        low, high = p["tfidf_difference_interval"]
        lines.append(
            f"| {_name(p)} | {p['validation_metric']:.4f} | {p['tfidf_difference']:+.4f} | "
            f"{p['tfidf_difference_se']:.4f} | {low:+.4f} to {high:+.4f} |"
        )
    return lines


def _pilots_section(advice: dict[str, Any]) -> list[str]:
    pilots, metric = advice["pilots"], advice["main_metric"]
    if not pilots:
        return ["", "## Pilots", "", "None: no budget was given (`--budget-steps` or `--budget-minutes`)."]
    comparison = advice["comparison"]
    lines = [
        "",
        "## Pilots",
        "",
        f"Each pilot fine-tunes for {advice['budget']['steps_per_pilot']} steps on the same split; retraining first "
        "rebuilds the vocabulary and runs as many masked-LM steps. "
        + (
            "No retraining pilot: the checkpoint's tokenizer fits the texts, and a tokenizer that fits is never "
            "retrained; its share of the budget went to the others. "
            if "retrain" in advice["skipped"]
            else ""
        )
        + f"All pilots predicted the same {pilots[0]['validation_size']:,} validation examples, compared paired: "
        f"{comparison['resamples']:,} bootstrap resamples of those examples (seed {comparison['seed']}), the same "
        "for every pilot. A pilot is tied with the best fine-tuning pilot when the 95% interval of their "
        "difference contains 0; SE is the standard deviation of the resampled differences.",
        "",
    ]
    baseline = comparison["baseline"]
    if baseline is not None:
        low, high = baseline["interval"]
        lines += [
            f"Majority-class baseline ({baseline['label']} for every example): validation {metric} "
            f"{baseline['validation_metric']:.4f} (95% interval {low:.4f} to {high:.4f}). A pilot that gives at "
            "least 99% of its predictions that class, or whose paired difference to the baseline has a 95% "
            "interval reaching 0, has not left it and cannot win.",
            "",
        ]
    reference = comparison["reference"]
    lines += [
        f"| pilot | steps | validation {metric} | 95% interval | difference to {reference} | SE | "
        "95% interval of the difference | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in pilots:
        low, high = p["interval"]
        d_low, d_high = p["difference_interval"]
        lines.append(
            f"| {_name(p)} | {p['steps']} | {p['validation_metric']:.4f} | {low:.4f} to {high:.4f} | "
            f"{p['difference']:+.4f} | {p['difference_se']:.4f} | {d_low:+.4f} to {d_high:+.4f} | "
            f"{_notes(p, reference)} |"
        )
    lines += [
        "",
        "Peak memory is the growth of this process's resident memory above its level when the pilot started "
        "(sampled every 50 ms; memory an earlier pilot left allocated is not counted again); training state is "
        "weights plus, for trainable weights, gradients and AdamW's two moments (fp32). Curves: pilots.png.",
        "",
        "| pilot | trainable parameters | validation loss | train samples/s | s/step | peak memory growth MB "
        "| peak GPU MB | training state MB | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in pilots:
        trainable = f"{p['parameters']['trainable']:,} ({p['parameters']['trainable_percent']:.1f}%)"
        cuda = "n/a" if p["peak_cuda_mb"] is None else f"{p['peak_cuda_mb']:.0f}"
        lines.append(
            f"| {_name(p)} | {trainable} | {p['validation_loss']:.4f} | {p['train_samples_per_second']:.1f} | "
            f"{p['seconds_per_step']:.3f} | {p['peak_rss_growth_mb']:.0f} | {cuda} | {p['training_state_mb']:.1f} | "
            f"{p['seconds']:.0f} |"
        )
    return lines


def _name(pilot: dict[str, Any]) -> str:
    if not pilot["mlm_steps"]:
        return pilot["name"]
    before, after = pilot["pretrain"]["perplexity_before"], pilot["pretrain"]["perplexity"]
    return f"{pilot['name']} ({pilot['mlm_steps']} masked-LM steps, perplexity {before:.0f} -> {after:.0f})"


def _notes(pilot: dict[str, Any], reference: str) -> str:
    """What the comparison says of a pilot, and whether its deadline stopped it."""
    notes = []
    if pilot["stuck"]:
        notes.append("has not left the majority-class baseline")
    elif pilot["name"] == reference:
        notes.append("best fine-tuning pilot")
    elif pilot["tied"]:
        notes.append("tied with the best")
    else:
        notes.append("above the best" if pilot["difference"] > 0 else "below the best")
    if pilot["stopped_at_deadline"]:
        notes.append(f"stopped at the deadline ({pilot['deadline_seconds']:.0f} s a run)")
    return "; ".join(notes)


def _cost_section(advice: dict[str, Any]) -> list[str]:
    """The price of each stage of the recommended recipe, timed on this machine; what --run-minutes cut; and
    the pilot's own throughput where one ran."""
    cost = advice.get("cost")
    if cost is None:  # an advice.json written before advise priced its recipe
        return ["", "## Cost of the full run", "", "Not priced."] + _pilot_speed(advice)
    lines = [
        "",
        "## Cost of the full run",
        "",
        f"About **{_duration(cost['seconds'])}** on this machine ({_machine(cost['machine'])}), priced stage by "
        "stage: each stage's steps counted from the data, and a step timed here at the recommended recipe's own "
        "batch sizes, padded lengths and precision (one warm-up step, then the mean of 2 timed steps per shape). "
        f"Not counted: {cost['not_counted']}.",
        "",
        "| stage | steps | seconds a step | rows | time | basis |",
        "|---|---|---|---|---|---|",
    ]
    for stage in cost["stages"]:
        steps = "-" if stage["steps"] is None else f"{stage['steps']:,}"
        each = "-" if stage["seconds_per_step"] is None else f"{stage['seconds_per_step']:.3f}"
        lines.append(
            f"| {stage['title']} | {steps} | {each} | {stage['rows']:,} | {_duration(stage['seconds'])} | "
            f"{stage['basis']} |"
        )
    lines.append(f"| **total** | | | | **{_duration(cost['seconds'])}** | |")
    fitted = cost.get("fitted")
    if fitted is not None:
        lines.append("")
        share = f"its price may fill {fitted['share']:.0%} of them, the rest is for what it does not count"
        if fitted["changes"]:
            changes = "; ".join(
                f"{c['change']} ({'saves' if 'saves' in c else 'spends'} {_duration(c.get('saves', c.get('spends')))})"
                for c in fitted["changes"]
            )
            lines.append(
                f"To fit {fitted['minutes']:g} minutes (`--run-minutes`; {share}), from about "
                f"{_duration(fitted['seconds_before'])}: {changes}."
            )
        else:
            lines.append(f"The recipe fits {fitted['minutes']:g} minutes (`--run-minutes`; {share}) as recommended.")
    return lines + _pilot_speed(advice)


def _pilot_speed(advice: dict[str, Any]) -> list[str]:
    """What the recommended strategy's pilot measured a step at, over the full run's steps."""
    estimate = advice["estimate"]
    if estimate is None:
        return []
    text = f"{estimate['steps']:,} fine-tuning steps x {estimate['seconds_per_step']:.3f} s"
    if "mlm_steps" in estimate:
        text = f"{estimate['mlm_steps']:,} masked-LM steps x {estimate['mlm_seconds_per_step']:.3f} s + " + text
    return [
        "",
        f"The pilot's own speed, at its data.max_length={advice['fit']['truncation']['max_length']}, gives "
        f"{_duration(estimate['train_seconds'])} of training ({text}).",
    ]


def cost_line(advice: dict[str, Any]) -> str:
    """One line: the recommended recipe's price on this machine, stage by stage (for the end of `hfadapt advise`)."""
    cost = advice["cost"]
    stages = ", ".join(f"{s['title']} {_duration(s['seconds'])}" for s in cost["stages"])
    fitted = cost.get("fitted")
    fits = f", fitted to --run-minutes {fitted['minutes']:g}" if fitted and fitted["changes"] else ""
    return (
        f"the recommended run takes about {_duration(cost['seconds'])} on this machine "
        f"({_machine(cost['machine'])}{fits}): {stages}"
    )


def _machine(machine: dict[str, Any]) -> str:
    def name(precision: str) -> str:
        return "fp32" if precision == "fp32" else f"{precision} autocast"

    precision = name(machine["precision"])
    if machine.get("pretraining_precision", machine["precision"]) != machine["precision"]:
        precision = f"fine-tuning in {precision}, pretraining in {name(machine['pretraining_precision'])}"
    why = f": {machine['bf16_why']}" if machine.get("bf16_why") else ""
    return f"{machine['name']}, {precision}{why}"


def _duration(seconds: float) -> str:
    return (
        f"{seconds:.1f} seconds"
        if seconds < 10
        else f"{seconds:.0f} seconds"
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
