"""Anti-aliased warps: each output pixel averages the source over its footprint.

Method (all reads through :func:`warpkit.sample`, so every backend runs it; docs/antialias.md):

1. The local Jacobian ``J`` of the destination -> source map (:mod:`warpkit._jacobian`) maps the output
   pixel, a unit square, onto its footprint: the parallelogram ``J [-1/2, 1/2]^2`` in the source.
2. Where the map magnifies (both singular values of ``J`` at most 1) the output is the plain warp, bit for
   bit (the same call).
3. Elsewhere the footprint is cut along ``J``'s columns into ``n_x x n_y`` sub-parallelograms (4 x 4 below
   a 4x shrink, 3 x 3 below 3x, 2 x 2 from 4x on). Each is read at its centre from a box pyramid
   (:mod:`warpkit._pyramid`, 2x2 averages like mipmaps): two adjacent levels, blended with the weight that
   gives the blend the variance of the sub-parallelogram's box on the bilinear-reconstructed source. At
   power-of-two shrinks this is exactly ``cv2.resize(INTER_AREA)``. The blend weight and the probe offsets
   are smooth in ``J``, so the result is differentiable in the image and the transform; the probe counts
   are integers, one per call.
"""

from __future__ import annotations

import math

import torch

from ._base import Transform
from ._jacobian import grid_differences, source_jacobian
from ._modes import Interpolation, Padding
from ._pyramid import build_pyramid, max_level
from ._sampler import prepare_fill, sample
from ._warp import warp

__all__ = ["warp_antialiased", "sample_antialiased", "source_jacobian", "grid_differences"]

