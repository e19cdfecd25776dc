"""Brown-Conrady lens distortion (OpenCV's model with ``k1, k2, p1, p2``) as a warpkit family.

The transform maps ideal (undistorted) pixels to distorted pixels, as ``cv2.projectPoints`` applies the
model: ``x = (p - c) / f``, ``r2 = x^2 + y^2``,
``x_d = x (1 + k1 r2 + k2 r2^2) + 2 p1 x y + p2 (r2 + 2 x^2)``,
``y_d = y (1 + k1 r2 + k2 r2^2) + p1 (r2 + 2 y^2) + 2 p2 x y``, ``p_d = f x_d + c``.
So ``warp(photo, lens.inverse())`` undistorts a photo like ``cv2.undistort`` (its grid is
``cv2.initUndistortRectifyMap``'s map), and ``lens.inverse().transform_points`` is ``cv2.undistortPoints``
with ``P = K``. The distortion is closed form; undistortion is Newton's method (to 1e-12 in normalised
units), differentiable by one final step with gradients (implicit function theorem).
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

__all__ = ["LensDistortion", "distort", "undistort"]

_MAX_ITERATIONS = 30
#: Residual (normalised units) above which undistortion warns.
SOLVE_TOLERANCE = 1e-8


class LensDistortion(Transform):
    """A batch of pinhole cameras with Brown-Conrady distortion.

    Args:
        camera: ``(3, 3)`` or ``(B, 3, 3)`` camera matrix ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.
        coefficients: ``(4,)`` or ``(B, 4)``: ``k1, k2, p1, p2`` (OpenCV's order).
        native: ``"forward"`` (default): the model maps source -> destination, so the transform distorts;
            ``"inverse"``: the model maps destination -> source, so the transform undistorts.
    """

    name = "lens"
    num_params = 4
    has_matrix = False
    batch_fields = ("focal", "centre", "coefficients")

    def __init__(self, camera, coefficients, *, native: Direction | str = Direction.FORWARD):
        k = as_float_tensor(camera, "camera")
        k = k.unsqueeze(0) if k.ndim == 2 else k
        if k.ndim != 3 or tuple(k.shape[1:]) != (3, 3):
            raise ShapeError(f"camera: expected shape (3, 3) or (B, 3, 3), got {tuple(k.shape)}")
        c = as_float_tensor(coefficients, "coefficients", like=k)
        c = c.unsqueeze(0) if c.ndim == 1 else c
        if c.ndim != 2 or c.shape[1] != 4:
            raise ShapeError(f"coefficients: expected shape (4,) or (B, 4) (k1, k2, p1, p2), got {tuple(c.shape)}")
        if k.shape[0] != c.shape[0]:
            batch = max(k.shape[0], c.shape[0])
            if 1 not in (k.shape[0], c.shape[0]):
                raise ShapeError(
                    f"camera and coefficients: expected batch sizes that match, got {k.shape[0]} and {c.shape[0]}"
                )
            k, c = k.expand(batch, 3, 3), c.expand(batch, 4)
        self.focal = torch.stack([k[:, 0, 0], k[:, 1, 1]], -1)  # (B, 2)
        self.centre = k[:, :2, 2]  # (B, 2)
        self.coefficients = c.to(k.dtype)
        self.native = Direction.parse(native)

    @property
    def camera(self) -> torch.Tensor:
        """``(B, 3, 3)`` camera matrix."""
        k = torch.zeros(self.batch_size, 3, 3, dtype=self.dtype, device=self.device)
        k[:, 0, 0], k[:, 1, 1] = self.focal[:, 0], self.focal[:, 1]
        k[:, :2, 2], k[:, 2, 2] = self.centre, 1
        return k

    @property
    def batch_size(self) -> int:
        return self.focal.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.focal.dtype

    @property
    def device(self) -> torch.device:
        return self.focal.device

    def map_points(self, points: torch.Tensor) -> torch.Tensor:
        """``(B, N, 2)`` pixels: distorted when ``native`` is forward, else undistorted."""
        focal, centre = self.focal.to(points.dtype).unsqueeze(1), self.centre.to(points.dtype).unsqueeze(1)
        coefficients = self.coefficients.to(points.dtype)
        x = (points - centre) / focal
        x = distort(x, coefficients) if self.native is Direction.FORWARD else undistort(x, coefficients)
        return x * focal + centre

    def inverse(self) -> LensDistortion:
        return self._with(self.focal, self.centre, self.coefficients, self.native.flipped())

    @classmethod
    def identity(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> LensDistortion:
        check_batch_size(batch_size, 13)
        camera = torch.eye(3, dtype=check_dtype(dtype), device=device).expand(batch_size, 3, 3)
        return cls(camera, torch.zeros(batch_size, 4, dtype=dtype, device=device))

    # --- STN parameters: distortion in torch's normalised frame ------------------------------
    @classmethod
    def from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> LensDistortion:
        """From ``(B, 4)`` ``(k1, k2, p1, p2)`` with the camera of torch's normalised frame of the source:
        ``f`` the half extent and ``c`` the centre, so ``x`` runs over ``[-1, 1]``. The grid distorts
        (destination pixel -> source pixel), so the transform itself undistorts (``native="inverse"``).
        Requires ``dst_size == src_size``.
        """
        p = as_float_tensor(params, "params")
        if p.ndim != 2 or p.shape[1] != 4:
            raise ShapeError(f"params: expected shape (B, 4) (k1, k2, p1, p2), got {tuple(p.shape)}")
        camera = _frame_camera(src_size, dst_size, align_corners, p)
        return cls(camera.expand(p.shape[0], 3, 3), p, native=Direction.INVERSE)

    def to_params(self, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        """``(B, 4)`` coefficients; the camera must be the frame camera of :meth:`from_params`."""
        camera = _frame_camera(src_size, dst_size, align_corners, self.focal)
        if not torch.allclose(self.camera.detach(), camera.expand_as(self.camera)):
            raise ShapeError(
                f"camera: expected the normalised-frame camera of from_params for sizes {src_size} -> "
                f"{dst_size or src_size} (to_params reads coefficients in that frame), got {self.camera[0].tolist()}"
            )
        return self.coefficients.clone()

    @classmethod
    def identity_params(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        check_batch_size(batch_size)
        return torch.zeros(batch_size, 4, dtype=dtype, device=device)

    @classmethod
    def example_params(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
        """``(B, 4)`` coefficients for tests: mild barrel distortion (barrel distortion has a largest distorted
        radius; with k1 near -0.05 undistortion exists over the whole image and beyond), small tangential terms."""
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(batch_size, 4, generator=generator, dtype=torch.float64)
        typical = torch.tensor([-0.05, 0.01, 0.0, 0.0], dtype=torch.float64)
        return (typical + noise * torch.tensor([0.01, 0.003, 0.003, 0.003], dtype=torch.float64)).to(dtype)

    def _with(self, focal, centre, coefficients, native: Direction) -> LensDistortion:
        new = type(self).__new__(type(self))
        new.focal, new.centre, new.coefficients, new.native = focal, centre, coefficients, native
        return new

    def __repr__(self) -> str:
        direction = "distorts" if self.native is Direction.FORWARD else "undistorts"
        return f"LensDistortion(batch_size={self.batch_size}, {direction}, dtype={self.dtype})"


def _frame_camera(src_size, dst_size, align_corners: bool, like: torch.Tensor) -> torch.Tensor:
    height, width = check_size(src_size, "src_size")
    if dst_size is not None and check_size(dst_size, "dst_size") != (height, width):
        raise ShapeError(
            f"dst_size: expected the image size {(height, width)} (lens distortion keeps it), got {dst_size}"
        )
    fx, fy = ((width - 1) / 2, (height - 1) / 2) if align_corners else (width / 2, height / 2)
    return like.new_tensor([[fx, 0.0, (width - 1) / 2], [0.0, fy, (height - 1) / 2], [0.0, 0.0, 1.0]]).unsqueeze(0)


def distort(x: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Distort ``(B, N, 2)`` normalised points with ``(B, 4)`` ``k1, k2, p1, p2``."""
    k1, k2, p1, p2 = (c.reshape(-1, 1) for c in coefficients.unbind(-1))
    u, v = x[..., 0], x[..., 1]
    r2 = u * u + v * v
    radial = 1 + k1 * r2 + k2 * r2 * r2
    return torch.stack(
        [u * radial + 2 * p1 * u * v + p2 * (r2 + 2 * u * u), v * radial + p1 * (r2 + 2 * v * v) + 2 * p2 * u * v], -1
    )


def _jacobian(x: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """``(B, N, 2, 2)`` ``d distort_i / d x_j``."""
    k1, k2, p1, p2 = (c.reshape(-1, 1) for c in coefficients.unbind(-1))
    u, v = x[..., 0], x[..., 1]
    r2 = u * u + v * v
    radial = 1 + k1 * r2 + k2 * r2 * r2
    slope = 2 * (k1 + 2 * k2 * r2)  # d radial / d r2, times 2 for d r2 / du = 2u
    row_u = torch.stack([radial + u * u * slope + 2 * p1 * v + 6 * p2 * u, u * v * slope + 2 * p1 * u + 2 * p2 * v], -1)
    row_v = torch.stack([u * v * slope + 2 * p1 * u + 2 * p2 * v, radial + v * v * slope + 6 * p1 * v + 2 * p2 * u], -1)
    return torch.stack([row_u, row_v], -2)


def undistort(target: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Normalised ``x`` with ``distort(x) = target`` for ``(B, N, 2)`` ``target``, by Newton's method."""
    with torch.no_grad():
        x = target.detach().clone()
        c = coefficients.detach()
        for _ in range(_MAX_ITERATIONS):
            error = distort(x, c) - target.detach()
            if error.numel() == 0 or error.abs().max() < 1e-13:
                break
            x = x - torch.linalg.solve(_jacobian(x, c), error.unsqueeze(-1))[..., 0]
        jac = _jacobian(x, c)
    # one step with gradients: exact to first order in target and coefficients
    x = x - torch.linalg.solve(jac, (distort(x, coefficients) - target).unsqueeze(-1))[..., 0]
    residual = (distort(x.detach(), c) - target.detach()).norm(dim=-1)
    tolerance = SOLVE_TOLERANCE if target.dtype == torch.float64 else 1e-5  # float32: rounding alone is ~1e-7
    if residual.numel() and not (residual.max() <= tolerance):
        warnings.warn(
            f"LensDistortion: undistortion left a residual of {float(residual.max()):.3g} (normalised units); "
            "the distortion may fold over there",
            ConvergenceWarning,
            stacklevel=4,
        )
    return x
