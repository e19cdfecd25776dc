"""The torch-native backend: torch's own ``grid_sample`` kernel (every device), made exact in all 18 modes.

``grid_sample`` works in torch's normalised frame and knows three paddings. Each warpkit mode maps onto it
without changing the result (see ``docs/backends.md``):

- ``zeros``: itself. ``constant``: ``zeros``, plus ``fill`` times the weight of the taps that fell outside,
  added only where a tap fell outside (so a huge or non-finite fill never touches an in-image pixel).
- ``replicate``: ``border``. Clamping the coordinate (bilinear, nearest) or each tap (torch's bicubic) gives
  OpenCV's per-tap clamp.
- ``reflect`` / ``reflect101``: ``reflection`` with ``align_corners`` False / True, after folding the pixel
  coordinate into one period (exact in floating point, so far-away points read what the reference reads).
- ``wrap``: the coordinate folded into ``[0, W)`` and the image padded circularly by the taps' reach.
- ``nearest``: coordinates are rounded (half to even) in pixels first, so the round trip through the
  normalised frame cannot move a .5 tie.

Non-finite points read ``fill`` (0 unless ``constant``) with zero gradient. No tensor is copied from the
host per call: frame constants are cached per device.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from ._coords import apply_matrix, cached_constant, pixel_grid
from ._modes import Interpolation, Padding
from ._reference import COORD_LIMIT, taps

__all__ = ["torch_sample", "matrix_grid"]

# How far the taps reach beyond floor(x) (below, above); nearest is rounded beforehand.
_REACH = {Interpolation.NEAREST: (0, 0), Interpolation.BILINEAR: (0, 1), Interpolation.BICUBIC: (1, 2)}
_TORCH_PADDING = {
    Padding.ZEROS: "zeros",
    Padding.CONSTANT: "zeros",
    Padding.REPLICATE: "border",
    Padding.REFLECT: "reflection",
    Padding.REFLECT101: "reflection",
    Padding.WRAP: "zeros",
}
# Paddings whose result far outside does not depend on the exact coordinate: no folding needed.
_FAR_IS_FLAT = (Padding.ZEROS, Padding.CONSTANT, Padding.REPLICATE)


def torch_sample(
    image: torch.Tensor,
    coords: torch.Tensor,
    mode: Interpolation,
    pad: Padding,
    fill: torch.Tensor,
    *,
    use_matrix: bool,
    size: tuple[int, int],
    affine: bool = False,
    fill_finite: bool | None = None,
) -> torch.Tensor:
    """Resample ``image`` ``(Bi, C, H, W)`` (``H, W >= 1``; ``H, W >= 2`` for ``reflect101``).

    ``coords`` is a ``(Bg, H_out, W_out, 2)`` pixel grid or, with ``use_matrix``, ``(Bg, 3, 3)`` destination ->
    source matrices (``affine`` when their last row is ``[0, 0, 1]``); batch 1 broadcasts on either side.
    ``fill`` ``(1 or B, C, 1, 1)``; ``fill_finite`` says whether it is known to be finite (None: check).
    Returns ``(B, C, H_out, W_out)`` in ``image``'s dtype (float16/bfloat16 computed in float32),
    channels-last when ``image`` is. Differentiable in ``image``, ``coords`` and ``fill``.
    """
    out_dtype = image.dtype
    work = torch.promote_types(out_dtype, torch.float32)
    img = image.to(work)
    coords = coords.to(work)
    height, width = img.shape[-2:]
    out_h, out_w = size
    align = pad is Padding.REFLECT101
    if align and (height == 1 or width == 1):
        # REFLECT_101 maps every tap of a 1-pixel side to index 0. align_corners=True needs 2 pixels: two equal
        # ones read the same everywhere (and autograd sums their gradients back into the one).
        img = img.expand(-1, -1, max(height, 2), max(width, 2))
        height, width = img.shape[-2:]
    grid = finite = band = None
    exporting = torch.jit.is_tracing() or _onnx_exporting()  # ONNX opset 17 has no nan_to_num
    if use_matrix and affine and mode is not Interpolation.NEAREST and pad is not Padding.WRAP and not exporting:
        # F.affine_grid's one fused op gives the normalised points directly, when no folding is needed.
        theta = _to_normalised(coords, (height, width), (out_h, out_w), align)
        reach = _affine_reach(theta) if _host_checks_allowed(theta) else None
        moderate = reach is not None and reach <= (_FAR if pad in _FAR_IS_FLAT else _NEAR)
        if moderate or pad in _FAR_IS_FLAT:
            grid = F.affine_grid(theta[:, :2], [theta.shape[0], 1, out_h, out_w], align_corners=align)
            if not moderate:
                grid = _keep_far_points_out(grid, height, width)
    if grid is None:
        pixels = matrix_grid(coords, size, affine) if use_matrix else coords
        img, grid, finite, band = _pixel_frame(img, pixels, mode, pad, align)

    out = _grid_sample(img, grid, mode, pad, align)
    if band is not None:
        out = _wrap_band(out, img, band, mode)
    if finite is not None and pad not in (Padding.ZEROS, Padding.CONSTANT):
        out = out * finite.unsqueeze(1)  # non-finite points read 0 in these modes, with zero gradient
    if pad is Padding.CONSTANT:
        out = _add_fill(out, grid, mode, fill.to(work), height, width, align, fill_finite)
    out = out.to(out_dtype)
    if image.ndim == 4 and not image.is_contiguous() and image.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out.contiguous()


# Normalised points up to _FAR need no clamping (their pixel indices are far from overflow); reflections read
# a point beyond _NEAR only after folding it in pixels, where the subtraction is exact.
_FAR, _NEAR = 1e4, 3.0


def _affine_reach(theta: torch.Tensor) -> float | None:
    """The largest ``|coordinate|`` an affine ``theta`` gives inside the ``[-1, 1]`` frame (at a corner), or None
    when ``theta`` is not finite."""
    reach = theta[:, :2].abs().sum(-1).max()
    return float(reach) if bool(torch.isfinite(reach)) else None


def _onnx_exporting() -> bool:
    return "torch.onnx" in sys.modules and torch.onnx.is_in_onnx_export()  # no 300 ms import when not exporting


def _host_checks_allowed(tensor: torch.Tensor) -> bool:
    """Whether a data-dependent Python branch on ``tensor`` is free: CPU, eager, not traced."""
    return (
        tensor.device.type == "cpu"
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
        and not _onnx_exporting()
    )


def _grid_sample(img: torch.Tensor, grid: torch.Tensor, mode: Interpolation, pad: Padding, align: bool) -> torch.Tensor:
    """``grid_sample`` with batch 1 broadcasting on either side, without copying the image per batch."""

    def run(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(image, points, mode=mode.value, padding_mode=_TORCH_PADDING[pad], align_corners=align)

    if img.shape[0] == grid.shape[0]:
        return run(img, grid)
    if grid.shape[0] == 1:
        return run(img, grid.expand(img.shape[0], -1, -1, -1))
    # One image, many grids: stack the grids along H and read the image once.
    batch, out_h, out_w, _ = grid.shape
    out = run(img, grid.reshape(1, batch * out_h, out_w, 2))
    return out.reshape(img.shape[1], batch, out_h, out_w).transpose(0, 1)


def _pixel_frame(img, pixels, mode, pad, align):
    """Fold, round and normalise pixel points for ``grid_sample``; pad the image for ``wrap``.

    Returns the image to read, the normalised grid and the mask of finite points (or None when every point
    is known to be finite).
    """
    height, width = img.shape[-2:]
    folds = pad in (Padding.REFLECT, Padding.REFLECT101, Padding.WRAP)
    clean = moderate = False
    if _host_checks_allowed(pixels):  # free on the CPU; elsewhere it would stall the stream or fix a branch
        low, high = (float(v) for v in torch.aminmax(pixels))  # NaN propagates into both
        clean = -COORD_LIMIT <= low and high <= COORD_LIMIT
        moderate = clean and -_NEAR * max(height, width) <= low and high <= _NEAR * max(height, width)
    finite = None
    if not clean:
        finite = torch.isfinite(pixels).all(-1)
        pixels = torch.where(finite.unsqueeze(-1), pixels, torch.full_like(pixels, -COORD_LIMIT))
        pixels = pixels.clamp(-COORD_LIMIT, COORD_LIMIT)
    if mode is Interpolation.NEAREST:
        pixels = torch.round(pixels)  # half to even, in pixels: the normalised round trip cannot move a tie
    if pad is Padding.WRAP or (folds and not moderate):
        # Whole periods move every tap by whole periods, so each border rule reads the same pixels; remainder
        # is fmod (exact) plus at most one addition.
        periods = cached_constant(
            ("periods", pad, height, width, pixels.dtype, pixels.device),
            lambda: pixels.new_tensor([_period(pad, width), _period(pad, height)]),
        )
        pixels = torch.remainder(pixels, periods)
    lo = hi = 0
    band = None
    if pad is Padding.WRAP and mode is not Interpolation.NEAREST:  # nearest's rounded points read inside
        if _host_checks_allowed(pixels):
            band = pixels  # the few points whose taps cross an edge are read again by _wrap_band
        else:  # a padded copy of the image: no data-dependent shapes on accelerators or in graphs
            lo, hi = _REACH[mode]
            img = _wrap_pad(img, lo, hi)
    grid = _normalise(pixels, height + lo + hi, width + lo + hi, lo, align)
    return img, grid, finite, band


def _period(pad: Padding, n: int) -> int:
    return {Padding.REFLECT: 2 * n, Padding.REFLECT101: 2 * n - 2, Padding.WRAP: n}[pad]


def _wrap_band(out: torch.Tensor, img: torch.Tensor, pixels: torch.Tensor, mode: Interpolation) -> torch.Tensor:
    """Redo, with every tap wrapped, the pixels of ``out`` whose points (folded into the image) have taps past
    an edge; ``grid_sample`` read those taps as zeros. Only a band about one source pixel wide is redone, so
    no padded copy of the image is made (measured: the copy made ``wrap`` 0.5x torch's speed in 1.6x its
    memory)."""
    batch = out.shape[0]
    height, width = img.shape[-2:]
    points = pixels.expand(batch, -1, -1, -1)
    lo, hi = _REACH[mode]
    base = torch.floor(points)
    crosses = (base[..., 0] - lo < 0) | (base[..., 0] + hi > width - 1) | (base[..., 1] - lo < 0)
    crosses = crosses | (base[..., 1] + hi > height - 1)
    b, i, j = crosses.nonzero(as_tuple=True)
    if b.numel() == 0:
        return out
    x, y = points[b, i, j, 0], points[b, i, j, 1]
    source = b if img.shape[0] == batch else torch.zeros_like(b)
    rows, cols = taps(y, mode), taps(x, mode)
    # all taps in one gather: its backward is then one scatter into one image-sized gradient
    row = torch.stack([r.remainder(height) for r, _ in rows for _ in cols], 1)
    col = torch.stack([c.remainder(width) for _ in rows for c, _ in cols], 1)
    weight = torch.stack([wy * wx for _, wy in rows for _, wx in cols], 1)
    value = (weight.unsqueeze(-1) * img[source.unsqueeze(1), :, row, col]).sum(1)
    out.permute(0, 2, 3, 1)[b, i, j] = value.to(out.dtype)
    return out


def _wrap_pad(img: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """``img`` with ``lo`` / ``hi`` rows and columns of its periodic continuation on each side."""
    if lo == hi == 0:
        return img
    height, width = img.shape[-2:]
    if lo <= min(height, width) and hi <= min(height, width):
        return F.pad(img, (lo, hi, lo, hi), mode="circular")
    rows = torch.arange(-lo, height + hi, device=img.device).remainder_(height)
    cols = torch.arange(-lo, width + hi, device=img.device).remainder_(width)
    return img.index_select(2, rows).index_select(3, cols)


def _normalise(pixels: torch.Tensor, height: int, width: int, offset: int, align: bool) -> torch.Tensor:
    """Pixel points (shifted by ``offset``) into ``grid_sample``'s frame for an image of ``(height, width)``."""
    scale, shift = _frame_constants(height, width, offset, align, pixels.dtype, pixels.device)
    return torch.addcmul(shift, pixels, scale)


