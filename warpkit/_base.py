"""The contract every transform family keeps, and the composition of any two transforms.

Convention: a transform maps source -> destination pixel coordinates ``(x, y)`` (pixel centres at
integers), like the ``M`` of ``cv2.warpAffine``. ``grid(size)`` holds, for each destination pixel, the
source point it reads: the inverse map applied to the destination pixel centres.

A family implements ``batch_size``, ``dtype``, ``device``, ``map_points``, ``inverse`` and ``identity``.
Optional capabilities, announced by class attributes: ``has_matrix`` (a ``matrix`` property),
``num_params`` (STN parameter vectors: ``from_params``, ``to_params``, ``identity_params``) and
``estimate``.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ._checks import as_float_tensor, batch_points, broadcast_batch, check_output_size, check_same_device, check_size
from ._coords import pixel_grid
from ._errors import WarpkitError

__all__ = ["Transform", "Composed"]


class Transform:
    """Base class of transform families. Subclasses return ``type(self)(...)`` so subclasses survive."""

    name: ClassVar[str] = ""
    #: True when ``self.matrix`` gives the ``(B, 3, 3)`` source -> destination matrix.
    has_matrix: ClassVar[bool] = False
    #: Length of the STN parameter vector, or None when the family has no parameter vector.
    num_params: ClassVar[int | None] = None

    # --- what a family implements -------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    def map_points(self, points: torch.Tensor) -> torch.Tensor:
        """Map ``(B', N, 2)`` source points to destination, where ``B'`` is ``batch_size`` or ``batch_size`` is 1."""
        raise NotImplementedError

    def inverse(self) -> Transform:
        """The destination -> source transform, same batch size."""
        raise NotImplementedError

    @classmethod
    def identity(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> Transform:
        raise NotImplementedError

    @classmethod
    def estimate(cls, src, dst, weights=None) -> Transform:
        """Least-squares fit from ``(N, 2)`` or ``(B, N, 2)`` correspondences ``src[i] -> dst[i]``."""
        raise WarpkitError(f"{cls.__name__} cannot be estimated from correspondences")

    @classmethod
    def from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> Transform:
        """Build from ``(B, num_params)`` STN parameters (normalised destination -> source frame)."""
        raise WarpkitError(f"{cls.__name__} has no STN parameter vector (num_params is None)")

    @classmethod
    def identity_params(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        raise WarpkitError(f"{cls.__name__} has no STN parameter vector (num_params is None)")

    @classmethod
    def grid_from_params(cls, params, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        """``(B, H_out, W_out, 2)`` grid of ``from_params(params, ...)``: what a spatial transformer reads.

        Families override it with a closed form that needs no inverse or solve (traceable, exportable).
        """
        transform = cls.from_params(params, src_size, dst_size, align_corners=align_corners)
        return transform.grid(src_size if dst_size is None else dst_size)

    def to_params(self, src_size, dst_size=None, *, align_corners: bool = False) -> torch.Tensor:
        raise WarpkitError(f"{type(self).__name__} has no STN parameter vector (num_params is None)")

    # --- what every family gets --------------------------------------------------------------
    @classmethod
    def can_estimate(cls) -> bool:
        return cls.estimate.__func__ is not Transform.estimate.__func__

    def transform_points(self, points) -> torch.Tensor:
        """Map source points to destination.

        Args:
            points: ``(N, 2)`` or ``(B, N, 2)`` pixel coordinates ``(x, y)``; a batch of 1 on either side
                broadcasts.

        Returns:
            ``(B, N, 2)``, or ``(N, 2)`` when ``points`` is ``(N, 2)`` and the batch size is 1.
        """
        tensor = as_float_tensor(points, "points", like=self._like())
        check_same_device(("transform", self._like()), ("points", tensor))
        batched, unbatched = batch_points(tensor)
        batch = broadcast_batch(self.batch_size, batched.shape[0], "transform and points")
        if batched.shape[0] != batch and self.batch_size != 1:
            batched = batched.expand(batch, -1, -1)
        out = self.map_points(batched.to(torch.promote_types(tensor.dtype, self.dtype)))
        return out[0] if unbatched and out.shape[0] == 1 else out

    def grid(self, size) -> torch.Tensor:
        """``(B, H, W, 2)`` source points read by each destination pixel of an image of ``size = (H, W)``."""
        height, width = check_size(size)
        check_output_size(self.batch_size, 2, (height, width), "size")
        centres = pixel_grid((height, width), self.dtype, self.device).reshape(1, height * width, 2)
        source = self.inverse().map_points(centres)
        return source.reshape(source.shape[0], height, width, 2).expand(self.batch_size, -1, -1, -1)

    def then(self, other: Transform) -> Transform:
        """Apply ``self``, then ``other``. Matrix families multiply; anything else composes grids."""
        if not isinstance(other, Transform):
            raise WarpkitError(f"other: expected a warpkit Transform, got {type(other).__name__}")
        broadcast_batch(self.batch_size, other.batch_size, "composed transforms")
        if self.has_matrix and other.has_matrix:
            from .families.projective import from_matrix

            return from_matrix(other.matrix.to(self._common_dtype(other)) @ self.matrix.to(self._common_dtype(other)))
        return Composed([self, other])

    def __matmul__(self, other: Transform) -> Transform:
        """``U @ T`` is ``T.then(U)``: apply the right-hand transform first, as with matrices."""
        if not isinstance(other, Transform):
            return NotImplemented
        return other.then(self)

    def _common_dtype(self, other: Transform) -> torch.dtype:
        return torch.promote_types(self.dtype, other.dtype)

    def _like(self) -> torch.Tensor:
        return torch.empty(0, dtype=self.dtype, device=self.device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.batch_size}, dtype={self.dtype}, device={self.device})"


class Composed(Transform):
    """Transforms applied one after another; its grid is the composition of their inverses."""

    name = "composed"

    def __init__(self, transforms):
        parts: list[Transform] = []
        for t in transforms:
            if not isinstance(t, Transform):
                raise WarpkitError(f"transforms: expected warpkit Transforms, got {type(t).__name__}")
            parts.extend(t.parts if isinstance(t, Composed) else [t])
        if not parts:
            raise WarpkitError("transforms: expected at least one transform, got none")
        batch = 1
        for t in parts:
            batch = broadcast_batch(batch, t.batch_size, "composed transforms")
            check_same_device(("transforms[0]", parts[0]._like()), ("transforms", t._like()))
        self.parts = tuple(parts)
        self._batch = batch

    @property
    def batch_size(self) -> int:
        return self._batch

    @property
    def dtype(self) -> torch.dtype:
        dtype = self.parts[0].dtype
        for t in self.parts[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
        return dtype

    @property
    def device(self) -> torch.device:
        return self.parts[0].device

    def map_points(self, points: torch.Tensor) -> torch.Tensor:
        for t in self.parts:
            points = t.transform_points(points)
        return points

    def inverse(self) -> Composed:
        return Composed([t.inverse() for t in reversed(self.parts)])

    @classmethod
    def identity(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32, device=None) -> Composed:
        from .families.affine import Affine

        return cls([Affine.identity(batch_size, dtype=dtype, device=device)])

    def __repr__(self) -> str:
        return "Composed([" + ", ".join(repr(t) for t in self.parts) + "])"
