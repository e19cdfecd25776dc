"""Box pyramids (2x2 averages, like mipmaps) for the anti-aliased warp.

Level ``k`` holds 2^k x 2^k box averages of the source (level 0 is the image): pixel ``j`` of level ``k``
covers source pixels ``j 2^k .. (j + 1) 2^k - 1``, so source point ``x`` sits at ``(x + 0.5) / 2^k - 0.5``
on level ``k`` (:func:`to_level`). A level with an odd side is first extended by one pixel with the
padding rule, so at the border a level averages what the plain warp would read there (zeros, ``fill``,
the mirrored or wrapped image). Reads of a level go through :func:`warpkit.sample` with the same padding,
so each level has the border rule of the image. Everything is torch ops: gradients reach the image and
a tensor ``fill``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._modes import Padding

__all__ = ["build_pyramid", "max_level", "to_level"]


def max_level(height: int, width: int) -> int:
    """Index of the first level whose sides are both 1 pixel."""
    return math.ceil(math.log2(max(height, width, 1)))


def to_level(points: torch.Tensor, level: int) -> torch.Tensor:
    """Source pixel coordinates ``(..., 2)`` in the pixel coordinates of pyramid ``level``."""
    if level == 0:
        return points
    scale = 2.0**level
    return (points + 0.5) / scale - 0.5


def build_pyramid(image: torch.Tensor, levels: int, padding: Padding, fill: torch.Tensor) -> list[torch.Tensor]:
    """Levels ``0 .. levels - 1`` of ``image`` ``(B, C, H, W)``; ``fill`` ``(1, C, 1, 1)`` (for ``constant``).

    Level ``k`` is ``(B, C, ceil(H / 2^k), ceil(W / 2^k))``.
    """
    pyramid = [image]
    for _ in range(1, levels):
        level = pyramid[-1]
        extra_h, extra_w = level.shape[-2] % 2, level.shape[-1] % 2
        if extra_h or extra_w:
            level = _extend(level, extra_h, extra_w, padding, fill)
        pyramid.append(F.avg_pool2d(level, 2))
    return pyramid


def _extend(level: torch.Tensor, rows: int, cols: int, padding: Padding, fill: torch.Tensor) -> torch.Tensor:
    """Append ``rows`` rows and ``cols`` columns (0 or 1 each) read with the padding rule."""
    h, w = level.shape[-2:]
    if cols:
        level = torch.cat([level, _border_slice(level, w, -1, padding, fill)], dim=-1)
    if rows:
        level = torch.cat([level, _border_slice(level, h, -2, padding, fill)], dim=-2)
    return level


def _border_slice(level: torch.Tensor, n: int, dim: int, padding: Padding, fill: torch.Tensor) -> torch.Tensor:
    """The line just past index ``n - 1`` along ``dim`` under the padding rule (``cv2.borderInterpolate(n)``)."""
    if padding in (Padding.ZEROS, Padding.CONSTANT):
        shape = list(level.shape)
        shape[dim] = 1
        return fill.to(level.dtype).expand(shape)
    if padding is Padding.WRAP:
        index = 0
    elif padding is Padding.REFLECT101 and n > 1:
        index = n - 2
    else:  # replicate, reflect (edge repeated), a single line under reflect101
        index = n - 1
    return level.narrow(dim, index, 1)
