"""Fast CPU sampler backend: fused numba kernels behind :func:`warpkit.sample` and :func:`warpkit.warp`.

The backend is chosen automatically when it applies: CPU tensors, a floating image, numba installed
(``pip install warpkit[fast]``), no tracing, ONNX export or functorch transform under way, and no
gradient wanted for ``fill``. Under ``torch.compile`` the kernels run as custom ops (see ``_autograd``).
Everything else goes to the pure-torch reference sampler, which stays the definition of the results.
``WARPKIT_BACKEND=reference`` forces the reference everywhere.

numba is imported on the first fast call, not at ``import warpkit``.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from .. import _sampler
from .._modes import Interpolation, Padding, parse_mode
from .._sampler import prepare_fill

__all__ = ["available", "enabled", "sample_backend", "warp_matrix", "fast_sample"]

_HAS_NUMBA = importlib.util.find_spec("numba") is not None


def available() -> bool:
    """Whether the fast backend can run at all (numba importable)."""
    return _HAS_NUMBA


def enabled() -> bool:
    """Whether calls may use the fast backend now (available, and not forced off by ``WARPKIT_BACKEND``)."""
    return _HAS_NUMBA and os.environ.get("WARPKIT_BACKEND", "auto").strip().lower() != "reference"


def fast_sample(
    image: torch.Tensor, coords: torch.Tensor, mode: Interpolation, pad: Padding, fill: torch.Tensor,
    *, use_matrix: bool = False, size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Run the fast kernels unconditionally (tests call this to compare with the reference).

    Args:
        image: ``(B, C, H, W)`` CPU floating tensor with ``H, W > 0``.
        coords: ``(B, H_out, W_out, 2)`` source points, or with ``use_matrix`` ``(B, 3, 3)``
            destination -> source matrices (then ``size = (H_out, W_out)`` is required). Batch 1 broadcasts.
        mode, pad: parsed modes; fill: ``(1, C, 1, 1)`` as from :func:`warpkit._sampler.prepare_fill`.

    Returns:
        ``(B, C, H_out, W_out)`` in ``image``'s dtype, channels-last when ``image`` is.
    """
    from ._autograd import fast_sample as run

    out_dtype = image.dtype
    work = torch.promote_types(out_dtype, torch.float32)
    if size is None:
        size = (coords.shape[1], coords.shape[2])
    out = run(image.to(work), coords.to(work), use_matrix, tuple(size), mode.value, pad.value,
              fill.detach().to(work).reshape(-1))
    return out.to(out_dtype)


def _context_allows() -> bool:
    """Tracing and ONNX export need the pure-torch path. torch.compile sees the kernels as custom ops."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    return enabled() and not torch.onnx.is_in_onnx_export()


def _applies(image: torch.Tensor, coords: torch.Tensor, fill: torch.Tensor, out_elements: int) -> bool:
    if image.device.type != "cpu" or coords.device.type != "cpu":
        return False
    if image.shape[0] == 0 or image.shape[-1] == 0 or image.shape[-2] == 0 or out_elements == 0 or fill.requires_grad:
        return False
    if torch.compiler.is_compiling():
        return True  # dynamo's tensors: the custom op's fake implementation serves them
    # functorch transforms (vmap, grad) wrap tensors; the custom ops have no batching rule for them
    is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return not (is_wrapped(image) or is_wrapped(coords))


def sample_backend(image, grid, mode, pad, fill):
    """The hook in :data:`warpkit._sampler._BACKENDS`: ``None`` when the fast backend does not apply."""
    if not _context_allows():
        return None
    batch = max(image.shape[0], grid.shape[0])
    if not _applies(image, grid, fill, batch * image.shape[1] * grid.shape[1] * grid.shape[2]):
        return None
    return fast_sample(image, grid, mode, pad, fill)


def warp_matrix(image, transform, size, interpolation, padding, fill):
    """Warp ``(B, C, H, W)`` ``image`` by a matrix family without materialising a grid, or return ``None``.

    The source coordinates are computed inside the kernel from the ``(B, 3, 3)`` inverse matrix;
    gradients flow to ``image`` and through the inverse to the transform's parameters. The caller
    (:func:`warpkit.warp`) has checked that the batch sizes broadcast.
    """
    if not _context_allows() or transform.device.type != "cpu":
        return None
    mode = parse_mode(Interpolation, interpolation, "interpolation")
    pad = parse_mode(Padding, padding, "padding")
    fill_t = prepare_fill(fill, pad, image)
    batch = max(image.shape[0], transform.batch_size)
    inverse = transform.inverse()
    if not getattr(inverse, "has_matrix", False):
        return None
    matrix = inverse.matrix
    if not _applies(image, matrix, fill_t, batch * image.shape[1] * size[0] * size[1]):
        return None
    return fast_sample(image, matrix, mode, pad, fill_t, use_matrix=True, size=size)


_sampler._BACKENDS.append(sample_backend)
