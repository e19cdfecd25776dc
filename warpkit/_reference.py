"""The reference sampler: pure torch (gather, floor, where), the oracle every other backend is tested against.

Convention: ``grid[b, i, j] = (x, y)`` is the source point, in pixel coordinates (x the column, y the row,
pixel centres at integers), read for destination pixel ``(i, j)``. Border modes follow OpenCV: every
interpolation tap is mapped into the image on its own (``cv2.borderInterpolate``); with ``zeros`` and
``constant`` a tap outside reads ``fill``. Non-finite coordinates read ``fill`` in every padding mode.
``fill`` only ever reaches pixels with a tap outside the image: a huge or non-finite fill cannot leak inside.
"""

from __future__ import annotations

import torch

from ._checks import broadcast_batch
from ._modes import Interpolation, Padding

__all__ = ["reference_sample", "taps", "border", "COORD_LIMIT", "CUBIC_A"]

# Coordinates are clamped to +-COORD_LIMIT before taps are formed: it keeps integer indices far from
# overflow, and float32 has no fractional precision left beyond it.
COORD_LIMIT = float(2**24)
CUBIC_A = -0.75


def reference_sample(
    image: torch.Tensor, grid: torch.Tensor, mode: Interpolation, pad: Padding, fill: torch.Tensor
) -> torch.Tensor:
    """Read ``image`` ``(B, C, H, W)`` at ``grid`` ``(B, H_out, W_out, 2)`` (batch 1 broadcasts on either side).

    ``fill`` is ``(1, C, 1, 1)`` or ``(B, C, 1, 1)`` (used with ``zeros``/``constant`` only). Returns
    ``(B, C, H_out, W_out)`` in ``image``'s dtype (float16/bfloat16 computed in float32), channels-last when
    ``image`` is. Differentiable in ``image``, ``grid`` and ``fill``; traceable and exportable.
    """
    out_dtype = image.dtype
    work = torch.promote_types(out_dtype, torch.float32)
    batch = broadcast_batch(image.shape[0], grid.shape[0], "image and grid")
    _, channels, height, width = image.shape
    out_h, out_w = grid.shape[1], grid.shape[2]
    img = image.to(work).expand(batch, -1, -1, -1).reshape(batch, channels, height * width)
    grid = grid.to(work).expand(batch, -1, -1, -1).reshape(batch, out_h * out_w, 2)
    fill = fill.to(work).reshape(fill.shape[0], channels, 1)
    uses_fill = pad in (Padding.ZEROS, Padding.CONSTANT)
    if height == 0 or width == 0:
        value = fill if uses_fill else fill.new_zeros(())
        out = value.expand(batch, channels, out_h * out_w).clone()
        return _finish(out.reshape(batch, channels, out_h, out_w), image, out_dtype)

    x, y = grid[..., 0], grid[..., 1]
    finite = torch.isfinite(x) & torch.isfinite(y)
    x = torch.where(finite, x, torch.zeros_like(x)).clamp(-COORD_LIMIT, COORD_LIMIT)
    y = torch.where(finite, y, torch.zeros_like(y)).clamp(-COORD_LIMIT, COORD_LIMIT)
    taps_x = taps(x, mode)
    taps_y = taps(y, mode)
    cols = [border(i, width, pad) for i, _ in taps_x]
    rows = [border(i, height, pad) for i, _ in taps_y]

    out = img.new_zeros(batch, channels, out_h * out_w)
    coverage = img.new_zeros(batch, 1, out_h * out_w)
    all_inside = finite.unsqueeze(1)
    for (row, row_ok), (_, wy) in zip(rows, taps_y):
        for (col, col_ok), (_, wx) in zip(cols, taps_x):
            ok = (row_ok & col_ok & finite).unsqueeze(1)
            weight = torch.where(ok, (wy * wx).unsqueeze(1), torch.zeros_like(ok, dtype=work))
            index = (row * width + col).unsqueeze(1).expand(batch, channels, -1)
            out = out + weight * img.gather(2, index)
            coverage = coverage + weight
            all_inside = all_inside & ok
    if uses_fill:
        # Only pixels with a tap outside take fill, so fill=inf or 1e30 never touches an in-image pixel.
        out = torch.where(all_inside, out, out + fill * (1 - coverage))
    return _finish(out.reshape(batch, channels, out_h, out_w), image, out_dtype)


def _finish(out: torch.Tensor, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    out = out.to(dtype)
    if like.ndim == 4 and not like.is_contiguous() and like.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def taps(coord: torch.Tensor, mode: Interpolation) -> list[tuple[torch.Tensor, torch.Tensor]]:
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
    a = CUBIC_A
    s = t + 1
    w0 = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    u = 1 - t
    w2 = ((a + 2) * u - (a + 3)) * u * u + 1
    w3 = 1 - w0 - w1 - w2
    return [(start - 1, w0), (start, w1), (start + 1, w2), (start + 2, w3)]


def border(index: torch.Tensor, n: int, pad: Padding) -> tuple[torch.Tensor, torch.Tensor]:
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
