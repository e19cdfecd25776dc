"""The one sampler every warp goes through.

Convention: ``grid[b, i, j] = (x, y)`` is the source point, in pixel coordinates (x the column, y the
row, pixel centres at integers), read for destination pixel ``(i, j)``. Border modes follow OpenCV: every
interpolation tap is mapped into the image on its own (``cv2.borderInterpolate``); with ``zeros`` and
``constant`` a tap outside reads ``fill``. Non-finite coordinates read ``fill`` in every padding mode.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._checks import broadcast_batch, check_floating, check_output_size, check_same_device
from ._errors import ShapeError
from ._modes import Interpolation, Padding, parse_mode

__all__ = ["sample", "prepare_fill", "COORD_LIMIT"]

# Coordinates are clamped to +-COORD_LIMIT before taps are formed: it keeps integer indices far from
# overflow, and float32 has no fractional precision left beyond it.
COORD_LIMIT = float(2**24)
_CUBIC_A = -0.75


def sample(
    image: torch.Tensor,
    grid: torch.Tensor,
    *,
    interpolation: str | Interpolation = "bilinear",
    padding: str | Padding = "zeros",
    fill: float | tuple[float, ...] | torch.Tensor = 0.0,
) -> torch.Tensor:
    """Read ``image`` at the pixel coordinates in ``grid``.

    Args:
        image: ``(B, C, H, W)`` or ``(C, H, W)`` floating tensor.
        grid: ``(B, H_out, W_out, 2)`` or ``(H_out, W_out, 2)`` source points ``(x, y)`` in pixels. A batch
            of 1 on either side broadcasts against the other.
        interpolation: ``nearest``, ``bilinear`` or ``bicubic``.
        padding: ``zeros``, ``constant``, ``replicate``, ``reflect``, ``reflect101`` or ``wrap``.
        fill: value read outside the image with ``constant``: a scalar or one value per channel.

    Returns:
        ``(B, C, H_out, W_out)`` (or ``(C, H_out, W_out)`` for unbatched input) in ``image``'s dtype.
        float16 and bfloat16 are computed in float32. Differentiable with respect to ``image``, ``grid``
        and a tensor ``fill``.
    """
    mode = parse_mode(Interpolation, interpolation, "interpolation")
    pad = parse_mode(Padding, padding, "padding")
    image, grid, batch, unbatched = _check_image_and_grid(image, grid)
    check_output_size(batch, image.shape[1], (grid.shape[1], grid.shape[2]), "grid")
    fill_t = prepare_fill(fill, pad, image)
    out = _dispatch(image, grid, mode, pad, fill_t)
    return out[0] if unbatched else out


def _check_image_and_grid(image: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """Batched ``image`` and ``grid``, their common batch size, and whether the input was unbatched."""
    check_floating(image, "image")
    check_floating(grid, "grid")
    if image.ndim not in (3, 4):
        raise ShapeError(f"image: expected shape (B, C, H, W) or (C, H, W), got {tuple(image.shape)}")
    unbatched = image.ndim == 3
    if grid.ndim != image.ndim or grid.shape[-1] != 2:
        expected = "(H_out, W_out, 2)" if unbatched else "(B, H_out, W_out, 2)"
        raise ShapeError(f"grid: expected shape {expected} to match image {tuple(image.shape)}, got {tuple(grid.shape)}")
    check_same_device(("image", image), ("grid", grid))
    if unbatched:
        image, grid = image.unsqueeze(0), grid.unsqueeze(0)
    return image, grid, broadcast_batch(image.shape[0], grid.shape[0], "image and grid"), unbatched


def prepare_fill(fill: object, padding: Padding, image: torch.Tensor) -> torch.Tensor:
    """Return ``fill`` as a ``(1, C, 1, 1)`` tensor on ``image``'s device (zeros unless ``constant``)."""
    channels = image.shape[1]
    if padding is not Padding.CONSTANT:
        return image.new_zeros(1, channels, 1, 1)
    if isinstance(fill, torch.Tensor):
        values = fill.to(device=image.device, dtype=image.dtype)
    else:
        try:
            values = torch.as_tensor(fill, dtype=image.dtype, device=image.device)
        except (TypeError, ValueError, RuntimeError):
            raise ShapeError(f"fill: expected a number or {channels} numbers (one per channel), got {fill!r}") from None
    if values.ndim == 0:
        values = values.expand(channels)
    if values.ndim != 1 or values.shape[0] != channels:
        raise ShapeError(f"fill: expected a number or {channels} values (one per channel), got shape {tuple(values.shape)}")
    return values.reshape(1, channels, 1, 1)


def _dispatch(image, grid, mode, pad, fill):
    for backend in _BACKENDS:
        out = backend(image, grid, mode, pad, fill)
        if out is not None:
            return out
    return reference_sample(image, grid, mode, pad, fill)


