"""``warp``: read an image through a transform, via the one sampler door."""

from __future__ import annotations

import math

import torch

from ._base import Transform
from ._checks import broadcast_batch, check_floating, check_output_size, check_same_device, check_size
from ._dispatch import Call, resample
from ._errors import ShapeError, SingularMatrixError, WarpkitError
from ._modes import Interpolation, Padding, parse_mode
from ._sampler import parse_fill
from .families.affine import Affine

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
        if type(transform) is Affine:
            check_same_device(("image", image), ("transform", transform._m))
            matrix, affine = _affine_inverse(transform._m), True
        else:
            inverse = transform.inverse()
            if not getattr(inverse, "has_matrix", False):
                return _grid_call(image, transform, size, mode, pad, fill, finite)
            matrix, affine = inverse.matrix, isinstance(inverse, Affine)
        check_same_device(("image", image), ("transform", matrix))
        return Call(image, matrix, True, affine, size, mode, pad, fill, finite)
    return _grid_call(image, transform, size, mode, pad, fill, finite)


def _grid_call(image, transform, size, mode, pad, fill, finite) -> Call:
    grid = transform.grid(size)
    check_same_device(("image", image), ("transform", grid))
    return Call(image, grid, False, False, size, mode, pad, fill, finite)


def _affine_inverse(matrix: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` inverse of ``(B, 2, 3)`` affine matrices in closed form (a 2x2 inverse and a shift).

    ``Affine.inverse()`` gives the same within rounding, but its general ``n x n`` conditioning test and
    inverse cost most of a small warp's time. The test here is the 2x2 case of the same rule: the smaller
    singular value of the linear part against the larger (``s_min s_max = |det|``, ``s_max^2 <= |A|_F^2``),
    so a large translation never counts against a matrix. The arithmetic follows ``cv2.invertAffineTransform``
    so that exact .5 ties fall as OpenCV's do.
    """
    if matrix.device.type == "cpu" and not matrix.requires_grad and matrix.shape[0] <= 4:
        return _affine_inverse_on_host(matrix)  # a few Python floats: cheaper than a dozen tiny tensor ops
    a, b, c = matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 0, 2]
    d, e, f = matrix[:, 1, 0], matrix[:, 1, 1], matrix[:, 1, 2]
    det = a * e - b * d
    scale = matrix[:, :, :2].square().sum((-2, -1))
    bad = ~(det.abs() > 1e-12 * scale) | ~torch.isfinite(matrix).flatten(1).all(1)
    if bad.any():
        _singular(matrix, int(bad.nonzero()[0, 0]))
    r = 1.0 / det
    ia, ib, id_, ie = e * r, -b * r, -d * r, a * r
    rows = [ia, ib, -ia * c - ib * f, id_, ie, -id_ * c - ie * f]
    last = torch.tensor([0.0, 0.0, 1.0], dtype=matrix.dtype, device=matrix.device).expand(matrix.shape[0], 3)
    return torch.cat([torch.stack(rows, -1), last], -1).reshape(-1, 3, 3)


def _affine_inverse_on_host(matrix: torch.Tensor) -> torch.Tensor:
    rows = []
    for index, ((a, b, c), (d, e, f)) in enumerate(matrix.tolist()):
        det = a * e - b * d
        if not (abs(det) > 1e-12 * (a * a + b * b + d * d + e * e)) or not math.isfinite(det + c + f):
            _singular(matrix, index)
        r = 1.0 / det
        ia, ib, id_, ie = e * r, -b * r, -d * r, a * r
        rows.append([[ia, ib, -ia * c - ib * f], [id_, ie, -id_ * c - ie * f], [0.0, 0.0, 1.0]])
    return torch.tensor(rows, dtype=matrix.dtype)


def _singular(matrix: torch.Tensor, index: int) -> None:
    raise SingularMatrixError(
        f"matrix: expected an invertible matrix, got a singular one at batch index {index}: "
        f"{matrix[index].detach().cpu().tolist()}"
    )
