"""Similarity transforms: rotation, isotropic scale and translation, four parameters."""

from __future__ import annotations

import torch

import warpkit as wk
from warpkit.plugin import check_batch_size, check_sizes, check_spread, correspondences

from ._frame import check_params, matrix_to_linear, params_to_matrix

__all__ = ["Similarity", "rotation_scale", "weighted_centred"]


def rotation_scale(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(B, 2, 2)`` ``[[a, -b], [b, a]]`` from ``(B,)`` ``a = s cos(angle)``, ``b = s sin(angle)``."""
    return torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], dim=-2)


class Similarity(wk.Affine):
    """``p' = s R p + t`` from a ``(2, 3)`` / ``(B, 2, 3)`` pixel matrix (not checked to be a similarity).

    STN parameters ``(a, b, tx, ty)``: the destination -> source map has linear part ``[[a, -b], [b, a]]``
    about the image centres (``a = s cos(angle)``, ``b = s sin(angle)``) and translation ``(tx, ty)`` in
    normalised units; identity ``(1, 0, 0, 0)``. Pixel scale is isotropic whatever the image sizes.
    """

    name = "similarity"
    num_params = 4

    @classmethod
    def estimate(cls, src, dst, weights=None) -> Similarity:
        """Weighted least squares from ``>= 2`` correspondences ``(N, 2)`` / ``(B, N, 2)``; differentiable."""
        s, d, w, dtype = correspondences(src, dst, weights, minimum=2)
        check_spread_2(s, w)
        x, y, one, zero = s[..., 0], s[..., 1], torch.ones_like(s[..., 0]), torch.zeros_like(s[..., 0])
        rows = torch.cat([torch.stack([x, -y, one, zero], -1), torch.stack([y, x, zero, one], -1)], dim=1)
        target = torch.cat([d[..., 0], d[..., 1]], dim=1).unsqueeze(-1)
        weight = torch.cat([w, w], dim=1).unsqueeze(-1)
        a, b, tx, ty = torch.linalg.solve(
            rows.transpose(1, 2) @ (weight * rows), rows.transpose(1, 2) @ (weight * target)
        )[..., 0].unbind(-1)
        matrix = torch.cat([rotation_scale(a, b), torch.stack([tx, ty], -1).unsqueeze(-1)], dim=2)
        return cls(matrix.to(dtype))

    @classmethod
    def from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> Similarity:
        """From ``(B, 4)`` parameters ``(a, b, tx, ty)`` for source / destination sizes ``(H, W)``."""
        p = check_params(params, 4)
        src_size, dst_size = check_sizes(src_size, dst_size)
        return cls(params_to_matrix(rotation_scale(p[:, 0], p[:, 1]), p[:, 2:], src_size, dst_size, align_corners))

    def to_params(self, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        src_size, dst_size = check_sizes(src_size, dst_size)
        linear, t = matrix_to_linear(self.matrix, src_size, dst_size, align_corners)
        a = (linear[:, 0, 0] + linear[:, 1, 1]) / 2
        b = (linear[:, 1, 0] - linear[:, 0, 1]) / 2
        return torch.cat([torch.stack([a, b], -1), t], dim=1)

    @classmethod
    def identity_params(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        check_batch_size(batch_size)
        return torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=dtype, device=device).repeat(batch_size, 1)


def check_spread_2(points: torch.Tensor, weights: torch.Tensor) -> None:
    """A similarity needs two distinct points, not a spread in 2D: refuse only coincident points."""
    centre = (weights.unsqueeze(-1) * points).sum(1, keepdim=True) / weights.sum(1).clamp_min(1e-300).reshape(-1, 1, 1)
    spread = ((points - centre).square().sum(-1) * weights).sum(1)
    if (spread <= 1e-18 * (1 + points.abs().amax(dim=(1, 2)) ** 2)).any():
        check_spread(points, weights)  # raises DegenerateInputError with the batch index


def weighted_centred(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor):
    """Weighted means ``(B, 1, 2)`` of ``(B, N, 2)`` ``src`` and ``dst``, and both point sets centred on them."""
    total = weights.sum(1, keepdim=True).unsqueeze(-1)
    src_mean = (weights.unsqueeze(-1) * src).sum(1, keepdim=True) / total
    dst_mean = (weights.unsqueeze(-1) * dst).sum(1, keepdim=True) / total
    return src_mean, dst_mean, src - src_mean, dst - dst_mean