#: Squared singular values up to 1 + SHRINK_MARGIN count as no shrink.
SHRINK_MARGIN = 1e-5
#: Most probes along one of J's columns, and in all; a longer footprint reads coarser levels instead.
MAX_PROBES_PER_AXIS = 8
MAX_PROBES = 16
#: From this shrink on (the shorter column of J, in source pixels) the footprint is cut in 2 x 2, not 4 x 4.
COARSE_FROM = 4.0
#: A sub-footprint longer than ANISOTROPY times its width reads a coarser level (blurs across rather than
#: aliases along it).
ANISOTROPY = 4.0
#: The sub-footprint's variance is widened by these factors (4 x 4 probes, 2 x 2 probes) before the level
#: is chosen: measured closer to the box-footprint ground truth than the exact variance (a smooth filter
#: stands in better for a box that is not aligned with the pyramid's boxes), and 2.25 makes a 4x shrink
#: read levels 1 and 2 rather than 0 and 1 (half the cost); see benchmarks/antialias.py.
SPREAD = (1.5, 2.25)


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
    plain = lambda: warp(image, transform, size, interpolation=interpolation, padding=padding, fill=fill)  # noqa: E731
    if transform.has_matrix:
        inverse = torch.linalg.inv(transform.matrix)
        if bool((inverse[:, 2, :2] == 0).all()):  # affine: no grid needed, the probes come from the matrix
            affine = inverse[:, :2] / inverse[:, 2:, 2:]  # (B', 2, 3) destination -> source
            return _antialiased(
                image,
                None,
                affine[:, :, :2].reshape(-1, 1, 1, 2, 2),
                plain,
                interpolation,
                padding,
                fill,
                affine=affine,
                size=size,
            )
    grid, jacobian = source_jacobian(transform, size)
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
        jacobian: ``(B, H_out, W_out, 2, 2)`` (or broadcastable to it) with ``jacobian[..., r, c]`` the
            derivative of source coordinate ``r`` (x, y) along destination axis ``c`` (x, y); None takes
            finite differences of ``grid``.

    Returns:
        ``(B, C, H_out, W_out)``; equal to ``sample(image, grid, ...)`` wherever the grid magnifies.
    """
    if jacobian is None:
        jacobian = grid_differences(grid)
    plain = lambda: sample(image, grid, interpolation=interpolation, padding=padding, fill=fill)  # noqa: E731
    return _antialiased(image, grid, jacobian, plain, interpolation, padding, fill)


def _antialiased(image, grid, jacobian, plain, interpolation, padding, fill, affine=None, size=None) -> torch.Tensor:
    """Shared body: filter where ``jacobian`` shrinks, ``plain()`` where it magnifies. ``grid`` may be None
    when ``affine`` ``(B', 2, 3)`` (the destination -> source map) and ``size`` are given."""
    coords = grid if affine is None else affine
    size = tuple(grid.shape[1:3]) if affine is None else size
    if image.shape[-1] == 0 or image.shape[-2] == 0 or size[0] * size[1] == 0:
        return plain()
    work = torch.promote_types(torch.promote_types(image.dtype, coords.dtype), torch.float32)
    jac = jacobian.to(work)
    # The largest eigenvalue of J J^T is the squared largest singular value: above 1 the map shrinks (with
    # a margin, so that a rotation by float32 sines and cosines counts as the plain warp it is).
    major, _ = _eigenvalues(jac)
    shrinks = (major > 1 + SHRINK_MARGIN) & torch.isfinite(major)
    if not bool(shrinks.any()):
        return plain()

    # Probes on a grid aligned with J's columns cut the footprint into n_x x n_y sub-parallelograms, each
    # read from the pyramid levels whose boxes match its size. Below a 4x shrink the sub-footprints are
    # a quarter (a third below 3x) of the footprint, at least half a pixel: the bilinear reads then
    # integrate the footprint almost exactly. From 4x on, halves: the box levels do the averaging.
    lengths = [torch.sqrt(jac[..., 0, c] ** 2 + jac[..., 1, c] ** 2) for c in (0, 1)]
    # float32 matrices and finite differences land a hair off exact factors: round up before the thresholds
    shortest = torch.minimum(lengths[0], lengths[1])
    rounded = shortest * (1 + 1e-5)
    coarse = rounded >= COARSE_FROM
    cuts = torch.where(rounded < 3, 3.0, 4.0).to(work)  # 3 x 3 do below a 3x shrink (measured)
    target = torch.where(coarse, shortest / 2, shortest / cuts).clamp_min(0.5)
    counts = _probe_counts([length / target for length in lengths], shrinks)
    sub_major, sub_minor = _eigenvalues(jac / jac.new_tensor(counts))
    spread = torch.where(coarse, SPREAD[1], SPREAD[0]).to(work)
    sub_major, sub_minor = spread * sub_major, spread * sub_minor
    # A long sub-footprint reads a coarser level: blur across it rather than alias along it.
    minor = torch.maximum(sub_minor, sub_major / ANISOTROPY)
    # Level k's bilinear read has variance (3 4^k - 1) / 12 per axis; blending levels k0 and k0 + 1
    # reaches the sub-footprint's (minor + 2) / 12 (its box on the bilinear-reconstructed source).
    k0 = torch.floor(torch.log2(((minor.detach() + 3) / 3).clamp_min(1)) / 2)
    scale0 = 4.0**k0
    blend = ((minor + 3 - 3 * scale0) / (9 * scale0)).clamp(0, 1)
    top = max_level(image.shape[-2], image.shape[-1])
    k0 = torch.where(shrinks, k0.clamp_max(top), torch.full_like(k0, -1))

    ticks = [(torch.arange(n, dtype=work, device=coords.device) + 0.5) / n - 0.5 for n in counts]
    unit = torch.stack(torch.meshgrid(*ticks, indexing="xy"), dim=-1).reshape(-1, 2)  # (n, 2) in the unit square
    probes = _Probes(grid, jac, unit, affine, size, work)

    present = [int(k) for k in torch.unique(k0[shrinks])]
    fill_t = prepare_fill(fill, padding, image)
    pyramid = build_pyramid(image, min(max(present) + 2, top + 1), padding, fill_t)

    def read(level: int, features: torch.Tensor | None) -> torch.Tensor:
        """Mean of ``level`` read at the probes of ``(Bg, P, m)`` features: ``(B, C, P)``."""
        coords = probes.coords(level, features)  # (Bg, P, 2n): each pixel's probes side by side
        batch, pixels = coords.shape[:2]
        n = unit.shape[0]
        values = sample(
            pyramid[level],
            coords.reshape(batch, 1, pixels * n, 2),
            interpolation=interpolation,
            padding=padding,
            fill=fill,
        )
        # The mean over a pixel's probes as a product with 1/n weights: 4x faster than mean(-1) over 4 probes.
        return values.reshape(values.shape[0], values.shape[1], pixels, n) @ values.new_full((n,), 1 / n)

    height, width = size
    if len(present) == 1 and bool(shrinks.all()):  # one pair of levels for the whole output (affine maps)
        k = present[0]
        low, high = read(k, None), read(min(k + 1, top), None)
        filtered = low + blend.reshape(blend.shape[0], 1, -1).to(low.dtype) * (high - low)
        return filtered.reshape(*filtered.shape[:2], height, width)
    full = (grid.shape[0], height, width)
    filtered = _grouped(probes.features, k0.expand(full), blend.expand(full), present, top, read)
    filtered = filtered.reshape(*filtered.shape[:2], height, width)
    return torch.where(shrinks.unsqueeze(1), filtered.to(image.dtype), plain())


class _Probes:
    """Each pixel's probe points on any level, as one matrix product ``features @ weights(level)``.

    Probe ``i`` of a pixel sits at ``grid + J unit[i]`` (source pixels), which is ``(that + 0.5) / 2^k - 0.5``
    on level ``k``. Written as a product of per-pixel features with a small matrix (a GEMM) because the
    broadcast sum over ``(n, 2)``-sized inner dimensions measured 10x slower on CPU.
    """

    def __init__(self, grid, jac: torch.Tensor, unit: torch.Tensor, affine, size, work):
        self.unit = unit
        self.affine = None if affine is None else affine.to(work)
        self.uniform = jac.shape[1] == 1 and jac.shape[2] == 1  # affine: J folds into the weights
        if self.affine is not None:  # features: the destination pixel centres themselves
            self.size = size
            self.jac = jac.reshape(-1, 2, 2)
            self.features = None  # see coords(): the pixel centres enter by broadcasting
            return
        grid = grid.to(work)
        batch, height, width, _ = grid.shape
        ones = grid.new_ones(batch, height * width, 1)
        if self.uniform:
            self.jac = jac.reshape(-1, 2, 2)
            self.features = torch.cat([grid.reshape(batch, -1, 2), ones], dim=-1)  # (Bg, P, 3)
        else:
            flat_jac = jac.expand(batch, height, width, 2, 2).reshape(batch, -1, 4)
            self.features = torch.cat([grid.reshape(batch, -1, 2), flat_jac, ones], dim=-1)  # (Bg, P, 7)

    def coords(self, level: int, features: torch.Tensor | None) -> torch.Tensor:
        """``(Bg, P, 2n)`` coordinates on ``level`` of the probes of the pixels with ``features`` (None: all)."""
        weights = self.weights(level)
        if features is not None:
            return features @ weights
        if self.features is not None:
            return self.features @ weights
        # affine: x = w_u u + w_v v + w_1 over the pixel centres (u, v), as two broadcast sums (2.5x faster
        # than the product with (P, 3) features)
        height, width = self.size
        us = torch.arange(width, dtype=weights.dtype, device=weights.device).reshape(1, 1, width, 1)
        vs = torch.arange(height, dtype=weights.dtype, device=weights.device).reshape(1, height, 1, 1)
        rows = weights.unsqueeze(1).unsqueeze(1)  # (B', 1, 1, 3, 2n)
        coords = us * rows[..., 0, :] + (vs * rows[..., 1, :] + rows[..., 2, :])
        return coords.reshape(coords.shape[0], height * width, -1)

    def weights(self, level: int) -> torch.Tensor:
        """``(3, 2n)`` per batch (affine) or ``(7, 2n)`` weights giving level ``level``'s coordinates."""
        n = self.unit.shape[0]
        scale = 2.0**level
        eye = torch.eye(2, dtype=self.unit.dtype, device=self.unit.device)
        take_grid = eye.repeat(1, n) / scale  # (2, 2n): x -> every probe's x, y -> every probe's y
        shift = 0.5 / scale - 0.5
        if self.uniform:
            offsets = torch.einsum("brc,nc->bnr", self.jac, self.unit).reshape(-1, 1, 2 * n)  # (B', 1, 2n)
            if self.affine is not None:  # x = A [u, v, 1]: the matrix's columns, tiled over the probes
                linear = self.affine[:, :, :2].transpose(1, 2).repeat(1, 1, n)  # (B', 2, 2n)
                offsets = offsets + self.affine[:, :, 2].repeat(1, n).unsqueeze(1)
                return torch.cat([linear / scale, offsets / scale + shift], dim=1)
            return torch.cat([take_grid.expand(offsets.shape[0], 2, 2 * n), offsets / scale + shift], dim=1)
        # row (r, c) of J contributes unit[i, c] to probe i's coordinate r
        take_jac = torch.einsum("nc,rs->rcns", self.unit, eye).reshape(4, 2 * n) / scale
        return torch.cat([take_grid, take_jac, take_grid.new_full((1, 2 * n), shift)], dim=0)


def _grouped(features, k0, blend, present, top, read) -> torch.Tensor:
    """Read each pixel at its own pair of levels: pixels gathered per level, results scattered back."""
    batch, pixels, m = features.shape
    flat_k0 = k0.reshape(batch, pixels)
    flat_blend = blend.reshape(batch, pixels)
    out = None
    for k in present:
        mask = flat_k0 == k
        count = int(mask.sum(1).max())
        # Pixels of this level first (stable order), padded per batch to the largest count.
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :count]
        valid = mask.gather(1, order)
        chosen = features.gather(1, order.unsqueeze(-1).expand(batch, count, m))
        low, high = read(k, chosen), read(min(k + 1, top), chosen)  # (B, C, count)
        weight = flat_blend.gather(1, order).reshape(batch, 1, count).to(low.dtype)
        value = (low + weight * (high - low)) * valid.reshape(batch, 1, count)
        if out is None:
            out = value.new_zeros(value.shape[0], value.shape[1], pixels)
        index = order.reshape(batch, 1, count).expand(value.shape[0], value.shape[1], count)
        out = out.scatter_add(2, index, value)
    assert out is not None  # present holds at least one level (some pixel shrinks)
    return out


