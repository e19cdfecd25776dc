"""Sampling grids between torch's normalised frame and warpkit's pixel frame.

torch's ``grid_sample`` reads an image at normalised ``(x, y)`` in ``[-1, 1]``; warpkit's :func:`warpkit.sample`
reads it at pixel ``(x, y)`` with pixel centres at integers. For an image of width ``W`` (the image the grid
samples, not the grid's own size) the x coordinates convert as

- ``align_corners=False`` (torch's default): ``x = ((g + 1) W - 1) / 2``, ``g = (2 x + 1) / W - 1``:
  -1 and 1 are the outer edges of the border pixels;
- ``align_corners=True``: ``x = (g + 1) (W - 1) / 2``, ``g = 2 x / (W - 1) - 1``: -1 and 1 are their centres;

and y likewise with the height ``H``. So ``F.grid_sample(image, g, align_corners=a)`` equals
``warpkit.sample(image, normalized_to_pixel(g, image.shape[-2:], align_corners=a))`` (bilinear, nearest and
bicubic; ``zeros`` and ``border``/``replicate`` padding), and a grid built for the wrong ``align_corners`` is
off by up to half a pixel at the centre and a pixel at the borders.
"""

from __future__ import annotations

import torch

from ._checks import check_floating, check_size
from ._errors import ShapeError

__all__ = ["normalized_to_pixel", "pixel_to_normalized"]


def normalized_to_pixel(grid: torch.Tensor, size, *, align_corners: bool = False) -> torch.Tensor:
    """torch's normalised ``(..., 2)`` grid ``(x, y)`` in ``[-1, 1]`` as warpkit pixel coordinates.

    Args:
        grid: ``(..., 2)`` floating tensor, e.g. ``(B, H_out, W_out, 2)`` from ``F.affine_grid``.
        size: ``(H, W)`` of the image the grid samples.
        align_corners: as passed to ``F.grid_sample`` / ``F.affine_grid`` (default False, as torch's).

    Returns:
        ``(..., 2)`` pixel coordinates, same dtype and device (differentiable).
    """
    scale, offset = _frame(grid, size, align_corners, need_two=False)
    return grid * scale + offset


def pixel_to_normalized(grid: torch.Tensor, size, *, align_corners: bool = False) -> torch.Tensor:
    """Inverse of :func:`normalized_to_pixel`: a warpkit ``(..., 2)`` pixel grid (``T.grid(size)``) as the
    normalised grid ``F.grid_sample`` takes for an image of ``size = (H, W)``.

    With ``align_corners=True`` both sides of the image must be at least 2 pixels (a 1-pixel side has no
    normalised scale there).
    """
    scale, offset = _frame(grid, size, align_corners, need_two=True)
    return (grid - offset) / scale


def _frame(grid: torch.Tensor, size, align_corners: bool, need_two: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-axis ``(2,)`` scale and offset with ``pixel = normalised * scale + offset``."""
    check_floating(grid, "grid")
    if grid.ndim < 1 or grid.shape[-1] != 2:
        raise ShapeError(f"grid: expected shape (..., 2) of (x, y) pairs, got {tuple(grid.shape)}")
    height, width = check_size(size)
    if not isinstance(align_corners, bool):
        raise ShapeError(f"align_corners: expected True or False, got {align_corners!r}")
    least = 2 if (align_corners and need_two) else 1
    if height < least or width < least:
        raise ShapeError(f"size: expected H and W >= {least} with align_corners={align_corners}, got {(height, width)}")
    if align_corners:
        scale = [(width - 1) / 2, (height - 1) / 2]
        offset = scale
    else:
        scale = [width / 2, height / 2]
        offset = [(width - 1) / 2, (height - 1) / 2]
    return (
        torch.tensor(scale, dtype=grid.dtype, device=grid.device),
        torch.tensor(offset, dtype=grid.dtype, device=grid.device),
    )