# Faster backends register here: each returns None when it does not apply to the call.
_BACKENDS: list[Callable[..., torch.Tensor | None]] = []


def reference_sample(
    image: torch.Tensor, grid: torch.Tensor, mode: Interpolation, pad: Padding, fill: torch.Tensor
) -> torch.Tensor:
    """Pure-torch sampler: the reference every other backend is tested against.

    ``image`` ``(B, C, H, W)``, ``grid`` ``(B, H_out, W_out, 2)`` (batch 1 broadcasts), ``fill``
    ``(1, C, 1, 1)``; returns ``(B, C, H_out, W_out)``. Traceable and exportable (gather, floor, where).
    """
    out_dtype = image.dtype
    work = torch.promote_types(out_dtype, torch.float32)
    batch = broadcast_batch(image.shape[0], grid.shape[0], "image and grid")
    _, channels, height, width = image.shape
    out_h, out_w = grid.shape[1], grid.shape[2]
    img = image.to(work).expand(batch, -1, -1, -1).reshape(batch, channels, height * width)
    grid = grid.to(work).expand(batch, -1, -1, -1).reshape(batch, out_h * out_w, 2)
    fill = fill.to(work)
    if height == 0 or width == 0:
        out = fill.reshape(1, channels, 1).expand(batch, channels, out_h * out_w).clone()
        return _finish(out.reshape(batch, channels, out_h, out_w), image, out_dtype)

    x, y = grid[..., 0], grid[..., 1]
    finite = torch.isfinite(x) & torch.isfinite(y)
    x = torch.where(finite, x, torch.zeros_like(x)).clamp(-COORD_LIMIT, COORD_LIMIT)
    y = torch.where(finite, y, torch.zeros_like(y)).clamp(-COORD_LIMIT, COORD_LIMIT)
    taps_x = _taps(x, mode)
    taps_y = _taps(y, mode)
    cols = [_border(i, width, pad) for i, _ in taps_x]
    rows = [_border(i, height, pad) for i, _ in taps_y]

    out = img.new_zeros(batch, channels, out_h * out_w)
    coverage = img.new_zeros(batch, 1, out_h * out_w)
    for (row, row_ok), (_, wy) in zip(rows, taps_y):
        for (col, col_ok), (_, wx) in zip(cols, taps_x):
            weight = (wy * wx).unsqueeze(1)
            ok = (row_ok & col_ok & finite).unsqueeze(1)
            weight = torch.where(ok, weight, torch.zeros_like(weight))
            index = (row * width + col).unsqueeze(1).expand(batch, channels, -1)
            out = out + weight * img.gather(2, index)
            coverage = coverage + weight
    out = out + fill.reshape(1, channels, 1) * (1 - coverage)
    return _finish(out.reshape(batch, channels, out_h, out_w), image, out_dtype)


def _finish(out: torch.Tensor, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    out = out.to(dtype)
    if like.ndim == 4 and not like.is_contiguous() and like.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def _taps(coord: torch.Tensor, mode: Interpolation) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Integer tap positions and their weights along one axis."""
    if mode is Interpolation.NEAREST:
        # Exact .5 ties round half to even, as OpenCV (cvRound) and torch's grid_sample do; such ties
        # are common (half-pixel shifts, scaling by 2).
        index = torch.round(coord)
        return [(index.long(), torch.ones_like(coord))]
    base = torch.floor(coord)
    t = coord - base
    start = base.long()
    if mode is Interpolation.BILINEAR:
        return [(start, 1 - t), (start + 1, t)]
    a = _CUBIC_A
    s = t + 1
    w0 = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    u = 1 - t
    w2 = ((a + 2) * u - (a + 3)) * u * u + 1
    w3 = 1 - w0 - w1 - w2
    return [(start - 1, w0), (start, w1), (start + 1, w2), (start + 2, w3)]


def _border(index: torch.Tensor, n: int, pad: Padding) -> tuple[torch.Tensor, torch.Tensor]:
    """Map tap indices into ``[0, n)`` like ``cv2.borderInterpolate``; also return which were inside."""
    inside = (index >= 0) & (index < n)
    if pad in (Padding.ZEROS, Padding.CONSTANT, Padding.REPLICATE):
        mapped = index.clamp(0, n - 1)
        return mapped, inside if pad is not Padding.REPLICATE else torch.ones_like(inside)
    everywhere = torch.ones_like(inside)
    if pad is Padding.WRAP:
        return torch.remainder(index, n), everywhere
    if pad is Padding.REFLECT:
        period = 2 * n
        m = torch.remainder(index, period)
        return torch.where(m < n, m, period - 1 - m), everywhere
    if n == 1:
        return torch.zeros_like(index), everywhere
    period = 2 * n - 2
    m = torch.remainder(index, period)
    return torch.where(m < n, m, period - m), everywhere
