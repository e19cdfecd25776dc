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
@njit(**_OPTIONS)
def _buffers(width, dtype):
    """Per-row scratch: source points ``(2, W_out)`` in the image dtype, tap indices, weights and
    d(weight)/d(coordinate) ``(2, 4, W_out)`` (axis 0 = x, 1 = y), coverage ``(W_out,)``."""
    points = np.empty((2, width), dtype)
    idx = np.empty((2, 4, width), np.int64)
    w = np.empty((2, 4, width))
    dw = np.empty((2, 4, width))
    cover = np.empty(width)
    return points, idx, w, dw, cover


@njit(**_OPTIONS)
def _row_taps(b, i, grid, mat, use_matrix, mode, pad, src_h, src_w, points, idx, w, dw, cover):
    """Fill the tap buffers (see :func:`_buffers`) of output row ``i`` of batch ``b``.

    Indices come out mapped into the image; weights are 0 for taps outside (zeros/constant) and for
    non-finite points; ``cover`` is the sum of the weights, the share of the output not read from fill.
    Branches on mode and padding sit outside the loops over columns, so each loop is short and tight;
    everything is in this one function because numba does not inline calls between jitted functions.
    """
    width = points.shape[1]
    taps = 1 if mode == _NEAREST else (2 if mode == _BILINEAR else 4)
    if use_matrix:
        m = b if mat.shape[0] > 1 else 0
        for j in range(width):
            den = mat[m, 2, 0] * j + mat[m, 2, 1] * i + mat[m, 2, 2]
            points[0, j] = (mat[m, 0, 0] * j + mat[m, 0, 1] * i + mat[m, 0, 2]) / den
            points[1, j] = (mat[m, 1, 0] * j + mat[m, 1, 1] * i + mat[m, 1, 2]) / den
    else:
        g = b if grid.shape[0] > 1 else 0
        for j in range(width):
            points[0, j] = grid[g, i, j, 0]
            points[1, j] = grid[g, i, j, 1]
    for j in range(width):
        cover[j] = 1.0
        if not (math.isfinite(points[0, j]) and math.isfinite(points[1, j])):
            cover[j] = 0.0  # marks the point; reads fill
            points[0, j] = 0.0
            points[1, j] = 0.0
    for axis in range(2):
        n = src_w if axis == 0 else src_h
        for j in range(width):
            raw = points[axis, j]
            # the clamp passes gradient only inside [-LIMIT, LIMIT], as torch.clamp does
            dw[axis, 0, j] = cover[j] if abs(raw) <= _LIMIT else 0.0
            points[axis, j] = min(max(raw, -_LIMIT), _LIMIT)
        # weights and d(weight)/d(coord); dw[axis, 0] holds the gradient mask until overwritten
        if mode == _NEAREST:
            for j in range(width):
                # exact .5 ties round half to even, as the reference (torch.round), OpenCV and grid_sample do
                idx[axis, 0, j] = np.int64(np.rint(points[axis, j]))
                w[axis, 0, j] = 1.0
                dw[axis, 0, j] = 0.0
        elif mode == _BILINEAR:
            for j in range(width):
                base = np.floor(points[axis, j])
                t = float(points[axis, j] - base)  # exact: both share a binade below 2**24
                mask = dw[axis, 0, j]
                idx[axis, 0, j] = np.int64(base)
                idx[axis, 1, j] = np.int64(base) + 1
                w[axis, 0, j] = 1.0 - t
                w[axis, 1, j] = t
                dw[axis, 0, j] = -mask
                dw[axis, 1, j] = mask
        else:
            a = _A
            for j in range(width):
                base = np.floor(points[axis, j])
                t = float(points[axis, j] - base)
                mask = dw[axis, 0, j]
                s, u = t + 1.0, 1.0 - t
                w0 = ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a
                w1 = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
                w2 = ((a + 2.0) * u - (a + 3.0)) * u * u + 1.0
                d0 = (3.0 * a * s - 10.0 * a) * s + 8.0 * a
                d1 = (3.0 * (a + 2.0) * t - 2.0 * (a + 3.0)) * t
                d2 = -(3.0 * (a + 2.0) * u - 2.0 * (a + 3.0)) * u
                start = np.int64(base) - 1
                for p in range(4):
                    idx[axis, p, j] = start + p
                w[axis, 0, j], w[axis, 1, j], w[axis, 2, j], w[axis, 3, j] = w0, w1, w2, 1.0 - w0 - w1 - w2
                dw[axis, 0, j], dw[axis, 1, j] = d0 * mask, d1 * mask
                dw[axis, 2, j], dw[axis, 3, j] = d2 * mask, -(d0 + d1 + d2) * mask
        # map every tap into [0, n) like cv2.borderInterpolate; zero the weight of taps outside
        for p in range(taps):
            if pad == _ZEROS or pad == _CONSTANT:
                for j in range(width):
                    k = idx[axis, p, j]
                    if k < 0 or k >= n:
                        idx[axis, p, j] = 0
                        w[axis, p, j] = 0.0
                        dw[axis, p, j] = 0.0
            elif pad == _REPLICATE:
                for j in range(width):
                    idx[axis, p, j] = min(max(idx[axis, p, j], 0), n - 1)
            elif pad == _WRAP:
                for j in range(width):
                    idx[axis, p, j] = idx[axis, p, j] % n  # numba follows Python: the result is in [0, n)
            elif pad == _REFLECT:
                for j in range(width):
                    k = idx[axis, p, j] % (2 * n)
                    idx[axis, p, j] = k if k < n else 2 * n - 1 - k
            elif n == 1:
                for j in range(width):
                    idx[axis, p, j] = 0
            else:
                for j in range(width):
                    k = idx[axis, p, j] % (2 * n - 2)
                    idx[axis, p, j] = k if k < n else 2 * n - 2 - k
    for j in range(width):
        if cover[j] == 0.0:  # non-finite point: no tap counts
            for p in range(taps):
                w[0, p, j] = 0.0
                w[1, p, j] = 0.0
        sx, sy = 0.0, 0.0
        for p in range(taps):
            sx += w[0, p, j]
            sy += w[1, p, j]
        cover[j] = sx * sy


