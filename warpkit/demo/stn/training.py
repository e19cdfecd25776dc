"""Training one model on one distortion: Adam with a cosine learning-rate decay, fresh distortions of the
training digits every epoch (the paper's on-line distortion), a fixed test set.

The paper uses SGD with a step decay over many more iterations; with 4,500 digits and a CPU budget of
a dozen epochs, Adam reached a given error in about half the epochs of SGD with momentum in our trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .distortions import distort
from .models import predict, transformer_of

__all__ = ["TrainConfig", "test_error", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """``lr`` for the classifier; the localisation network learns ``localization_lr_factor`` times slower
    (the paper notes a lower rate there: a big early step can warp the digit out of view)."""

    epochs: int
    batch_size: int = 64
    lr: float = 3e-3
    localization_lr_factor: float = 0.1
    clip: float = 5.0


def train(
    model: nn.Sequential,
    images: torch.Tensor,
    labels: torch.Tensor,
    kind: str,
    config: TrainConfig,
    seed: int,
    on_step: Callable[[], None] | None = None,
) -> nn.Sequential:
    """Train ``model`` in place on ``(N, 1, 28, 28)`` digits distorted by ``kind``, redrawn every epoch."""
    generator = torch.Generator().manual_seed(seed)
    stn = transformer_of(model)
    stn_params = {id(p) for p in stn.parameters()} if stn is not None else set()
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in stn_params], "lr": config.lr},
        {
            "params": [p for p in model.parameters() if id(p) in stn_params],
            "lr": config.lr * config.localization_lr_factor,
        },
    ]
    optimizer = torch.optim.Adam([g for g in groups if g["params"]])
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
    model.train()
    for _ in range(config.epochs):
        distorted = distort(images, kind, generator)
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = nn.functional.cross_entropy(model(distorted[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            # a projective transformer can put its horizon inside the image: one bad batch must not blow up
            nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            schedule.step()
            if on_step is not None:
                on_step()
    model.eval()
    return model


def test_error(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Test error in percent on ``(N, 1, S, S)`` images."""
    return 100.0 * float((predict(model, images) != labels).float().mean())
