"""Advice: how to adapt a checkpoint to a data set, from its tokenizer's fit and short pilot runs.

1. Fit (`fit`, `probe`): the checkpoint's tokenizer on the training texts, beside a WordPiece
   tokenizer trained on them (the one retraining would build), and how much data.max_length cuts;
   and for text classification a linear probe: how well a logistic regression reads the task from
   each tokenizer's tokens, which shows in seconds what the checkpoint's vocabulary hides.
2. Pilots (`pilots`, `deadline`), when a budget is given: on the same data and split, a few steps
   each of frozen layers (embeddings and the lower half of the encoder), LoRA, full fine-tuning,
   and, when the tokenizer fits badly, retraining (the rebuilt vocabulary, a few masked-LM steps,
   then fine-tuning). Each predicts the same validation examples, and `compare` sets them side by
   side, paired, with the majority-class baseline and the TF-IDF baseline (`hfadapt.model.baseline`,
   fit on the training split whether or not pilots run).
3. A verdict with its reasons (`verdict`), a recipe for it, and its price (`cost`): each stage's
   steps counted from the data and timed on this machine at the recipe's own shapes (`timing`),
   with the recipe fitted to a number of minutes where asked (`run_minutes`); written up by `report`.

`pipeline` holds `advise`, which runs the three in order.
"""
