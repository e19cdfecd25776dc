"""numba kernels of the fast CPU sampler. Imported only when the fast backend first runs.

Every kernel reads source coordinates either from a ``(Bg, H_out, W_out, 2)`` grid or, with
``use_matrix``, computes them inline from ``(Bm, 3, 3)`` destination -> source matrices, so warping by a
matrix never materialises a grid. Images and outputs are flat arrays addressed through element strides
``(batch, channel, row, column)``: one compiled kernel serves NCHW and channels-last.

Semantics equal :func:`warpkit._sampler.reference_sample`: non-finite coordinates read ``fill``,
coordinates are clamped to ``+-2**24`` before taps are formed, every tap is mapped into the image on its
own like ``cv2.borderInterpolate``, so no index can leave the image whatever the coordinates are.

Determinism: the forward and the coordinate gradient write each output element from one thread; the
image gradient is split over (image batch, channel block) so that no two threads add into the same plane.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["forward", "backward_image", "backward_coords", "MODES", "PADDINGS"]

MODES = {"nearest": 0, "bilinear": 1, "bicubic": 2}
PADDINGS = {"zeros": 0, "constant": 1, "replicate": 2, "reflect": 3, "reflect101": 4, "wrap": 5}
_NEAREST, _BILINEAR = 0, 1
_ZEROS, _CONSTANT, _REPLICATE, _REFLECT, _WRAP = 0, 1, 2, 3, 5
_LIMIT = float(2**24)
_A = -0.75
# error_model="numpy": a division by zero gives inf/nan (then fill) instead of raising.
_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}
# numba does not inline across jitted functions on its own; a call per tap made the kernels 10x slower
_HELPER = dict(_OPTIONS, inline="always")


@njit(**_HELPER)
def _border(index, n, pad):
    """``(index mapped into [0, n), whether the tap is inside)``, like ``cv2.borderInterpolate``."""
    if pad == _ZEROS or pad == _CONSTANT:
        if index < 0 or index >= n:
            return 0, False
        return index, True
    if pad == _REPLICATE:
        return min(max(index, 0), n - 1), True
    if pad == _WRAP:
        return index % n, True  # numba follows Python: the result is in [0, n)
    if pad == _REFLECT:
        m = index % (2 * n)
        return (m if m < n else 2 * n - 1 - m), True
    if n == 1:
        return 0, True
    period = 2 * n - 2
    m = index % period
    return (m if m < n else period - m), True


@njit(**_HELPER)
def _put(idx, w, dw, j, p, index, weight, dweight, n, pad, scale, dscale):
    k, inside = _border(index, n, pad)
    idx[j, p] = k
    if inside:
        w[j, p] = weight * scale
        dw[j, p] = dweight * dscale
    else:
        w[j, p] = 0.0
        dw[j, p] = 0.0


@njit(**_HELPER)
def _axis_taps(coord, half, mode, n, pad, idx, w, dw, j, scale, dscale):
    """Taps along one axis for output column ``j``: indices, weights and d(weight)/d(coord)."""
    if mode == _NEAREST:
        _put(idx, w, dw, j, 0, np.int64(np.floor(coord + half)), 1.0, 0.0, n, pad, scale, 0.0)
        return
    base = np.floor(coord)
    t = float(coord - base)  # exact: coord and base share a binade below 2**24
    start = np.int64(base)
    if mode == _BILINEAR:
        _put(idx, w, dw, j, 0, start, 1.0 - t, -1.0, n, pad, scale, dscale)
        _put(idx, w, dw, j, 1, start + 1, t, 1.0, n, pad, scale, dscale)
        return
    a = _A
    s = t + 1.0
    u = 1.0 - t
    w0 = ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a
    w1 = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    w2 = ((a + 2.0) * u - (a + 3.0)) * u * u + 1.0
    d0 = (3.0 * a * s - 10.0 * a) * s + 8.0 * a
    d1 = (3.0 * (a + 2.0) * t - 2.0 * (a + 3.0)) * t
    d2 = -(3.0 * (a + 2.0) * u - 2.0 * (a + 3.0)) * u
    _put(idx, w, dw, j, 0, start - 1, w0, d0, n, pad, scale, dscale)
    _put(idx, w, dw, j, 1, start, w1, d1, n, pad, scale, dscale)
    _put(idx, w, dw, j, 2, start + 1, w2, d2, n, pad, scale, dscale)
    _put(idx, w, dw, j, 3, start + 2, 1.0 - w0 - w1 - w2, -(d0 + d1 + d2), n, pad, scale, dscale)


@njit(**_HELPER)
def _row_taps(b, i, grid, mat, use_matrix, width, mode, pad, height, src_w, half, xs, ys, ix, wx, dwx, iy, wy, dwy):
    """Fill the tap buffers of output row ``i`` of batch ``b``; ``xs``/``ys`` get the source points."""
    for j in range(width):
        if use_matrix:
            m = b if mat.shape[0] > 1 else 0
            den = mat[m, 2, 0] * j + mat[m, 2, 1] * i + mat[m, 2, 2]
            xs[j] = (mat[m, 0, 0] * j + mat[m, 0, 1] * i + mat[m, 0, 2]) / den
            ys[j] = (mat[m, 1, 0] * j + mat[m, 1, 1] * i + mat[m, 1, 2]) / den
        else:
            g = b if grid.shape[0] > 1 else 0
            xs[j] = grid[g, i, j, 0]
            ys[j] = grid[g, i, j, 1]
        finite = math.isfinite(xs[j]) and math.isfinite(ys[j])
        scale = 1.0 if finite else 0.0
        if not finite:
            xs[j] = 0.0
            ys[j] = 0.0
        # the clamp passes gradient only inside [-LIMIT, LIMIT], as torch.clamp does
        dscale_x = scale if abs(xs[j]) <= _LIMIT else 0.0
        dscale_y = scale if abs(ys[j]) <= _LIMIT else 0.0
        xs[j] = min(max(xs[j], -_LIMIT), _LIMIT)
        ys[j] = min(max(ys[j], -_LIMIT), _LIMIT)
        _axis_taps(xs[j], half, mode, src_w, pad, ix, wx, dwx, j, scale, dscale_x)
        _axis_taps(ys[j], half, mode, height, pad, iy, wy, dwy, j, 1.0, dscale_y)


@njit(parallel=True, **_OPTIONS)
def forward(img, istr, in_batch, channels, height, width, grid, mat, use_matrix, batch, out_h, out_w, mode, pad,
            fill, half, out, ostr):
    """``out[b, c, i, j]`` for every output pixel; parallel over output rows."""
    taps = 1 if mode == _NEAREST else (2 if mode == _BILINEAR else 4)
    for r in prange(batch * out_h):
        b, i = r // out_h, r % out_h
        xs, ys = np.empty(out_w, img.dtype), np.empty(out_w, img.dtype)
        ix, iy = np.empty((out_w, 4), np.int64), np.empty((out_w, 4), np.int64)
        wx, wy, dwx, dwy = np.empty((out_w, 4)), np.empty((out_w, 4)), np.empty((out_w, 4)), np.empty((out_w, 4))
        _row_taps(b, i, grid, mat, use_matrix, out_w, mode, pad, height, width, half, xs, ys, ix, wx, dwx, iy, wy, dwy)
        base = (b if in_batch > 1 else 0) * istr[0]
        obase = b * ostr[0] + i * ostr[2]
        # loop order follows memory: channels innermost for channels-last, columns innermost for NCHW
        if istr[1] == 1:
            for j in range(out_w):
                cover = 0.0
                for ty in range(taps):
                    for tx in range(taps):
                        cover += wy[j, ty] * wx[j, tx]
                for c in range(channels):
                    acc = 0.0
                    for ty in range(taps):
                        row = base + iy[j, ty] * istr[2] + c
                        for tx in range(taps):
                            acc += wy[j, ty] * wx[j, tx] * img[row + ix[j, tx] * istr[3]]
                    out[obase + j * ostr[3] + c * ostr[1]] = acc + fill[c] * (1.0 - cover)
        else:
            for c in range(channels):
                cbase = base + c * istr[1]
                for j in range(out_w):
                    acc = 0.0
                    cover = 0.0
                    for ty in range(taps):
                        row = cbase + iy[j, ty] * istr[2]
                        for tx in range(taps):
                            weight = wy[j, ty] * wx[j, tx]
                            acc += weight * img[row + ix[j, tx] * istr[3]]
                            cover += weight
                    out[obase + j * ostr[3] + c * ostr[1]] = acc + fill[c] * (1.0 - cover)


@njit(parallel=True, **_OPTIONS)
def backward_image(gout, gstr, grad, in_batch, channels, height, width, grid, mat, use_matrix, batch, out_h, out_w,
                   mode, pad, half, blocks):
    """Add ``d out / d image`` into ``grad`` ``(in_batch, C, H*W)``.

    One task per (image batch, channel block): each task owns its planes, so the sums need no atomics and
    run in a fixed order (bitwise reproducible).
    """
    taps = 1 if mode == _NEAREST else (2 if mode == _BILINEAR else 4)
    per_block = (channels + blocks - 1) // blocks
    for task in prange(in_batch * blocks):
        bi, block = task // blocks, task % blocks
        c0, c1 = block * per_block, min(channels, (block + 1) * per_block)
        xs, ys = np.empty(out_w, grad.dtype), np.empty(out_w, grad.dtype)
        ix, iy = np.empty((out_w, 4), np.int64), np.empty((out_w, 4), np.int64)
        wx, wy, dwx, dwy = np.empty((out_w, 4)), np.empty((out_w, 4)), np.empty((out_w, 4)), np.empty((out_w, 4))
        for b in range(batch):
            if in_batch > 1 and b != bi:
                continue
            for i in range(out_h):
                _row_taps(b, i, grid, mat, use_matrix, out_w, mode, pad, height, width, half, xs, ys, ix, wx, dwx,
                          iy, wy, dwy)
                for c in range(c0, c1):
                    gbase = b * gstr[0] + c * gstr[1] + i * gstr[2]
                    for j in range(out_w):
                        g = gout[gbase + j * gstr[3]]
                        for ty in range(taps):
                            row = iy[j, ty] * width
                            for tx in range(taps):
                                grad[bi, c, row + ix[j, tx]] += g * (wy[j, ty] * wx[j, tx])


@njit(parallel=True, **_OPTIONS)
def backward_coords(gout, gstr, img, istr, in_batch, channels, height, width, grid, mat, use_matrix, batch, out_h,
                    out_w, mode, pad, fill, half, grad_grid, grad_mat):
    """``d loss / d grid`` into ``grad_grid`` ``(B, H_out, W_out, 2)``, or with ``use_matrix`` the
    per-row partial ``d loss / d matrix`` into ``grad_mat`` ``(B, H_out, 9)``; parallel over output rows."""
    taps = 1 if mode == _NEAREST else (2 if mode == _BILINEAR else 4)
    for r in prange(batch * out_h):
        b, i = r // out_h, r % out_h
        xs, ys = np.empty(out_w, img.dtype), np.empty(out_w, img.dtype)
        ix, iy = np.empty((out_w, 4), np.int64), np.empty((out_w, 4), np.int64)
        wx, wy, dwx, dwy = np.empty((out_w, 4)), np.empty((out_w, 4)), np.empty((out_w, 4)), np.empty((out_w, 4))
        _row_taps(b, i, grid, mat, use_matrix, out_w, mode, pad, height, width, half, xs, ys, ix, wx, dwx, iy, wy, dwy)
        base = (b if in_batch > 1 else 0) * istr[0]
        m = b if mat.shape[0] > 1 else 0
        acc = np.zeros(9)
        for j in range(out_w):
            gx = 0.0
            gy = 0.0
            for c in range(channels):
                g = gout[b * gstr[0] + c * gstr[1] + i * gstr[2] + j * gstr[3]]
                cbase = base + c * istr[1]
                for ty in range(taps):
                    row = cbase + iy[j, ty] * istr[2]
                    for tx in range(taps):
                        # out = fill + sum(w * (v - fill)) over the taps inside the image
                        v = img[row + ix[j, tx] * istr[3]] - fill[c]
                        gx += g * dwx[j, tx] * wy[j, ty] * v
                        gy += g * wx[j, tx] * dwy[j, ty] * v
            if not use_matrix:
                grad_grid[b, i, j, 0] = gx
                grad_grid[b, i, j, 1] = gy
            elif gx != 0.0 or gy != 0.0:
                den = float(mat[m, 2, 0]) * j + float(mat[m, 2, 1]) * i + float(mat[m, 2, 2])
                x, y = float(xs[j]), float(ys[j])
                for k in range(3):
                    p = (j, i, 1)[k] / den
                    acc[k] += gx * p
                    acc[3 + k] += gy * p
                    acc[6 + k] -= (gx * x + gy * y) * p
        if use_matrix:
            for k in range(9):
                grad_mat[b, i, k] = acc[k]
