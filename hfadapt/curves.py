"""Training curves: loss and the main metric against steps, as a PNG."""

from __future__ import annotations

from pathlib import Path


def plot(log_history: list[dict], metric: str, path: str | Path, title: str = "") -> Path:
    """Draw training and validation loss, and the validation `metric`, from `Trainer.state.log_history`."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    scores = [(h["step"], h[f"eval_{metric}"]) for h in log_history if f"eval_{metric}" in h]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        left.plot(*zip(*train, strict=True), label="training loss", color="tab:blue")
    if evals:
        left.plot(*zip(*evals, strict=True), "o-", label="validation loss", color="tab:orange")
    left.set_xlabel("step")
    left.set_ylabel("loss")
    left.legend()
    left.grid(alpha=0.3)
    if scores:
        right.plot(*zip(*scores, strict=True), "o-", color="tab:green")
        for step, value in scores:
            right.annotate(
                f"{value:.3f}", (step, value), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8
            )
    right.set_xlabel("step")
    right.set_ylabel(f"validation {metric}")
    right.grid(alpha=0.3)
    return save(figure, title, path)


def save(figure, title: str, path: str | Path) -> Path:
    """Title, lay out, write and close a figure."""
    import matplotlib.pyplot as plt

    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)
