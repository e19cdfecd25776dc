"""Anti-aliased warps: each output pixel averages the source over its footprint.

Method (anisotropic filtering on a prefiltered pyramid, all reads through :func:`warpkit.sample`):

1. The local Jacobian ``J`` of the destination -> source map gives each output pixel's footprint in the
   source, the parallelogram ``J [-1/2, 1/2]^2`` (covariance ``J J^T / 12``). ``J`` comes in closed form
   for matrix families, from a family's ``grid_jacobian(size)`` method where it has one, else from central
   differences of ``transform.grid(size)``.
2. Where the map magnifies (both singular values of ``J`` at most 1) the output is the plain warp, bit for
   bit. Elsewhere the filter to apply is the footprint beyond what the plain bilinear read already
   averages: covariance ``(J J^T - I)_+ / 12`` on top of the sample's own (it is continuous with the plain
   warp at a singular value of 1).
3. The minor axis of that filter picks two adjacent levels of a box pyramid (2x2 averages, like mipmaps)
   and a blend weight between them chosen so that the blend has the filter's variance across the minor
   axis; ``n`` probes spaced evenly along the major axis supply the rest of the major axis' variance.
   At power-of-two shrinks this is exactly ``cv2.resize(INTER_AREA)``. The blend weight and the probe
   offsets are smooth in ``J``, so the result is differentiable in the image and the transform.
"""

from __future__ import annotations

import math

import torch

from ._base import Transform
from ._modes import Interpolation, Padding
from ._pyramid import build_pyramid, max_level, to_level
from ._sampler import prepare_fill, sample
from ._warp import warp

__all__ = ["warp_antialiased", "sample_antialiased", "source_jacobian", "MAX_PROBES"]

#: Most probes along a footprint's major axis; beyond ``MAX_PROBES`` times anisotropy a pixel uses a
#: coarser level (blurs across the minor axis rather than aliasing along the major one).
MAX_PROBES = 8
#: A sub-footprint longer than ANISOTROPY times its width reads a coarser level.
ANISOTROPY = 4.0
#: The sub-footprint's variance is widened by this factor: measured closer to the box-footprint ground
#: truth than the exact variance (a wider smooth filter stands in better for a box not aligned with the
#: pyramid's boxes), see benchmarks/antialias.py.
SPREAD = 1.5


def warp_antialiased(
    image: torch.Tensor,
    transform: Transform,
    size: tuple[int, int],
    *,
    interpolation: Interpolation,
    padding: Padding,
    fill,
) -> torch.Tensor:
    """Anti-aliased :func:`warpkit.warp`.

    Args:
        image: ``(B, C, H, W)`` floating tensor (checked by the caller).
        transform: any transform; a batch of 1 broadcasts.
        size: ``(H_out, W_out)``.
        interpolation, padding: parsed modes; each probe reads its pyramid level with ``interpolation``.
        fill: as given to :func:`warpkit.warp`.

    Returns:
        ``(B, C, H_out, W_out)``; equal to ``warp(image, transform, size, ...)`` wherever it magnifies.
    """
    grid, jacobian = source_jacobian(transform, size)
    plain = lambda: warp(image, transform, size, interpolation=interpolation, padding=padding, fill=fill)  # noqa: E731
    return _antialiased(image, grid, jacobian, plain, interpolation, padding, fill)


def sample_antialiased(
    image: torch.Tensor,
    grid: torch.Tensor,
    jacobian: torch.Tensor | None = None,
    *,
    interpolation: Interpolation,
    padding: Padding,
    fill=0.0,
) -> torch.Tensor:
    """Anti-aliased :func:`warpkit.sample`.

    Args:
        image: ``(B, C, H, W)`` floating tensor.
        grid: ``(B, H_out, W_out, 2)`` source points (batch 1 broadcasts).
        jacobian: ``(B, H_out, W_out, 2, 2)`` with ``jacobian[..., r, c]`` the derivative of source
            coordinate ``r`` (x, y) along destination axis ``c`` (x, y); None takes finite differences of
            ``grid``.

    Returns:
        ``(B, C, H_out, W_out)``; equal to ``sample(image, grid, ...)`` wherever the grid magnifies.
    """
    if jacobian is None:
        jacobian = grid_differences(grid)
    plain = lambda: sample(image, grid, interpolation=interpolation, padding=padding, fill=fill)  # noqa: E731
    return _antialiased(image, grid, jacobian, plain, interpolation, padding, fill)


