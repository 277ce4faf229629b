"""The run manifest: what produced a model, so that the run can be reproduced and audited."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGES = (
    "hfadapt",
    "torch",
    "transformers",
    "datasets",
    "tokenizers",
    "peft",
    "accelerate",
    "huggingface_hub",
    "numpy",
)


def build(recipe, args, results: dict[str, Any]) -> dict[str, Any]:
    """Versions, data fingerprint, seed, git commit and device setup of a finished run."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "hfadapt_git_commit": git_commit(Path(__file__).resolve().parent),
        "seed": recipe.training["seed"],
        "data": {
            "source": recipe.data.source,
            "fingerprint": results["data"].get("fingerprint"),
            "sizes": results["data"].get("sizes"),
        },
        "model": recipe.model.name_or_path,
        "accelerate": {
            "processes": args.world_size,
            "parallel_mode": str(args.parallel_mode),
            "device": str(args.device),
            # the recipe's bf16/fp16, else what an Accelerate config asked for
            "mixed_precision": "bf16"
            if args.bf16
            else "fp16"
            if args.fp16
            else os.environ.get("ACCELERATE_MIXED_PRECISION", "no"),
        },
        "recipe": recipe.to_dict(),
    }


def git_commit(folder: Path) -> str | None:
    """The commit of the git checkout `folder` lies in, or None (an installed package, no git)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
