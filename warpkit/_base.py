"""The contract every transform family keeps, and the composition of any two transforms.

Convention: a transform maps source -> destination pixel coordinates ``(x, y)`` (pixel centres at
integers), like the ``M`` of ``cv2.warpAffine``. ``grid(size)`` holds, for each destination pixel, the
source point it reads: the inverse map applied to the destination pixel centres.

A family implements ``batch_size``, ``dtype``, ``device``, ``map_points``, ``inverse`` and ``identity``.
Optional capabilities, announced by class attributes: ``has_matrix`` (a ``matrix`` property),
``num_params`` (STN parameter vectors: ``from_params``, ``to_params``, ``identity_params``) and
``estimate``. Every transform gets ``.to(device=, dtype=)``, ``.detach()``, ``len()`` and batch indexing
from the base class, which finds the family's tensors among its attributes (``batch_fields`` names those
whose first dimension is the batch, for indexing).

Direction has one word library-wide: a family that stores its map one way round and solves the other
(a spline, a displacement field, a lens model) says which with ``native``, a :class:`Direction`.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

import torch

from ._checks import as_float_tensor, batch_points, broadcast_batch, check_output_size, check_same_device, check_size
from ._coords import pixel_grid
from ._errors import DTypeError, ModeError, ShapeError, WarpkitError

__all__ = ["Transform", "Composed", "Direction"]

_T = TypeVar("_T", bound="Transform")


class Direction(str, enum.Enum):
    """Which way a stored map goes: a family's ``native`` attribute and constructor keyword.

    ``FORWARD``: source -> destination, what ``transform_points`` computes. ``INVERSE``: destination ->
    source, what ``grid`` reads (and what STN parameters describe). The other way is solved on demand.
    """

    FORWARD = "forward"
    INVERSE = "inverse"

    @classmethod
    def parse(cls, value: object, argument: str = "native") -> Direction:
        """The member named by ``value`` (a member or its string); anything else raises :class:`ModeError`."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value.strip().lower() in ("forward", "inverse"):
            return cls(value.strip().lower())
        raise ModeError(f"{argument}: expected 'forward' (source -> destination) or 'inverse', got {value!r}")

    def flipped(self) -> Direction:
        return Direction.INVERSE if self is Direction.FORWARD else Direction.FORWARD


class Transform:
    """Base class of transform families. Subclasses return ``type(self)(...)`` so subclasses survive."""

    name: ClassVar[str] = ""
    #: True when ``self.matrix`` gives the ``(B, 3, 3)`` source -> destination matrix.
    has_matrix: ClassVar[bool] = False
    #: Length of the STN parameter vector, or None when the family has no parameter vector.
    num_params: ClassVar[int | None] = None
    #: Attributes holding tensors whose first dimension is the batch (``T[i]`` indexes them).
    batch_fields: ClassVar[tuple[str, ...]] = ()

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

    @property
    def matrix(self) -> torch.Tensor:
        """``(B, 3, 3)`` source -> destination matrix, for families with ``has_matrix`` (they override this)."""
        raise WarpkitError(f"{type(self).__name__} has no matrix form (has_matrix is False)")

    # --- what every family gets --------------------------------------------------------------
    @classmethod
    def can_estimate(cls) -> bool:
        # getattr: a plugin's estimate may be a staticmethod (a plain function here), which has no __func__
        return getattr(cls.estimate, "__func__", cls.estimate) is not getattr(Transform.estimate, "__func__", None)

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
        out = _checked_points(self, self.map_points(batched.to(torch.promote_types(tensor.dtype, self.dtype))), batched)
        return out[0] if unbatched and out.shape[0] == 1 else out

    def grid(self, size) -> torch.Tensor:
        """``(B, H, W, 2)`` source points read by each destination pixel of an image of ``size = (H, W)``."""
        height, width = check_size(size)
        check_output_size(self.batch_size, 2, (height, width), "size")
        centres = pixel_grid((height, width), self.dtype, self.device).reshape(1, height * width, 2)
        inverse = self.inverse()
        source = _checked_points(inverse, inverse.map_points(centres), centres)
        return source.reshape(source.shape[0], height, width, 2).expand(self.batch_size, -1, -1, -1)

    def then(self, other: Transform) -> Transform:
        """Apply ``self``, then ``other``. Matrix families multiply; anything else composes grids."""
        if not isinstance(other, Transform):
            raise WarpkitError(f"other: expected a warpkit Transform, got {type(other).__name__}")
        broadcast_batch(self.batch_size, other.batch_size, "composed transforms")
        check_same_device(("transform", self._like()), ("other", other._like()))
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

    # --- moving, detaching and indexing: every family gets them --------------------------------
    def to(self: _T, *args: Any, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> _T:
        """A copy on ``device`` and/or with floating ``dtype`` (``T.to("cuda")``, ``T.to(torch.float64)`` too).

        Every tensor attribute moves; floating ones change dtype. Families that keep an internal precision
        (``ThinPlateSpline`` computes in float64) override it.
        """
        device, dtype = parse_to_arguments(args, device, dtype)
        return self._map_tensors(
            lambda _, t: t.to(device=device, dtype=dtype if dtype is not None and t.is_floating_point() else None)
        )

    def detach(self: _T) -> _T:
        """A copy whose tensors are detached from the autograd graph (same values, device and dtype)."""
        return self._map_tensors(lambda _, t: t.detach())

    def __len__(self) -> int:
        return self.batch_size

    def __bool__(self) -> bool:  # an empty batch is still a transform: `if transform:` must not test its length
        return True

    def __getitem__(self: _T, index: int | slice | torch.Tensor | list[int]) -> _T:
        """Batch members as a transform of the same family: ``T[i]`` (a batch of 1), ``T[a:b]``, ``T[[0, 2]]``,
        ``T[mask]``. Needs ``batch_fields`` (or an override)."""
        fields = type(self).batch_fields
        if not fields:
            raise WarpkitError(
                f"index: {type(self).__name__} cannot be indexed: it declares no batch_fields (the attributes "
                "whose first dimension is the batch)"
            )
        selector = _batch_selector(index, self.batch_size)
        return self._map_tensors(lambda name, t: t[selector] if name in fields else t)

    def __iter__(self: _T) -> Iterator[_T]:
        for i in range(self.batch_size):
            yield self[i]

    def _map_tensors(self: _T, function: Callable[[str, torch.Tensor], torch.Tensor]) -> _T:
        """A shallow copy with ``function(name, tensor)`` applied to each tensor attribute (and, recursively,
        to the transforms it holds)."""
        new = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(new, name, function(name, value))
            elif isinstance(value, Transform):
                setattr(new, name, value._map_tensors(function))
            elif isinstance(value, tuple) and value and all(isinstance(v, Transform) for v in value):
                setattr(new, name, tuple(v._map_tensors(function) for v in value))
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.batch_size}, dtype={self.dtype}, device={self.device})"


