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


def confusion(matrix: list[list[int]], labels: list[str], path: str | Path, title: str = "") -> Path:
    """The confusion matrix as a picture: rows the true labels, columns the predicted ones, counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(matrix)
    size = max(3.5, 0.6 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # colour: the share of each true label
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if shares[i, j] > 0.5 else "black"
            axes.text(j, i, f"{counts[i, j]}", ha="center", va="center", color=colour, fontsize=8)
    figure.colorbar(image, ax=axes, label="share of the true label's examples")
    return save(figure, title, path)
