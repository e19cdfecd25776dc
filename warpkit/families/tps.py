"""Thin-plate splines (Bookstein): ``f(p) = a0 + A p + sum_k w_k U(|p - c_k|)``, ``U(r) = r^2 log r``.

The side conditions ``sum w = sum w x = sum w y = 0`` hold; the system is built and solved in float64.

A spline is stored once and used in either direction: the native direction evaluates it in closed form,
the other solves it by Newton's method (gradients by the implicit function theorem) and reports the
residual. Warping reads the destination -> source map at every output pixel, so both constructors make
that direction native and the grid costs one evaluation (in chunks: memory stays O(output)):

- ``fit(src, dst)`` fits the destination -> source spline through ``dst_i -> src_i`` (kernel centres at
  ``dst``): ``T(src_i) = dst_i`` exactly, ``grid`` is ``scipy.interpolate.RBFInterpolator(dst, src,
  kernel="thin_plate_spline")`` at the pixel centres, and ``transform_points`` is its inverse (Newton; a few
  points). ``fit(dst, src).inverse()`` is the spline the other way round, ``RBFInterpolator(src, dst)``.
- ``from_params`` (STN) is native destination -> source in torch's normalised frames.

The spline lives in a frame: ``pre`` takes pixels into it and ``post`` takes its output back to pixels.
``fit`` centres and scales both point sets (a similarity, under which a TPS is invariant, the smoothing
scaled to match), so well-spread points far from the origin fit as well as points near it; a TPS is not
invariant to per-axis scaling, which is why ``from_params`` uses torch's frames as they are.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch.utils.checkpoint import checkpoint

from .._base import Direction, Transform, parse_to_arguments
from .._checks import as_float_tensor, check_batch_size, check_dtype, check_output_size, check_size, check_sizes
from .._coords import apply_matrix, normalization_matrix, pixel_grid
from .._errors import ConvergenceWarning, DegenerateInputError, ShapeError
from ._matrix import check_spread, correspondences, point_normalizer

__all__ = ["ThinPlateSpline"]

#: A Newton residual above this many pixels warns (the iteration itself aims at 1e-9 px).
SOLVE_TOLERANCE = 1e-4
_MAX_ITERATIONS = 50
#: Points x centres evaluated at once (float64): bounds the temporaries of a grid at a few MiB each.
CHUNK_ELEMENTS = 2**19
_TINY = 1e-300  # d2 log(max(d2, tiny)) is 0 at d2 = 0, with no branch


class ThinPlateSpline(Transform):
    """A batch of thin-plate splines. Build with :meth:`fit`, :meth:`estimate` or :meth:`from_params`.

    Args:
        centres: ``(B, K, 2)`` kernel centres, in the frame.
        weights: ``(B, K, 2)`` kernel weights.
        affine: ``(B, 3, 2)``: rows ``a0``, then the ``2 x 2`` linear part (``f = a0 + u @ A``).
        pre, post: ``(B, 3, 3)`` pixel -> frame and frame -> pixel matrices (None: identity).
        native: which way the stored spline maps: ``"forward"`` (source -> destination) or ``"inverse"``
            (destination -> source, what ``fit`` and ``from_params`` make); the other way is Newton's method.
        dtype: dtype of the points and grids it returns (the spline itself is float64).
    """

    name = "tps"
    num_params = 32  # a 4 x 4 grid of control points; from_params accepts any k x k grid
    has_matrix = False
    batch_fields = ("centres", "weights", "affine", "pre", "post")

    def __init__(
        self,
        centres,
        weights,
        affine,
        *,
        pre=None,
        post=None,
        native: Direction | str = Direction.FORWARD,
        dtype=torch.float32,
    ):
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
        self.pre = eye if pre is None else _frame(pre, batch, "pre")
        self.post = eye if post is None else _frame(post, batch, "post")
        self.native = Direction.parse(native)
        self._dtype = dtype

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def fit(cls, src, dst, regularization: float = 0.0, weights=None) -> ThinPlateSpline:
        """The spline with ``T(src_i) = dst_i`` (exactly when ``regularization`` is 0).

        Fitted destination -> source (``RBFInterpolator(dst, src)``), the direction a warp reads, so
        ``grid`` is closed form and ``transform_points`` is the Newton inverse.

        Args:
            src, dst: ``(K, 2)`` or ``(B, K, 2)`` control points, K >= 3, each set spread in 2D.
            regularization: smoothing ``lambda >= 0`` added to the kernel diagonal (scipy's ``smoothing``,
                in pixels).
            weights: optional ``(K,)`` or ``(B, K)`` confidences; point ``i`` gets ``lambda / weights[i]``.
        """
        s, d, w, dtype = correspondences(src, dst, weights, minimum=3)
        regularization = _check_regularization(regularization)
        check_spread(s, w, "src")
        check_spread(d, w, "dst")
        # Fit in a centred, scaled frame on each side. The frame is a similarity, under which a TPS is
        # invariant (the log-scale term falls into a0 by the side conditions), so it needs no gradient.
        pre = point_normalizer(d.detach(), torch.ones_like(w))
        to_frame = point_normalizer(s.detach(), torch.ones_like(w))
        if not (torch.isfinite(pre).all() and torch.isfinite(to_frame).all()) or (pre[:, 0, 0] == 0).any():
            raise DegenerateInputError(
                "src, dst: expected coordinates whose spread float64 can square (below about 1e150), got "
                f"magnitudes up to {float(torch.maximum(s.abs().max(), d.abs().max())):.3g}"
            )
        u, v = apply_matrix(pre, d), apply_matrix(to_frame, s)
        # U(s r) = s^2 U(r) + (a term absorbed by a0): the smoothing scales by s^2 to give the same spline.
        smoothing = torch.zeros_like(w)
        if regularization > 0:
            smoothing = regularization * pre[:, 0, 0].square().unsqueeze(1) / w.clamp_min(1e-300)
            if not torch.isfinite(smoothing).all():
                raise DegenerateInputError(
                    f"regularization: expected a value that stays finite in the fit's frame, got {regularization!r} "
                    f"for points spread over {float((d - d.mean(1, keepdim=True)).abs().max()):.3g} px"
                )
        if regularization == 0:  # T must be a function: the source points must determine a spline too
            _check_solvable(_system(v, smoothing), "src")
        centres, kernel_weights, affine = _solve(u, v, smoothing, "dst")
        return cls(
            centres,
            kernel_weights,
            affine,
            pre=pre,
            post=_similarity_inverse(to_frame),
            native=Direction.INVERSE,
            dtype=dtype,
        )

    @classmethod
    def estimate(cls, src, dst, weights=None, regularization: float = 0.0) -> ThinPlateSpline:
        """Same as :meth:`fit`; ``weights`` only matter when ``regularization > 0``."""
        return cls.fit(src, dst, regularization, weights=weights)

    @classmethod
    def identity(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> ThinPlateSpline:
        check_batch_size(batch_size, 80)
        dtype = check_dtype(dtype)
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
        return cls(centres, weights, affine, pre=pre, post=post, native=Direction.INVERSE, dtype=p.dtype)

    @classmethod
    def grid_from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        """``(B, H_out, W_out, 2)`` grid of :meth:`from_params`, in the parameters' dtype, by matmuls only."""
        p, k = _check_params(params)
        src_size, dst_size = check_sizes(src_size, dst_size)
        check_output_size(p.shape[0], 2, dst_size, "dst_size")
        # The (B, N, k*k) kernel matrix is the largest temporary: refuse it too before allocating.
        check_output_size(p.shape[0], k * k, dst_size, "dst_size")
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
        if isinstance(grid_size, bool) or not isinstance(grid_size, int) or not 2 <= grid_size <= 64:
            raise ShapeError(f"grid_size: expected an int from 2 to 64, got {grid_size!r}")
        device = self.centres.device
        control = _control_grid(grid_size, device).expand(self.batch_size, -1, -1)
        to_dst = normalization_matrix(dst_size, align_corners, device=device, argument="dst_size", inverse=True)
        n_src = normalization_matrix(src_size, align_corners, device=device, argument="src_size")
        source = self.inverse().map_points(apply_matrix(to_dst.expand(self.batch_size, 3, 3), control)).double()
        return apply_matrix(n_src.expand(self.batch_size, 3, 3), source).reshape(self.batch_size, -1).to(self._dtype)

    @classmethod
    def identity_params(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        check_batch_size(batch_size, 32)
        return _control_grid(4, device).reshape(1, -1).repeat(batch_size, 1).to(check_dtype(dtype))

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
        if self.native is Direction.FORWARD:
            return self.evaluate(points).to(points.dtype)
        mapped, residual = self.solve(points)
        _warn_if_unconverged(residual)
        return mapped.to(points.dtype)

    def grid(self, size) -> torch.Tensor:
        """``(B, H, W, 2)`` source points read by each destination pixel (pixel centres made in float64,
        so that half-precision transforms of large images still get exact centres)."""
        height, width = check_size(size)
        check_output_size(self.batch_size, 2, (height, width), "size")
        inverse = self.inverse()
        rows = max(1, CHUNK_ELEMENTS // max(1, width * self.batch_size * self.centres.shape[1]))
        # Row bands end to end: the float64 temporaries are one band's, so the peak is O(output).
        parts = []
        for top in range(0, height, rows):
            band = pixel_grid((min(rows, height - top), width), torch.float64, self.device)
            band[..., 1] += top
            parts.append(inverse.map_points(band.reshape(1, -1, 2)).to(self._dtype))
        if not parts:
            return torch.empty(self.batch_size, height, width, 2, dtype=self._dtype, device=self.device)
        source = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return source.reshape(source.shape[0], height, width, 2).expand(self.batch_size, -1, -1, -1)

    def inverse(self) -> ThinPlateSpline:
        """The same spline used the other way round (no refit)."""
        return type(self)(
            self.centres,
            self.weights,
            self.affine,
            pre=self.pre,
            post=self.post,
            native=self.native.flipped(),
            dtype=self._dtype,
        )

    def to(self, *args, device=None, dtype=None) -> ThinPlateSpline:
        """Move to ``device``; ``dtype`` is that of the points and grids it returns (the spline stays float64)."""
        device, dtype = parse_to_arguments(args, device, dtype)
        moved = super().to(device=device)
        moved._dtype = self._dtype if dtype is None else dtype
        return moved

    # --- the spline in either direction ------------------------------------------------------
    def evaluate(self, points: torch.Tensor) -> torch.Tensor:
        """The spline's own map (whatever ``native`` says) at ``(B, N, 2)`` pixel points, float64.

        Evaluated in chunks of points, so the temporaries stay a few MiB whatever ``N``; with gradients,
        each chunk is recomputed in the backward pass instead of kept.
        """
        u = apply_matrix(self.pre, points.double())
        return apply_matrix(self.post, _chunked_spline(u, self.centres, self.weights, self.affine))

    def solve(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points ``p`` with ``evaluate(p) = points`` for ``(B, N, 2)`` ``points``, by Newton's method.

        Returns ``(p, residual)``: ``(B, N, 2)`` float64 and the ``(B, N)`` pixel distance
        ``|evaluate(p) - points|``. Differentiable (implicit function theorem at the solution).
        """
        target = points.double()
        batch = max(target.shape[0], self.batch_size, 1)
        step = max(1, CHUNK_ELEMENTS // (2 * batch * max(1, self.centres.shape[1])))
        if target.shape[1] <= step:
            return self._solve_chunk(target)
        parts = [self._solve_chunk(chunk) for chunk in target.split(step, dim=1)]
        return torch.cat([p for p, _ in parts], dim=1), torch.cat([r for _, r in parts], dim=1)

    def _solve_chunk(self, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = apply_matrix(torch.linalg.inv(self.post), target)  # in the frame
        with torch.no_grad():
            u = self._initial_guess(v.detach())
            for _ in range(_MAX_ITERATIONS):
                value, jac = self._spline_and_jacobian(u)
                error = v.detach() - value
                u = u + _solve_rows(jac, error)
                if (
                    value.numel() == 0
                    or (apply_matrix(self.post.detach(), value) - target.detach()).norm(dim=-1).max() < 1e-9
                ):
                    break
        u = u + _solve_rows(self._spline_and_jacobian(u)[1], v - self._spline(u))  # one step with gradients
        residual = (self.evaluate_frame(u) - target).norm(dim=-1).detach()
        return apply_matrix(torch.linalg.inv(self.pre), u), residual

    def evaluate_frame(self, u: torch.Tensor) -> torch.Tensor:
        """The spline at frame points ``u``, mapped to pixels by ``post``."""
        return apply_matrix(self.post, self._spline(u))

    def _spline(self, u: torch.Tensor) -> torch.Tensor:
        return _spline(u, self.centres, self.weights, self.affine)

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
            centres, weights, affine = _solve(images, self.centres, 0 * ones, "centres")
        except (DegenerateInputError, torch.linalg.LinAlgError):
            linear = self.affine[:, 1:]
            return (v - self.affine[:, :1]) @ torch.linalg.pinv(linear)
        return affine[:, :1] + v @ affine[:, 1:] + _kernel(_squared_distances(v, centres)) @ weights

    def __repr__(self) -> str:
        direction = "source->destination" if self.native is Direction.FORWARD else "destination->source"
        return f"ThinPlateSpline(batch_size={self.batch_size}, num_centres={self.centres.shape[1]}, native={direction})"


def _frame(matrix, batch: int, argument: str) -> torch.Tensor:
    m = as_float_tensor(matrix, argument).double()
    if m.shape[-2:] != (3, 3) or m.ndim not in (2, 3) or (m.ndim == 3 and m.shape[0] not in (1, batch)):
        raise ShapeError(f"{argument}: expected shape (3, 3) or ({batch}, 3, 3), got {tuple(m.shape)}")
    return m.expand(batch, 3, 3)


def _similarity_inverse(t: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(B, 3, 3)`` similarities ``[[s, 0, tx], [0, s, ty], [0, 0, 1]]`` from :func:`point_normalizer`."""
    inverse = torch.zeros_like(t)
    scale = 1 / t[:, 0, 0]
    inverse[:, 0, 0] = inverse[:, 1, 1] = scale
    inverse[:, :2, 2] = -t[:, :2, 2] * scale.unsqueeze(1)
    inverse[:, 2, 2] = 1
    return inverse


def _check_regularization(value: object) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.requires_grad:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise DegenerateInputError(f"regularization: expected a finite number >= 0, got {value!r}")
    return float(value)


def _squared_distances(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return (points.unsqueeze(2) - centres.unsqueeze(1)).square().sum(-1)


def _kernel(d2: torch.Tensor) -> torch.Tensor:
    """``U(r) = r^2 log r = d2 log(d2) / 2`` with ``U(0) = 0`` (and a finite gradient there)."""
    positive = d2 > 0
    safe = torch.where(positive, d2, torch.ones_like(d2))
    return torch.where(positive, 0.5 * safe * torch.log(safe), torch.zeros_like(d2))


def _spline(u: torch.Tensor, centres: torch.Tensor, weights: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """``(B, N, 2)`` spline values at ``(B, N, 2)`` frame points (either batch may be 1).

    Squared distances as ``|u|^2 - 2 u.c + |c|^2`` (one matmul; in the fit's unit-scale frame the
    cancellation costs ~1e-15) and, without gradients, in place: about 4x faster than the plain form.
    """
    cross = u @ centres.transpose(1, 2)  # (B, N, K)
    u2, c2 = u.square().sum(-1, keepdim=True), centres.square().sum(-1).unsqueeze(1)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (u, centres, weights, affine)):
        d2 = (u2 - 2 * cross + c2).clamp_min(0)
        kernel = d2 * torch.log(d2.clamp_min(_TINY))
    else:
        d2 = cross.mul_(-2).add_(u2).add_(c2).clamp_min_(0)
        kernel = d2.clamp_min(_TINY).log_().mul_(d2)
    return affine[:, :1] + u @ affine[:, 1:] + 0.5 * (kernel @ weights)


def _chunked_spline(
    u: torch.Tensor, centres: torch.Tensor, weights: torch.Tensor, affine: torch.Tensor
) -> torch.Tensor:
    """:func:`_spline` over chunks of points: temporaries of at most :data:`CHUNK_ELEMENTS` per chunk."""
    batch = max(u.shape[0], centres.shape[0], 1)
    step = max(1, CHUNK_ELEMENTS // (2 * batch * max(1, centres.shape[1])))
    if u.shape[1] <= step or torch.compiler.is_compiling():
        return _spline(u, centres, weights, affine)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (u, centres, weights, affine))
    parts = [
        checkpoint(_spline, chunk, centres, weights, affine, use_reentrant=False)
        if grad
        else _spline(chunk, centres, weights, affine)
        for chunk in u.split(step, dim=1)
    ]
    return torch.cat(parts, dim=1)


def _system(src: torch.Tensor, smoothing: torch.Tensor) -> torch.Tensor:
    """``(B, K + 3, K + 3)`` TPS system ``[[U + diag(smoothing), P], [P^T, 0]]`` for ``(B, K, 2)`` centres."""
    batch = src.shape[0]
    kernel = _kernel(_squared_distances(src, src)) + torch.diag_embed(smoothing)
    poly = torch.cat([torch.ones_like(src[..., :1]), src], dim=-1)  # (B, K, 3)
    top = torch.cat([kernel, poly], dim=2)
    bottom = torch.cat([poly.transpose(1, 2), src.new_zeros(batch, 3, 3)], dim=2)
    return torch.cat([top, bottom], dim=1)


def _solve(src: torch.Tensor, dst: torch.Tensor, smoothing: torch.Tensor, argument: str):
    """Solve the TPS system for ``(B, K, 2)`` float64 frame points; return centres, weights, affine."""
    k = src.shape[1]
    system = _system(src, smoothing)
    rhs = torch.cat([dst, dst.new_zeros(dst.shape[0], 3, 2)], dim=1)
    scale, scaled = _check_solvable(system, argument)
    solution = scale.unsqueeze(2) * torch.linalg.solve(scaled, scale.unsqueeze(2) * rhs)
    return src, solution[:, :k], solution[:, k:]


def _check_solvable(system: torch.Tensor, argument: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Raise unless the ``(B, n, n)`` system is well conditioned; return the equilibration and the scaled system."""
    # Equilibrate rows and columns so that the conditioning test does not depend on units.
    scale = system.detach().abs().amax(dim=2).clamp_min(1e-300).rsqrt()
    scaled = scale.unsqueeze(2) * system * scale.unsqueeze(1)
    if system.device.type != "meta":
        singular = torch.linalg.svdvals(scaled.detach())
        bad = ~(singular[:, -1] > 1e-12 * singular[:, 0])  # NaN counts as bad
        if bad.any():
            index = int(bad.nonzero()[0, 0])
            raise DegenerateInputError(
                f"{argument}: expected control points that give a solvable spline (duplicates need regularization "
                f"> 0), got a singular system at batch index {index}"
            )
    return scale, scaled


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
        raise ShapeError(
            f"params: expected shape (B, 2 * k * k) for a k x k control grid, k >= 2, got {tuple(p.shape)}"
        )
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
