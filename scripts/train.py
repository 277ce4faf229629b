"""Run a recipe as a script, for `accelerate launch`: retraining when it has corpus, tokenizer or
pretrain sections, fine-tuning otherwise. The same as `hfadapt retrain` / `hfadapt finetune`.

    python scripts/train.py RECIPE [key=value ...]
    accelerate launch --config_file recipes/accelerate/multi_gpu_ddp.yaml scripts/train.py RECIPE [key=value ...]
"""

from __future__ import annotations

import sys

from hfadapt import cli
from hfadapt.errors import HfadaptError
from hfadapt.recipe import load_recipe


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    try:
        recipe = load_recipe(argv[0], argv[1:])
    except HfadaptError as e:
        print(f"hfadapt: error: {e}", file=sys.stderr)
        return 2
    retraining = any(section is not None for section in (recipe.corpus, recipe.tokenizer, recipe.pretrain))
    return cli.main(["retrain" if retraining else "finetune", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