@njit(**_OPTIONS)
def _combine(idx, w, dw, taps, row_stride, col_stride, offset, weight, weight_dx, weight_dy, derivatives):
    """Per tap pair ``k = ty * taps + tx``: element offset ``offset[k, j]``, weight ``wy * wx`` and, with
    ``derivatives``, ``d(weight)/dx = wy * dwx`` and ``d(weight)/dy = dwy * wx``; shared by all channels."""
    width = idx.shape[2]
    k = 0
    for ty in range(taps):
        for tx in range(taps):
            for j in range(width):
                offset[k, j] = idx[1, ty, j] * row_stride + idx[0, tx, j] * col_stride
                weight[k, j] = w[1, ty, j] * w[0, tx, j]
            if derivatives:
                for j in range(width):
                    weight_dx[k, j] = w[1, ty, j] * dw[0, tx, j]
                    weight_dy[k, j] = dw[1, ty, j] * w[0, tx, j]
            k += 1


@njit(**_OPTIONS)
def _pixel_major(channels, height, width, channel_stride, itemsize):
    """Loop channels innermost? Yes for channels-last, and for NCHW while one image stays in cache (the tap
    tables are then read once per pixel, not once per channel: 1.3x at 8x64x56x56, but 0.6x at
    16x32x128x128 where the planes no longer fit)."""
    return channel_stride == 1 or (channels >= 4 and channels * height * width * itemsize <= 1 << 20)


