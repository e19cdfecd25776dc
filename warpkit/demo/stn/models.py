"""The models of the experiment: a CNN baseline and ST-CNNs (a spatial transformer, then the same CNN).

CNN (``classifier``): conv 5x5 (8) - max-pool 2 - ReLU - conv 5x5 (16) - max-pool 2 - ReLU - fully
connected 64 - ReLU - 10 logits (narrower than the paper's, for a CPU budget). ST-CNN:
``wk.nn.SpatialTransformer`` whose localisation network has the paper's shape (conv 5x5 (16) - max-pool 2 -
ReLU - conv 5x5 (16) - max-pool 2 - ReLU - fully connected 50 - ReLU, then the transformer's parameter
layer), after a 2x2 max-pool for inputs above 28 px, and which always outputs 28x28: for RTS (42x42) and
TC (60x60) the transformer zooms in and downsamples, as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

import warpkit as wk

__all__ = ["MODELS", "build_model", "classifier", "count_parameters", "localization", "spatial_transformer"]

MODELS = ("cnn", "affine", "projective", "tps")
STN_OUTPUT = 28


def classifier(input_size: int) -> nn.Sequential:
    """The CNN: ``(B, 1, S, S) -> (B, 10)`` logits."""
    side = input_size // 4
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(8, 16, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * side * side, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def localization(input_size: int) -> nn.Sequential:
    """The localisation network: ``(B, 1, S, S) -> (B, 50)`` features (the transformer adds its head)."""
    # Large canvases are pooled first: finding the digit needs no full resolution and it halves the cost.
    pooled = input_size // 2 if input_size > 28 else input_size
    side = ((pooled - 4) // 2 - 4) // 2
    return nn.Sequential(
        *([nn.MaxPool2d(2)] if input_size > 28 else []),
        nn.Conv2d(1, 16, 5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(16, 16, 5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * side * side, 50), nn.ReLU(),
    )  # fmt: skip


def spatial_transformer(family: str, input_size: int) -> wk.nn.SpatialTransformer:
    """A transformer from ``(B, 1, S, S)`` to ``(B, 1, 28, 28)``; starts as the identity (scaled to 28)."""
    return wk.nn.SpatialTransformer(
        1, (input_size, input_size), family, output_size=(STN_OUTPUT, STN_OUTPUT), localization=localization(input_size)
    )


def build_model(name: str, input_size: int) -> nn.Sequential:
    """``cnn``: the classifier on the ``S x S`` input; otherwise ``Sequential(transformer, classifier(28))``."""
    if name not in MODELS:
        raise wk.WarpkitError(f"model: expected one of {', '.join(MODELS)}, got {name!r}")
    if name == "cnn":
        return classifier(input_size)
    return nn.Sequential(spatial_transformer(name, input_size), classifier(STN_OUTPUT))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def transformer_of(model: nn.Sequential) -> wk.nn.SpatialTransformer | None:
    return model[0] if isinstance(model[0], wk.nn.SpatialTransformer) else None


def predict(model: nn.Module, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """``(N,)`` predicted classes for ``(N, 1, S, S)`` images (eval mode, no gradients)."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(chunk).argmax(1) for chunk in images.split(batch)])
