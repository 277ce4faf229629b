"""Run the `hfadapt` command in one rank of `accelerate launch`, and record what this rank trained.

After each `Trainer.train` it writes SIDE/rank{R}-{n}.json: the world size it saw, the process group's
timeout, a digest of its model's weights, so the test can check that every rank ends with the same
weights, and how many times this rank trained a tokenizer, tokenized fine-tuning data and packed a
corpus (prepared data is made once).
Usage (under accelerate launch): python tests/dist_worker.py SIDE_DIR COMMAND RECIPE [key=value ...]
"""

import hashlib
import json
import sys
from pathlib import Path

import torch
import transformers

from hfadapt.cli import main
from hfadapt.data import tokenization
from hfadapt.retraining import mlm, stages

side = Path(sys.argv[1])
original = transformers.Trainer.train
calls = {"tokenizers": 0, "tokenized": 0, "packed": 0}


def counted(name, function):
    def call(*args, **kwargs):
        calls[name] += 1
        return function(*args, **kwargs)

    return call


tokenization.tokenize = counted("tokenized", tokenization.tokenize)
mlm.blocks = counted("packed", mlm.blocks)
stages.train_tokenizer = counted("tokenizers", stages.train_tokenizer)


def timeout() -> float:
    """How long this rank waits at a collective for the others (the process group's timeout), in seconds."""
    group = torch.distributed.distributed_c10d._get_default_group()
    return group._get_backend(torch.device("cpu")).options._timeout.total_seconds()


def train_and_record(self, *args, **kwargs):
    result = original(self, *args, **kwargs)
    digest = hashlib.sha256()
    for name, tensor in sorted(self.model.state_dict().items()):
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)  # any dtype, bf16 too
        digest.update(name.encode() + raw.numpy().tobytes())
    rank = self.args.process_index
    done = len(list(side.glob(f"rank{rank}-*.json")))
    record = {
        "world_size": self.args.world_size,
        "digest": digest.hexdigest(),
        "steps": self.state.global_step,
        "wrapped": type(self.model_wrapped).__name__,
        "timeout": timeout(),
        **calls,
    }
    (side / f"rank{rank}-{done}.json").write_text(json.dumps(record))
    return result


transformers.Trainer.train = train_and_record
sys.exit(main(sys.argv[2:]))
