"""The STN paper's attention transform: isotropic scale and translation, three parameters."""

from __future__ import annotations

import torch

import warpkit as wk
from warpkit.plugin import check_batch_size, check_sizes, correspondences

from ._frame import centre_and_half, check_params, matrix_to_linear, params_to_matrix
from .similarity import check_spread_2, weighted_centred

__all__ = ["Attention"]


class Attention(wk.Affine):
    """``p' = s p + t`` from a ``(2, 3)`` / ``(B, 2, 3)`` pixel matrix (not checked).

    STN parameters ``(s, tx, ty)`` are the paper's ``theta = [[s, 0, tx], [0, s, ty]]`` (Jaderberg et al.
    2015, "attention"): ``F.affine_grid`` with that ``theta`` reads the same source points, for any source
    and destination sizes (so the pixel scale differs per axis when their aspect ratios do). Identity
    ``(1, 0, 0)``.
    """

    name = "attention"
    num_params = 3

    @classmethod
    def estimate(cls, src, dst, weights=None) -> Attention:
        """Weighted least-squares isotropic scale and translation from ``>= 2`` correspondences."""
        s, d, w, dtype = correspondences(src, dst, weights, minimum=2)
        check_spread_2(s, w)
        s_mean, d_mean, sc, dc = weighted_centred(s, d, w)
        scale = (w * (sc * dc).sum(-1)).sum(1) / (w * sc.square().sum(-1)).sum(1)
        translation = d_mean[:, 0] - scale.unsqueeze(-1) * s_mean[:, 0]
        eye = torch.eye(2, dtype=s.dtype, device=s.device)
        return cls(torch.cat([scale.reshape(-1, 1, 1) * eye, translation.unsqueeze(-1)], dim=2).to(dtype))

    @classmethod
    def from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> Attention:
        """From ``(B, 3)`` parameters ``(s, tx, ty)`` for source / destination sizes ``(H, W)``."""
        p = check_params(params, 3)
        src_size, dst_size = check_sizes(src_size, dst_size)
        ratio = _axis_ratio(p, src_size, dst_size, align_corners)
        linear = torch.diag_embed(p[:, :1] * ratio)
        return cls(params_to_matrix(linear, p[:, 1:], src_size, dst_size, align_corners))

    def to_params(self, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        src_size, dst_size = check_sizes(src_size, dst_size)
        linear, t = matrix_to_linear(self.matrix, src_size, dst_size, align_corners)
        scale = (torch.diagonal(linear, dim1=1, dim2=2) / _axis_ratio(linear, src_size, dst_size, align_corners)).mean(
            -1
        )
        return torch.cat([scale.unsqueeze(-1), t], dim=1)

    @classmethod
    def identity_params(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        check_batch_size(batch_size)
        return torch.tensor([1.0, 0.0, 0.0], dtype=dtype, device=device).repeat(batch_size, 1)


def _axis_ratio(like, src_size, dst_size, align_corners) -> torch.Tensor:
    """``(2,)`` pixel scale per normalised unit of scale: source half extent over destination's."""
    _, h_src = centre_and_half(src_size, align_corners, like)
    _, h_dst = centre_and_half(dst_size, align_corners, like)
    return h_src / h_dst
