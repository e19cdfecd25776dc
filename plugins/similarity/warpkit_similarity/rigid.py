"""Rigid transforms (rotation and translation), three parameters."""

from __future__ import annotations

import torch

import warpkit as wk
from warpkit.plugin import check_batch_size, check_sizes, correspondences

from ._frame import check_params, matrix_to_linear, params_to_matrix
from .similarity import check_spread_2, rotation_scale, weighted_centred

__all__ = ["Rigid"]


class Rigid(wk.Affine):
    """``p' = R p + t`` from a ``(2, 3)`` / ``(B, 2, 3)`` pixel matrix (not checked to be rigid).

    STN parameters ``(angle, tx, ty)``: the destination -> source map rotates by ``angle`` (radians,
    counter-clockwise in ``(x, y)``) about the image centres and translates by ``(tx, ty)`` normalised
    units; identity ``(0, 0, 0)``.
    """

    name = "rigid"
    num_params = 3

    @classmethod
    def estimate(cls, src, dst, weights=None) -> Rigid:
        """Weighted least-squares rotation and translation (2-D Procrustes) from ``>= 2`` correspondences."""
        s, d, w, dtype = correspondences(src, dst, weights, minimum=2)
        check_spread_2(s, w)
        s_mean, d_mean, sc, dc = weighted_centred(s, d, w)
        cos = (w * (sc * dc).sum(-1)).sum(1)
        sin = (w * (sc[..., 0] * dc[..., 1] - sc[..., 1] * dc[..., 0])).sum(1)
        angle = torch.atan2(sin, cos)
        rotation = rotation_scale(torch.cos(angle), torch.sin(angle))
        translation = d_mean[:, 0] - (rotation @ s_mean[:, 0].unsqueeze(-1))[..., 0]
        return cls(torch.cat([rotation, translation.unsqueeze(-1)], dim=2).to(dtype))

    @classmethod
    def from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> Rigid:
        """From ``(B, 3)`` parameters ``(angle, tx, ty)`` for source / destination sizes ``(H, W)``."""
        p = check_params(params, 3)
        src_size, dst_size = check_sizes(src_size, dst_size)
        rotation = rotation_scale(torch.cos(p[:, 0]), torch.sin(p[:, 0]))
        return cls(params_to_matrix(rotation, p[:, 1:], src_size, dst_size, align_corners))

    def to_params(self, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        src_size, dst_size = check_sizes(src_size, dst_size)
        linear, t = matrix_to_linear(self.matrix, src_size, dst_size, align_corners)
        angle = torch.atan2(linear[:, 1, 0] - linear[:, 0, 1], linear[:, 0, 0] + linear[:, 1, 1])
        return torch.cat([angle.unsqueeze(-1), t], dim=1)

    @classmethod
    def identity_params(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        check_batch_size(batch_size)
        return torch.zeros(batch_size, 3, dtype=dtype, device=device)
