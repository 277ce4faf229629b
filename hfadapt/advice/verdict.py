"""The verdict: which strategy to recommend, from the tokenizer's fit, the probe and the pilots."""

from __future__ import annotations

from typing import Any

PILOTS = ("freeze", "lora", "full", "retrain")
UNK_LIMIT = 0.05  # above this [UNK] rate the model cannot see a twentieth of its input
COVERAGE_LIMIT = 0.95  # share of the corpus's 1,000 most frequent characters the tokenizer must know
STEP_SLACK = 1.1  # steps within 10% of the fastest count as equally fast: a few timed steps do not rank closer
RULE = (
    "paired bootstrap over the validation examples: a pilot is tied with the best fine-tuning pilot when the 95% "
    "interval of their difference contains 0, and has not left the majority-class baseline when it gives at least "
    "99% of its predictions the majority class or the interval of its difference to the baseline reaches 0; ties go "
    "to the fastest step, then the least memory, then the fewest trainable parameters"
)


def pilot_names(checkpoint_fit: dict[str, Any]) -> tuple[str, ...]:
    """The pilots worth running: a tokenizer that fits is never retrained, so it gets no retraining pilot."""
    bad, _ = _fit_reasons(checkpoint_fit)
    return PILOTS if bad else tuple(name for name in PILOTS if name != "retrain")


