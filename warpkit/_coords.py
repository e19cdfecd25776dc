"""Pixel grids, homogeneous points, and the pixel <-> normalised ([-1, 1]) frames used by torch."""

from __future__ import annotations

import torch

from ._checks import check_output_size
from ._errors import ShapeError, SingularMatrixError

__all__ = [
    "pixel_grid",
    "apply_matrix",
    "normalization_matrix",
    "cached_constant",
    "theta_to_matrix",
    "matrix_to_theta",
    "theta_grid",
    "singular_members",
    "linalg_dtype",
]


def pixel_grid(size: tuple[int, int], dtype: torch.dtype, device: torch.device | str | None = None) -> torch.Tensor:
    """``(H, W, 2)`` pixel centres ``(x, y)`` of an image of ``size = (H, W)``."""
    height, width = size
    ys = torch.arange(height, dtype=dtype, device=device)
    xs = torch.arange(width, dtype=dtype, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def apply_matrix(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply ``(B, 3, 3)`` matrices to ``(B, N, 2)`` points (projective division included)."""
    linear = matrix[:, :2, :2]
    offset = matrix[:, :2, 2]
    mapped = points @ linear.transpose(1, 2) + offset.unsqueeze(1)
    w = points @ matrix[:, 2, :2].unsqueeze(-1) + matrix[:, 2, 2].reshape(-1, 1, 1)
    return mapped / w


def normalization_matrix(
    size: tuple[int, int],
    align_corners: bool,
    dtype: torch.dtype = torch.float64,
    device=None,
    argument: str = "size",
    inverse: bool = False,
) -> torch.Tensor:
    """``(3, 3)`` matrix taking pixel coordinates of an image of ``size = (H, W)`` to torch's [-1, 1]
    (``inverse=True``: back to pixels; built from Python numbers, so it is a constant when traced).

    align_corners=False: -1 and 1 are the outer edges of the border pixels; True: their centres.
    """
    height, width = size
    if align_corners:
        if height < 2 or width < 2:
            raise ShapeError(f"{argument}: expected H and W >= 2 with align_corners=True, got {size}")
        sx, sy, ox, oy = 2 / (width - 1), 2 / (height - 1), -1.0, -1.0
    else:
        if height < 1 or width < 1:
            raise ShapeError(f"{argument}: expected H and W >= 1, got {size}")
        sx, sy, ox, oy = 2 / width, 2 / height, 1 / width - 1, 1 / height - 1
    if inverse:
        sx, sy, ox, oy = 1 / sx, 1 / sy, -ox / sx, -oy / sy
    return cached_constant(
        ("normalization", sx, sy, ox, oy, dtype, device),
        lambda: torch.tensor([[sx, 0.0, ox], [0.0, sy, oy], [0.0, 0.0, 1.0]], dtype=dtype, device=device),
    )


def cached_constant(key: tuple, make):
    """A small read-only constant tensor, made once per key (device included), so that no host-to-device copy
    repeats per call. Under tracing or torch.compile it is made afresh: a cached tensor must not be a tracer's
    or a fake one."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return make()
    value = _CONSTANTS.get(key)
    if value is None:
        if len(_CONSTANTS) > 256:
            _CONSTANTS.clear()
        value = _CONSTANTS[key] = make()
    return value


_CONSTANTS: dict[tuple, torch.Tensor] = {}


def linalg_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype to solve and invert in: torch's linear algebra has no float16/bfloat16 kernels, so half
    precision works in float32 and the result is cast back."""
    return torch.promote_types(dtype, torch.float32)


def singular_members(matrix: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: which ``(B, n, n)`` matrices are numerically singular (or not finite).

    Judged by conditioning, not by a norm: for ``3 x 3`` pixel matrices the ``x, y`` columns are scaled
    together and the homogeneous column on its own, then the same for the rows, before the ratio of
    extreme singular values is taken. Those scalings are changes of units that keep ``x`` and ``y``
    alike (pixel size, the homogeneous coordinate), so a well-conditioned matrix with a large translation
    (a rotation about the centre of a 20000-px image) or a uniform scale passes, while a linear part that
    squashes one direction to nothing fails whatever the translation. Other sizes scale each column and
    row alone. Always all False on the ``meta`` device, which has no values to judge.
    """
    if matrix.device.type == "meta":  # on the CPU, so that callers can branch on it
        return torch.zeros(matrix.shape[0], dtype=torch.bool)
    work = matrix.detach().double()
    finite = torch.isfinite(work).flatten(1).all(dim=1)
    work = torch.where(finite.reshape(-1, 1, 1), work, torch.zeros_like(work))
    groups = [slice(0, 2), slice(2, 3)] if work.shape[-1] == 3 else [slice(i, i + 1) for i in range(work.shape[-1])]
    for dim in (-2, -1):  # columns, then rows
        parts = [work[:, :, g] if dim == -2 else work[:, g, :] for g in groups]
        norms = [p.square().sum(dim=(-2, -1), keepdim=True).sqrt().clamp_min(1e-300) for p in parts]
        work = torch.cat([p / n for p, n in zip(parts, norms)], dim=-1 if dim == -2 else -2)
    values = torch.linalg.svdvals(work)
    return ~finite | ~(values[:, -1] > 1e-12 * values[:, 0])


def theta_to_matrix(theta: torch.Tensor, src_size, dst_size, align_corners: bool) -> torch.Tensor:
    """``(B, 3, 3)`` normalised dst -> src ``theta`` into the pixel source -> destination matrix ``M``."""
    work = linalg_dtype(theta.dtype)
    n_src = normalization_matrix(src_size, align_corners, work, theta.device, "src_size")
    n_dst = normalization_matrix(dst_size, align_corners, work, theta.device, "dst_size")
    dst_to_src = torch.linalg.solve(n_src, theta.to(work)) @ n_dst
    bad = singular_members(dst_to_src)
    if not bad.any():
        matrix, info = torch.linalg.inv_ex(dst_to_src)
        bad = (info != 0).cpu() if dst_to_src.device.type != "meta" else bad  # singular in the working precision
    if bad.any():
        index = int(bad.nonzero()[0, 0])
        raise SingularMatrixError(
            f"params: expected parameters of an invertible transform, got singular ones at batch index {index}"
        )
    return matrix.to(theta.dtype)


def matrix_to_theta(matrix: torch.Tensor, src_size, dst_size, align_corners: bool) -> torch.Tensor:
    """Inverse of :func:`theta_to_matrix`: ``(B, 3, 3)`` pixel ``M`` into normalised dst -> src ``theta``."""
    bad = singular_members(matrix)
    if bad.any():
        index = int(bad.nonzero()[0, 0])
        raise SingularMatrixError(
            f"matrix: expected an invertible matrix to express as parameters, got a singular one at batch index "
            f"{index}: {matrix[index].detach().cpu().tolist()}"
        )
    work = linalg_dtype(matrix.dtype)
    n_src = normalization_matrix(src_size, align_corners, work, matrix.device, "src_size")
    n_dst = normalization_matrix(dst_size, align_corners, work, matrix.device, "dst_size")
    return (n_src @ torch.linalg.solve(matrix.to(work), torch.linalg.inv(n_dst))).to(matrix.dtype)


def theta_grid(theta: torch.Tensor, src_size, dst_size, align_corners: bool) -> torch.Tensor:
    """``(B, H, W, 2)`` source pixel points read by the destination pixels for a ``(B, 3, 3)`` normalised
    destination -> source ``theta``, as ``F.affine_grid`` (plus the projective division). Matmuls only: no
    inverse or data-dependent branch, so it traces, compiles and exports.
    """
    check_output_size(theta.shape[0], 2, dst_size, "dst_size")  # before anything output-sized exists
    to_src = normalization_matrix(src_size, align_corners, theta.dtype, theta.device, "src_size", inverse=True)
    n_dst = normalization_matrix(dst_size, align_corners, theta.dtype, theta.device, "dst_size")
    points = pixel_grid(dst_size, theta.dtype, theta.device).reshape(1, -1, 2)
    source = apply_matrix(to_src @ theta @ n_dst, points)
    return source.reshape(theta.shape[0], dst_size[0], dst_size[1], 2)