def parse_to_arguments(
    args: tuple[Any, ...], device: torch.device | str | None, dtype: torch.dtype | None
) -> tuple[torch.device | None, torch.dtype | None]:
    """``Transform.to``'s arguments as ``(device, dtype)``: positional ones may be either, as in ``Tensor.to``."""
    for value in args:
        if isinstance(value, torch.dtype):
            dtype = value
        else:
            device = value
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise DTypeError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
    try:
        return (None if device is None else torch.device(device)), dtype
    except (TypeError, RuntimeError) as exc:
        raise WarpkitError(f"device: expected a torch.device or its name, got {device!r}") from exc


def _batch_selector(index: object, batch_size: int) -> slice | torch.Tensor:
    """A selector that keeps the batch dimension: an int becomes a slice of one."""
    if isinstance(index, bool):
        raise ShapeError(f"index: expected an int, slice, list of ints or tensor, got {index!r}")
    if isinstance(index, int):
        if not -batch_size <= index < batch_size:
            raise IndexError(f"index: expected -{batch_size} <= index < {batch_size}, got {index}")
        index %= batch_size
        return slice(index, index + 1)
    if isinstance(index, slice):
        return index
    if isinstance(index, (list, tuple, torch.Tensor)):
        selector = index if isinstance(index, torch.Tensor) else torch.as_tensor(index)
        if selector.dtype == torch.bool:
            if tuple(selector.shape) != (batch_size,):
                raise ShapeError(
                    f"index: expected a boolean mask of shape ({batch_size},), got {tuple(selector.shape)}"
                )
            return selector.nonzero().flatten()
        if selector.ndim != 1 or selector.is_floating_point() or selector.is_complex():
            raise ShapeError(f"index: expected a 1-D sequence of ints, got {tuple(selector.shape)} {selector.dtype}")
        if selector.numel() and not bool(((selector >= -batch_size) & (selector < batch_size)).all()):
            raise IndexError(f"index: expected entries in [-{batch_size}, {batch_size}), got {selector.tolist()}")
        return selector % max(batch_size, 1)
    raise ShapeError(f"index: expected an int, slice, list of ints or tensor, got {type(index).__name__}")


def _checked_points(transform: Transform, out: object, points: torch.Tensor) -> torch.Tensor:
    """``out`` of ``transform.map_points(points)`` if it is ``(B', N, 2)``; else a ShapeError naming the family
    (a plugin's bug must not surface as a bare reshape error far from its cause)."""
    n = points.shape[1]
    if not (
        isinstance(out, torch.Tensor)
        and out.ndim == 3
        and out.shape[1:] == (n, 2)
        and out.shape[0] in (1, points.shape[0], transform.batch_size)
    ):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeError(
            f"{type(transform).__name__}.map_points: expected points of shape (B, {n}, 2) from family "
            f"{transform.name or type(transform).__name__!r}, got {got}"
        )
    return out


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

    def to(self, *args: Any, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Composed:
        """Each part moved with its own ``to`` (a part may keep an internal precision)."""
        device, dtype = parse_to_arguments(args, device, dtype)
        return Composed([t.to(device=device, dtype=dtype) for t in self.parts])

    def __getitem__(self, index: int | slice | torch.Tensor | list[int]) -> Composed:
        selector = _batch_selector(index, self.batch_size)
        broadcast = self.batch_size != 1
        return Composed([t if broadcast and t.batch_size == 1 else t[selector] for t in self.parts])

    def __repr__(self) -> str:
        return "Composed([" + ", ".join(repr(t) for t in self.parts) + "])"
