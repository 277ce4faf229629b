"""Retraining, top to bottom: corpus, tokenizer, vocabulary and embeddings, masked-LM pretraining, fine-tuning.

Each stage writes its own folder under OUTPUT_DIR (`tokenizer/`, `pretrained/`, `finetuned/`),
atomically; a rerun of the same recipe reuses every finished stage, so a stopped pipeline goes
on from the stage it reached.

- `corpus`: the corpus sources, read once, split and segmented;
- `tokenizer`: a tokenizer trained on the corpus, and its fit;
- `vocab`: the checkpoint's embeddings rebuilt for the new vocabulary;
- `mlm`: blocks, whole-word masks and the masked-LM trainer;
- `stages`: each stage's folder, and when a finished one is reused.
- `transfer`: rows for new tokens placed from static embeddings of the corpus;
- `rtd`: replaced-token detection, the ELECTRA-style alternative to masked-LM;
- `pipeline`: `retrain`, the stages in order.
"""
