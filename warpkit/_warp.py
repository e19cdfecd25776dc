"""``warp``: a transform's grid read through the sampler."""

from __future__ import annotations

import torch

from ._base import Transform
from ._checks import broadcast_batch, check_floating, check_output_size, check_size
from ._errors import ShapeError, WarpkitError
from ._fast import warp_matrix as _fast_warp_matrix
from ._modes import Interpolation, Padding
from ._sampler import sample

__all__ = ["warp"]


def warp(
    image: torch.Tensor,
    transform: Transform,
    size=None,
    *,
    interpolation: str | Interpolation = "bilinear",
    padding: str | Padding = "zeros",
    fill: float | tuple[float, ...] | torch.Tensor = 0.0,
) -> torch.Tensor:
    """Warp ``image`` by ``transform`` (source -> destination, pixel coordinates).

    ``warp(img, wk.Affine(M), (h, w))`` equals ``cv2.warpAffine(img, M, (w, h))`` with the matching flags.

    Args:
        image: ``(B, C, H, W)`` or ``(C, H, W)`` floating tensor.
        transform: any :class:`warpkit.Transform`; a batch of 1 on either side broadcasts.
        size: ``(H_out, W_out)``; default the input size.
        interpolation, padding, fill: as in :func:`warpkit.sample`.

    Returns:
        ``(B, C, H_out, W_out)`` (``(C, H_out, W_out)`` for unbatched input with a batch-1 transform).
    """
    check_floating(image, "image")
    if image.ndim not in (3, 4):
        raise ShapeError(f"image: expected shape (B, C, H, W) or (C, H, W), got {tuple(image.shape)}")
    if not isinstance(transform, Transform):
        raise WarpkitError(f"transform: expected a warpkit Transform, got {type(transform).__name__}")
    size = tuple(image.shape[-2:]) if size is None else check_size(size)
    batch = broadcast_batch(image.shape[0] if image.ndim == 4 else 1, transform.batch_size, "image and transform")
    check_output_size(batch, image.shape[-3], size)
    if transform.has_matrix:  # fused kernel: coordinates computed from the matrix, no grid materialised
        batched = image if image.ndim == 4 else image.unsqueeze(0)
        out = _fast_warp_matrix(batched, transform, size, interpolation, padding, fill)
        if out is not None:
            return out[0] if image.ndim == 3 and transform.batch_size == 1 else out
    grid = transform.grid(size)
    if image.ndim == 3:
        if transform.batch_size == 1:
            return sample(image, grid[0], interpolation=interpolation, padding=padding, fill=fill)
        image = image.unsqueeze(0)
    return sample(image, grid, interpolation=interpolation, padding=padding, fill=fill)
