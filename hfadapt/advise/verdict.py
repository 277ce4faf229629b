"""The verdict: which strategy to recommend, from the tokenizer's fit, the probe and the pilots."""

from __future__ import annotations

from typing import Any

PILOTS = ("freeze", "lora", "full", "retrain")
UNK_LIMIT = 0.05  # above this [UNK] rate the model cannot see a twentieth of its input
COVERAGE_LIMIT = 0.95  # share of the corpus's 1,000 most frequent characters the tokenizer must know


def decide(
    checkpoint_fit: dict[str, Any],
    pilots: list[dict[str, Any]],
    tolerance: float | None,
    probe: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The strategy to recommend, with its reasons.

    A checkpoint's tokenizer fits badly when its [UNK] rate is above UNK_LIMIT or it covers fewer
    than COVERAGE_LIMIT of the corpus's frequent characters. A good fit never retrains: the
    fine-tuning pilot with the best validation metric wins, where pilots within `tolerance` (one
    standard error of the validation metric) of the best count as tied and the one with fewest
    trainable parameters wins. With a bad fit, retraining, when either
    - the probe shows that the checkpoint's tokens hide what the task needs: a linear model on the
      new tokenizer's tokens beats the same model on the checkpoint's by more than one standard
      error. Short pilots cannot show this: they measure the first steps of training, and the
      retraining pilot's rebuilt embeddings have had only a few masked-LM steps; or
    - the retraining pilot is not worse than the best fine-tuning pilot by more than `tolerance`;
    or, with neither a probe nor pilots, the fit alone. Otherwise the best fine-tuning pilot.
    """
    bad, fits = _fit_reasons(checkpoint_fit)
    hidden, probed = _probe_reason(probe) if probe is not None else (None, None)
    pick, best, why_pick = _best_fine_tuning(pilots, tolerance)

    def verdict(strategy: str, reasons: list[str]) -> dict[str, Any]:
        return {"strategy": strategy, "reasons": reasons, "tolerance": tolerance}

    if not bad:
        if pick is None:
            no_pilots = (
                "no pilots were run (no budget): full fine-tuning is the plain default; give a "
                "budget to compare frozen layers, LoRA and full fine-tuning"
            )
            return verdict("full", [fits, no_pilots])
        return verdict(pick["name"], [fits, why_pick])
    retrain = next((p for p in pilots if p["name"] == "retrain"), None)
    gap = best - retrain["validation_metric"] if retrain is not None else None
    compared = _retrain_comparison(retrain, best, gap, tolerance) if retrain is not None else None
    probed_reasons = [probed] if probe is not None else []
    if hidden:
        reasons = bad + [probed]
        if compared is not None:
            short = (
                "; pilots this short measure the first steps, and the rebuilt embeddings had few "
                "masked-LM steps to learn in"
            )
            reasons.append(compared + ("" if gap <= tolerance else short))
        return verdict("retrain", reasons)
    if compared is not None and gap <= tolerance:
        return verdict("retrain", bad + probed_reasons + [compared])
    if pick is None:
        if probe is None:
            alone = "no pilots were run (no budget) and no probe could be: the fit alone decides"
            return verdict("retrain", bad + [alone])
        return verdict("full", bad + [probed, "no pilots were run (no budget): full fine-tuning is the plain default"])
    longer = f"but {compared}; longer pretraining may still pay off"
    return verdict(pick["name"], bad + probed_reasons + [longer, why_pick])


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
    """Whether the checkpoint's vocabulary hides what the task needs, and the sentence saying so."""
    gain = probe["new"] - probe["checkpoint"]
    hidden = gain > probe["tolerance"]
    if hidden:
        finding = (
            f"the checkpoint's vocabulary hides {gain * 100:.1f} points of what the task "
            f"needs, more than one standard error ({probe['tolerance']:.3f})"
        )
    else:
        finding = (
            "the checkpoint's vocabulary hides nothing measurable (the new tokens are not "
            f"better by more than one standard error, {probe['tolerance']:.3f})"
        )
    return hidden, (
        f"a linear model on the tokens reaches a validation accuracy of {probe['new']:.4f} "
        f"with the new tokenizer's against {probe['checkpoint']:.4f} with the checkpoint's: {finding}"
    )


def _best_fine_tuning(pilots: list[dict[str, Any]], tolerance: float | None) -> tuple[Any, Any, Any]:
    """The fine-tuning pilot to pick (ties within `tolerance`: fewest trainable parameters), the best
    metric, and the sentence saying why; Nones without pilots."""
    tuned = [p for p in pilots if p["name"] != "retrain"]
    if not tuned:
        return None, None, None
    best = max(p["validation_metric"] for p in tuned)
    tied = [p for p in tuned if p["validation_metric"] >= best - tolerance]
    pick = min(tied, key=lambda p: (p["parameters"]["trainable"], PILOTS.index(p["name"])))
    why = (
        f"{pick['name']} reached a validation {pick['main_metric']} of "
        f"{pick['validation_metric']:.4f} against the best fine-tuning pilot's {best:.4f}"
    )
    if len(tied) > 1:
        why += (
            f"; {', '.join(p['name'] for p in tied)} are within one standard error "
            f"({tolerance:.3f}) of the best, and {pick['name']} trains the fewest parameters "
            f"({pick['parameters']['trainable']:,})"
        )
    return pick, best, why


def _retrain_comparison(retrain: dict[str, Any], best: float, gap: float, tolerance: float) -> str:
    """The retraining pilot against the best fine-tuning pilot, in words."""
    if gap < 0:
        outcome = "better"
    elif gap <= tolerance:
        outcome = f"not worse by more than one standard error ({tolerance:.3f})"
    else:
        outcome = (
            f"worse by more than one standard error ({tolerance:.3f}) after {retrain['mlm_steps']} masked-LM steps"
        )
    return (
        f"the retraining pilot reached {retrain['validation_metric']:.4f} against the best "
        f"fine-tuning pilot's {best:.4f}: {outcome}"
    )