def source_jacobian(transform: Transform, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``grid`` ``(B, H, W, 2)`` and its Jacobian ``(B, H, W, 2, 2)`` (see :func:`sample_antialiased`)."""
    grid = transform.grid(size)
    if transform.has_matrix:
        # x = (A p)_xy / (A p)_w with A the destination -> source matrix: dx/dp = (A_xy - x A_w) / (A p)_w
        inverse = torch.linalg.inv(transform.matrix.to(grid.dtype))  # (B', 3, 3)
        height, width = size
        ys = torch.arange(height, dtype=grid.dtype, device=grid.device).reshape(1, height, 1)
        xs = torch.arange(width, dtype=grid.dtype, device=grid.device).reshape(1, 1, width)
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


def _antialiased(image, grid, jacobian, plain, interpolation, padding, fill) -> torch.Tensor:
    """Shared body: filter where ``jacobian`` shrinks, ``plain()`` where it magnifies."""
    if image.shape[-1] == 0 or image.shape[-2] == 0 or grid.numel() == 0:
        return plain()
    work = torch.promote_types(torch.promote_types(image.dtype, grid.dtype), torch.float32)
    jac = jacobian.to(work)
    # The largest eigenvalue of J J^T is the squared largest singular value: above 1 the map shrinks.
    major, _ = _eigenvalues(jac)
    shrinks = (major > 1) & torch.isfinite(major)
    if not bool(shrinks.any()):
        return plain()

    # Probes on a grid aligned with J's columns cut the footprint into n_x x n_y sub-parallelograms, each
    # read from the pyramid levels whose boxes match its size.
    lengths = [torch.sqrt(jac[..., 0, c] ** 2 + jac[..., 1, c] ** 2) for c in (0, 1)]
    target = torch.minimum(lengths[0], lengths[1]).div(2).clamp_min(1)  # sub-footprint side wanted
    counts = [_probe_count(length / target, shrinks) for length in lengths]
    sub_major, sub_minor = _eigenvalues(jac / jac.new_tensor(counts))
    sub_major, sub_minor = SPREAD * sub_major, SPREAD * sub_minor
    # A long sub-footprint reads a coarser level: blur across it rather than alias along it.
    minor = torch.maximum(sub_minor, sub_major / ANISOTROPY)
    # Level k's bilinear read has variance (3 4^k - 1) / 12 per axis; blending levels k0 and k0 + 1
    # reaches the sub-footprint's (minor + 2) / 12 (its box on the bilinear-reconstructed source).
    k0 = torch.floor(torch.log2(((minor.detach() + 3) / 3).clamp_min(1)) / 2)
    scale0 = 4.0**k0
    blend = ((minor + 3 - 3 * scale0) / (9 * scale0)).clamp(0, 1)
    top = max_level(image.shape[-2], image.shape[-1])
    k0 = torch.where(shrinks, k0.clamp_max(top), torch.full_like(k0, -1))

    ticks = [(torch.arange(n, dtype=work, device=grid.device) + 0.5) / n - 0.5 for n in counts]
    unit = torch.stack(torch.meshgrid(*ticks, indexing="xy"), dim=-1).reshape(-1, 2)  # (n, 2) in the unit square
    points = grid.to(work).unsqueeze(1) + torch.einsum("bhwrc,nc->bnhwr", jac, unit)  # (Bg, n, H, W, 2)

    present = [int(k) for k in torch.unique(k0[shrinks])]
    fill_t = prepare_fill(fill, padding, image)
    pyramid = build_pyramid(image, min(max(present) + 2, top + 1), padding, fill_t)
    read = lambda level, pts: _read(pyramid, level, pts, interpolation, padding, fill)  # noqa: E731
    if len(present) == 1 and bool(shrinks.all()):  # one pair of levels for the whole output (affine maps)
        k = present[0]
        low, high = read(k, points), read(min(k + 1, top), points)
        return low + blend.unsqueeze(1).to(low.dtype) * (high - low)
    filtered = _grouped(points, k0, blend, present, top, read)
    return torch.where(shrinks.unsqueeze(1), filtered.to(image.dtype), plain())


def _grouped(points, k0, blend, present, top, read) -> torch.Tensor:
    """Read each pixel at its own pair of levels: pixels gathered per level, results scattered back."""
    batch, n, height, width, _ = points.shape
    pixels = height * width
    flat_points = points.reshape(batch, n, pixels, 2)
    flat_k0 = k0.reshape(batch, pixels)
    flat_blend = blend.reshape(batch, pixels)
    out = None
    for k in present:
        mask = flat_k0 == k
        count = int(mask.sum(1).max())
        # Pixels of this level first (stable order), padded per batch to the largest count.
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :count]
        valid = mask.gather(1, order)
        pts = flat_points.gather(2, order.reshape(batch, 1, count, 1).expand(batch, n, count, 2))
        pts = pts.unsqueeze(2)  # (Bg, n, 1, count, 2): a 1-row image per probe
        low, high = read(k, pts), read(min(k + 1, top), pts)  # (B, C, 1, count)
        weight = flat_blend.gather(1, order).reshape(batch, 1, 1, count).to(low.dtype)
        value = (low + weight * (high - low)) * valid.reshape(batch, 1, 1, count)
        value = value.reshape(value.shape[0], value.shape[1], count)
        if out is None:
            out = value.new_zeros(value.shape[0], value.shape[1], pixels)
        index = order.reshape(batch, 1, count).expand(value.shape[0], value.shape[1], count)
        out = out.scatter_add(2, index, value)
    return out.reshape(out.shape[0], out.shape[1], height, width)


def _read(pyramid, level: int, points: torch.Tensor, interpolation, padding, fill) -> torch.Tensor:
    """Mean over the probes of ``points`` ``(Bg, n, H, W, 2)`` (source pixels) read on ``level``: ``(B, C, H, W)``."""
    batch, n, height, width, _ = points.shape
    coords = to_level(points, level).reshape(batch, n * height, width, 2)
    values = sample(pyramid[level], coords, interpolation=interpolation, padding=padding, fill=fill)
    return values.reshape(values.shape[0], values.shape[1], n, height, width).mean(2)


def _eigenvalues(jac: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (larger, smaller) of ``J J^T`` for ``(..., 2, 2)`` ``jac``: the squared singular values."""
    a = jac[..., 0, 0] ** 2 + jac[..., 0, 1] ** 2
    b = jac[..., 0, 0] * jac[..., 1, 0] + jac[..., 0, 1] * jac[..., 1, 1]
    d = jac[..., 1, 0] ** 2 + jac[..., 1, 1] ** 2
    # (a - d)^2 + 4 b^2 underflows to a subnormal for near-isotropic J (slow on x86): square in safe order.
    spread = torch.sqrt(((a - d) ** 2 + 4 * b * b).clamp_min(1e-30))
    return (a + d + spread) / 2, ((a + d - spread) / 2).clamp_min(0)


def _probe_count(ratio: torch.Tensor, shrinks: torch.Tensor) -> int:
    """Probes along one of J's columns: the largest ``ratio`` (column length / wanted sub-footprint side)."""
    ratio = torch.where(shrinks, ratio, torch.zeros_like(ratio))
    return int(min(MAX_PROBES, max(1, math.ceil(float(ratio.max()) - 1e-6))))