def decide(
    checkpoint_fit: dict[str, Any],
    pilots: list[dict[str, Any]],
    probe: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The strategy to recommend, with its reasons.

    The pilots come compared (`compare.compare`): each has its `validation_metric`, whether it is
    `tied` with the best fine-tuning pilot (the 95% interval of their paired difference contains 0),
    its `difference_interval` to it, and whether it is `stuck` at the majority-class baseline. A
    stuck pilot cannot win.

    A checkpoint's tokenizer fits badly when its [UNK] rate is above UNK_LIMIT or it covers fewer
    than COVERAGE_LIMIT of the corpus's frequent characters. A good fit never retrains: among the
    fine-tuning pilots tied with the best, the cheapest wins (`_cheapest`). With a bad fit,
    retraining, when either
    - the probe shows that the checkpoint's tokens hide what the task needs. Short pilots cannot
      show this: they measure the first steps of training, and the retraining pilot's rebuilt
      embeddings have had only a few masked-LM steps; or
    - the retraining pilot left the baseline and is not worse than the best fine-tuning pilot (the
      interval of its difference reaches 0 or above), or no fine-tuning pilot left the baseline;
    or, with neither a probe nor pilots that left the baseline, the fit alone. Otherwise the best
    fine-tuning pilot.

    Args:
        checkpoint_fit: the checkpoint tokenizer's fit (`tokenizer_fit`).
        pilots: the pilots' figures with their comparison.
        probe: the linear probe, or None.
        baseline: the majority-class baseline (`compare.compare`'s), or None.

    Returns:
        `strategy`, `reasons` (sentences) and the `rule` the pilots were compared by.
    """
    bad, fits = _fit_reasons(checkpoint_fit)
    hidden, probed = _probe_reason(probe) if probe is not None else (None, None)
    pick, why_pick = _best_fine_tuning([p for p in pilots if p["name"] != "retrain"], baseline)
    none_left = _none_left(pilots, baseline, every=True) if pilots and all(p["stuck"] for p in pilots) else None

    def verdict(strategy: str, reasons: list[str]) -> dict[str, Any]:
        return {"strategy": strategy, "reasons": reasons, "rule": RULE}

    no_pilots = "no pilots were run (no budget)"
    if not bad:
        if pick is None:
            default = "full fine-tuning is the plain default"
            if none_left is None:
                default += "; give a budget to compare frozen layers, LoRA and full fine-tuning"
            return verdict("full", [fits, f"{none_left or no_pilots}: {default}"])
        return verdict(pick["name"], [fits, why_pick])
    retrain = next((p for p in pilots if p["name"] == "retrain"), None)
    compared = _retrain_comparison(retrain, pick) if retrain is not None else None
    wins = retrain is not None and not retrain["stuck"] and (pick is None or retrain["difference_interval"][1] >= 0)
    probed_reasons = [probed] if probe is not None else []
    if hidden:
        reasons = bad + [probed]
        if compared is not None:
            short = (
                "; pilots this short measure the first steps, and the rebuilt embeddings had few "
                "masked-LM steps to learn in"
            )
            reasons.append(compared + ("" if wins else short))
        return verdict("retrain", reasons)
    if wins:
        return verdict("retrain", bad + probed_reasons + [compared])
    if pick is None:
        if probe is None:
            return verdict("retrain", bad + [f"{none_left or no_pilots} and no probe could be: the fit alone decides"])
        return verdict("full", bad + [probed, f"{none_left or no_pilots}: full fine-tuning is the plain default"])
    longer = f"but {compared}; longer pretraining may still pay off"
    return verdict(pick["name"], bad + probed_reasons + [longer, why_pick])


def against_baseline(strategy: str, pilots: list[dict[str, Any]], tfidf: dict[str, Any]) -> str:
    """Whether the recommended run is expected to beat the TF-IDF baseline, and by how much, from its pilot.

    Its pilot (the one of the recommended strategy) trained for a few steps; the full run trains longer.
    A pilot already above the baseline (the paired 95% interval of its difference lies above 0) says yes;
    one below it gives the least the full run must gain; one level with it leaves it open.

    Args:
        strategy: the recommended strategy.
        pilots: the pilots' figures, compared (`compare.compare`, with the TF-IDF baseline's predictions).
        tfidf: the TF-IDF baseline (`hfadapt.model.baseline.Baseline.to_dict`).

    Returns:
        A sentence.
    """
    if tfidf["score"] is None:
        return f"Not known: there is no TF-IDF baseline ({tfidf['reason']})"
    figure = f"the TF-IDF baseline reaches a validation {tfidf['metric']} of {tfidf['score']:.4f}"
    if not pilots:
        return f"Not known without pilots; {figure}"
    pilot = next((p for p in pilots if p["name"] == strategy), None)
    if pilot is None or pilot.get("tfidf_difference") is None:
        return f"Not known: no {strategy} pilot ran; {figure}"
    difference, (low, high) = pilot["tfidf_difference"], pilot["tfidf_difference_interval"]
    where = (
        f"after {pilot['steps']} steps the {strategy} pilot's validation {pilot['main_metric']} is "
        f"{pilot['validation_metric']:.4f} against the baseline's {pilot['validation_metric'] - difference:.4f} "
        f"({difference:+.4f}; paired 95% interval {low:+.4f} to {high:+.4f})"
    )
    if low > 0:
        return f"Expected to beat it: {where}; the pilot is already above it, and the full run trains longer"
    if high < 0:
        return f"Not shown by the pilot: {where}; the full run must gain at least {-high:.4f} over it to beat it"
    return f"Not known: {where}, an interval that holds 0"


def _fit_reasons(checkpoint_fit: dict[str, Any]) -> tuple[list[str], str]:
    """Why the checkpoint's tokenizer fits badly (empty when it fits), and the sentence saying it fits."""
    unk, coverage = checkpoint_fit["unk_rate"], checkpoint_fit["char_coverage"]
    bad = []
    if unk > UNK_LIMIT:
        bad.append(f"the checkpoint's tokenizer turns {unk:.1%} of the tokens into [UNK] (above {UNK_LIMIT:.0%})")
    if coverage < COVERAGE_LIMIT:
        bad.append(
            f"it encodes only {coverage:.1%} of the corpus's 1,000 most frequent characters "
            f"without [UNK] (below {COVERAGE_LIMIT:.0%})"
        )
    fits = (
        f"the checkpoint's tokenizer fits the texts: {unk:.2%} [UNK] (at most "
        f"{UNK_LIMIT:.0%}), {coverage:.1%} of the frequent characters covered (at least "
        f"{COVERAGE_LIMIT:.0%})"
    )
    return bad, fits


def _probe_reason(probe: dict[str, Any]) -> tuple[bool, str]:
    """Whether the checkpoint's vocabulary hides what the task needs (the paired 95% interval of the
    probe's accuracy gain lies above 0), and the sentence saying so."""
    gain = probe["new"] - probe["checkpoint"]
    low, high = probe["difference_interval"]
    hidden = low > 0
    span = f"95% interval of the paired difference {low * 100:+.1f} to {high * 100:+.1f} points"
    if hidden:
        finding = f"the checkpoint's vocabulary hides {gain * 100:.1f} points of what the task needs ({span})"
    else:
        finding = f"the checkpoint's vocabulary hides nothing measurable ({span}, which holds 0 or less)"
    return hidden, (
        f"a linear model on the tokens reaches a validation accuracy of {probe['new']:.4f} "
        f"with the new tokenizer's against {probe['checkpoint']:.4f} with the checkpoint's: {finding}"
    )


def _best_fine_tuning(tuned: list[dict[str, Any]], baseline: dict[str, Any] | None) -> tuple[Any, Any]:
    """The fine-tuning pilot to pick among those that left the baseline (the cheapest of those tied with the
    best), and the sentence saying why; Nones when there is none."""
    moving = [p for p in tuned if not p["stuck"]]
    if not moving:
        return None, None
    best = max(moving, key=lambda p: p["validation_metric"])
    tied = [p for p in moving if p["tied"] or p is best]
    pick = _cheapest(tied)
    low, high = pick["interval"]
    why = (
        f"{pick['name']} reached a validation {pick['main_metric']} of {pick['validation_metric']:.4f} "
        f"(95% interval {low:.4f} to {high:.4f})"
    )
    if len(tied) > 1:
        names = ", ".join(p["name"] for p in tied)
        why += (
            f"; {names} are tied with the best, {best['name']} (the 95% interval of each one's paired "
            f"difference to it contains 0), and {pick['name']} costs least: {_cost(pick)}"
        )
    elif len(moving) > 1:
        why += "; every other fine-tuning pilot is below it (the 95% interval of its paired difference lies below 0)"
    stuck = [p for p in tuned if p["stuck"]]
    if stuck:
        why += f"; {_none_left(stuck, baseline)}, and cannot win"
    return pick, why


def _cheapest(tied: list[dict[str, Any]]) -> dict[str, Any]:
    """The cheapest pilot: the fastest step (steps within STEP_SLACK of the fastest count as equally fast),
    then the least memory (`_memory`), then the fewest trainable parameters."""
    fastest = min(p["seconds_per_step"] for p in tied)
    quick = [p for p in tied if p["seconds_per_step"] <= STEP_SLACK * fastest]
    return min(quick, key=lambda p: (_memory(p)[0], p["parameters"]["trainable"], PILOTS.index(p["name"])))


def _memory(pilot: dict[str, Any]) -> tuple[float, str]:
    """Peak GPU memory where it was measured; else the training state by parameter counts (the resident
    memory a pilot adds depends on what the pilots before it left allocated)."""
    if pilot.get("peak_cuda_mb") is not None:
        return pilot["peak_cuda_mb"], "peak GPU memory"
    return pilot["training_state_mb"], "training state"


def _cost(pilot: dict[str, Any]) -> str:
    memory, kind = _memory(pilot)
    return (
        f"{pilot['seconds_per_step']:.3f} s a step, {memory:,.0f} MB {kind}, "
        f"{pilot['parameters']['trainable']:,} trainable parameters"
    )


def _none_left(pilots: list[dict[str, Any]], baseline: dict[str, Any] | None, every: bool = False) -> str:
    """The sentence saying that these pilots (`every`: all the pilots) have not left the majority-class baseline."""
    where = ""
    if baseline is not None:
        metric = pilots[0]["main_metric"]
        where = f" ({baseline['label']} for every example: validation {metric} {baseline['validation_metric']:.4f})"
    if every:
        return (
            f"no pilot has left the majority-class baseline{where} in {max(p['steps'] for p in pilots)} steps, "
            "so the pilots cannot rank the strategies; train longer: a larger --budget-steps or --budget-minutes, "
            "or a higher training.learning_rate"
        )
    names = ", ".join(p["name"] for p in pilots)
    return f"{names} {'has' if len(pilots) == 1 else 'have'} not left the majority-class baseline{where}"


def _retrain_comparison(retrain: dict[str, Any], pick: dict[str, Any] | None) -> str:
    """The retraining pilot against the best fine-tuning pilot, in words."""
    after = f"after {retrain['mlm_steps']} masked-LM steps"
    if retrain["stuck"]:
        return f"the retraining pilot has not left the majority-class baseline {after}"
    if pick is None:
        return (
            f"the retraining pilot reached {retrain['validation_metric']:.4f} {after}: it left the majority-class "
            "baseline and no fine-tuning pilot did"
        )
    low, high = retrain["difference_interval"]
    if low > 0:
        outcome = "better"
    elif high >= 0:
        outcome = "not distinguishable from it"
    else:
        outcome = f"worse {after}"
    return (
        f"the retraining pilot reached {retrain['validation_metric']:.4f} against the best fine-tuning pilot's "
        f"{retrain['validation_metric'] - retrain['difference']:.4f}: {outcome} (the 95% interval of the paired "
        f"difference is {low:+.4f} to {high:+.4f})"
    )
