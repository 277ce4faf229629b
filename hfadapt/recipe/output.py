"""The output and hub sections: where a run's results go."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hfadapt.recipe.typecheck import option


@dataclass
class OutputConfig:
    """Where the run's results go."""

    dir: str = option(help="the run folder; written as DIR.incomplete and moved into place when finished")
    overwrite: bool = option(False, help="replace a folder an earlier hfadapt run wrote, once the new run has finished")
    keep_checkpoints: bool = option(False, help="keep OUTPUT_DIR/checkpoints once the run has finished")
    resume: bool = option(False, help="continue a stopped run from its newest complete checkpoint (also: --resume)")
    stop_after_minutes: float | None = option(
        None, help="save a checkpoint and stop (exit 130) once the run has taken this long; continue with --resume"
    )

    def problems(self) -> list[str]:
        found = [p for p in [named_problem(self.dir)] if p]
        if self.stop_after_minutes is not None and not 0 < self.stop_after_minutes < float("inf"):
            found.append(f"output.stop_after_minutes: {self.stop_after_minutes} is not a positive number of minutes")
        return found


@dataclass
class HubConfig:
    """Where to push the finished run (the token comes from HF_TOKEN or `hf auth login`, never the recipe)."""

    FORBIDDEN = {
        "token": "a token never goes in a recipe (recipes are saved and pushed); set HF_TOKEN or run `hf auth login`"
    }

    repo_id: str = option(help="NAME or ORG/NAME; created if missing")
    private: bool = option(False, help="create the repo private")
    revision: str | None = option(None, help="push to this branch (created if missing); empty: the default branch")

    def problems(self) -> list[str]:
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(self.repo_id)
        except ValueError:
            return [
                f"hub.repo_id: {self.repo_id!r} is not a valid repo id; write it as NAME or ORG/NAME "
                "(letters, digits, '-', '_', '.')"
            ]
        return []


def named_problem(final: str | Path) -> str | None:
    """Why `final` names no folder of its own (`.`, `..`, `/`), or None: a run is written beside its folder
    (NAME.incomplete) and renamed into place."""
    final = Path(final)
    if final.name not in ("", ".."):
        return None
    which = {"/": "the root folder", ".": "the current folder", "..": "the parent folder"}.get(
        str(final), "a folder named through '..'"
    )
    return (
        f"output.dir: {str(final)!r} is {which}, not a folder of the run's own; give the run a new folder, "
        "e.g. runs/my-run"
    )
