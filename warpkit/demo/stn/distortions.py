"""The distorted-MNIST variants of Jaderberg et al. (2015, appendix A.4), made with warpkit.

Sizes are in pixels of MNIST's 28x28 canvas. R: rotation U[-90, 90] deg. RTS: rotation U[-45, 45] deg,
scale U[0.7, 1.2], placed at a random location in 42x42. P: scale U[0.75, 1], then each image corner
moved by N(0, 5 px) (a homography). E: scale U[0.75, 1], then a thin-plate spline whose 4x4 control
points are each moved by U[-ELASTIC_PX, ELASTIC_PX] px. TC: the digit at a random location in 60x60
with six 6x6 crops of other digits as clutter.
"""

from __future__ import annotations

import math

import torch

import warpkit as wk

__all__ = ["CANVAS_SIZE", "DISTORTIONS", "ELASTIC_PX", "distort"]

DISTORTIONS = ("R", "RTS", "P", "E", "TC")
CANVAS_SIZE = {"R": 28, "RTS": 42, "P": 28, "E": 28, "TC": 60}
ELASTIC_PX = 4.0  # not confirmed from the paper's text: neighbouring control points (9.3 px apart) never cross
CLUTTER_PIECES, CLUTTER_SIDE = 6, 6


def distort(images: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Distort ``(N, 1, 28, 28)`` digits into ``(N, 1, S, S)``, ``S = CANVAS_SIZE[kind]``.

    All randomness comes from ``generator`` (same generator state, same output). TC's clutter is cut
    from other digits of ``images`` itself, so a test set is cluttered only with test digits.
    """
    if kind not in DISTORTIONS:
        raise wk.WarpkitError(f"kind: expected one of {', '.join(DISTORTIONS)}, got {kind!r}")
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise wk.ShapeError(f"images: expected shape (N, 1, 28, 28), got {tuple(images.shape)}")
    n = len(images)

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, *shape, generator=generator)

    if kind == "R":
        return _similarity(images, uniform(-90, 90), torch.ones(n), torch.zeros(n, 2), 28)
    if kind == "RTS":
        scale = uniform(0.7, 1.2)
        room = (42 - 28 * scale.unsqueeze(1)) / 2  # the scaled 28x28 frame stays inside the canvas
        shift = (2 * torch.rand(n, 2, generator=generator) - 1) * room
        return _similarity(images, uniform(-45, 45), scale, shift, 42)
    if kind == "P":
        corners = torch.tensor([[0.0, 0.0], [27.0, 0.0], [27.0, 27.0], [0.0, 27.0]])
        centre = 13.5
        scale = uniform(0.75, 1.0).view(n, 1, 1)
        moved = centre + scale * (corners - centre) + 5.0 * torch.randn(n, 4, 2, generator=generator)
        return wk.warp(images, wk.Projective.estimate(corners.expand(n, 4, 2), moved))
    if kind == "E":
        # STN parameters of a TPS: where each of the 4x4 destination control points reads the source, in
        # normalised [-1, 1] units (a pixel is 2 / 28). Reading at control / scale shrinks the digit.
        scale = uniform(0.75, 1.0)
        control = wk.ThinPlateSpline.identity_params(n) / scale.unsqueeze(1)
        params = control + uniform(-ELASTIC_PX, ELASTIC_PX, control.shape[1]) * (2 / 28)
        return wk.nn.Warp("tps")(images, params)
    return _cluttered(images, generator)


def _similarity(images, degrees, scale, shift, size: int) -> torch.Tensor:
    """Rotate by ``(N,)`` degrees and scale ``(N,)`` about the digit's centre, which lands at the
    ``size`` canvas's centre plus ``(N, 2)`` shift."""
    angle = degrees * (math.pi / 180)
    cos, sin = scale * torch.cos(angle), scale * torch.sin(angle)
    linear = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1)  # (N, 2, 2)
    target = (size - 1) / 2 + shift
    offset = target - (linear @ torch.full((len(images), 2, 1), 13.5))[..., 0]
    return wk.warp(images, wk.Affine(torch.cat([linear, offset.unsqueeze(-1)], 2)), (size, size))


def _cluttered(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The digit pasted whole at a random place in 60x60, six 6x6 crops of random other digits (cut
    inside the 20x20 box, where the ink is) pasted at random places; overlaps keep the brighter pixel."""
    n, size, side, pieces = len(images), CANVAS_SIZE["TC"], CLUTTER_SIDE, CLUTTER_PIECES
    canvas = torch.zeros(n, size * size)
    # clutter first: which digit, where to cut, where to paste
    donors = torch.randint(0, n, (n, pieces), generator=generator)
    cut = torch.randint(4, 24 - side + 1, (n, pieces, 2), generator=generator)
    put = torch.randint(0, size - side + 1, (n, pieces, 2), generator=generator)
    steps = torch.arange(side)
    rows = (cut[..., 0, None] + steps)[..., :, None]  # (N, pieces, side, 1)
    cols = (cut[..., 1, None] + steps)[..., None, :]  # (N, pieces, 1, side)
    crops = images[donors[..., None, None], 0, rows, cols]  # (N, pieces, side, side)
    where = (put[..., 0, None] + steps)[..., :, None] * size + (put[..., 1, None] + steps)[..., None, :]
    canvas.scatter_reduce_(1, where.reshape(n, -1), crops.reshape(n, -1), "amax")
    place = torch.randint(0, size - 28 + 1, (n, 2), generator=generator)
    steps = torch.arange(28)
    where = (place[:, 0, None] + steps)[:, :, None] * size + (place[:, 1, None] + steps)[:, None, :]
    canvas.scatter_reduce_(1, where.reshape(n, -1), images[:, 0].reshape(n, -1), "amax")
    return canvas.view(n, 1, size, size)
