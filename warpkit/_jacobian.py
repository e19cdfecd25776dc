"""Local Jacobians of a transform's grid (destination -> source), for the anti-aliased warp.

``jacobian[..., r, c]`` is the derivative of source coordinate ``r`` (x, y) along destination axis ``c``
(x, y): its columns are the source-space images of one output pixel's sides.
"""

from __future__ import annotations

import torch

from ._base import Transform

__all__ = ["source_jacobian", "grid_differences"]


def source_jacobian(transform: Transform, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``grid`` ``(B, H, W, 2)`` and its Jacobian ``(B, H, W, 2, 2)`` (see the module docstring);
    for affine maps the Jacobian is ``(B, 1, 1, 2, 2)``, the same at every pixel."""
    grid = transform.grid(size)
    if transform.has_matrix:
        # x = (A p)_xy / (A p)_w with A the destination -> source matrix: dx/dp = (A_xy - x A_w) / (A p)_w
        inverse = torch.linalg.inv(transform.matrix.to(grid.dtype))  # (B', 3, 3)
        height, width = size
        ys = torch.arange(height, dtype=grid.dtype, device=grid.device).reshape(1, height, 1)
        xs = torch.arange(width, dtype=grid.dtype, device=grid.device).reshape(1, 1, width)
        if bool((inverse[:, 2, :2] == 0).all()):  # affine: one Jacobian for every pixel, (B', 1, 1, 2, 2)
            return grid, (inverse[:, :2, :2] / inverse[:, 2:, 2:]).reshape(-1, 1, 1, 2, 2)
        row = lambda r: inverse[:, r].reshape(-1, 1, 1, 3)  # noqa: E731
        w = row(2)[..., 0] * xs + row(2)[..., 1] * ys + row(2)[..., 2]  # (B', H, W)
        top = torch.stack([row(0)[..., :2], row(1)[..., :2]], dim=-2)  # (B', 1, 1, 2, 2)
        jacobian = (top - grid.unsqueeze(-1) * row(2)[..., :2].unsqueeze(-2)) / w[..., None, None]
        return grid, jacobian.expand(grid.shape[0], -1, -1, -1, -1)
    family_jacobian = getattr(transform, "grid_jacobian", None)
    if callable(family_jacobian):
        return grid, family_jacobian(size)
    return grid, grid_differences(grid)


def grid_differences(grid: torch.Tensor) -> torch.Tensor:
    """Jacobian of ``(B, H, W, 2)`` ``grid`` by central differences (one-sided at the edges).

    Along a side of one pixel there is no neighbour: the map is taken as unit scale along it.
    """
    columns = [_derivative(grid, axis) for axis in (2, 1)]  # d/dx (along W), d/dy (along H)
    return torch.stack(columns, dim=-1)


def _derivative(grid: torch.Tensor, axis: int) -> torch.Tensor:
    n = grid.shape[axis]
    if n < 2:
        unit = grid.new_zeros(2)
        unit[0 if axis == 2 else 1] = 1
        return unit.expand_as(grid)
    if n == 2:
        d = grid.narrow(axis, 1, 1) - grid.narrow(axis, 0, 1)
        return torch.cat([d, d], dim=axis)
    centre = (grid.narrow(axis, 2, n - 2) - grid.narrow(axis, 0, n - 2)) / 2
    first = grid.narrow(axis, 1, 1) - grid.narrow(axis, 0, 1)
    last = grid.narrow(axis, n - 1, 1) - grid.narrow(axis, n - 2, 1)
    return torch.cat([first, centre, last], dim=axis)
