"""The model: the checkpoint loaded with its task head, adapted, and what its training optimises and reports.

- `pretrained`: resolving and checking a checkpoint (local folder, Hub id, built-in), its tokenizer,
  the task model with its labels;
- `adapt`: freezing embeddings, layers or patterns, LoRA adapters, the parameter summary;
- `loss`: class weights and the weighted loss;
- `metrics`: each task's metrics, per-class figures and the main metric;
- `decoding`: tags decoded as sequences their tagging scheme (BIO, BIOES, BMES) allows;
- `baseline`: TF-IDF n-grams and a linear model, the cheap alternative a run is scored beside.
"""
