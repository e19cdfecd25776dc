"""STN parameters <-> pixel matrices for the three families, and their shared weighted estimate.

Parameters describe the destination -> source map like torch's ``affine_grid`` ``theta``: the
translation ``t`` is in normalised units (1 = half the image), taken from the image centres, and the
``2 x 2`` linear part ``L`` acts on pixels about the centres::

    p_src = c_src + L (p_dst - c_dst) + t * h_src

``c`` is the pixel centre ``((W - 1) / 2, (H - 1) / 2)``, ``h`` the half extent (``(W / 2, H / 2)``, or
``((W - 1) / 2, (H - 1) / 2)`` with ``align_corners=True``). With equal source and destination sizes this
is exactly ``affine_grid``'s ``theta = [[L, t]]``.
"""

from __future__ import annotations

import torch

from warpkit.plugin import ShapeError, as_float_tensor, checked_inverse

__all__ = ["centre_and_half", "check_params", "params_to_matrix", "matrix_to_linear"]


def check_params(params, count: int) -> torch.Tensor:
    p = as_float_tensor(params, "params")
    if p.ndim != 2 or p.shape[1] != count:
        raise ShapeError(f"params: expected shape (B, {count}), got {tuple(p.shape)}")
    return p


def centre_and_half(size, align_corners: bool, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(2,)`` pixel centre and half extent ``(x, y)`` of an image of ``size = (H, W)``."""
    height, width = size
    if min(height, width) < (2 if align_corners else 1):  # checked on the numbers: tensors may live on meta
        raise ShapeError(f"size: expected H and W >= {2 if align_corners else 1}, got {size}")
    centre = like.new_tensor([(width - 1) / 2, (height - 1) / 2])
    half = centre if align_corners else like.new_tensor([width / 2, height / 2])
    return centre, half


def params_to_matrix(linear, translation, src_size, dst_size, align_corners) -> torch.Tensor:
    """``(B, 2, 3)`` source -> destination pixel matrix from ``(B, 2, 2)`` ``L`` and ``(B, 2)`` ``t``."""
    c_src, h_src = centre_and_half(src_size, align_corners, linear)
    c_dst, _ = centre_and_half(dst_size, align_corners, linear)
    offset = c_src + translation * h_src - linear @ c_dst
    dst_to_src = torch.cat([torch.cat([linear, offset.unsqueeze(-1)], dim=2), _last_row(linear)], dim=1)
    return checked_inverse(dst_to_src, "params")[:, :2]  # zero scale: a SingularMatrixError naming params


def matrix_to_linear(matrix, src_size, dst_size, align_corners) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`params_to_matrix`: ``(B, 3, 3)`` pixel matrix -> ``L`` ``(B, 2, 2)``, ``t`` ``(B, 2)``."""
    dst_to_src = checked_inverse(matrix)
    linear = dst_to_src[:, :2, :2]
    c_src, h_src = centre_and_half(src_size, align_corners, linear)
    c_dst, _ = centre_and_half(dst_size, align_corners, linear)
    translation = (dst_to_src[:, :2, 2] + linear @ c_dst - c_src) / h_src
    return linear, translation


def _last_row(like: torch.Tensor) -> torch.Tensor:
    row = like.new_zeros(like.shape[0], 1, 3)
    row[..., 2] = 1
    return row
