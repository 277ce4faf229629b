"""Training runs driven by a recipe, each through `transformers.Trainer`.

- `finetuning`: `finetune`, top to bottom: data, model, adaptation, Trainer, save;
- `divergence`: a run whose loss, gradient norm or weights turn NaN or infinite is stopped and never saved;
- `seeds`: a recipe once per seed, with mean and sd;
- `hparam_search`: hyperparameter search (Optuna), each trial a run;
- `space`: the search space's `KEY=SPEC` syntax;
- `preparation`: `prepare`, the tokenized data and packed corpus made ahead of training.
"""
