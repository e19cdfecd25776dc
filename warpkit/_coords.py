"""Pixel grids, homogeneous points, and the pixel <-> normalised ([-1, 1]) frames used by torch."""

from __future__ import annotations

import torch

from ._errors import ShapeError, SingularMatrixError

__all__ = [
    "pixel_grid",
    "apply_matrix",
    "normalization_matrix",
    "theta_to_matrix",
    "matrix_to_theta",
    "theta_grid",
]


def pixel_grid(size: tuple[int, int], dtype: torch.dtype, device: torch.device | str | None = None) -> torch.Tensor:
    """``(H, W, 2)`` pixel centres ``(x, y)`` of an image of ``size = (H, W)``."""
    height, width = size
    ys = torch.arange(height, dtype=dtype, device=device)
    xs = torch.arange(width, dtype=dtype, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def apply_matrix(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply ``(B, 3, 3)`` matrices to ``(B, N, 2)`` points (projective division included)."""
    linear = matrix[:, :2, :2]
    offset = matrix[:, :2, 2]
    mapped = points @ linear.transpose(1, 2) + offset.unsqueeze(1)
    w = points @ matrix[:, 2, :2].unsqueeze(-1) + matrix[:, 2, 2].reshape(-1, 1, 1)
    return mapped / w


def normalization_matrix(
    size: tuple[int, int],
    align_corners: bool,
    dtype: torch.dtype = torch.float64,
    device=None,
    argument: str = "size",
    inverse: bool = False,
) -> torch.Tensor:
    """``(3, 3)`` matrix taking pixel coordinates of an image of ``size = (H, W)`` to torch's [-1, 1]
    (``inverse=True``: back to pixels; built from Python numbers, so it is a constant when traced).

    align_corners=False: -1 and 1 are the outer edges of the border pixels; True: their centres.
    """
    height, width = size
    if align_corners:
        if height < 2 or width < 2:
            raise ShapeError(f"{argument}: expected H and W >= 2 with align_corners=True, got {size}")
        sx, sy, ox, oy = 2 / (width - 1), 2 / (height - 1), -1.0, -1.0
    else:
        if height < 1 or width < 1:
            raise ShapeError(f"{argument}: expected H and W >= 1, got {size}")
        sx, sy, ox, oy = 2 / width, 2 / height, 1 / width - 1, 1 / height - 1
    if inverse:
        sx, sy, ox, oy = 1 / sx, 1 / sy, -ox / sx, -oy / sy
    return torch.tensor([[sx, 0.0, ox], [0.0, sy, oy], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def theta_to_matrix(theta: torch.Tensor, src_size, dst_size, align_corners: bool) -> torch.Tensor:
    """``(B, 3, 3)`` normalised dst -> src ``theta`` into the pixel source -> destination matrix ``M``."""
    n_src = normalization_matrix(src_size, align_corners, theta.dtype, theta.device, "src_size")
    n_dst = normalization_matrix(dst_size, align_corners, theta.dtype, theta.device, "dst_size")
    dst_to_src = torch.linalg.solve(n_src, theta) @ n_dst
    matrix, info = torch.linalg.inv_ex(dst_to_src)
    if (info != 0).any():
        index = int((info != 0).nonzero()[0, 0])
        raise SingularMatrixError(
            f"params: expected parameters of an invertible transform, got singular ones at batch index {index}"
        )
    return matrix


def matrix_to_theta(matrix: torch.Tensor, src_size, dst_size, align_corners: bool) -> torch.Tensor:
    """Inverse of :func:`theta_to_matrix`: ``(B, 3, 3)`` pixel ``M`` into normalised dst -> src ``theta``."""
    n_src = normalization_matrix(src_size, align_corners, matrix.dtype, matrix.device, "src_size")
    n_dst = normalization_matrix(dst_size, align_corners, matrix.dtype, matrix.device, "dst_size")
    return n_src @ torch.linalg.solve(matrix, torch.linalg.inv(n_dst))


def theta_grid(theta: torch.Tensor, src_size, dst_size, align_corners: bool) -> torch.Tensor:
    """``(B, H, W, 2)`` source pixel points read by the destination pixels for a ``(B, 3, 3)`` normalised
    destination -> source ``theta``, as ``F.affine_grid`` (plus the projective division). Matmuls only: no
    inverse or data-dependent branch, so it traces, compiles and exports.
    """
    to_src = normalization_matrix(src_size, align_corners, theta.dtype, theta.device, "src_size", inverse=True)
    n_dst = normalization_matrix(dst_size, align_corners, theta.dtype, theta.device, "dst_size")
    points = pixel_grid(dst_size, theta.dtype, theta.device).reshape(1, -1, 2)
    source = apply_matrix(to_src @ theta @ n_dst, points)
    return source.reshape(theta.shape[0], dst_size[0], dst_size[1], 2)
