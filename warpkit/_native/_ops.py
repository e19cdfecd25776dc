"""torch tensors in, the C ABI, torch tensors out: autograd in eager mode and custom ops under torch.compile."""

from __future__ import annotations

import ctypes

import torch

from . import _abi

__all__ = ["sample"]

_MODES = {"nearest": 0, "bilinear": 1, "bicubic": 2}
_PADS = {"zeros": 0, "constant": 1, "replicate": 2, "reflect": 3, "reflect101": 4, "wrap": 5}
_DTYPES = {torch.float32: 0, torch.float64: 1}
# NCHW forward loop order: 0 chosen by shape; 1 channel planes outer, 2 pixels outer (tests force each)
_ORDER = 0


def sample(image, coords, mode, pad, fill, *, use_matrix: bool = False, size=None) -> torch.Tensor:
    """Sample ``image`` at source points given by a grid or computed in the kernel from matrices.

    Args:
        image: ``(Bi, C, H, W)`` CPU floating tensor, ``H, W > 0``, any strides (NCHW and channels-last are read
            in place). float16/bfloat16 are computed in float32.
        coords: ``(Bg, H_out, W_out, 2)`` source points ``(x, y)`` in pixels, or with ``use_matrix``
            ``(Bm, 3, 3)`` destination -> source matrices (then ``size = (H_out, W_out)`` is required).
        mode: :class:`warpkit._modes.Interpolation`; pad: :class:`warpkit._modes.Padding`.
        fill: ``(Bf, C, 1, 1)`` with ``Bf`` 1 or the batch; read where a tap is outside (no gradient).

    Returns:
        ``(B, C, H_out, W_out)`` in ``image``'s dtype, channels-last when ``image`` is; ``B`` the larger batch.
        Differentiable with respect to ``image`` and ``coords``.
    """
    out_dtype = image.dtype
    work = torch.promote_types(out_dtype, torch.float32)
    if size is None:
        size = (coords.shape[1], coords.shape[2])
    image, coords = image.to(work), coords.to(work)
    if _layout(image) is torch.contiguous_format and not image.is_contiguous():
        image = image.contiguous()  # odd strides (a view, an expanded batch): the kernels read NCHW or NHWC
    fill = fill.detach().to(work).reshape(fill.shape[0], -1).contiguous()
    args = (bool(use_matrix), int(size[0]), int(size[1]), _MODES[mode.value], _PADS[pad.value])
    if torch.compiler.is_compiling():
        out = _sample_op(image, coords, fill, *args)
    elif torch.is_grad_enabled() and (image.requires_grad or coords.requires_grad):
        out = _Sample.apply(image, coords, fill, args)
    else:
        out = _forward(image, coords, fill, *args)
    return out.to(out_dtype)


def _forward(image, coords, fill, use_matrix, out_h, out_w, mode, pad) -> torch.Tensor:
    image, coords = image.detach(), coords.detach().contiguous()
    out = _empty_output(image, max(image.shape[0], coords.shape[0]), out_h, out_w)
    call = _call(image, coords, fill, use_matrix, out, mode, pad)
    _check(_library().wk_forward(ctypes.byref(call)))
    return out


def _backward(grad_out, image, coords, fill, use_matrix, out_h, out_w, mode, pad, want_image, want_coords):
    """``(d/d image, d/d coords)``; an empty tensor for one not wanted."""
    image, coords = image.detach(), coords.detach().contiguous()
    grad_out = grad_out.detach().to(image.dtype)
    grad_image = torch.empty_like(image, memory_format=_layout(image)) if want_image else image.new_empty(0)
    grad_coords = torch.empty_like(coords) if want_coords else coords.new_empty(0)
    call = _call(image, coords, fill, use_matrix, grad_out, mode, pad)
    call.want_image, call.want_coords = int(want_image), int(want_coords)
    if want_image:
        call.grad_image = grad_image.data_ptr()
        call.grad_image_stride[:] = _strides(grad_image)
    call.grad_coords = grad_coords.data_ptr() if want_coords else None
    _check(_library().wk_backward(ctypes.byref(call)))
    return grad_image, grad_coords


def _call(image, coords, fill, use_matrix, out, mode, pad) -> _abi.Call:
    batch, channels, out_h, out_w = out.shape
    call = _abi.Call(
        dtype=_DTYPES[image.dtype],
        mode=mode,
        pad=pad,
        use_matrix=int(use_matrix),
        threads=torch.get_num_threads(),
        order=_ORDER,
        in_batch=image.shape[0],
        channels=channels,
        height=image.shape[2],
        width=image.shape[3],
        image=image.data_ptr(),
        coords=coords.data_ptr(),
        coord_batch=coords.shape[0],
        fill=fill.data_ptr(),
        fill_batch=fill.shape[0],
        batch=batch,
        out_h=out_h,
        out_w=out_w,
        out=out.data_ptr(),
    )
    call.image_stride[:] = _strides(image)
    call.out_stride[:] = _strides(out)
    return call


def _library():
    lib = _abi.library()
    if lib is None:  # the dispatch asks available() first
        raise RuntimeError(f"warpkit's compiled CPU core is not available: {_abi.load_error()}")
    return lib


def _strides(t: torch.Tensor) -> tuple[int, ...]:
    """Element strides, with the canonical stride of its layout for every dimension of size 1: torch ignores
    those (a 1x1 image permuted from HWC counts as NCHW-contiguous with a column stride of 3), the kernels do not."""
    batch, channels, height, width = t.shape
    if _layout(t) is torch.channels_last:
        canonical = (height * width * channels, 1, width * channels, channels)
    else:
        canonical = (channels * height * width, height * width, width, 1)
    return tuple(c if n == 1 else s for n, s, c in zip(t.shape, t.stride(), canonical))


