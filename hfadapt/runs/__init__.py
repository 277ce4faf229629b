"""A run's folder and what is done with it once it exists.

- `output`: the `.incomplete` side folder, the lock, and the atomic rename when a run finishes;
- `resume`: complete checkpoints, the run's totals, the graceful stop on SIGINT/SIGTERM;
- `manifest`: versions, hardware, data fingerprint and command of a run;
- `card`: the model card (README.md) of a run;
- `curves`: training curves and the confusion matrix as PNG;
- `hub`: pushing a finished run to the Hugging Face Hub;
- `export`: ONNX export checked against PyTorch;
- `quantization`: an exported graph quantized to int8, checked on the run's test split;
- `inference`: loading a finished run, predicting, evaluating;
- `tagging`: token classification at predict time: words, tags, entities as character offsets;
- `run`: `Run`, a finished run with its metrics, model and tokenizer, and what is done with it.
"""
