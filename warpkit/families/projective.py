"""Projective transforms (homographies): ``p' ~ H p``, eight parameters."""

from __future__ import annotations

import torch

from .._base import Transform
from .._checks import as_float_tensor, check_batch_size, check_dtype, check_sizes
from .._coords import apply_matrix, matrix_to_theta, theta_to_matrix
from .._errors import DegenerateInputError, ShapeError
from ._matrix import checked_inverse, correspondences, point_normalizer, theta_params_grid

__all__ = ["Projective", "from_matrix"]


class Projective(Transform):
    """Projective transform from a ``(3, 3)`` or ``(B, 3, 3)`` source -> destination pixel matrix.

    ``Projective(H)`` warps like ``cv2.warpPerspective(src, H, dsize)``. STN parameters are the first
    eight entries of the normalised destination -> source matrix scaled so that its last entry is 1.
    """

    name = "projective"
    has_matrix = True
    batch_fields = ("_m",)
    num_params = 8

    def __init__(self, matrix):
        m = as_float_tensor(matrix, "matrix")
        if m.ndim == 2:
            m = m.unsqueeze(0)
        if m.ndim != 3 or tuple(m.shape[1:]) != (3, 3):
            raise ShapeError(
                f"matrix: expected shape (3, 3) or (B, 3, 3), got {tuple(as_float_tensor(matrix, 'matrix').shape)}"
            )
        self._m = m

    @property
    def matrix(self) -> torch.Tensor:
        """``(B, 3, 3)`` source -> destination matrix."""
        return self._m

    @property
    def batch_size(self) -> int:
        return self._m.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self._m.dtype

    @property
    def device(self) -> torch.device:
        return self._m.device

    def map_points(self, points: torch.Tensor) -> torch.Tensor:
        return apply_matrix(self._m.to(points.dtype), points)

    def inverse(self) -> Projective:
        return type(self)(checked_inverse(self._m))

    @classmethod
    def identity(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> Projective:
        check_batch_size(batch_size, 9)
        return cls(torch.eye(3, dtype=check_dtype(dtype), device=device).expand(batch_size, 3, 3).clone())

    @classmethod
    def estimate(cls, src, dst, weights=None) -> Projective:
        """Normalised weighted DLT from ``>= 4`` correspondences ``(N, 2)`` / ``(B, N, 2)``; differentiable."""
        s, d, w, dtype = correspondences(src, dst, weights, minimum=4)
        t_src, t_dst = point_normalizer(s, w), point_normalizer(d, w)
        if not (torch.isfinite(t_src).all() and torch.isfinite(t_dst).all()):
            raise DegenerateInputError(
                "src, dst: expected coordinates whose spread float64 can square (below about 1e150), got magnitudes "
                f"up to {float(torch.maximum(s.abs().max(), d.abs().max())):.3g}"
            )
        sn, dn = apply_matrix(t_src, s), apply_matrix(t_dst, d)
        x, y = sn[..., 0], sn[..., 1]
        u, v = dn[..., 0], dn[..., 1]
        one, zero = torch.ones_like(x), torch.zeros_like(x)
        rows_u = torch.stack([-x, -y, -one, zero, zero, zero, u * x, u * y, u], dim=-1)
        rows_v = torch.stack([zero, zero, zero, -x, -y, -one, v * x, v * y, v], dim=-1)
        root_w = w.sqrt().unsqueeze(-1)
        system = torch.cat([rows_u * root_w, rows_v * root_w], dim=1)  # (B, 2N, 9)
        try:
            eigenvalues, eigenvectors = torch.linalg.eigh(system.transpose(1, 2) @ system)
        except torch.linalg.LinAlgError:  # coincident points far away: the normalised system is not finite
            eigenvalues = system.new_zeros(system.shape[0], 9)
        ratio = eigenvalues[:, 1].detach().clamp_min(0) / eigenvalues[:, -1].detach().clamp_min(1e-300)
        if not (ratio > 1e-14).all():
            index = int((~(ratio > 1e-14)).nonzero()[0, 0])
            raise DegenerateInputError(
                f"src, dst: expected correspondences that determine a homography, got too many collinear or "
                f"repeated points at batch index {index}"
            )
        h = eigenvectors[:, :, 0].reshape(-1, 3, 3)
        h = torch.linalg.solve(t_dst, h) @ t_src
        return cls((h / _last_entry(h)).to(dtype))

    @classmethod
    def from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> Projective:
        """From ``(B, 8)`` normalised destination -> source matrices (row-major, last entry 1 left out)."""
        src_size, dst_size = check_sizes(src_size, dst_size)
        return cls(theta_to_matrix(_theta(params), src_size, dst_size, align_corners))

    @classmethod
    def grid_from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        """``(B, H_out, W_out, 2)``: the normalised matrix applied to the destination pixels, no inverse."""
        return theta_params_grid(cls, Projective, _theta, params, src_size, dst_size, align_corners)

    def to_params(self, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        src_size, dst_size = check_sizes(src_size, dst_size)
        theta = matrix_to_theta(self._m, src_size, dst_size, align_corners)
        return (theta / _last_entry(theta)).reshape(-1, 9)[:, :8]

    @classmethod
    def identity_params(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        check_batch_size(batch_size, 8)
        return torch.eye(3, dtype=check_dtype(dtype), device=device).reshape(1, 9)[:, :8].repeat(batch_size, 1)


def _theta(params) -> torch.Tensor:
    """``(B, 8)`` parameters as ``(B, 3, 3)`` theta with last entry 1."""
    p = as_float_tensor(params, "params")
    if p.ndim != 2 or p.shape[1] != 8:
        raise ShapeError(f"params: expected shape (B, 8), got {tuple(p.shape)}")
    return torch.cat([p, torch.ones_like(p[:, :1])], dim=1).reshape(-1, 3, 3)


def _last_entry(h: torch.Tensor) -> torch.Tensor:
    """``h[:, 2, 2]`` shaped to divide by, falling back to the norm where it is (near) zero."""
    last = h[:, 2:3, 2:3]
    norm = h.flatten(1).norm(dim=1).reshape(-1, 1, 1)
    return torch.where(last.abs() > 1e-12 * norm, last, norm)


def from_matrix(matrix: torch.Tensor) -> Transform:
    """The narrowest built-in matrix family for ``(B, 3, 3)`` matrices: Affine when the last row is [0, 0, 1]."""
    from .affine import Affine

    last = matrix[:, 2].detach()
    if torch.equal(last, torch.tensor([0.0, 0.0, 1.0], dtype=matrix.dtype, device=matrix.device).expand_as(last)):
        return Affine(matrix[:, :2])
    return Projective(matrix)
