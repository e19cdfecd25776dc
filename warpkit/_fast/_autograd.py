"""Autograd glue: torch tensors in, numba kernels on numpy views, torch tensors out."""

from __future__ import annotations

import numba
import numpy as np
import torch

from .._coords import apply_matrix, pixel_grid
from .._modes import Interpolation, Padding
from .._sampler import reference_sample
from . import _kernels

__all__ = ["fast_sample"]


def fast_sample(
    image: torch.Tensor, coords: torch.Tensor, use_matrix: bool, size: tuple[int, int], mode: str, pad: str,
    fill: torch.Tensor,
) -> torch.Tensor:
    """Run the kernels with autograd.

    ``image`` ``(Bi, C, H, W)`` float32/float64 (NCHW or channels-last); ``coords`` a ``(Bg, H_out, W_out, 2)``
    grid or, with ``use_matrix``, ``(Bm, 3, 3)`` destination -> source matrices, same dtype; ``fill`` ``(C,)``
    (no gradient). Returns ``(B, C, H_out, W_out)``, channels-last when ``image`` is.
    """
    return _forward_op(image, coords, use_matrix, size[0], size[1], _kernels.MODES[mode], _kernels.PADDINGS[pad],
                       fill)


# Custom ops (torch.library): autograd, torch.compile (through the fake implementations) and gradcheck
# all see one opaque, registered operation instead of Python calls into numba.
@torch.library.custom_op("warpkit::fast_sample", mutates_args=())
def _forward_op(image: torch.Tensor, coords: torch.Tensor, use_matrix: bool, out_h: int, out_w: int, mode: int,
                pad: int, fill: torch.Tensor) -> torch.Tensor:
    # detached: numpy views of tensors that require grad warn (autograd is handled by register_autograd)
    image, coords, fill = image.detach(), coords.detach().contiguous(), fill.detach().contiguous()
    batch, channels = max(image.shape[0], coords.shape[0]), image.shape[1]
    out = _empty_output(image, batch, channels, out_h, out_w)
    img, istr = _flat(image)
    flat_out, ostr = _flat(out)
    grid, mat = _coord_arrays(coords, use_matrix)
    _kernels.forward(img, istr, image.shape[0], channels, image.shape[2], image.shape[3], grid, mat, use_matrix,
                     batch, out_h, out_w, mode, pad, fill.numpy(), flat_out, ostr, _chunk(batch * out_h))
    return out


@_forward_op.register_fake
def _(image, coords, use_matrix, out_h, out_w, mode, pad, fill):
    return _empty_output(image, max(image.shape[0], coords.shape[0]), image.shape[1], out_h, out_w)


