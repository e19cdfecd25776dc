"""Functions shared by the matrix families (no shared base class beyond Transform)."""

from __future__ import annotations

import torch

from .._base import Transform
from .._checks import as_float_tensor, batch_points, check_same_device, check_sizes
from .._coords import linalg_dtype, singular_members, theta_grid
from .._errors import DegenerateInputError, DeviceError, ShapeError, SingularMatrixError

__all__ = ["checked_inverse", "check_spread", "correspondences", "point_normalizer", "theta_params_grid"]


def checked_inverse(matrix: torch.Tensor, argument: str = "matrix") -> torch.Tensor:
    """Invert ``(B, n, n)`` matrices; raise :class:`SingularMatrixError` for singular or non-finite ones.

    Singular means ill-conditioned once rows and columns are scaled to unit length
    (:func:`~warpkit._coords.singular_members`), so a large translation never counts against a matrix.
    float16/bfloat16 are inverted in float32 and cast back.
    """
    if matrix.device.type != "meta" and not torch.isfinite(matrix).all():
        raise SingularMatrixError(f"{argument}: expected finite values, got {matrix.detach().cpu().tolist()}")
    bad = singular_members(matrix)
    if not bad.any():
        inverse, info = torch.linalg.inv_ex(matrix.to(linalg_dtype(matrix.dtype)))
        bad = (info != 0).cpu() if matrix.device.type != "meta" else bad  # singular in the working precision
    if bad.any():
        index = int(bad.nonzero()[0, 0])
        raise SingularMatrixError(
            f"{argument}: expected an invertible matrix, got a singular one at batch index {index}: "
            f"{matrix[index].detach().cpu().tolist()}"
        )
    return inverse.to(matrix.dtype)


def correspondences(src, dst, weights, minimum: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.dtype]:
    """Check and batch correspondences for an estimate.

    Returns ``src``, ``dst`` as ``(B, N, 2)`` float64, ``weights`` as ``(B, N)`` float64, and the dtype
    the result should have.
    """
    src_t = as_float_tensor(src, "src")
    dst_t = as_float_tensor(dst, "dst", like=src_t)
    check_same_device(("src", src_t), ("dst", dst_t))
    if src_t.device.type == "meta":  # an estimate looks at the values (spread, duplicates): there are none
        raise DeviceError("src: expected a device that holds values (an estimate looks at the points), got meta")
    s, _ = batch_points(src_t, "src")
    d, _ = batch_points(dst_t, "dst")
    if s.shape[1] != d.shape[1]:
        raise ShapeError(f"dst: expected {s.shape[1]} points to match src, got {d.shape[1]}")
    batch = max(s.shape[0], d.shape[0])
    if s.shape[0] not in (1, batch) or d.shape[0] not in (1, batch):
        raise ShapeError(f"src and dst: expected batch sizes that match (or are 1), got {s.shape[0]} and {d.shape[0]}")
    if s.shape[1] < minimum:
        raise DegenerateInputError(f"src: expected at least {minimum} points, got {s.shape[1]}")
    s = s.double().expand(batch, -1, -1)
    d = d.double().expand(batch, -1, -1)
    if weights is None:
        w = s.new_ones(batch, s.shape[1])
    else:
        w = as_float_tensor(weights, "weights", like=src_t)
        check_same_device(("src", src_t), ("weights", w))
        w = w.double()
        if w.ndim == 1:
            w = w.unsqueeze(0)
        if w.ndim != 2 or w.shape[1] != s.shape[1] or w.shape[0] not in (1, batch):
            raise ShapeError(f"weights: expected shape (N,) or (B, N) with N={s.shape[1]}, got {tuple(w.shape)}")
        if not torch.isfinite(w).all() or (w < 0).any():
            raise DegenerateInputError(f"weights: expected finite, non-negative values, got minimum {float(w.min())}")
        w = w.expand(batch, -1)
        empty = (w > 0).sum(1) < minimum
        if empty.any():
            index = int(empty.nonzero()[0, 0])
            raise DegenerateInputError(
                f"weights: expected at least {minimum} positive weights per batch member, got "
                f"{int((w[index] > 0).sum())} at batch index {index}"
            )
    if not (torch.isfinite(s).all() and torch.isfinite(d).all()):
        raise DegenerateInputError("src, dst: expected finite coordinates, got NaN or infinity")
    dtype = torch.promote_types(src_t.dtype, dst_t.dtype)
    return s, d, w, dtype


def point_normalizer(points: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` similarity moving ``(B, N, 2)`` points to weighted centroid 0, mean distance sqrt(2)."""
    total = weights.sum(1, keepdim=True).clamp_min(1e-300)
    centre = (weights.unsqueeze(-1) * points).sum(1) / total
    distance = ((points - centre.unsqueeze(1)).norm(dim=-1) * weights).sum(1, keepdim=True) / total
    scale = (2**0.5) / distance.clamp_min(1e-300)
    t = points.new_zeros(points.shape[0], 3, 3)
    t[:, 0, 0] = scale[:, 0]
    t[:, 1, 1] = scale[:, 0]
    t[:, :2, 2] = -scale * centre
    t[:, 2, 2] = 1
    return t


def check_spread(points: torch.Tensor, weights: torch.Tensor, argument: str = "src") -> None:
    """Raise when weighted ``(B, N, 2)`` points are (numerically) all on one line or one spot."""
    total = weights.sum(1, keepdim=True).clamp_min(1e-300)
    centre = (weights.unsqueeze(-1) * points).sum(1, keepdim=True) / total.unsqueeze(-1)
    centred = (points - centre) * weights.unsqueeze(-1).sqrt()
    singular = torch.linalg.svdvals(centred.detach())
    bad = singular[:, 1] <= 1e-9 * singular[:, 0].clamp_min(1e-300)
    if bad.any():
        index = int(bad.nonzero()[0, 0])
        raise DegenerateInputError(
            f"{argument}: expected points spread in 2D, got collinear or coincident points at batch index {index}"
        )


def theta_params_grid(cls, owner, to_theta, params, src_size, dst_size, align_corners) -> torch.Tensor:
    """``grid_from_params`` of a family ``owner`` whose parameters are a normalised ``theta``:
    ``theta_grid(to_theta(params))``, no inverse. A subclass ``cls`` with its own ``from_params`` (its own
    parameters) gets the generic ``from_params(...).grid(...)`` instead.
    """
    if getattr(cls.from_params, "__func__", None) is not getattr(owner.from_params, "__func__", None):
        generic = getattr(Transform.grid_from_params, "__func__")  # noqa: B009 - the unbound classmethod
        return generic(cls, params, src_size, dst_size, align_corners=align_corners)
    src_size, dst_size = check_sizes(src_size, dst_size)
    return theta_grid(to_theta(params), src_size, dst_size, align_corners)