def _eigenvalues(jac: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (larger, smaller) of ``J J^T`` for ``(..., 2, 2)`` ``jac``: the squared singular values."""
    a = jac[..., 0, 0] ** 2 + jac[..., 0, 1] ** 2
    b = jac[..., 0, 0] * jac[..., 1, 0] + jac[..., 0, 1] * jac[..., 1, 1]
    d = jac[..., 1, 0] ** 2 + jac[..., 1, 1] ** 2
    # (a - d)^2 + 4 b^2 underflows to a subnormal for near-isotropic J (slow on x86): square in safe order.
    spread = torch.sqrt(((a - d) ** 2 + 4 * b * b).clamp_min(1e-30))
    return (a + d + spread) / 2, ((a + d - spread) / 2).clamp_min(0)


def _probe_counts(ratios: list[torch.Tensor], shrinks: torch.Tensor) -> list[int]:
    """Probes along each of J's columns (one count for the whole call): the largest ``ratio`` (column
    length over the wanted sub-footprint side), at most MAX_PROBES_PER_AXIS each, MAX_PROBES in all."""
    counts = []
    for ratio in ratios:
        ratio = torch.where(shrinks, ratio, torch.zeros_like(ratio)).detach()
        counts.append(int(min(MAX_PROBES_PER_AXIS, max(1, math.ceil(float(ratio.max()) - 1e-3)))))
    while counts[0] * counts[1] > MAX_PROBES:  # a long footprint: fewer, coarser probes (see ANISOTROPY)
        counts[counts.index(max(counts))] -= 1
    return counts
