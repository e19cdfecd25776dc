"""Thin-plate splines (Bookstein): ``f(p) = a0 + A p + sum_k w_k U(|p - c_k|)``, ``U(r) = r^2 log r``.

Kernel centres ``c_k`` are the source control points; the side conditions ``sum w = sum w x = sum w y = 0``
hold. This is ``scipy.interpolate.RBFInterpolator(src, dst, kernel="thin_plate_spline")`` (its
``smoothing`` is ``regularization``). The system is built and solved in float64.

A spline is stored once and used in either direction: the native direction evaluates it, the other
solves it by Newton's method (gradients by the implicit function theorem) and reports the residual.
``fit`` makes the spline map source -> destination; ``from_params`` (STN) makes it map destination ->
source, so that ``grid`` is native. The spline lives in a frame: ``pre`` takes pixels into it and
``post`` takes its output back to pixels (both identity for ``fit``; torch's normalised frames for
``from_params``, since a TPS is not invariant to per-axis scaling).
"""

from __future__ import annotations

import math
import warnings

import torch

from .._base import Transform
from .._checks import as_float_tensor, check_batch_size, check_sizes
from .._coords import apply_matrix, normalization_matrix, pixel_grid
from .._errors import ConvergenceWarning, DegenerateInputError, ShapeError
from ._matrix import check_spread, correspondences

__all__ = ["ThinPlateSpline"]

#: A Newton residual above this many pixels warns (the iteration itself aims at 1e-9 px).
SOLVE_TOLERANCE = 1e-4
_MAX_ITERATIONS = 50


