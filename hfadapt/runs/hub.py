"""The Hub: push a finished run (model or adapter, tokenizer, card, curves, recipe) with `huggingface_hub`.

The token comes from `HF_TOKEN` or the user's Hugging Face login, is handed to the client and
nowhere else: it is never printed, logged, or written to the recipe, the card or the metrics.
The run folder is read, never changed: a push that fails can simply be run again.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from hfadapt import builtin
from hfadapt.errors import HfadaptError
from hfadapt.recipe import load_recipe

if TYPE_CHECKING:
    from hfadapt.runs.run import Run

logger = logging.getLogger(__name__)

# What travels: everything a user needs to load, judge and reproduce the model; never checkpoints.
PUSHED = ("*.json", "*.safetensors", "*.txt", "*.model", "README.md", "recipe.yaml", "training_curves.png")


def check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except ValueError:
        raise HfadaptError(
            f"hub.repo_id: {repo_id!r} is not a valid repo id; write it as NAME or ORG/NAME "
            "(letters, digits, '-', '_', '.')"
        ) from None


def token() -> str:
    """The user's token (HF_TOKEN, or `hf auth login`), or a clear error before any work is done."""
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise HfadaptError("no Hugging Face token: set HF_TOKEN, or run `hf auth login`, before pushing")
    return found


def push(run_dir: str | Path | Run, repo_id: str, private: bool = False, revision: str | None = None) -> str:
    """Upload a finished run to the Hugging Face Hub.

    A merged LoRA run pushes the merged model at the top and the adapter under `adapter/`; an
    adapter-only run pushes the adapter at the top, naming its base model's Hub id, so
    `PeftModel.from_pretrained(base, repo_id)` works.

    Args:
        run_dir: the output folder of a finished run, or a `Run`.
        repo_id: NAME or ORG/NAME; created if missing.
        private: create the repo private.
        revision: push to this branch (created if missing).

    Returns:
        The URL of the commit.

    Raises:
        HfadaptError: the folder is not a finished run, the repo id is invalid, there is no token, or the
            Hub refused or could not be reached.
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    run_dir = Path(getattr(run_dir, "run_dir", run_dir))
    if not (run_dir / "recipe.yaml").exists() or not (run_dir / "metrics.json").exists():
        raise HfadaptError(
            f"{run_dir} is not a finished hfadapt run (no recipe.yaml and metrics.json); push "
            "the output.dir of a run that completed"
        )
    check_repo_id(repo_id)
    api = HfApi(token=token())
    with tempfile.TemporaryDirectory() as scratch:
        staging = _stage(run_dir, Path(scratch) / "repo")
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                revision=revision,
                commit_message=f"hfadapt: upload {run_dir.name}",
            )
        except HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else "?"
            hint = (
                "the token was refused: check HF_TOKEN or `hf auth login`"
                if status in (401, 403)
                else "the run folder is intact: run the same push again"
            )
            raise HfadaptError(f"push to {repo_id} failed (HTTP {status} from {constants.ENDPOINT}); {hint}") from None
        except Exception as e:  # requests' connection errors are OSErrors; httpx's transport errors are not
            if not isinstance(e, OSError) and not type(e).__module__.startswith(("httpx", "httpcore")):
                raise
            raise HfadaptError(
                f"push to {repo_id} failed: cannot reach {constants.ENDPOINT} "
                f"({type(e).__name__}); the run folder is intact: retry when the Hub is reachable"
            ) from None
    logger.info("pushed %s to %s", run_dir, repo_id)
    return str(info.commit_url)


def _stage(run_dir: Path, staging: Path) -> Path:
    """Copy what is pushed into a side folder, the adapter's base model named by its Hub id."""
    staging.mkdir(parents=True)
    merged = (run_dir / "config.json").exists()
    adapter = run_dir / "adapter"
    for pattern in PUSHED:
        for path in run_dir.glob(pattern):
            shutil.copy2(path, staging / path.name)
    if adapter.is_dir():
        target = staging / "adapter" if merged else staging
        target.mkdir(exist_ok=True)
        for path in adapter.iterdir():
            if path.is_file():
                shutil.copy2(path, target / path.name)
        config_path = target / "adapter_config.json"
        config = json.loads(config_path.read_text())
        base = load_recipe(run_dir / "recipe.yaml").model.name_or_path
        if builtin.is_builtin(base) or not Path(base).exists():
            config["base_model_name_or_path"] = builtin.hub_id(base)  # a local path means nothing on the Hub
        config_path.write_text(json.dumps(config, indent=2))
    return staging
