"""``sample``: read an image at pixel coordinates, through the one sampler door (:mod:`warpkit._dispatch`).

Convention: ``grid[b, i, j] = (x, y)`` is the source point, in pixel coordinates (x the column, y the
row, pixel centres at integers), read for destination pixel ``(i, j)``. Border modes follow OpenCV: every
interpolation tap is mapped into the image on its own (``cv2.borderInterpolate``); with ``zeros`` and
``constant`` a tap outside reads ``fill``. Non-finite coordinates read ``fill`` in every padding mode.
"""

from __future__ import annotations

import math

import torch

from ._checks import broadcast_batch, check_floating, check_output_size, check_same_device
from ._dispatch import Call, resample
from ._errors import DTypeError, ShapeError
from ._modes import Interpolation, Padding, parse_mode

__all__ = ["sample", "prepare_fill", "parse_fill"]


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
        fill: value read outside the image with ``constant``: a scalar, one value per channel ``(C,)``, or
            one per batch member and channel ``(B, C)`` / ``(B, C, 1, 1)`` (kornia's per-sample fill).

    Returns:
        ``(B, C, H_out, W_out)`` (or ``(C, H_out, W_out)`` for unbatched input) in ``image``'s dtype.
        float16 and bfloat16 are computed in float32. Differentiable with respect to ``image``, ``grid``
        and a tensor ``fill``.
    """
    mode = parse_mode(Interpolation, interpolation, "interpolation")
    pad = parse_mode(Padding, padding, "padding")
    image, grid, batch, unbatched = _check_image_and_grid(image, grid)
    size = (grid.shape[1], grid.shape[2])
    check_output_size(batch, image.shape[1], size, "grid")
    fill_t, finite = parse_fill(fill, pad, image, batch)
    out = resample(Call(image, grid, False, False, size, mode, pad, fill_t, finite))
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
        raise ShapeError(
            f"grid: expected shape {expected} to match image {tuple(image.shape)}, got {tuple(grid.shape)}"
        )
    check_same_device(("image", image), ("grid", grid))
    if unbatched:
        image, grid = image.unsqueeze(0), grid.unsqueeze(0)
    return image, grid, broadcast_batch(image.shape[0], grid.shape[0], "image and grid"), unbatched


_FILL_CACHE: dict[tuple, torch.Tensor] = {}


def parse_fill(
    fill: object, padding: Padding, image: torch.Tensor, batch: int
) -> tuple[torch.Tensor | None, bool | None]:
    """``fill`` as a ``(1 or batch, C, 1, 1)`` tensor on ``image``'s device (None unless ``constant``), and
    whether it is known to be finite (None when that would need a look at device memory)."""
    if padding is not Padding.CONSTANT:
        return None, True
    channels = image.shape[1]
    if isinstance(fill, torch.Tensor):
        check_same_device(("image", image), ("fill", fill))
        values = fill.to(dtype=image.dtype)
        known = bool(torch.isfinite(values).all()) if values.device.type == "cpu" else None
    else:
        if isinstance(fill, (int, float)) and not isinstance(fill, bool):
            _check_representable((float(fill),), image.dtype)
            # torch.full writes the value on the device: no host-to-device copy
            values = torch.full((1, channels, 1, 1), float(fill), dtype=image.dtype, device=image.device)
            return values, math.isfinite(fill)
        values = _fill_from_numbers(fill, image, channels)
        known = bool(torch.isfinite(values).all().item()) if values.device.type == "cpu" else None
    return _fill_shape(values, channels, batch), known


def _fill_from_numbers(fill: object, image: torch.Tensor, channels: int) -> torch.Tensor:
    try:
        numbers = tuple(float(v) for v in fill)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ShapeError(f"fill: expected a number or {channels} numbers (one per channel), got {fill!r}") from None
    _check_representable(numbers, image.dtype)
    key = (numbers, image.dtype, image.device)
    values = _FILL_CACHE.get(key)
    if values is None:  # one host-to-device copy per distinct fill, not one per call
        values = torch.tensor(numbers, dtype=image.dtype, device=image.device)
        if len(_FILL_CACHE) > 64:
            _FILL_CACHE.clear()
        _FILL_CACHE[key] = values
    return values


def _check_representable(numbers: tuple[float, ...], dtype: torch.dtype) -> None:
    """Finite numbers beyond the dtype's range would overflow on conversion: refuse them by name."""
    limit = torch.finfo(dtype).max
    for v in numbers:
        if math.isfinite(v) and abs(v) > limit:
            raise DTypeError(f"fill: expected values that {dtype} can hold (|v| <= {limit:.3g}), got {v!r}")


def _fill_shape(values: torch.Tensor, channels: int, batch: int) -> torch.Tensor:
    shape = tuple(values.shape)
    if values.ndim == 0:
        return values.reshape(1, 1, 1, 1).expand(1, channels, 1, 1)
    if values.ndim == 1 and shape[0] == channels:
        return values.reshape(1, channels, 1, 1)
    if values.ndim == 4 and shape[2:] == (1, 1):
        values = values.reshape(shape[0], shape[1])
    if values.ndim == 2 and values.shape[0] in (1, batch) and values.shape[1] == channels:
        return values.reshape(values.shape[0], channels, 1, 1)
    raise ShapeError(
        f"fill: expected a number, {channels} values (one per channel) or shape ({batch}, {channels}) / "
        f"({batch}, {channels}, 1, 1) (one per batch member and channel), got shape {shape}"
    )


def prepare_fill(fill: object, padding: Padding, image: torch.Tensor) -> torch.Tensor:
    """``fill`` as a ``(1 or B, C, 1, 1)`` tensor (zeros unless ``constant``): the reference's argument."""
    values, _ = parse_fill(fill, padding, image, image.shape[0])
    return values if values is not None else image.new_zeros(1, image.shape[1], 1, 1)