def _check(code: int) -> None:
    if code != 0:  # the dispatch validates first, so this is a bug in warpkit, not a user error
        raise RuntimeError(f"warpkit's compiled CPU core refused a call (code {code})")


def _layout(image: torch.Tensor) -> torch.memory_format:
    channels_last = not image.is_contiguous() and image.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


def _empty_output(image: torch.Tensor, batch: int, out_h: int, out_w: int) -> torch.Tensor:
    return torch.empty(
        (batch, image.shape[1], out_h, out_w), dtype=image.dtype, device=image.device, memory_format=_layout(image)
    )


class _Sample(torch.autograd.Function):
    """Eager autograd: a plain Function, so no custom-op machinery (and no torch._dynamo import) runs."""

    @staticmethod
    def forward(ctx, image, coords, fill, args):
        ctx.save_for_backward(image, coords, fill)
        ctx.args = args
        return _forward(image, coords, fill, *args)

    @staticmethod
    def backward(ctx, grad_out):
        image, coords, fill = ctx.saved_tensors
        want = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():  # create_graph=True: gradients that are differentiable again
            return _reference_backward(image, coords, fill, ctx.args, want, grad_out) + (None, None)
        grad_image, grad_coords = _backward(grad_out, image, coords, fill, *ctx.args, *want)
        return (grad_image if want[0] else None, grad_coords if want[1] else None, None, None)


def _reference_backward(image, coords, fill, args, want, grad_out):
    """First derivatives through the pure-torch reference sampler (recomputed), for double backward."""
    from .._modes import Interpolation, Padding
    from .._reference import reference_sample
    from .._torch_backend import matrix_grid

    use_matrix, out_h, out_w, mode, pad = args
    modes = (Interpolation(_name(_MODES, mode)), Padding(_name(_PADS, pad)))
    wanted = [t for t, need in zip((image, coords), want) if need]
    with torch.enable_grad():
        grid = matrix_grid(coords, (out_h, out_w), affine=False) if use_matrix else coords
        fill4 = fill.detach()[:, :, None, None]
        out = reference_sample(image, grid, *modes, fill4)
        grads = iter(torch.autograd.grad(out, wanted, grad_out, create_graph=True, allow_unused=True))
    return tuple(next(grads) if need else None for need in want)


def _name(table: dict[str, int], code: int) -> str:
    return next(name for name, value in table.items() if value == code)


# ---- torch.compile: the same kernels as registered custom ops (defining them is cheap; calling one eagerly
# would import torch._dynamo, so eager calls never do) ----------------------------------------------------------
# Explicit schemas: torch 2.4's custom_op cannot read the string annotations of `from __future__ import annotations`.
@torch.library.custom_op(
    "warpkit::native_sample",
    mutates_args=(),
    schema="(Tensor image, Tensor coords, Tensor fill, bool use_matrix, SymInt out_h, SymInt out_w, SymInt mode, "
    "SymInt pad) -> Tensor",
)
def _sample_op(
    image: torch.Tensor,
    coords: torch.Tensor,
    fill: torch.Tensor,
    use_matrix: bool,
    out_h: int,
    out_w: int,
    mode: int,
    pad: int,
) -> torch.Tensor:
    return _forward(image, coords, fill, use_matrix, out_h, out_w, mode, pad)


@_sample_op.register_fake
def _(image, coords, fill, use_matrix, out_h, out_w, mode, pad):
    return _empty_output(image, max(image.shape[0], coords.shape[0]), out_h, out_w)


@torch.library.custom_op(
    "warpkit::native_sample_backward",
    mutates_args=(),
    schema="(Tensor grad_out, Tensor image, Tensor coords, Tensor fill, bool use_matrix, SymInt out_h, SymInt out_w, "
    "SymInt mode, SymInt pad, bool want_image, bool want_coords) -> (Tensor, Tensor)",
)
def _backward_op(
    grad_out: torch.Tensor,
    image: torch.Tensor,
    coords: torch.Tensor,
    fill: torch.Tensor,
    use_matrix: bool,
    out_h: int,
    out_w: int,
    mode: int,
    pad: int,
    want_image: bool,
    want_coords: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    return _backward(grad_out, image, coords, fill, use_matrix, out_h, out_w, mode, pad, want_image, want_coords)


@_backward_op.register_fake
def _(grad_out, image, coords, fill, use_matrix, out_h, out_w, mode, pad, want_image, want_coords):
    return (
        torch.empty_like(image, memory_format=_layout(image)) if want_image else image.new_empty(0),
        torch.empty_like(coords) if want_coords else coords.new_empty(0),
    )


def _setup_context(ctx, inputs, output):
    image, coords, fill, *args = inputs
    ctx.save_for_backward(image, coords, fill)
    ctx.args = tuple(args)


def _op_backward(ctx, grad_out):
    image, coords, fill = ctx.saved_tensors
    want = ctx.needs_input_grad[:2]
    if torch.is_grad_enabled():
        return _reference_backward(image, coords, fill, ctx.args, want, grad_out) + (None,) * 6
    grad_image, grad_coords = _backward_op(grad_out, image, coords, fill, *ctx.args, *want)
    return (grad_image if want[0] else None, grad_coords if want[1] else None) + (None,) * 6


_sample_op.register_autograd(_op_backward, setup_context=_setup_context)
