"""numba kernels of the fast CPU sampler. Imported only when the fast backend first runs.

Every kernel reads source coordinates either from a ``(Bg, H_out, W_out, 2)`` grid or, with
``use_matrix``, computes them inline from ``(Bm, 3, 3)`` destination -> source matrices, so warping by a
matrix never materialises a grid. Images and outputs are flat arrays addressed through element strides
``(batch, channel, row, column)``: one compiled kernel serves NCHW and channels-last.

Most work runs in row passes: for a tile of an output row, first the points, fractions and tap offsets,
then one tight loop per channel that reads the taps directly. Points whose taps are not all inside the image,
and non-finite points, are collected and take a slower path that maps every tap on its own like
``cv2.borderInterpolate``, exactly as :func:`warpkit._sampler.reference_sample` does. The bicubic backward, and
images too small for a pass's taps, go pixel by pixel. Each interpolation mode has its own forward kernel.
Points are computed in float64 and rounded to the image dtype (as the reference holds them), clamped to
``+-2**24``, and no index can leave the image whatever the coordinates are.

Determinism: the forward writes each output element from one thread. The backward gives each task whole
(image, channel block) planes of the image gradient and its own slot of the point / matrix gradient
partials, summed afterwards in a fixed order: no atomics, bitwise reproducible.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["forward", "backward", "MODES", "PADDINGS"]

MODES = {"nearest": 0, "bilinear": 1, "bicubic": 2}
PADDINGS = {"zeros": 0, "constant": 1, "replicate": 2, "reflect": 3, "reflect101": 4, "wrap": 5}
_NEAREST, _BILINEAR, _BICUBIC = 0, 1, 2
_ZEROS, _CONSTANT, _REPLICATE, _REFLECT, _WRAP = 0, 1, 2, 3, 5
_LIMIT = float(2**24)
_A = -0.75
# error_model="numpy": a division by zero gives inf/nan (then fill) instead of raising.
# fastmath stays off: exact floor/rint and IEEE comparisons decide which taps are read.
_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}
# Hot loops index with unsigned integers (``_U``): numba then drops its check for negative (wrap-around)
# indices, which makes them 1.5-2x faster. Mixing ``_U`` with a signed integer gives a float in numba, which
# it refuses as an index, so a slip fails at compile time rather than silently.
_U = np.uint64
_TILE = 256  # output columns per tile of the forward pass


@njit(**_OPTIONS)
def _border(k, n, pad):
    """Tap index ``k`` mapped into ``[0, n)`` like ``cv2.borderInterpolate``; -1 outside with zeros/constant."""
    if k >= 0 and k < n:
        return k
    if pad == _ZEROS or pad == _CONSTANT:
        return -1
    if pad == _REPLICATE:
        return 0 if k < 0 else n - 1
    if pad == _WRAP:
        return k % n  # numba follows Python: the result is in [0, n)
    if pad == _REFLECT:
        m = k % (2 * n)
        return m if m < n else 2 * n - 1 - m
    if n == 1:
        return 0
    m = k % (2 * n - 2)
    return m if m < n else 2 * n - 2 - m


@njit(**_OPTIONS)
def _cubic(t):
    """Cubic convolution weights (A = -0.75) of taps ``floor - 1 .. floor + 2`` at fraction ``t``."""
    a = _A
    s, u = t + 1.0, 1.0 - t
    w0 = ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a
    w1 = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    w2 = ((a + 2.0) * u - (a + 3.0)) * u * u + 1.0
    return w0, w1, w2, 1.0 - w0 - w1 - w2


@njit(**_OPTIONS)
def _cubic_derivative(t):
    """d(weight)/dt of :func:`_cubic`."""
    a = _A
    s, u = t + 1.0, 1.0 - t
    d0 = (3.0 * a * s - 10.0 * a) * s + 8.0 * a
    d1 = (3.0 * (a + 2.0) * t - 2.0 * (a + 3.0)) * t
    d2 = -(3.0 * (a + 2.0) * u - 2.0 * (a + 3.0)) * u
    return d0, d1, d2, -(d0 + d1 + d2)


@njit(**_OPTIONS)
def _nearest_tap(coord, n, pad):
    """The nearest tap of a finite coordinate, clamped to +-2**24, mapped like ``cv2.borderInterpolate``
    (-1: outside with zeros/constant). Exact .5 ties round half to even, as the reference (torch.round),
    OpenCV and grid_sample do. Scalars only, so the call costs nothing."""
    return _border(np.int64(np.rint(min(max(coord, -_LIMIT), _LIMIT))), n, pad)


@njit(**_OPTIONS)
def _axis_taps(coord, n, mode, pad, idx, w, dw):
    """Slow path, one axis of a finite point: taps mapped into the image (``idx``, -1 = outside, weight 0),
    weights ``w`` and d(weight)/d(coord) ``dw`` (0 where the clamp to +-2**24 cut). Returns the tap count."""
    mask = 1.0 if abs(coord) <= _LIMIT else 0.0  # torch.clamp passes gradient inside the bounds only
    c = min(max(coord, -_LIMIT), _LIMIT)
    if mode == _NEAREST:
        idx[0] = _nearest_tap(coord, n, pad)
        w[0], dw[0] = 1.0, 0.0
        taps = 1
    elif mode == _BILINEAR:
        base = np.floor(c)
        t = c - base  # exact: both share a binade below 2**24
        k = np.int64(base)
        idx[0], idx[1] = _border(k, n, pad), _border(k + 1, n, pad)
        w[0], w[1] = 1.0 - t, t
        dw[0], dw[1] = -mask, mask
        taps = 2
    else:
        base = np.floor(c)
        t = c - base
        k = np.int64(base) - 1
        w[0], w[1], w[2], w[3] = _cubic(t)
        d0, d1, d2, d3 = _cubic_derivative(t)
        dw[0], dw[1], dw[2], dw[3] = d0 * mask, d1 * mask, d2 * mask, d3 * mask
        for p in range(4):
            idx[p] = _border(k + p, n, pad)
        taps = 4
    for p in range(taps):
        if idx[p] < 0:
            w[p] = 0.0
            dw[p] = 0.0
    return taps


@njit(**_OPTIONS)
def _reads_only_fill(x, y, width, height, pad):
    """Whether a point reads nothing but fill: not finite, or with zeros/constant every tap (of any mode,
    ``floor - 1 .. floor + 2``) outside. Scalars only, so the call costs nothing (no array reference counts)."""
    if not (math.isfinite(x) and math.isfinite(y)):
        return True
    if pad != _ZEROS and pad != _CONSTANT:
        return False
    return x < -2.0 or x >= width + 1.0 or y < -2.0 or y >= height + 1.0


@njit(**_OPTIONS)
def _straddle_taps(x, y, width, height, pad):
    """Bilinear taps of a finite point whose 2x2 taps may leave the image: rows ``r0, r1`` and columns
    ``c0, c1`` mapped like ``cv2.borderInterpolate`` (-1: outside with zeros/constant) and the fractions
    ``tx, ty``. Scalars only, so the call costs nothing (no array reference counts)."""
    x = min(max(x, -_LIMIT), _LIMIT)
    y = min(max(y, -_LIMIT), _LIMIT)
    x0, y0 = np.floor(x), np.floor(y)
    kx, ky = np.int64(x0), np.int64(y0)
    r0, r1 = _border(ky, height, pad), _border(ky + 1, height, pad)
    c0, c1 = _border(kx, width, pad), _border(kx + 1, width, pad)
    return r0, r1, c0, c1, x - x0, y - y0


@njit(**_OPTIONS)
def _slow_forward(img, base, sc, sh, sw, channels, height, width, x, y, mode, pad, fill, out, o, oc, tap_i, tap_w):
    """One output pixel (all channels) whose taps may leave the image or whose point is not finite."""
    if _reads_only_fill(x, y, width, height, pad):
        for c in range(channels):
            out[o + c * oc] = fill[c]
        return
    nx = _axis_taps(x, width, mode, pad, tap_i[0], tap_w[0], tap_w[2])
    ny = _axis_taps(y, height, mode, pad, tap_i[1], tap_w[1], tap_w[3])
    sum_x, sum_y = 0.0, 0.0
    for p in range(nx):
        sum_x += tap_w[0, p]
    for p in range(ny):
        sum_y += tap_w[1, p]
    rest = 1.0 - sum_x * sum_y  # the share of fill: taps outside with zeros/constant
    for c in range(channels):
        cb = base + c * sc
        acc = 0.0
        for ty in range(ny):
            if tap_i[1, ty] < 0:
                continue
            rb = cb + tap_i[1, ty] * sh
            row = 0.0
            for tx in range(nx):
                if tap_i[0, tx] >= 0:
                    row += tap_w[0, tx] * img[rb + tap_i[0, tx] * sw]
            acc += tap_w[1, ty] * row
        out[o + c * oc] = acc + fill[c] * rest


@njit(**_OPTIONS)
def _slow_backward(gout, g0, gc, img, base, sc, sh, sw, grad, gbase, c0, c1, height, width, x, y, mode, pad, fill,
                   want_image, want_coords, tap_i, tap_w):
    """Slow-path twin of the backward for one pixel: adds into ``grad`` and returns ``(d/dx, d/dy)``."""
    if _reads_only_fill(x, y, width, height, pad):
        return 0.0, 0.0  # fill is read: no gradient to the image or the point
    nx = _axis_taps(x, width, mode, pad, tap_i[0], tap_w[0], tap_w[2])
    ny = _axis_taps(y, height, mode, pad, tap_i[1], tap_w[1], tap_w[3])
    gx, gy = 0.0, 0.0
    plane = height * width
    for c in range(c0, c1):
        g = gout[g0 + c * gc]
        if want_image:
            pb = gbase + c * plane
            for ty in range(ny):
                if tap_i[1, ty] < 0:
                    continue
                rb = pb + tap_i[1, ty] * width
                gw = g * tap_w[1, ty]
                for tx in range(nx):
                    if tap_i[0, tx] >= 0:
                        grad[rb + tap_i[0, tx]] += gw * tap_w[0, tx]
        if want_coords and mode != _NEAREST:
            # out = fill + sum(w * (v - fill)) over the taps inside the image
            cb = base + c * sc
            f = fill[c]
            sx, sy = 0.0, 0.0
            for ty in range(ny):
                if tap_i[1, ty] < 0:
                    continue
                rb = cb + tap_i[1, ty] * sh
                for tx in range(nx):
                    if tap_i[0, tx] >= 0:
                        v = img[rb + tap_i[0, tx] * sw] - f
                        sx += tap_w[1, ty] * tap_w[2, tx] * v
                        sy += tap_w[3, ty] * tap_w[0, tx] * v
            gx += g * sx
            gy += g * sy
    return gx, gy


@njit(**_OPTIONS)
def _matrix_point(j, affine, a00, a10, a20, cx, cy, cw):
    """Source point of output column ``j`` for a row whose constant parts are ``cx, cy, cw``:
    ``x = (a00 j + cx) / (a20 j + cw)``, likewise ``y``; no division when ``affine``. Scalars only."""
    if affine:  # no division: the common case, and exact
        return a00 * j + cx, a10 * j + cy
    den = a20 * j + cw
    return (a00 * j + cx) / den, (a10 * j + cy) / den


@njit(inline="always", **_OPTIONS)  # inlined by numba: a call per row, with its arrays, costs 15-25%
def _row_points(grid, g, i, j0, n, use_matrix, affine, a00, a10, a20, cx, cy, cw, mode, height, width, sh, sw, px,
                py, wx, wy, offset, goffset, inside):
    """Row pass over columns ``j0 .. j0 + n`` of output row ``i``, into entries ``0 .. n``: points ``px, py``
    (image dtype), and for points whose taps are all inside (nearest: 1, bilinear: 2x2, bicubic: 4x4),
    fractions ``wx, wy`` and the element offset of the (top-left) tap in the image (``offset``) and in a
    contiguous plane (``goffset``); the others get the safe offset 0."""
    for k in range(n):
        j = j0 + k
        if affine:  # no division: the common case, and exact
            px[k] = a00 * j + cx
            py[k] = a10 * j + cy
        elif use_matrix:
            den = a20 * j + cw
            px[k] = (a00 * j + cx) / den
            py[k] = (a10 * j + cy) / den
        else:
            px[k] = grid[g, i, j, 0]
            py[k] = grid[g, i, j, 1]
    # a point is inside when all its taps are: rint(x) for nearest (rint(-0.5) is 0), floor(x) .. floor(x) + 1
    # for bilinear, floor(x) - 1 .. floor(x) + 2 for bicubic. Tests in float: NaN fails them, and no huge
    # value becomes an integer
    lo = -0.5 if mode == _NEAREST else (0.0 if mode == _BILINEAR else 1.0)
    reach = 0.5 if mode == _NEAREST else (1.0 if mode == _BILINEAR else 2.0)  # hi = size - reach
    first_tap = 1 if mode == _BICUBIC else 0
    for k in range(n):
        x, y = px[k], py[k]
        ok = x >= lo and x < width - reach and y >= lo and y < height - reach
        inside[k] = ok
        x = x if ok else 0.0
        y = y if ok else 0.0
        x0, y0 = (np.rint(x), np.rint(y)) if mode == _NEAREST else (np.floor(x), np.floor(y))
        wx[k], wy[k] = x - x0, y - y0
        first = first_tap if ok else 0
        offset[k] = np.uint64((np.int64(y0) - first) * sh + (np.int64(x0) - first) * sw)
        goffset[k] = np.uint64((np.int64(y0) - first) * width + np.int64(x0) - first)

@njit(**_OPTIONS)
def _border_pixels(img, sc, sh, sw, channels, height, width, mode, pad, fill, out, oc, xs, ys, outs, bases, count,
                   tap_i, tap_w):
    """Pixels of the row pass whose taps are not all inside: fill, or taps straddling the border.
    Pixel ``k`` has point ``xs[k], ys[k]``, output offset ``outs[k]`` and image offset ``bases[k]``."""
    for k in range(count):
        x, y, o, base = float(xs[k]), float(ys[k]), outs[k], bases[k]
        if _reads_only_fill(x, y, width, height, pad):
            for c in range(channels):
                out[o + c * oc] = fill[c]
            continue
        if mode == _BICUBIC:
            _slow_forward(img, base, sc, sh, sw, channels, height, width, x, y, mode, pad, fill, out, o, oc, tap_i,
                          tap_w)
            continue
        if mode == _NEAREST:  # scalar code, not _slow_forward: a call with arrays costs more than the work
            col, row = _nearest_tap(x, width, pad), _nearest_tap(y, height, pad)
            for c in range(channels):
                out[o + c * oc] = img[base + c * sc + row * sh + col * sw] if row >= 0 and col >= 0 else fill[c]
            continue
        r0, r1, c0, c1, tx, ty = _straddle_taps(x, y, width, height, pad)
        w00 = (1.0 - ty) * (1.0 - tx) if r0 >= 0 and c0 >= 0 else 0.0
        w01 = (1.0 - ty) * tx if r0 >= 0 and c1 >= 0 else 0.0
        w10 = ty * (1.0 - tx) if r1 >= 0 and c0 >= 0 else 0.0
        w11 = ty * tx if r1 >= 0 and c1 >= 0 else 0.0
        rest = 1.0 - (w00 + w01 + w10 + w11)  # the share of fill (zeros / constant)
        r0, r1, c0, c1 = max(r0, 0), max(r1, 0), max(c0, 0), max(c1, 0)  # weight 0 where -1
        for c in range(channels):
            q = base + c * sc
            value = (w00 * img[q + r0 * sh + c0 * sw] + w01 * img[q + r0 * sh + c1 * sw]
                     + w10 * img[q + r1 * sh + c0 * sw] + w11 * img[q + r1 * sh + c1 * sw])
            out[o + c * oc] = value + fill[c] * rest


def _make_forward(mode_constant: int):
    """The forward kernel for one interpolation mode: with the mode a compile-time constant, each kernel
    holds only its own mode's code (together, the modes' row passes slowed bilinear down by 20%)."""

    @njit(parallel=True, **_OPTIONS)
    def forward(img, istr, in_batch, channels, height, width, grid, mat, use_matrix, batch, out_h, out_w, mode, pad,
                fill, out, ostr, chunk):
        """``out[b, c, i, j]`` for every output pixel; parallel over chunks of ``chunk`` output rows."""
        mode = mode_constant
        sb, sc, sh, sw = istr
        ob, oc, oh, ow = ostr
        rows = batch * out_h
        # rows are done in passes (points, then one tight loop per channel, then the border pixels), 3x faster
        # than pixel by pixel; the passes read every tap at a safe offset, so the image must hold them all.
        # A smaller image has no point with all taps inside: pixel by pixel, every point takes the slow path
        nearest = mode == _NEAREST
        side = 1 if nearest else (2 if mode == _BILINEAR else 4)
        by_rows = height >= side and width >= side
        tile = min(out_w, _TILE)
        for task in prange((rows + chunk - 1) // chunk):
            point = np.empty(2, img.dtype)  # rounds a computed point to the image dtype, as the reference holds it
            tap_i = np.empty((2, 4), np.int64)
            tap_w = np.empty((4, 4))
            px, py = np.empty(tile, img.dtype), np.empty(tile, img.dtype)
            frac_x, frac_y = np.empty(tile, img.dtype), np.empty(tile, img.dtype)
            offset, goffset = np.empty(tile, np.uint64), np.empty(tile, np.uint64)
            inside = np.empty(tile, np.bool_)
            cwx, cwy = np.empty((4, tile), img.dtype), np.empty((4, tile), img.dtype)  # bicubic tap weights
            # the row pass's pixels that are not inside, collected over rows and handled together (inline, they
            # slow the pass down; a call per row costs too much)
            pend_x, pend_y = np.empty(2 * tile, img.dtype), np.empty(2 * tile, img.dtype)
            pend_o, pend_b = np.empty(2 * tile, np.int64), np.empty(2 * tile, np.int64)
            pending = 0
            # the task's rows in column tiles: the source region a tile reads stays in cache (rotations!)
            for j0 in range(0, out_w, tile):
                n = min(tile, out_w - j0)
                for r in range(task * chunk, min(rows, (task + 1) * chunk)):
                    b = r // out_h
                    i = r - b * out_h
                    base = (b if in_batch > 1 else 0) * sb
                    orow = b * ob + i * oh
                    m = b if mat.shape[0] > 1 else 0
                    g = b if grid.shape[0] > 1 else 0
                    # the row's constant part of x = (m00 j + m01 i + m02) / (m20 j + m21 i + m22), and of y
                    a00, a10, a20 = float(mat[m, 0, 0]), float(mat[m, 1, 0]), float(mat[m, 2, 0])
                    cx = float(mat[m, 0, 1]) * i + float(mat[m, 0, 2])
                    cy = float(mat[m, 1, 1]) * i + float(mat[m, 1, 2])
                    cw = float(mat[m, 2, 1]) * i + float(mat[m, 2, 2])
                    affine = use_matrix and a20 == 0.0 and cw == 1.0
                    if by_rows:
                        _row_points(grid, g, i, j0, n, use_matrix, affine, a00, a10, a20, cx, cy, cw, mode, height,
                                    width, sh, sw, px, py, frac_x, frac_y, offset, goffset, inside)
                        if mode == _BICUBIC:
                            for k in range(n):
                                cwx[0, k], cwx[1, k], cwx[2, k], cwx[3, k] = _cubic(float(frac_x[k]))
                                cwy[0, k], cwy[1, k], cwy[2, k], cwy[3, k] = _cubic(float(frac_y[k]))
                        ush, usw = _U(sh), _U(sw)
                        for c in range(channels):
                            s0 = _U(base + c * sc)
                            o = orow + c * oc + j0 * ow
                            if nearest:
                                fc = fill[c]
                                for k in range(n):  # a safe tap (0) for points that are not inside
                                    out[o + k * ow] = img[s0 + offset[k]] if inside[k] else fc
                                continue
                            if mode == _BICUBIC:
                                fc = fill[c]
                                for k in range(n):
                                    q = s0 + offset[k]  # the top-left tap (safe 0 for points that are not inside)
                                    acc = 0.0
                                    for t in range(4):
                                        rq = q + _U(t) * ush
                                        acc += cwy[t, k] * (cwx[0, k] * img[rq] + cwx[1, k] * img[rq + usw]
                                                            + cwx[2, k] * img[rq + _U(2) * usw]
                                                            + cwx[3, k] * img[rq + _U(3) * usw])
                                    out[o + k * ow] = acc if inside[k] else fc
                                continue
                            if sw == 1 and ow == 1:  # NCHW: unit strides known to LLVM, no views (2-4x faster)
                                fc = fill[c]
                                for k in range(n):
                                    q = s0 + offset[k]  # a safe tap (0) for points that are not inside
                                    tx, ty = frac_x[k], frac_y[k]
                                    v00, v10 = img[q], img[q + ush]
                                    top = v00 + tx * (img[q + _U(1)] - v00)
                                    bottom = v10 + tx * (img[q + ush + _U(1)] - v10)
                                    out[o + k] = top + ty * (bottom - top) if inside[k] else fc
                                continue
                            for k in range(n):
                                q = s0 + offset[k]
                                tx, ty = frac_x[k], frac_y[k]
                                top = img[q] + tx * (img[q + usw] - img[q])
                                bottom = img[q + ush] + tx * (img[q + ush + usw] - img[q + ush])
                                out[o + k * ow] = top + ty * (bottom - top)
                        unit = sw == 1 and ow == 1  # then fill is already written
                        for k in range(n):
                            if not inside[k] and not (unit and _reads_only_fill(float(px[k]), float(py[k]), width,
                                                                                height, pad)):
                                pend_x[pending], pend_y[pending] = px[k], py[k]
                                pend_o[pending], pend_b[pending] = orow + (j0 + k) * ow, base
                                pending += 1
                        if pending > tile:  # room for one more row
                            _border_pixels(img, sc, sh, sw, channels, height, width, mode, pad, fill, out, oc, pend_x,
                                           pend_y, pend_o, pend_b, pending, tap_i, tap_w)
                            pending = 0
                        continue
                    for j in range(j0, j0 + n):
                        if use_matrix:
                            point[0], point[1] = _matrix_point(j, affine, a00, a10, a20, cx, cy, cw)
                        else:
                            point[0] = grid[g, i, j, 0]
                            point[1] = grid[g, i, j, 1]
                        _slow_forward(img, base, sc, sh, sw, channels, height, width, float(point[0]), float(point[1]),
                                      mode, pad, fill, out, orow + j * ow, oc, tap_i, tap_w)
            if pending:
                _border_pixels(img, sc, sh, sw, channels, height, width, mode, pad, fill, out, oc, pend_x, pend_y,
                               pend_o, pend_b, pending, tap_i, tap_w)

    return forward


_FORWARD = tuple(_make_forward(m) for m in range(len(MODES)))


def forward(img, istr, in_batch, channels, height, width, grid, mat, use_matrix, batch, out_h, out_w, mode, pad,
            fill, out, ostr, chunk):
    """``out[b, c, i, j]`` for every output pixel, by the kernel of ``mode``."""
    _FORWARD[mode](img, istr, in_batch, channels, height, width, grid, mat, use_matrix, batch, out_h, out_w, mode, pad,
                   fill, out, ostr, chunk)


@njit(parallel=True, **_OPTIONS)
def backward(gout, gstr, img, istr, grad, in_batch, channels, height, width, grid, mat, use_matrix, batch, out_h,
             out_w, mode, pad, fill, blocks, want_image, want_coords, grad_grid, grad_mat):
    """Gradients of ``sum(gout * out)``.

    ``grad`` ``(in_batch * C * H * W,)`` receives d/d image (contiguous NCHW). With ``want_coords``, task
    slot ``k`` of ``grad_grid`` ``(blocks, B, H_out, W_out, 2)`` receives the channel block's d/d point, or
    with ``use_matrix`` ``grad_mat`` ``(blocks, B, 9)`` its d/d matrix; the caller sums the slots in order.
    One task per (image batch, channel block): each owns its image-gradient planes and its slots.
    """
    sb, sc, sh, sw = istr
    gb, gc, gh, gw = gstr
    per_block = (channels + blocks - 1) // blocks
    plane = height * width
    nearest = mode == _NEAREST
    # the row passes of forward for nearest and bilinear; bicubic goes pixel by pixel
    by_rows = nearest or (mode == _BILINEAR and height >= 2 and width >= 2)
    for task in prange(in_batch * blocks):
        bi = task // blocks
        block = task - bi * blocks
        c0, c1 = block * per_block, min(channels, (block + 1) * per_block)
        point = np.empty(2, img.dtype)
        tap_i = np.empty((2, 4), np.int64)
        tap_w = np.empty((4, 4))
        px, py = np.empty(out_w, img.dtype), np.empty(out_w, img.dtype)
        frac_x, frac_y = np.empty(out_w, img.dtype), np.empty(out_w, img.dtype)
        offset, goffset = np.empty(out_w, np.uint64), np.empty(out_w, np.uint64)
        inside = np.empty(out_w, np.bool_)
        dxs, dys = np.empty(out_w), np.empty(out_w)  # d loss / d point of the row, this channel block
        gbase = bi * channels * plane
        base = bi * sb
        for b in range(batch):
            if in_batch > 1 and b != bi:
                continue
            m = b if mat.shape[0] > 1 else 0
            g = b if grid.shape[0] > 1 else 0
            a00, a10, a20 = float(mat[m, 0, 0]), float(mat[m, 1, 0]), float(mat[m, 2, 0])
            acc = np.zeros(9)
            for i in range(out_h):
                cx = float(mat[m, 0, 1]) * i + float(mat[m, 0, 2])
                cy = float(mat[m, 1, 1]) * i + float(mat[m, 1, 2])
                cw = float(mat[m, 2, 1]) * i + float(mat[m, 2, 2])
                affine = use_matrix and a20 == 0.0 and cw == 1.0
                grow = b * gb + i * gh
                if by_rows:
                    _row_points(grid, g, i, 0, out_w, use_matrix, affine, a00, a10, a20, cx, cy, cw, mode, height,
                                width, sh, sw, px, py, frac_x, frac_y, offset, goffset, inside)
                    dxs[:] = 0.0
                    dys[:] = 0.0
                    ush, usw, uwidth = _U(sh), _U(sw), _U(width)
                    for c in range(c0, c1):
                        # offsets, not views: no reference counts
                        s0, g0, p0 = _U(base + c * sc), grow + c * gc, _U(gbase + c * plane)
                        if nearest:  # no point gradient: the output is piecewise constant in the point
                            for j in range(out_w):
                                if want_image and inside[j]:
                                    grad[p0 + goffset[j]] += gout[g0 + j * gw]
                            continue
                        for j in range(out_w):
                            if not inside[j]:
                                continue
                            gv = gout[g0 + j * gw]
                            tx, ty = frac_x[j], frac_y[j]
                            ux, uy = 1.0 - tx, 1.0 - ty
                            if want_image:
                                q = p0 + goffset[j]
                                grad[q] += gv * (uy * ux)
                                grad[q + _U(1)] += gv * (uy * tx)
                                grad[q + uwidth] += gv * (ty * ux)
                                grad[q + uwidth + _U(1)] += gv * (ty * tx)
                            if want_coords:
                                q = s0 + offset[j]
                                v00, v01, v10, v11 = img[q], img[q + usw], img[q + ush], img[q + ush + usw]
                                dxs[j] += gv * (uy * (v01 - v00) + ty * (v11 - v10))
                                dys[j] += gv * (ux * (v10 - v00) + tx * (v11 - v01))
                    for j in range(out_w):
                        xr, yr = float(px[j]), float(py[j])
                        if inside[j] or _reads_only_fill(xr, yr, width, height, pad):
                            continue
                        if nearest:
                            _pixel_backward(gout, grow + j * gw, gc, img, base, sc, sh, sw, grad, gbase, c0, c1, height,
                                            width, xr, yr, mode, pad, fill, want_image, want_coords, tap_i, tap_w)
                            continue
                        # bilinear taps straddling the border, inline (a call with arrays is slow); as
                        # _slow_backward: taps outside (-1) weigh 0, the clamp passes gradient inside only
                        mx = 1.0 if abs(xr) <= _LIMIT else 0.0
                        my = 1.0 if abs(yr) <= _LIMIT else 0.0
                        row0, row1, col0, col1, tx, ty = _straddle_taps(xr, yr, width, height, pad)
                        wx0, wx1 = (1.0 - tx if col0 >= 0 else 0.0), (tx if col1 >= 0 else 0.0)
                        wy0, wy1 = (1.0 - ty if row0 >= 0 else 0.0), (ty if row1 >= 0 else 0.0)
                        dx0, dx1 = (-mx if col0 >= 0 else 0.0), (mx if col1 >= 0 else 0.0)
                        dy0, dy1 = (-my if row0 >= 0 else 0.0), (my if row1 >= 0 else 0.0)
                        col0, col1, row0, row1 = max(col0, 0), max(col1, 0), max(row0, 0), max(row1, 0)
                        gx, gy = 0.0, 0.0
                        for c in range(c0, c1):
                            gv = gout[grow + j * gw + c * gc]
                            if want_image:
                                pb = gbase + c * plane
                                grad[pb + row0 * width + col0] += gv * (wy0 * wx0)
                                grad[pb + row0 * width + col1] += gv * (wy0 * wx1)
                                grad[pb + row1 * width + col0] += gv * (wy1 * wx0)
                                grad[pb + row1 * width + col1] += gv * (wy1 * wx1)
                            if want_coords:  # out = fill + sum(w * (v - fill)) over the taps inside
                                q, f = base + c * sc, fill[c]
                                v00 = img[q + row0 * sh + col0 * sw] - f
                                v01 = img[q + row0 * sh + col1 * sw] - f
                                v10 = img[q + row1 * sh + col0 * sw] - f
                                v11 = img[q + row1 * sh + col1 * sw] - f
                                gx += gv * (wy0 * (dx0 * v00 + dx1 * v01) + wy1 * (dx0 * v10 + dx1 * v11))
                                gy += gv * (dy0 * (wx0 * v00 + wx1 * v01) + dy1 * (wx0 * v10 + wx1 * v11))
                        dxs[j], dys[j] = gx, gy
                else:
                    for j in range(out_w):
                        if use_matrix:
                            point[0], point[1] = _matrix_point(j, affine, a00, a10, a20, cx, cy, cw)
                        else:
                            point[0] = grid[g, i, j, 0]
                            point[1] = grid[g, i, j, 1]
                        px[j], py[j] = point[0], point[1]
                        dxs[j], dys[j] = 0.0, 0.0
                        if _reads_only_fill(float(point[0]), float(point[1]), width, height, pad):
                            continue
                        dxs[j], dys[j] = _pixel_backward(gout, grow + j * gw, gc, img, base, sc, sh, sw, grad, gbase,
                                                         c0, c1, height, width, float(point[0]), float(point[1]), mode,
                                                         pad, fill, want_image, want_coords, tap_i, tap_w)
                if not want_coords:
                    continue
                if not use_matrix:
                    for j in range(out_w):
                        grad_grid[block, b, i, j, 0] = dxs[j]
                        grad_grid[block, b, i, j, 1] = dys[j]
                    continue
                # x = (m0 . p) / (m2 . p), y = (m1 . p) / (m2 . p) with p = (j, i, 1): per-row sums of
                # x_term * (j, 1), y_term * (j, 1), w_term * (j, 1)
                sxj, sx1, syj, sy1, swj, sw1 = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
                for j in range(out_w):
                    dx, dy = dxs[j], dys[j]
                    if dx == 0.0 and dy == 0.0:
                        continue  # also keeps 0 * inf (a point at infinity) out of the sums
                    den = a20 * j + cw
                    xt, yt = dx / den, dy / den
                    wt = -(dx * float(px[j]) + dy * float(py[j])) / den
                    sxj += xt * j
                    sx1 += xt
                    syj += yt * j
                    sy1 += yt
                    swj += wt * j
                    sw1 += wt
                acc[0] += sxj
                acc[1] += sx1 * i
                acc[2] += sx1
                acc[3] += syj
                acc[4] += sy1 * i
                acc[5] += sy1
                acc[6] += swj
                acc[7] += sw1 * i
                acc[8] += sw1
            if use_matrix and want_coords:
                for k in range(9):
                    grad_mat[block, b, k] = acc[k]


@njit(inline="always", **_OPTIONS)
def _pixel_backward(gout, go, gc, img, base, sc, sh, sw, grad, gbase, c0, c1, height, width, x, y, mode, pad, fill,
                    want_image, want_coords, tap_i, tap_w):
    """Backward of one pixel, channels ``c0 .. c1`` (nearest and bicubic): adds into ``grad`` and returns
    ``(d/dx, d/dy)``; taps inside the image are read directly, the others through the slow path."""
    plane = height * width
    dx, dy = 0.0, 0.0
    if mode == _NEAREST and x > -0.5 and x < width - 0.5 and y > -0.5 and y < height - 0.5:
        if want_image:
            q = gbase + int(np.rint(y)) * width + int(np.rint(x))
            for c in range(c0, c1):
                grad[q + c * plane] += gout[go + c * gc]
        return 0.0, 0.0
    if mode != _NEAREST and x >= 1.0 and x < width - 2.0 and y >= 1.0 and y < height - 2.0:
        x0, y0 = int(x), int(y)
        tx, ty = x - x0, y - y0
        wx0, wx1, wx2, wx3 = _cubic(tx)
        wy0, wy1, wy2, wy3 = _cubic(ty)
        dx0, dx1, dx2, dx3 = _cubic_derivative(tx)
        dy0, dy1, dy2, dy3 = _cubic_derivative(ty)
        q = gbase + (y0 - 1) * width + (x0 - 1)
        p = base + (y0 - 1) * sh + (x0 - 1) * sw
        for c in range(c0, c1):
            gv = gout[go + c * gc]
            for t in range(4):
                wy = wy0 if t == 0 else (wy1 if t == 1 else (wy2 if t == 2 else wy3))
                if want_image:
                    rq = q + c * plane + t * width
                    gwy = gv * wy
                    grad[rq] += gwy * wx0
                    grad[rq + 1] += gwy * wx1
                    grad[rq + 2] += gwy * wx2
                    grad[rq + 3] += gwy * wx3
                if want_coords:
                    dwy = dy0 if t == 0 else (dy1 if t == 1 else (dy2 if t == 2 else dy3))
                    rp = p + c * sc + t * sh
                    v0, v1, v2, v3 = img[rp], img[rp + sw], img[rp + 2 * sw], img[rp + 3 * sw]
                    dx += gv * wy * (dx0 * v0 + dx1 * v1 + dx2 * v2 + dx3 * v3)
                    dy += gv * dwy * (wx0 * v0 + wx1 * v1 + wx2 * v2 + wx3 * v3)
        return dx, dy
    return _slow_backward(gout, go, gc, img, base, sc, sh, sw, grad, gbase, c0, c1, height, width, x, y, mode, pad,
                          fill, want_image, want_coords, tap_i, tap_w)