@njit(parallel=True, **_OPTIONS)
def forward(img, istr, in_batch, channels, height, width, grid, mat, use_matrix, batch, out_h, out_w, mode, pad,
            fill, out, ostr, chunk):
    """``out[b, c, i, j]`` for every output pixel; parallel over chunks of ``chunk`` output rows."""
    taps = 1 if mode == _NEAREST else (2 if mode == _BILINEAR else 4)
    rows = batch * out_h
    for first in prange((rows + chunk - 1) // chunk):
        # scratch allocated once per chunk, not per row: allocation cost rivalled the sampling itself
        points, idx, w, dw, cover = _buffers(out_w, img.dtype)
        offset = np.empty((taps * taps, out_w), np.int64)
        weight = np.empty((taps * taps, out_w), img.dtype)
        rest = np.empty(out_w, img.dtype)
        for r in range(first * chunk, min(rows, (first + 1) * chunk)):
            b, i = r // out_h, r % out_h
            _row_taps(b, i, grid, mat, use_matrix, mode, pad, height, width, points, idx, w, dw, cover)
            _combine(idx, w, dw, taps, istr[2], istr[3], offset, weight, weight, weight, False)
            for j in range(out_w):
                rest[j] = 1.0 - cover[j]
            base = (b if in_batch > 1 else 0) * istr[0]
            obase = b * ostr[0] + i * ostr[2]
            if _pixel_major(channels, height, width, istr[1], img.itemsize):
                for j in range(out_w):
                    for c in range(channels):
                        acc = fill[c] * rest[j]
                        for k in range(taps * taps):
                            acc += weight[k, j] * img[base + c * istr[1] + offset[k, j]]
                        out[obase + j * ostr[3] + c * ostr[1]] = acc
            elif taps == 2:  # the common case, written out on 1-D views (tighter loops)
                w0, w1, w2, w3 = weight[0], weight[1], weight[2], weight[3]
                o0, o1, o2, o3 = offset[0], offset[1], offset[2], offset[3]
                for c in range(channels):
                    cbase = base + c * istr[1]
                    cout = obase + c * ostr[1]
                    f = fill[c]
                    for j in range(out_w):
                        out[cout + j * ostr[3]] = (
                            w0[j] * img[cbase + o0[j]]
                            + w1[j] * img[cbase + o1[j]]
                            + w2[j] * img[cbase + o2[j]]
                            + w3[j] * img[cbase + o3[j]]
                            + f * rest[j]
                        )
            else:
                for c in range(channels):
                    cbase = base + c * istr[1]
                    cout = obase + c * ostr[1]
                    f = fill[c]
                    for j in range(out_w):
                        acc = f * rest[j]
                        for k in range(taps * taps):
                            acc += weight[k, j] * img[cbase + offset[k, j]]
                        out[cout + j * ostr[3]] = acc


@njit(parallel=True, **_OPTIONS)
def backward_image(gout, gstr, grad, in_batch, channels, height, width, grid, mat, use_matrix, batch, out_h, out_w,
                   mode, pad, blocks):
    """Add ``d out / d image`` into ``grad`` ``(in_batch, C, H*W)``.

    One task per (image batch, channel block): each task owns its planes, so the sums need no atomics and
    run in a fixed order (bitwise reproducible).
    """
    taps = 1 if mode == _NEAREST else (2 if mode == _BILINEAR else 4)
    per_block = (channels + blocks - 1) // blocks
    for task in prange(in_batch * blocks):
        bi, block = task // blocks, task % blocks
        c0, c1 = block * per_block, min(channels, (block + 1) * per_block)
        points, idx, w, dw, cover = _buffers(out_w, grad.dtype)
        offset = np.empty((taps * taps, out_w), np.int64)
        weight = np.empty((taps * taps, out_w), grad.dtype)
        for b in range(batch):
            if in_batch > 1 and b != bi:
                continue
            for i in range(out_h):
                _row_taps(b, i, grid, mat, use_matrix, mode, pad, height, width, points, idx, w, dw, cover)
                _combine(idx, w, dw, taps, width, 1, offset, weight, weight, weight, False)
                for c in range(c0, c1):
                    plane = grad[bi, c]
                    gbase = b * gstr[0] + c * gstr[1] + i * gstr[2]
                    for j in range(out_w):
                        g = gout[gbase + j * gstr[3]]
                        for k in range(taps * taps):
                            plane[offset[k, j]] += g * weight[k, j]


@njit(parallel=True, **_OPTIONS)
def backward_coords(gout, gstr, img, istr, in_batch, channels, height, width, grid, mat, use_matrix, batch, out_h,
                    out_w, mode, pad, fill, grad_grid, grad_mat, chunk):
    """``d loss / d grid`` into ``grad_grid`` ``(B, H_out, W_out, 2)``, or with ``use_matrix`` the
    per-row partial ``d loss / d matrix`` into ``grad_mat`` ``(B, H_out, 9)``; parallel over output rows."""
    taps = 1 if mode == _NEAREST else (2 if mode == _BILINEAR else 4)
    rows = batch * out_h
    for first in prange((rows + chunk - 1) // chunk):
        points, idx, w, dw, cover = _buffers(out_w, img.dtype)
        offset = np.empty((taps * taps, out_w), np.int64)
        weight_dx, weight_dy = np.empty((taps * taps, out_w)), np.empty((taps * taps, out_w))
        gx, gy, acc = np.empty(out_w), np.empty(out_w), np.empty(9)
        for r in range(first * chunk, min(rows, (first + 1) * chunk)):
            b, i = r // out_h, r % out_h
            _row_taps(b, i, grid, mat, use_matrix, mode, pad, height, width, points, idx, w, dw, cover)
            gx[:] = 0.0
            gy[:] = 0.0
            if mode != _NEAREST:  # nearest has no gradient with respect to the points
                _combine(idx, w, dw, taps, istr[2], istr[3], offset, weight_dx, weight_dx, weight_dy, True)
                base = (b if in_batch > 1 else 0) * istr[0]
                gbase = b * gstr[0] + i * gstr[2]
                # out = fill + sum(w * (v - fill)) over the taps inside the image
                if _pixel_major(channels, height, width, istr[1], img.itemsize):
                    for j in range(out_w):
                        sx, sy = 0.0, 0.0
                        for c in range(channels):
                            g = gout[gbase + c * gstr[1] + j * gstr[3]]
                            cbase = base + c * istr[1]
                            for k in range(taps * taps):
                                v = g * (img[cbase + offset[k, j]] - fill[c])
                                sx += weight_dx[k, j] * v
                                sy += weight_dy[k, j] * v
                        gx[j] = sx
                        gy[j] = sy
                else:
                    for c in range(channels):
                        cbase = base + c * istr[1]
                        f = fill[c]
                        for j in range(out_w):
                            g = gout[gbase + c * gstr[1] + j * gstr[3]]
                            sx, sy = 0.0, 0.0
                            for k in range(taps * taps):
                                v = img[cbase + offset[k, j]] - f
                                sx += weight_dx[k, j] * v
                                sy += weight_dy[k, j] * v
                            gx[j] += g * sx
                            gy[j] += g * sy
            if not use_matrix:
                for j in range(out_w):
                    grad_grid[b, i, j, 0] = gx[j]
                    grad_grid[b, i, j, 1] = gy[j]
                continue
            m = b if mat.shape[0] > 1 else 0
            acc[:] = 0.0
            for j in range(out_w):
                if gx[j] == 0.0 and gy[j] == 0.0:
                    continue  # also keeps 0 * inf (a point at infinity) out of the sums
                den = float(mat[m, 2, 0]) * j + float(mat[m, 2, 1]) * i + float(mat[m, 2, 2])
                # d(point)/d(matrix) for x = (m0 . p) / (m2 . p), y = (m1 . p) / (m2 . p), p = (j, i, 1)
                x_term = gx[j] / den
                y_term = gy[j] / den
                w_term = -(gx[j] * points[0, j] + gy[j] * points[1, j]) / den
                for k in range(3):
                    pk = float(j) if k == 0 else (float(i) if k == 1 else 1.0)
                    acc[k] += x_term * pk
                    acc[3 + k] += y_term * pk
                    acc[6 + k] += w_term * pk
            for k in range(9):
                grad_mat[b, i, k] = acc[k]
