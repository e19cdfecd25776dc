"""Elastic deformations: a displacement field given on a coarse lattice, upsampled by cubic B-splines.

The field's native direction is destination -> source, like a sampling grid: a destination pixel ``q``
reads the source at ``q + D(q)``, where ``D(q) = sum_ij B3(u - i) B3(v - j) c_ij`` (uniform cubic
B-spline, ``(u, v)`` = ``q`` in lattice units; lattice node ``(i, j)`` sits at pixel
``(i (W - 1) / (kx - 1), j (H - 1) / (ky - 1))``; coefficients beyond the lattice repeat the edge ones).
This is ``scipy.ndimage.map_coordinates(c, (v, u), order=3, prefilter=False, mode="nearest")``.
So ``grid`` is closed form; ``transform_points`` (source -> destination) inverts it by Newton's method,
differentiable through a final step with gradients.
"""

from __future__ import annotations

import warnings

import torch

from warpkit.plugin import (
    ConvergenceWarning,
    Direction,
    ShapeError,
    Transform,
    as_float_tensor,
    check_batch_size,
    check_dtype,
    check_size,
)

__all__ = ["Elastic"]

_MAX_ITERATIONS = 30
#: Residual (pixels) above which the inverse warns: the field folds over there.
SOLVE_TOLERANCE = 1e-6