class ThinPlateSpline(Transform):
    """A batch of thin-plate splines. Build with :meth:`fit`, :meth:`estimate` or :meth:`from_params`.

    Args:
        centres: ``(B, K, 2)`` kernel centres, in the frame.
        weights: ``(B, K, 2)`` kernel weights.
        affine: ``(B, 3, 2)``: rows ``a0``, then the ``2 x 2`` linear part (``f = a0 + u @ A``).
        pre, post: ``(B, 3, 3)`` pixel -> frame and frame -> pixel matrices (None: identity).
        forward: True when the spline maps source -> destination, False when destination -> source.
        dtype: dtype of the points and grids it returns (the spline itself is float64).
    """

    name = "tps"
    num_params = 32  # a 4 x 4 grid of control points; from_params accepts any k x k grid
    has_matrix = False

    def __init__(self, centres, weights, affine, *, pre=None, post=None, forward=True, dtype=torch.float32):
        self.centres = as_float_tensor(centres, "centres").double()
        if self.centres.ndim != 3 or self.centres.shape[-1] != 2:
            raise ShapeError(f"centres: expected shape (B, K, 2), got {tuple(self.centres.shape)}")
        batch, k = self.centres.shape[:2]
        self.weights = as_float_tensor(weights, "weights").double()
        self.affine = as_float_tensor(affine, "affine").double()
        if tuple(self.weights.shape) != (batch, k, 2):
            raise ShapeError(f"weights: expected shape ({batch}, {k}, 2), got {tuple(self.weights.shape)}")
        if tuple(self.affine.shape) != (batch, 3, 2):
            raise ShapeError(f"affine: expected shape ({batch}, 3, 2), got {tuple(self.affine.shape)}")
        eye = torch.eye(3, dtype=torch.float64, device=self.centres.device).expand(batch, 3, 3)
        self.pre = eye if pre is None else pre.double().expand(batch, 3, 3)
        self.post = eye if post is None else post.double().expand(batch, 3, 3)
        self.forward = bool(forward)
        self._dtype = dtype

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def fit(cls, src, dst, regularization: float = 0.0, weights=None) -> ThinPlateSpline:
        """The spline with ``T(src_i) = dst_i`` (exactly when ``regularization`` is 0).

        Args:
            src, dst: ``(K, 2)`` or ``(B, K, 2)`` control points, K >= 3, not all on one line.
            regularization: smoothing ``lambda >= 0`` added to the kernel diagonal (scipy's ``smoothing``).
            weights: optional ``(K,)`` or ``(B, K)`` confidences; point ``i`` gets ``lambda / weights[i]``.
        """
        s, d, w, dtype = correspondences(src, dst, weights, minimum=3)
        if not (isinstance(regularization, (int, float)) and regularization >= 0):
            raise DegenerateInputError(f"regularization: expected a number >= 0, got {regularization!r}")
        check_spread(s, w)
        centres, kernel_weights, affine = _solve(s, d, regularization / w.clamp_min(1e-300))
        return cls(centres, kernel_weights, affine, dtype=dtype)

    @classmethod
    def estimate(cls, src, dst, weights=None, regularization: float = 0.0) -> ThinPlateSpline:
        """Same as :meth:`fit`; ``weights`` only matter when ``regularization > 0``."""
        return cls.fit(src, dst, regularization, weights=weights)

    @classmethod
    def identity(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> ThinPlateSpline:
        check_batch_size(batch_size)
        centres = _control_grid(4, device).expand(batch_size, -1, -1)
        affine = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64, device=device)
        return cls(centres, torch.zeros_like(centres), affine.expand(batch_size, 3, 2), dtype=dtype)

    @classmethod
    def from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> ThinPlateSpline:
        """From ``(B, 2K)`` STN parameters: where each of a ``k x k`` grid of control points spread over
        the destination (normalised, ``[-1, 1]``, row-major, ``(x, y)`` pairs) reads the source
        (normalised). The identity is the control grid itself.
        """
        p, k = _check_params(params)
        src_size, dst_size = check_sizes(src_size, dst_size)
        coefficients = _control_coefficients(p.double(), k)
        centres = _control_grid(k, p.device).expand(p.shape[0], -1, -1)
        pre = normalization_matrix(dst_size, align_corners, device=p.device, argument="dst_size")
        post = normalization_matrix(src_size, align_corners, device=p.device, argument="src_size", inverse=True)
        weights, affine = coefficients[:, : k * k], coefficients[:, k * k :]
        return cls(centres, weights, affine, pre=pre, post=post, forward=False, dtype=p.dtype)

    @classmethod
    def grid_from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        """``(B, H_out, W_out, 2)`` grid of :meth:`from_params`, in the parameters' dtype, by matmuls only."""
        p, k = _check_params(params)
        src_size, dst_size = check_sizes(src_size, dst_size)
        n_dst = normalization_matrix(dst_size, align_corners, p.dtype, p.device, "dst_size")
        to_src = normalization_matrix(src_size, align_corners, p.dtype, p.device, "src_size", inverse=True)
        u = apply_matrix(n_dst.unsqueeze(0), pixel_grid(dst_size, p.dtype, p.device).reshape(1, -1, 2))
        control = _control_grid(k, p.device).to(p.dtype)
        basis = torch.cat([_kernel(_squared_distances(u, control)), torch.ones_like(u[..., :1]), u], dim=-1)
        source = basis @ _control_coefficients(p, k)  # (B, N, 2)
        return apply_matrix(to_src.unsqueeze(0), source).reshape(p.shape[0], dst_size[0], dst_size[1], 2)

    def to_params(self, src_size, dst_size=None, *, align_corners: bool = False, grid_size: int = 4) -> torch.Tensor:
        """``(B, 2 * grid_size**2)`` normalised source points read at the destination control grid."""
        src_size, dst_size = check_sizes(src_size, dst_size)
        device = self.centres.device
        control = _control_grid(grid_size, device).expand(self.batch_size, -1, -1)
        to_dst = normalization_matrix(dst_size, align_corners, device=device, argument="dst_size", inverse=True)
        n_src = normalization_matrix(src_size, align_corners, device=device, argument="src_size")
        source = self.inverse().map_points(apply_matrix(to_dst.expand(self.batch_size, 3, 3), control)).double()
        return apply_matrix(n_src.expand(self.batch_size, 3, 3), source).reshape(self.batch_size, -1).to(self._dtype)

    @classmethod
    def identity_params(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        return _control_grid(4, device).reshape(1, -1).repeat(batch_size, 1).to(dtype)

    # --- the Transform contract -------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.centres.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self.centres.device

    def map_points(self, points: torch.Tensor) -> torch.Tensor:
        if self.forward:
            return self.evaluate(points).to(points.dtype)
        mapped, residual = self.solve(points)
        _warn_if_unconverged(residual)
        return mapped.to(points.dtype)

    def inverse(self) -> ThinPlateSpline:
        """The same spline used the other way round (no refit)."""
        return type(self)(
            self.centres, self.weights, self.affine, pre=self.pre, post=self.post, forward=not self.forward, dtype=self._dtype
        )

    # --- the spline in either direction ------------------------------------------------------
    def evaluate(self, points: torch.Tensor) -> torch.Tensor:
        """The spline's own map (whatever ``forward`` says) at ``(B, N, 2)`` pixel points, float64."""
        u = apply_matrix(self.pre, points.double())
        return apply_matrix(self.post, self._spline(u))

    def solve(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points ``p`` with ``evaluate(p) = points`` for ``(B, N, 2)`` ``points``, by Newton's method.

        Returns ``(p, residual)``: ``(B, N, 2)`` float64 and the ``(B, N)`` pixel distance
        ``|evaluate(p) - points|``. Differentiable (implicit function theorem at the solution).
        """
        target = points.double()
        v = apply_matrix(torch.linalg.inv(self.post), target)  # in the frame
        with torch.no_grad():
            u = self._initial_guess(v.detach())
            for _ in range(_MAX_ITERATIONS):
                value, jac = self._spline_and_jacobian(u)
                error = v.detach() - value
                u = u + _solve_rows(jac, error)
                if value.numel() == 0 or (apply_matrix(self.post.detach(), value) - target.detach()).norm(dim=-1).max() < 1e-9:
                    break
            value, jac = self._spline_and_jacobian(u)
        u = u + _solve_rows(jac, v - self._spline(u))  # one step with gradients: exact first order
        residual = (self.evaluate_frame(u) - target).norm(dim=-1).detach()
        return apply_matrix(torch.linalg.inv(self.pre), u), residual

    def evaluate_frame(self, u: torch.Tensor) -> torch.Tensor:
        """The spline at frame points ``u``, mapped to pixels by ``post``."""
        return apply_matrix(self.post, self._spline(u))

    def _spline(self, u: torch.Tensor) -> torch.Tensor:
        kernel = _kernel(_squared_distances(u, self.centres))
        return self.affine[:, :1] + u @ self.affine[:, 1:] + kernel @ self.weights

    def _spline_and_jacobian(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diff = u.unsqueeze(2) - self.centres.unsqueeze(1)  # (B, N, K, 2)
        d2 = diff.square().sum(-1)
        value = self.affine[:, :1] + u @ self.affine[:, 1:] + _kernel(d2) @ self.weights
        slope = torch.where(d2 > 0, torch.log(torch.where(d2 > 0, d2, torch.ones_like(d2))) + 1, torch.zeros_like(d2))
        # jac[b, n, i, j] = d value_j / d u_i
        jac = self.affine[:, 1:].unsqueeze(1) + torch.einsum("bnk,bnki,bkj->bnij", slope, diff, self.weights)
        return value, jac

    def _initial_guess(self, v: torch.Tensor) -> torch.Tensor:
        """Frame points near the solution: a spline fitted the other way through the control points."""
        images = self._spline(self.centres)
        ones = torch.ones(self.centres.shape[:2], dtype=torch.float64, device=self.device)
        try:
            centres, weights, affine = _solve(images, self.centres, 0 * ones)
        except (DegenerateInputError, torch.linalg.LinAlgError):
            linear = self.affine[:, 1:]
            return (v - self.affine[:, :1]) @ torch.linalg.pinv(linear)
        return affine[:, :1] + v @ affine[:, 1:] + _kernel(_squared_distances(v, centres)) @ weights

    def __repr__(self) -> str:
        direction = "source->destination" if self.forward else "destination->source"
        return f"ThinPlateSpline(batch_size={self.batch_size}, num_centres={self.centres.shape[1]}, native={direction})"


def _squared_distances(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return (points.unsqueeze(2) - centres.unsqueeze(1)).square().sum(-1)


def _kernel(d2: torch.Tensor) -> torch.Tensor:
    """``U(r) = r^2 log r = d2 log(d2) / 2`` with ``U(0) = 0`` (and a finite gradient there)."""
    positive = d2 > 0
    safe = torch.where(positive, d2, torch.ones_like(d2))
    return torch.where(positive, 0.5 * safe * torch.log(safe), torch.zeros_like(d2))


def _system(src: torch.Tensor, smoothing: torch.Tensor) -> torch.Tensor:
    """``(B, K + 3, K + 3)`` TPS system ``[[U + diag(smoothing), P], [P^T, 0]]`` for ``(B, K, 2)`` centres."""
    batch = src.shape[0]
    kernel = _kernel(_squared_distances(src, src)) + torch.diag_embed(smoothing)
    poly = torch.cat([torch.ones_like(src[..., :1]), src], dim=-1)  # (B, K, 3)
    top = torch.cat([kernel, poly], dim=2)
    bottom = torch.cat([poly.transpose(1, 2), src.new_zeros(batch, 3, 3)], dim=2)
    return torch.cat([top, bottom], dim=1)


def _solve(src: torch.Tensor, dst: torch.Tensor, smoothing: torch.Tensor):
    """Solve the TPS system for ``(B, K, 2)`` float64 points; return centres, weights, affine."""
    k = src.shape[1]
    system = _system(src, smoothing)
    rhs = torch.cat([dst, dst.new_zeros(dst.shape[0], 3, 2)], dim=1)
    # Scale rows and columns so that the conditioning test below does not depend on pixel units.
    scale = system.detach().abs().amax(dim=2).clamp_min(1e-300).rsqrt()
    scaled = scale.unsqueeze(2) * system * scale.unsqueeze(1)
    singular = torch.linalg.svdvals(scaled.detach())
    bad = singular[:, -1] <= 1e-12 * singular[:, 0]
    if bad.any():
        index = int(bad.nonzero()[0, 0])
        raise DegenerateInputError(
            f"src: expected control points that give a solvable spline (duplicates need regularization > 0), "
            f"got a singular system at batch index {index}"
        )
    solution = scale.unsqueeze(2) * torch.linalg.solve(scaled, scale.unsqueeze(2) * rhs)
    return src, solution[:, :k], solution[:, k:]


_CONTROL_INVERSES: dict[int, torch.Tensor] = {}  # a plain dict: dynamo sees through it (not lru_cache)


def _control_system_inverse(k: int) -> torch.Tensor:
    """``(K + 3, K)`` float64 map from control-point targets to spline coefficients ``[w; a0; A]`` for the
    ``k x k`` control grid. It depends only on ``k``, so it is solved once: a forward is then a matmul.
    """
    inverse = _CONTROL_INVERSES.get(k)
    if inverse is None:
        control = _control_grid(k, None)
        system = _system(control, control.new_zeros(1, k * k))[0]
        inverse = _CONTROL_INVERSES[k] = torch.linalg.inv(system)[:, : k * k]
    return inverse


def _control_coefficients(params: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, K + 3, 2)`` spline coefficients for ``(B, 2K)`` control-point targets, in their dtype."""
    inverse = _control_system_inverse(k).to(dtype=params.dtype, device=params.device)
    return inverse @ params.reshape(params.shape[0], k * k, 2)


def _check_params(params) -> tuple[torch.Tensor, int]:
    """``(B, 2 k^2)`` STN parameters and their control-grid side ``k``."""
    p = as_float_tensor(params, "params")
    k = math.isqrt(int(p.shape[-1]) // 2) if p.ndim == 2 else 0  # int(): a traced shape is a tensor
    if p.ndim != 2 or k < 2 or 2 * k * k != p.shape[1]:
        raise ShapeError(f"params: expected shape (B, 2 * k * k) for a k x k control grid, k >= 2, got {tuple(p.shape)}")
    return p, k


def _control_grid(k: int, device) -> torch.Tensor:
    """``(1, k * k, 2)`` float64 points spread evenly over ``[-1, 1]^2``, row-major, ``(x, y)``."""
    line = torch.linspace(-1, 1, k, dtype=torch.float64, device=device)
    gy, gx = torch.meshgrid(line, line, indexing="ij")
    return torch.stack([gx, gy], dim=-1).reshape(1, k * k, 2)


def _solve_rows(jac: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
    """``step`` with ``step @ jac = error`` for ``(B, N, 2, 2)`` jacobians and ``(B, N, 2)`` rows.

    Closed-form 2 x 2 solve; where the spline folds (singular jacobian) the step is zero.
    """
    a, b, c, d = jac[..., 0, 0], jac[..., 0, 1], jac[..., 1, 0], jac[..., 1, 1]
    det = a * d - b * c
    ok = det.abs() > 1e-300
    inv_det = torch.where(ok, 1 / torch.where(ok, det, torch.ones_like(det)), torch.zeros_like(det))
    ex, ey = error[..., 0], error[..., 1]
    return torch.stack([(ex * d - ey * c) * inv_det, (ey * a - ex * b) * inv_det], dim=-1)


def _warn_if_unconverged(residual: torch.Tensor) -> None:
    finite = residual[torch.isfinite(residual)]
    worst = float(finite.max()) if finite.numel() else 0.0
    if worst > SOLVE_TOLERANCE or finite.numel() != residual.numel():
        warnings.warn(
            f"ThinPlateSpline: inverse by Newton's method left a residual of {worst:.3g} px "
            f"(tolerance {SOLVE_TOLERANCE:g}); the spline may fold over",
            ConvergenceWarning,
            stacklevel=4,
        )
