"""``warp``: read an image through a transform, via the one sampler door."""

from __future__ import annotations

import torch

from ._base import Transform
from ._checks import broadcast_batch, check_floating, check_output_size, check_size, check_same_device
from ._dispatch import Call, resample
from ._errors import ShapeError, WarpkitError
from ._modes import Interpolation, Padding, parse_mode
from ._sampler import parse_fill

__all__ = ["warp"]


def warp(
    image: torch.Tensor,
    transform: Transform,
    size=None,
    *,
    interpolation: str | Interpolation = "bilinear",
    padding: str | Padding = "zeros",
    fill: float | tuple[float, ...] | torch.Tensor = 0.0,
    antialias: bool = False,
) -> torch.Tensor:
    """Warp ``image`` by ``transform`` (source -> destination, pixel coordinates).

    ``warp(img, wk.Affine(M), (h, w))`` equals ``cv2.warpAffine(img, M, (w, h))`` with the matching flags.

    Args:
        image: ``(B, C, H, W)`` or ``(C, H, W)`` floating tensor.
        transform: any :class:`warpkit.Transform`; a batch of 1 on either side broadcasts.
        size: ``(H_out, W_out)``; default the input size.
        interpolation, padding, fill: as in :func:`warpkit.sample`.
        antialias: where the warp shrinks the image, average the source over each output pixel's footprint
            instead of reading one point (where it magnifies, the result is exactly the plain warp).

    Returns:
        ``(B, C, H_out, W_out)`` (``(C, H_out, W_out)`` for unbatched input with a batch-1 transform).
    """
    check_floating(image, "image")
    if image.ndim not in (3, 4):
        raise ShapeError(f"image: expected shape (B, C, H, W) or (C, H, W), got {tuple(image.shape)}")
    if not isinstance(transform, Transform):
        raise WarpkitError(f"transform: expected a warpkit Transform, got {type(transform).__name__}")
    mode = parse_mode(Interpolation, interpolation, "interpolation")
    pad = parse_mode(Padding, padding, "padding")
    size = tuple(image.shape[-2:]) if size is None else check_size(size)
    unbatched = image.ndim == 3
    batched = image.unsqueeze(0) if unbatched else image
    batch = broadcast_batch(batched.shape[0], transform.batch_size, "image and transform")
    check_output_size(batch, batched.shape[1], size)
    if antialias:
        from ._antialias import warp_antialiased

        out = warp_antialiased(batched, transform, size, interpolation=mode, padding=pad, fill=fill)
    else:
        fill_t, finite = parse_fill(fill, pad, batched, batch)
        out = resample(_coordinates(batched, transform, size, mode, pad, fill_t, finite))
    return out[0] if unbatched and out.shape[0] == 1 else out


def _coordinates(image, transform, size, mode, pad, fill, finite) -> Call:
    """The call for ``transform``: its destination -> source matrix when it has one (no grid built here;
    the backend computes the points), else its grid."""
    if transform.has_matrix:
        inverse = transform.inverse()
        if getattr(inverse, "has_matrix", False):
            matrix = inverse.matrix
            check_same_device(("image", image), ("transform", matrix))
            from .families.affine import Affine

            return Call(image, matrix, True, isinstance(inverse, Affine), size, mode, pad, fill, finite)
    grid = transform.grid(size)
    check_same_device(("image", image), ("transform", grid))
    return Call(image, grid, False, False, size, mode, pad, fill, finite)
