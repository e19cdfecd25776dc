"""The experiment's outputs: the table beside the paper's Table 1, and the figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["PAPER", "format_table", "save_figure"]

# Jaderberg et al. (2015): test error (%) on distorted MNIST, Table 1 (R, RTS, P, E) and the
# translated-cluttered result quoted in the text (TC: CNN 3.5, ST-CNN affine 1.7). None: not reported there.
PAPER: dict[str, dict[str, float | None]] = {
    "R": {"cnn": 1.2, "affine": 0.7, "projective": 0.8, "tps": 0.7},
    "RTS": {"cnn": 0.8, "affine": 0.5, "projective": 0.6, "tps": 0.5},
    "P": {"cnn": 1.5, "affine": 0.8, "projective": 0.8, "tps": 0.8},
    "E": {"cnn": 1.4, "affine": 1.2, "projective": 1.3, "tps": 1.1},
    "TC": {"cnn": 3.5, "affine": 1.7, "projective": None, "tps": None},
}
TITLES = {"cnn": "CNN", "affine": "ST-CNN affine", "projective": "ST-CNN projective", "tps": "ST-CNN TPS"}


def format_table(errors: dict[str, dict[str, list[float]]]) -> str:
    """Markdown: ``errors[distortion][model]`` (test error in % per seed) as mean +- std, paper's beside."""
    models = list(next(iter(errors.values())))
    lines = [
        "| distortion | " + " | ".join(f"{TITLES[m]} (paper)" for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for kind, row in errors.items():
        cells = []
        for model, values in row.items():
            ours = (
                "-"
                if not values
                else f"{np.mean(values):.2f}" + (f" ± {np.std(values):.2f}" if len(values) > 1 else "")
            )
            paper = PAPER.get(kind, {}).get(model)
            cells.append(f"{ours} ({'n/r' if paper is None else paper})")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_figure(path: Path, examples: dict, transformed: dict, predictions: dict, labels: dict, models) -> Path:
    """One block per distortion: the distorted test digits, then each transformer's output.

    ``examples[kind]``: ``(K, 1, S, S)``; ``transformed[(kind, family)]``: ``(K, 1, 28, 28)``;
    ``predictions[(kind, model)]``: ``(K,)`` classes; ``labels[kind]``: ``(K,)`` true classes. Every image
    is its own panel at its own size (no padding), titled with the true class and the model's prediction.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = [m for m in models if m != "cnn"]
    kinds = list(examples)
    columns = len(next(iter(examples.values())))
    rows = len(kinds) * (1 + len(families))
    fig, axes = plt.subplots(rows, columns, figsize=(1.0 * columns + 1.4, 1.12 * rows), squeeze=False)
    row = 0
    for kind in kinds:
        for family in [None, *families]:
            images = examples[kind] if family is None else transformed[(kind, family)]
            model = "cnn" if family is None else family
            for column in range(columns):
                axis = axes[row, column]
                axis.imshow(images[column, 0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                axis.set_xticks([])
                axis.set_yticks([])
                truth, guess = int(labels[kind][column]), int(predictions[(kind, model)][column])
                who = "CNN" if family is None else "ST"
                axis.set_title(
                    f"{truth} | {who} {guess}", fontsize=6.5, color="black" if truth == guess else "red", pad=2
                )
            name = f"{kind}\ninput" if family is None else f"{kind}\nST {family}"
            axes[row, 0].set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
            row += 1
    fig.suptitle(
        "Distorted test digits (input row: true class | CNN's prediction), then each spatial transformer's\n"
        "28x28 output (true class | that ST-CNN's prediction); red: wrong. Seed 0's models.",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985), h_pad=0.25, w_pad=0.1)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pick_examples(labels: torch.Tensor, count: int = 8) -> torch.Tensor:
    """Indices of ``count`` test digits, one per class in turn (0, 1, 2, ...), the first of each."""
    chosen = []
    for digit in range(count):
        where = torch.nonzero(labels == digit % 10)[:, 0]
        taken = [i for i in where.tolist() if i not in chosen]
        if taken:
            chosen.append(taken[0])
    return torch.tensor(chosen)