def _frame_constants(height, width, offset, align, dtype, device):
    """``(2,)`` scale and shift from pixels to the normalised frame."""
    return cached_constant(
        ("frame", height, width, offset, align, dtype, device),
        lambda: _make_frame_constants(height, width, offset, align, dtype, device),
    )


def _make_frame_constants(height, width, offset, align, dtype, device):
    if align:
        sx, sy = 2 / (width - 1), 2 / (height - 1)
        ox, oy = offset * sx - 1, offset * sy - 1
    else:
        sx, sy = 2 / width, 2 / height
        ox, oy = (2 * offset + 1) / width - 1, (2 * offset + 1) / height - 1
    return (torch.tensor([sx, sy], dtype=dtype, device=device), torch.tensor([ox, oy], dtype=dtype, device=device))


def _keep_far_points_out(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clamp normalised points to 3 pixels beyond the reach of any tap (zeros/constant/replicate read the
    same there) and send NaN there too: no huge or undefined index reaches the kernel."""
    bound = 1 + 8 / min(height, width)
    return torch.nan_to_num(grid, nan=bound, posinf=bound, neginf=-bound).clamp(-bound, bound)


def _to_normalised(matrix: torch.Tensor, src_size, dst_size, align: bool) -> torch.Tensor:
    """``(B, 3, 3)`` pixel destination -> source matrices as normalised ``theta`` (no host copies)."""
    to_norm = _normaliser(src_size, align, False, matrix.dtype, matrix.device)
    from_norm = _normaliser(dst_size, align, True, matrix.dtype, matrix.device)
    return to_norm @ matrix @ from_norm


def _normaliser(size, align, inverse, dtype, device):
    return cached_constant(
        ("normaliser", size, align, inverse, dtype, device),
        lambda: _make_normaliser(size, align, inverse, dtype, device),
    )


def _make_normaliser(size, align, inverse, dtype, device):
    height, width = size
    if align:
        sx, sy, ox, oy = 2 / max(width - 1, 1), 2 / max(height - 1, 1), -1.0, -1.0
    else:
        sx, sy, ox, oy = 2 / width, 2 / height, 1 / width - 1, 1 / height - 1
    if inverse:
        sx, sy, ox, oy = 1 / sx, 1 / sy, -ox / sx, -oy / sy
    return torch.tensor([[sx, 0.0, ox], [0.0, sy, oy], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def matrix_grid(matrix: torch.Tensor, size: tuple[int, int], affine: bool) -> torch.Tensor:
    """``(B, H, W, 2)`` source pixel points of ``(B, 3, 3)`` destination -> source matrices, computed from the
    integer pixel centres as the reference computes them (so that nearest's .5 ties fall the same way)."""
    out_h, out_w = size
    centres = cached_constant(
        ("centres", out_h, out_w, matrix.dtype, matrix.device),
        lambda: pixel_grid(size, matrix.dtype, matrix.device).reshape(1, out_h * out_w, 2),
    )
    if affine:  # the last row is [0, 0, 1]: dividing by it would change nothing
        points = centres @ matrix[:, :2, :2].transpose(1, 2) + matrix[:, :2, 2].unsqueeze(1)
    else:
        points = apply_matrix(matrix, centres)
    return points.reshape(matrix.shape[0], out_h, out_w, 2)


def _add_fill(out, grid, mode, fill, height, width, align, fill_finite):
    """``out`` (zeros padding) plus ``fill`` times the weight of the taps outside, only where a tap is outside."""
    x = (grid[..., 0] + 1) * (width - 1 if align else width) / 2 - (0 if align else 0.5)
    y = (grid[..., 1] + 1) * (height - 1 if align else height) / 2 - (0 if align else 0.5)
    cover_x, inside_x = _axis_coverage(x, width, mode)
    cover_y, inside_y = _axis_coverage(y, height, mode)
    inside = (inside_x & inside_y).unsqueeze(1)
    uncovered = torch.where(inside, torch.zeros_like(cover_x).unsqueeze(1), (1 - cover_x * cover_y).unsqueeze(1))
    if fill_finite is None:
        fill_finite = _host_checks_allowed(fill) and bool(torch.isfinite(fill).all())
    if fill_finite:
        return out.addcmul_(fill, uncovered)  # uncovered is exactly 0 inside: in-image pixels stay as they are
    return torch.where(inside, out, out + fill * uncovered)


def _axis_coverage(v: torch.Tensor, n: int, mode: Interpolation) -> tuple[torch.Tensor, torch.Tensor]:
    """Along one axis: the total weight of the taps inside ``[0, n)`` and whether all of them are inside."""
    cover = torch.zeros_like(v)
    inside = torch.ones_like(v, dtype=torch.bool)
    for index, weight in taps(v, mode):
        ok = (index >= 0) & (index <= n - 1)
        cover = cover + torch.where(ok, weight, torch.zeros_like(weight))
        inside = inside & ok
    return cover, inside
