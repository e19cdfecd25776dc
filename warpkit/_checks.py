"""Input checks shared by every public function. Helpers raise with the argument's name."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import torch

from ._errors import DeviceError, DTypeError, ShapeError, SizeLimitError

__all__ = [
    "as_float_tensor",
    "check_floating",
    "check_size",
    "check_sizes",
    "check_batch_size",
    "check_dtype",
    "check_same_device",
    "batch_points",
    "broadcast_batch",
    "check_output_size",
    "get_max_output_elements",
    "set_max_output_elements",
]


def check_floating(tensor: object, argument: str) -> torch.Tensor:
    """Return ``tensor`` if it is a real floating torch tensor, else raise."""
    if not isinstance(tensor, torch.Tensor):
        raise DTypeError(f"{argument}: expected a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise DTypeError(f"{argument}: expected a floating dtype, got {tensor.dtype}")
    return tensor


def as_float_tensor(value: object, argument: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """Turn ``value`` (tensor, array or nested sequence) into a floating tensor.

    Integer input becomes ``like``'s dtype (or the default dtype); floating tensors keep their dtype.
    """
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        try:
            tensor = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DTypeError(f"{argument}: expected a tensor or array of numbers, got {type(value).__name__}") from exc
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise DTypeError(f"{argument}: expected a real floating dtype, got {tensor.dtype}")
    if not tensor.is_floating_point():
        tensor = tensor.to(like.dtype if like is not None else torch.get_default_dtype())
    if like is not None and tensor.device != like.device and not isinstance(value, torch.Tensor):
        tensor = tensor.to(like.device)
    return tensor


def check_same_device(*named: tuple[str, torch.Tensor]) -> None:
    """Raise unless every tensor lives on the same device as the first one."""
    (first_name, first), *rest = named
    for name, tensor in rest:
        if tensor.device != first.device:
            raise DeviceError(f"{name}: expected device {first.device} (that of {first_name}), got {tensor.device}")


def check_size(size: object, argument: str = "size") -> tuple[int, int]:
    """Return ``size`` as ``(H, W)`` of non-negative ints."""
    if isinstance(size, torch.Size) or (isinstance(size, Sequence) and not isinstance(size, (str, bytes, bytearray))):
        values = tuple(size)
        if len(values) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            return int(values[0]), int(values[1])
    raise ShapeError(f"{argument}: expected (H, W) as two non-negative ints, got {size!r}")


def check_sizes(src_size: object, dst_size: object = None) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(src_size, dst_size)`` as ``(H, W)`` pairs; ``dst_size`` defaults to ``src_size``."""
    src = check_size(src_size, "src_size")
    return src, (src if dst_size is None else check_size(dst_size, "dst_size"))


def check_batch_size(batch_size: object, per_member: int = 1) -> int:
    """Return ``batch_size`` if it is an int >= 0 whose ``batch_size * per_member`` elements fit the size limit."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ShapeError(f"batch_size: expected an int >= 0, got {batch_size!r}")
    if batch_size * per_member > MAX_OUTPUT_ELEMENTS:
        raise SizeLimitError(
            f"batch_size: expected at most {MAX_OUTPUT_ELEMENTS // max(per_member, 1):,} (the size limit), got "
            f"{batch_size:,} (warpkit.set_max_output_elements raises the limit)"
        )
    return batch_size


def check_dtype(dtype: object, argument: str = "dtype") -> torch.dtype:
    """Return ``dtype`` if it is a floating ``torch.dtype`` (None: torch's default dtype)."""
    if dtype is None:
        return torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise DTypeError(f"{argument}: expected a floating torch.dtype (torch.float32, ...), got {dtype!r}")
    return dtype


def batch_points(points: torch.Tensor, argument: str = "points") -> tuple[torch.Tensor, bool]:
    """Return points as ``(B, N, 2)`` and whether the input was unbatched ``(N, 2)``."""
    if points.ndim == 2 and points.shape[-1] == 2:
        return points.unsqueeze(0), True
    if points.ndim == 3 and points.shape[-1] == 2:
        return points, False
    raise ShapeError(f"{argument}: expected shape (N, 2) or (B, N, 2), got {tuple(points.shape)}")


def broadcast_batch(a: int, b: int, what: str) -> int:
    """The common batch size of two batches, where size 1 broadcasts."""
    if a == b or b == 1:
        return a
    if a == 1:
        return b
    raise ShapeError(f"{what}: expected batch sizes that match (or are 1), got {a} and {b}")


# Outputs larger than this many elements are refused before anything is allocated. Configurable with
# set_max_output_elements or, at import, the environment variable WARPKIT_MAX_OUTPUT_ELEMENTS.
DEFAULT_MAX_OUTPUT_ELEMENTS = 2**31
_ENV_LIMIT = "WARPKIT_MAX_OUTPUT_ELEMENTS"


def _parse_limit(value: object, argument: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip().replace("_", ""))
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SizeLimitError(f"{argument}: expected a non-negative int (number of elements), got {value!r}")
    return int(value)


def _limit_from_environment() -> int:
    raw = os.environ.get(_ENV_LIMIT)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_OUTPUT_ELEMENTS
    try:
        return _parse_limit(raw, _ENV_LIMIT)
    except SizeLimitError as exc:
        # A bad environment variable must not break `import warpkit`: say so and keep the default.
        warnings.warn(f"{exc}; using the default {DEFAULT_MAX_OUTPUT_ELEMENTS:,}", RuntimeWarning, stacklevel=2)
        return DEFAULT_MAX_OUTPUT_ELEMENTS


MAX_OUTPUT_ELEMENTS = _limit_from_environment()


def get_max_output_elements() -> int:
    """The largest output (``B * C * H * W`` elements) that ``warp``, ``sample`` and ``grid`` produce."""
    return MAX_OUTPUT_ELEMENTS


def set_max_output_elements(limit: int) -> int:
    """Set the output size limit (elements, ``B * C * H * W``) and return the previous one.

    Outputs above the limit raise :class:`SizeLimitError` before anything is allocated. The default is
    ``2**31``, or ``WARPKIT_MAX_OUTPUT_ELEMENTS`` when that is set at import.
    """
    global MAX_OUTPUT_ELEMENTS
    new = _parse_limit(limit, "limit")
    old, MAX_OUTPUT_ELEMENTS = MAX_OUTPUT_ELEMENTS, new
    return old


def check_output_size(batch: int, channels: int, size: tuple[int, int], argument: str = "size") -> None:
    """Refuse an output of ``batch x channels x H x W`` elements above :data:`MAX_OUTPUT_ELEMENTS`."""
    elements = batch * channels * size[0] * size[1]
    if elements > MAX_OUTPUT_ELEMENTS:
        raise SizeLimitError(
            f"{argument}: expected an output of at most {MAX_OUTPUT_ELEMENTS:,} elements, got "
            f"{batch}x{channels}x{size[0]}x{size[1]} = {elements:,} (warpkit.set_max_output_elements raises the limit)"
        )