@torch.library.custom_op("warpkit::fast_sample_backward", mutates_args=())
def _backward_op(grad_out: torch.Tensor, image: torch.Tensor, coords: torch.Tensor, fill: torch.Tensor,
                 use_matrix: bool, out_h: int, out_w: int, mode: int, pad: int, want_image: bool,
                 want_coords: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients for ``image`` and ``coords`` (an empty tensor for one not wanted)."""
    grad_out, image = grad_out.detach(), image.detach()
    coords, fill = coords.detach().contiguous(), fill.detach().contiguous()
    in_batch, channels, height, width = image.shape
    batch = grad_out.shape[0]
    # tasks own (image, channel block) planes: enough blocks to give every thread work
    blocks = min(channels, max(1, -(-2 * numba.get_num_threads() // in_batch)))
    gout, gstr = _flat(grad_out)
    img, istr = _flat(image)
    grid, mat = _coord_arrays(coords, use_matrix)
    grad_image = image.new_zeros(in_batch, channels, height, width) if want_image else image.new_zeros(1)
    slots = blocks if want_coords else 1
    grad_grid = image.new_empty((slots, batch, out_h, out_w, 2) if want_coords and not use_matrix else
                                (1, 1, 1, 1, 2))
    grad_mat = torch.empty((slots, batch, 9) if want_coords and use_matrix else (1, 1, 9), dtype=torch.float64)
    _kernels.backward(gout, gstr, img, istr, grad_image.reshape(-1).numpy(), in_batch, channels, height, width,
                      grid, mat, use_matrix, batch, out_h, out_w, mode, pad, fill.numpy(), blocks,
                      want_image, want_coords, grad_grid.numpy(), grad_mat.numpy())
    if not want_coords:
        return (grad_image if want_image else image.new_empty(0)), coords.new_empty(0)
    parts = grad_mat.reshape(slots, batch, 3, 3) if use_matrix else grad_grid
    grad_coords = parts[0]
    for k in range(1, slots):  # a fixed order: bitwise reproducible
        grad_coords = grad_coords + parts[k]
    grad_coords = grad_coords.to(coords.dtype)
    if coords.shape[0] == 1 and batch > 1:
        grad_coords = grad_coords.sum(0, keepdim=True)
    return (grad_image if want_image else image.new_empty(0)), grad_coords


@_backward_op.register_fake
def _(grad_out, image, coords, fill, use_matrix, out_h, out_w, mode, pad, want_image, want_coords):
    return (image.new_empty(image.shape) if want_image else image.new_empty(0),
            coords.new_empty(coords.shape) if want_coords else coords.new_empty(0))


def _setup_context(ctx, inputs, output):
    image, coords, use_matrix, out_h, out_w, mode, pad, fill = inputs
    ctx.save_for_backward(image, coords, fill)
    ctx.options = (use_matrix, (out_h, out_w), mode, pad)


def _backward(ctx, grad_out):
    image, coords, fill = ctx.saved_tensors
    want_image, want_coords = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if torch.is_grad_enabled():
        # create_graph=True: the gradients must be differentiable again, so take them through the
        # reference sampler (recomputed here); the kernels serve plain first-order backward
        return _reference_backward(ctx, image, coords, fill, grad_out) + (None,) * 6
    use_matrix, size, mode, pad = ctx.options
    grad_image, grad_coords = _backward_op(grad_out, image, coords, fill, use_matrix, size[0], size[1], mode, pad,
                                           want_image, want_coords)
    return (grad_image if want_image else None, grad_coords if want_coords else None) + (None,) * 6


_forward_op.register_autograd(_backward, setup_context=_setup_context)


def _empty_output(image: torch.Tensor, batch: int, channels: int, out_h: int, out_w: int) -> torch.Tensor:
    """``(B, C, H_out, W_out)`` in ``image``'s dtype, channels-last when ``image`` is."""
    layout = torch.channels_last if _is_channels_last(image) else torch.contiguous_format
    return torch.empty((batch, channels, out_h, out_w), dtype=image.dtype, device=image.device, memory_format=layout)


def _reference_backward(ctx, image, coords, fill, grad_out):
    """First derivatives that autograd can differentiate again, from the pure-torch reference."""
    use_matrix, size, mode, pad = ctx.options
    wanted = [t for t, need in zip((image, coords), ctx.needs_input_grad[:2]) if need]
    with torch.enable_grad():
        grid = _matrix_grid(coords, size) if use_matrix else coords
        modes = (_INTERPOLATIONS[mode], _PADDINGS[pad])
        out = reference_sample(image, grid, *modes, fill.detach().reshape(1, -1, 1, 1))
        grads = iter(torch.autograd.grad(out, wanted, grad_out, create_graph=True, allow_unused=True))
    return tuple(next(grads) if need else None for need in ctx.needs_input_grad[:2])


def _matrix_grid(matrix: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, H, W, 2)`` source points of ``(B, 3, 3)`` destination -> source matrices."""
    centres = pixel_grid(size, matrix.dtype, matrix.device).reshape(1, -1, 2)
    return apply_matrix(matrix, centres).reshape(matrix.shape[0], size[0], size[1], 2)


def _chunk(rows: int) -> int:
    """Output rows per parallel task: a few tasks per thread balance the load."""
    return max(1, rows // (4 * numba.get_num_threads()))


def _is_channels_last(t: torch.Tensor) -> bool:
    return not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def _flat(t: torch.Tensor) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A flat numpy view of a 4-D tensor and its element strides (copying only odd layouts)."""
    if _is_channels_last(t):
        return t.permute(0, 2, 3, 1).reshape(-1).numpy(), tuple(t.stride())
    t = t.contiguous()
    return t.reshape(-1).numpy(), tuple(t.stride())


def _coord_arrays(coords: torch.Tensor, use_matrix: bool) -> tuple[np.ndarray, np.ndarray]:
    """The grid and matrix arguments of a kernel; the unused one is a dummy of the same dtype."""
    dummy_grid = np.zeros((1, 1, 1, 2), _NUMPY[coords.dtype])
    dummy_mat = np.zeros((1, 3, 3), _NUMPY[coords.dtype])
    array = coords.numpy()
    return (dummy_grid, array) if use_matrix else (array, dummy_mat)


_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}
_INTERPOLATIONS = {code: Interpolation(name) for name, code in _kernels.MODES.items()}
_PADDINGS = {code: Padding(name) for name, code in _kernels.PADDINGS.items()}
