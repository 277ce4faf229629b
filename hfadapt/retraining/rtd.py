"""Replaced-token detection (ELECTRA, Clark et al., 2020): pretraining that learns from every position.

A masked-LM learns from the ~15% of positions it masked. Here a small generator (a masked-LM of a
third of the model's layers, sharing its embeddings) fills the masked positions with its own samples,
and the model being pretrained, the discriminator, reads the result and tells, at every real
position, whether the token there is the original or a replacement. The loss is the generator's
masked-LM loss plus DISCRIMINATOR_WEIGHT times the discriminator's (ELECTRA's 50). What is kept is
the discriminator: the pretrained model's own encoder, saved as a plain checkpoint of its class
(e.g. `BertModel`), which fine-tuning loads with `AutoModelForSequenceClassification`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from hfadapt.retraining.mlm import MaskedLMTrainer

DISCRIMINATOR_WEIGHT = 50.0
GENERATOR_SHARE = 3  # the generator has 1/GENERATOR_SHARE of the model's layers (at least one)


class ReplacedTokenDetection(nn.Module):
    """The generator and the discriminator (the encoder of `masked_lm`), with their shared embeddings.

    While evaluating, `stats` adds up the generator's masked-LM loss (per masked token) and the
    discriminator's right answers, for `Trainer.evaluate` to report.
    """

    def __init__(self, masked_lm, special_ids: list[int]):
        super().__init__()
        from transformers import AutoModelForMaskedLM

        self.discriminator = masked_lm.base_model
        config = copy.deepcopy(masked_lm.config)
        config.num_hidden_layers = max(1, config.num_hidden_layers // GENERATOR_SHARE)
        self.generator = AutoModelForMaskedLM.from_config(config)
        self.generator.base_model.embeddings = self.discriminator.embeddings  # one set of embeddings
        self.generator.tie_weights()  # its output layer is the shared word embeddings
        hidden = config.hidden_size
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.register_buffer("special_ids", torch.tensor(sorted(special_ids), dtype=torch.long), persistent=False)
        self.stats = torch.zeros(4, dtype=torch.float64)  # masked-LM loss sum, masked tokens, right, positions

    def get_output_embeddings(self):
        return None  # no masked-LM head over every position to thin out (mlm.MaskedLMTrainer)

    def forward(self, input_ids, attention_mask, labels) -> dict[str, torch.Tensor]:
        generated = self.generator(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        masked = labels != -100
        original = torch.where(masked, labels, input_ids)
        with torch.no_grad():  # sampling is not differentiated through (ELECTRA's generator is trained by its own loss)
            sampled = torch.distributions.Categorical(logits=generated.logits[masked].float()).sample()
        corrupted = original.clone()
        corrupted[masked] = sampled
        replaced = (corrupted != original).float()
        scores = self.head(self.discriminator(input_ids=corrupted, attention_mask=attention_mask)[0]).squeeze(-1)
        positions = detected_positions(original, attention_mask, self.special_ids)
        detection = nn.functional.binary_cross_entropy_with_logits(scores[positions], replaced[positions])
        if not self.training:
            right = ((scores[positions] > 0).float() == replaced[positions]).sum()
            count = masked.sum()
            update = [generated.loss.detach() * count, count, right, positions.sum()]
            self.stats += torch.stack([v.double().cpu() for v in update])
        return {
            "loss": generated.loss + DISCRIMINATOR_WEIGHT * detection,
            "logits": scores,
            "replaced": replaced,
            "positions": positions,
        }


def detected_positions(original: torch.Tensor, attention_mask: torch.Tensor, special_ids: torch.Tensor) -> torch.Tensor:
    """The positions the discriminator is scored on: every real token, no special one ([CLS], [SEP], [PAD])."""
    return attention_mask.bool() & ~torch.isin(original, special_ids)


class ReplacedTokenDetectionTrainer(MaskedLMTrainer):
    """`Trainer` for `ReplacedTokenDetection`: every evaluation (under the same masks each time) also
    reports the generator's perplexity and the discriminator's accuracy over every detected position,
    summed across processes."""

    def evaluation_loop(self, *args, **kwargs):
        import math

        model = self.accelerator.unwrap_model(self.model)
        model.stats.zero_()
        out = super().evaluation_loop(*args, **kwargs)
        totals = self.accelerator.reduce(model.stats.to(self.args.device), reduction="sum").tolist()
        prefix = kwargs.get("metric_key_prefix", "eval")
        out.metrics[f"{prefix}_generator_perplexity"] = math.exp(min(totals[0] / max(totals[1], 1), 50))
        out.metrics[f"{prefix}_discriminator_accuracy"] = totals[2] / max(totals[3], 1)
        return out


def save_discriminator(trainer, folder) -> None:
    """The discriminator alone, as a plain checkpoint of the pretrained model's encoder class.

    Every process takes part (FSDP and DeepSpeed ZeRO-3 gather the weights); the main one writes."""
    state = trainer.accelerator.get_state_dict(trainer.model)
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        own = {k.removeprefix("discriminator."): v for k, v in state.items() if k.startswith("discriminator.")}
        model.discriminator.save_pretrained(folder, state_dict=own)
        trainer.processing_class.save_pretrained(folder)