class Elastic(Transform):
    """A batch of B-spline displacement fields over an image of ``extent = (H, W)`` pixels.

    Args:
        coefficients: ``(ky, kx, 2)`` or ``(B, ky, kx, 2)`` control displacements ``(dx, dy)`` in pixels,
            ``ky, kx >= 2``.
        extent: ``(H, W)`` of the destination image the lattice spans.
        native: ``"inverse"`` (default): the field maps destination -> source (the grid) and
            ``transform_points`` inverts it; ``"forward"``: the other way round.
    """

    name = "elastic"
    num_params = 32  # a 4 x 4 lattice of (dx, dy); from_params accepts any k x k lattice
    has_matrix = False
    batch_fields = ("coefficients",)

    def __init__(self, coefficients, extent, *, native: Direction | str = Direction.INVERSE):
        c = as_float_tensor(coefficients, "coefficients")
        c = c.unsqueeze(0) if c.ndim == 3 else c
        if c.ndim != 4 or c.shape[-1] != 2 or c.shape[1] < 2 or c.shape[2] < 2:
            raise ShapeError(f"coefficients: expected shape (B, ky, kx, 2) with ky, kx >= 2, got {tuple(c.shape)}")
        height, width = check_size(extent, "extent")
        if height < 2 or width < 2:
            raise ShapeError(f"extent: expected H and W >= 2, got {extent}")
        self.coefficients = c
        self.extent = (height, width)
        self.native = Direction.parse(native)

    @classmethod
    def random(
        cls,
        size,
        lattice=(4, 4),
        magnitude: float = 2.0,
        batch_size: int = 1,
        *,
        seed=None,
        dtype: torch.dtype = torch.float32,
        device=None,
    ) -> Elastic:
        """Random field for augmentation: control displacements ``~ N(0, magnitude^2)`` pixels.

        ``seed`` (int or ``torch.Generator``) makes it reproducible. Keep ``magnitude`` below about a third
        of the lattice spacing so that the field does not fold (and stays invertible).
        """
        generator = seed if isinstance(seed, torch.Generator) else torch.Generator()
        if isinstance(seed, int):
            generator.manual_seed(seed)
        ky, kx = lattice
        noise = torch.randn(batch_size, ky, kx, 2, generator=generator, dtype=torch.float64) * magnitude
        return cls(noise.to(dtype=dtype, device=device), size)

    # --- the Transform contract -------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.coefficients.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.coefficients.dtype

    @property
    def device(self) -> torch.device:
        return self.coefficients.device

    def map_points(self, points: torch.Tensor) -> torch.Tensor:
        if self.native is Direction.INVERSE:
            return self._solve(points)
        return points + self.displacement(points)

    def inverse(self) -> Elastic:
        return type(self)(self.coefficients, self.extent, native=self.native.flipped())

    @classmethod
    def identity(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> Elastic:
        check_batch_size(batch_size, 32)
        return cls(torch.zeros(batch_size, 4, 4, 2, dtype=check_dtype(dtype), device=device), (2, 2))

    # --- STN parameters ---------------------------------------------------------------------
    @classmethod
    def from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> Elastic:
        """From ``(B, 2 * k * k)``: a ``k x k`` lattice of ``(dx, dy)`` (row-major) in torch's normalised
        units of the source (1 = half the image). Requires ``dst_size == src_size``.
        """
        p = as_float_tensor(params, "params")
        k = int(round((p.shape[-1] / 2) ** 0.5)) if p.ndim == 2 else 0
        if p.ndim != 2 or k < 2 or 2 * k * k != p.shape[1]:
            raise ShapeError(f"params: expected shape (B, 2 * k * k) for a k x k lattice, k >= 2, got {tuple(p.shape)}")
        half = _half_extent(src_size, dst_size, align_corners, p)
        return cls(p.reshape(-1, k, k, 2) * half, check_size(src_size, "src_size"))

    def to_params(self, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        half = _half_extent(src_size, dst_size, align_corners, self.coefficients)
        if self.native is Direction.FORWARD or self.extent != check_size(src_size, "src_size"):
            raise ShapeError(
                f"src_size: expected the size {self.extent} of a destination -> source field (what to_params reads), "
                f"got {src_size} for a {self.native.value} field"
            )
        return (self.coefficients / half).reshape(self.batch_size, -1)

    @classmethod
    def identity_params(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        check_batch_size(batch_size)
        return torch.zeros(batch_size, 32, dtype=dtype, device=device)

    # --- the field ----------------------------------------------------------------------------
    def displacement(self, points: torch.Tensor, *, jacobian: bool = False):
        """``D`` at ``(B, N, 2)`` pixel points: ``(B, N, 2)``; with ``jacobian=True`` also ``(B, N, 2, 2)``
        ``dD_i / dx_j``."""
        c = self.coefficients.to(points.dtype)
        batch, ky, kx, _ = c.shape
        batch = points.shape[0] if batch == 1 else batch  # a batch of 1 on either side broadcasts
        points = points.expand(batch, -1, -1)
        height, width = self.extent
        scale = points.new_tensor([(kx - 1) / (width - 1), (ky - 1) / (height - 1)])
        u = points * scale  # lattice units
        base = torch.floor(u)
        t = u - base
        wx, dwx = _basis(t[..., 0])
        wy, dwy = _basis(t[..., 1])
        start = base.long() - 1
        flat = c.reshape(c.shape[0], ky * kx, 2)
        value = torch.zeros_like(points)
        grad_x, grad_y = torch.zeros_like(points), torch.zeros_like(points)
        for j in range(4):
            row = (start[..., 1] + j).clamp(0, ky - 1)
            for i in range(4):
                col = (start[..., 0] + i).clamp(0, kx - 1)
                index = (row * kx + col).unsqueeze(-1).expand(-1, -1, 2)
                tap = flat.expand(batch, -1, -1).gather(1, index)
                value = value + (wy[j] * wx[i]).unsqueeze(-1) * tap
                if jacobian:
                    grad_x = grad_x + (wy[j] * dwx[i]).unsqueeze(-1) * tap
                    grad_y = grad_y + (dwy[j] * wx[i]).unsqueeze(-1) * tap
        if not jacobian:
            return value
        return value, torch.stack([grad_x * scale[0], grad_y * scale[1]], dim=-1)

    def _solve(self, target: torch.Tensor) -> torch.Tensor:
        """Points ``p`` with ``p + D(p) = target``, ``(B, N, 2)``, by Newton's method."""
        with torch.no_grad():
            p = target.detach().clone()
            coefficients = self.coefficients
            self.coefficients = coefficients.detach()
            try:
                for _ in range(_MAX_ITERATIONS):
                    value, jac = self.displacement(p, jacobian=True)
                    error = p + value - target.detach()
                    if error.numel() == 0 or error.abs().max() < 1e-11:
                        break
                    p = p - torch.linalg.solve(jac + torch.eye(2, dtype=p.dtype), error.unsqueeze(-1))[..., 0]
                _, jac = self.displacement(p, jacobian=True)
            finally:
                self.coefficients = coefficients
        step = torch.linalg.solve(jac + torch.eye(2, dtype=p.dtype), (p + self.displacement(p) - target).unsqueeze(-1))
        p = p - step[..., 0]  # one step with gradients: exact to first order
        residual = (p.detach() + self.displacement(p.detach()).detach() - target.detach()).norm(dim=-1)
        tolerance = SOLVE_TOLERANCE if p.dtype == torch.float64 else 1e-3  # float32 rounding of pixel values
        if residual.numel() and not (residual.max() <= tolerance):
            warnings.warn(
                f"Elastic: inverse by Newton's method left a residual of {float(residual.max()):.3g} px; "
                "the field may fold over",
                ConvergenceWarning,
                stacklevel=4,
            )
        return p

    def __repr__(self) -> str:
        _, ky, kx, _ = self.coefficients.shape
        return f"Elastic(batch_size={self.batch_size}, lattice=({ky}, {kx}), extent={self.extent}, native={self.native.value!r})"


def _basis(t: torch.Tensor):
    """Uniform cubic B-spline weights of the 4 taps at offsets -1..2 and their derivatives in ``t``."""
    s = 1 - t
    weights = [s**3 / 6, (3 * t**3 - 6 * t**2 + 4) / 6, (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6, t**3 / 6]
    slopes = [-(s**2) / 2, (3 * t**2 - 4 * t) / 2, (-3 * t**2 + 2 * t + 1) / 2, t**2 / 2]
    return weights, slopes


def _half_extent(src_size, dst_size, align_corners: bool, like: torch.Tensor) -> torch.Tensor:
    height, width = check_size(src_size, "src_size")
    if dst_size is not None and check_size(dst_size, "dst_size") != (height, width):
        raise ShapeError(
            f"dst_size: expected the image size {(height, width)} (an elastic field keeps it), got {dst_size}"
        )
    return like.new_tensor([(width - 1) / 2, (height - 1) / 2] if align_corners else [width / 2, height / 2])
