"""Affine transforms: ``p' = A p + t``, six parameters."""

from __future__ import annotations

import torch

from .._base import Transform
from .._checks import as_float_tensor, check_batch_size, check_dtype, check_sizes
from .._coords import matrix_to_theta, theta_to_matrix
from .._errors import ShapeError
from ._matrix import check_spread, checked_inverse, correspondences, theta_params_grid

__all__ = ["Affine"]


class Affine(Transform):
    """Affine transform from a ``(2, 3)`` or ``(B, 2, 3)`` source -> destination pixel matrix.

    ``Affine(M)`` warps like ``cv2.warpAffine(src, M, dsize)``. A ``(B, 3, 3)`` matrix with last row
    ``[0, 0, 1]`` is accepted too. STN parameters are torch's ``affine_grid`` ``theta`` flattened to 6.
    """

    name = "affine"
    has_matrix = True
    batch_fields = ("_m",)
    num_params = 6

    def __init__(self, matrix):
        m = as_float_tensor(matrix, "matrix")
        if m.ndim == 2:
            m = m.unsqueeze(0)
        if m.ndim != 3 or tuple(m.shape[1:]) not in ((2, 3), (3, 3)):
            raise ShapeError(
                f"matrix: expected shape (2, 3) or (B, 2, 3), got {tuple(as_float_tensor(matrix, 'matrix').shape)}"
            )
        if m.shape[1] == 3:
            last = torch.tensor([0.0, 0.0, 1.0], dtype=m.dtype, device=m.device)
            if not torch.equal(m[:, 2].detach(), last.expand_as(m[:, 2])):
                raise ShapeError(
                    f"matrix: expected last row [0, 0, 1] in a (B, 3, 3) affine matrix (else use Projective), "
                    f"got {m[:, 2].detach().cpu().tolist()}"
                )
            m = m[:, :2]
        self._m = m

    @property
    def matrix(self) -> torch.Tensor:
        """``(B, 3, 3)`` source -> destination matrix (last row ``[0, 0, 1]``)."""
        last = torch.zeros_like(self._m[:, :1])
        last[..., 2] = 1
        return torch.cat([self._m, last], dim=1)

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
        m = self._m.to(points.dtype)
        return points @ m[:, :, :2].transpose(1, 2) + m[:, :, 2].unsqueeze(1)

    def inverse(self) -> Affine:
        return type(self)(checked_inverse(self.matrix)[:, :2])

    @classmethod
    def identity(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> Affine:
        check_batch_size(batch_size, 6)
        eye = torch.eye(2, 3, dtype=check_dtype(dtype), device=device)
        return cls(eye.expand(batch_size, 2, 3).clone())

    @classmethod
    def estimate(cls, src, dst, weights=None) -> Affine:
        """Weighted least squares from ``>= 3`` correspondences ``(N, 2)`` / ``(B, N, 2)``; differentiable."""
        s, d, w, dtype = correspondences(src, dst, weights, minimum=3)
        check_spread(s, w)
        design = torch.cat([s, torch.ones_like(s[..., :1])], dim=-1)  # (B, N, 3)
        weighted = design * w.unsqueeze(-1)
        solution = torch.linalg.solve(weighted.transpose(1, 2) @ design, weighted.transpose(1, 2) @ d)  # (B, 3, 2)
        return cls(solution.transpose(1, 2).to(dtype))

    @classmethod
    def from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> Affine:
        """From ``(B, 6)`` torch ``theta`` (``F.affine_grid``'s, flattened) for the given sizes ``(H, W)``."""
        src_size, dst_size = check_sizes(src_size, dst_size)
        return cls(theta_to_matrix(_theta(params), src_size, dst_size, align_corners)[:, :2])

    @classmethod
    def grid_from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        """``(B, H_out, W_out, 2)``: exactly ``F.affine_grid(theta)``, in pixel coordinates."""
        return theta_params_grid(cls, Affine, _theta, params, src_size, dst_size, align_corners)

    def to_params(self, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        """``(B, 6)`` torch ``theta`` that makes ``F.affine_grid`` + ``grid_sample`` do this warp."""
        src_size, dst_size = check_sizes(src_size, dst_size)
        return matrix_to_theta(self.matrix, src_size, dst_size, align_corners)[:, :2].reshape(-1, 6)

    @classmethod
    def identity_params(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        check_batch_size(batch_size, 6)
        return torch.eye(2, 3, dtype=check_dtype(dtype), device=device).reshape(1, 6).repeat(batch_size, 1)


def _theta(params) -> torch.Tensor:
    """``(B, 6)`` parameters as ``(B, 3, 3)`` theta."""
    p = as_float_tensor(params, "params")
    if p.ndim != 2 or p.shape[1] != 6:
        raise ShapeError(f"params: expected shape (B, 6), got {tuple(p.shape)}")
    row = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=p.dtype, device=p.device).expand(p.shape[0], 1, 3)
    return torch.cat([p.reshape(-1, 2, 3), row], dim=1)
