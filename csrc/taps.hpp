// Taps: where one output pixel reads the image and with which weights. Shared by forward.cpp and
// backward.cpp; semantics are those of warpkit's reference sampler (warpkit/_reference.py):
//  - coordinates clamped to +-2**24 before taps are formed (gradient passes only inside the clamp);
//  - nearest rounds half to even; bilinear taps floor, floor+1; bicubic floor-1 .. floor+2, A = -0.75;
//  - every tap is mapped into the image on its own, like cv2.borderInterpolate (one rule: border());
//  - with zeros/constant a tap outside reads fill; a non-finite point reads fill in every padding.
#pragma once

#include <cmath>
#include <cstdint>

#include "warpkit_cpu.h"

namespace wk {

enum Mode : int { NEAREST = 0, BILINEAR = 1, BICUBIC = 2 };
enum Pad : int { ZEROS = 0, CONSTANT = 1, REPLICATE = 2, REFLECT = 3, REFLECT101 = 4, WRAP = 5 };

constexpr double kLimit = 16777216.0;  // 2**24
constexpr double kCubicA = -0.75;

// Taps per axis of a mode, as a compile-time constant: the hot loops unroll over N x N taps.
template <int MODE> constexpr int kTaps = MODE == NEAREST ? 1 : (MODE == BILINEAR ? 2 : 4);
// First tap relative to floor (bicubic) or the rounded point (nearest).
template <int MODE> constexpr int kFirst = MODE == BICUBIC ? -1 : 0;

// Accumulator of a weighted sum. Bicubic weights are partly negative and sum to 1.375 in absolute value, so
// float32 sums of pixels near float32's limit (+-3e38) could overflow on the way to a finite result: they are
// summed in double. Nearest and bilinear weights are convex, so partial sums never exceed the largest pixel.
template <typename T, int MODE> struct Acc { using type = T; };
template <> struct Acc<float, BICUBIC> { using type = double; };

// Tap index k mapped into [0, n) like cv2.borderInterpolate; -1 outside with zeros/constant.
inline int64_t border(int64_t k, int64_t n, int pad) {
    if (k >= 0 && k < n) return k;
    switch (pad) {
        case REPLICATE: return k < 0 ? 0 : n - 1;
        case WRAP: { int64_t m = k % n; return m < 0 ? m + n : m; }
        case REFLECT: {
            int64_t p = 2 * n, m = k % p;
            if (m < 0) m += p;
            return m < n ? m : p - 1 - m;
        }
        case REFLECT101: {
            if (n == 1) return 0;
            int64_t p = 2 * n - 2, m = k % p;
            if (m < 0) m += p;
            return m < n ? m : p - m;
        }
        default: return -1;  // zeros, constant
    }
}

// Cubic convolution weights of taps floor-1 .. floor+2 at fraction t, and their derivatives d/dt;
// the same expressions as the reference, in the image dtype.
template <typename T> inline void cubic(T t, T w[4]) {
    const T a = T(kCubicA), s = t + T(1), u = T(1) - t;
    w[0] = ((a * s - T(5) * a) * s + T(8) * a) * s - T(4) * a;
    w[1] = ((a + T(2)) * t - (a + T(3))) * t * t + T(1);
    w[2] = ((a + T(2)) * u - (a + T(3))) * u * u + T(1);
    w[3] = T(1) - w[0] - w[1] - w[2];
}
template <typename T> inline void cubic_derivative(T t, T d[4]) {
    const T a = T(kCubicA), s = t + T(1), u = T(1) - t;
    d[0] = (T(3) * a * s - T(10) * a) * s + T(8) * a;
    d[1] = (T(3) * (a + T(2)) * t - T(2) * (a + T(3))) * t;
    d[2] = -(T(3) * (a + T(2)) * u - T(2) * (a + T(3))) * u;
    d[3] = -(d[0] + d[1] + d[2]);
}

// One axis of a point: the first tap (before border mapping), weights and d(weight)/d(coord).
template <typename T, int MODE> struct Axis {
    int64_t first;
    T w[kTaps<MODE>];
    T dw[kTaps<MODE>];
};

// The axis of a finite coordinate. `mask` is 0 where the clamp to +-2**24 cut (no gradient there).
template <typename T, int MODE> inline Axis<T, MODE> axis(T coord) {
    Axis<T, MODE> a;
    const T mask = std::fabs(coord) <= T(kLimit) ? T(1) : T(0);
    const T c = coord < T(-kLimit) ? T(-kLimit) : (coord > T(kLimit) ? T(kLimit) : coord);
    if (MODE == NEAREST) {
        a.first = int64_t(std::nearbyint(c));  // half to even, as torch.round and cv2
        a.w[0] = T(1);
        a.dw[0] = T(0);
        return a;
    }
    const T base = std::floor(c), t = c - base;  // exact: both in one binade below 2**24
    a.first = int64_t(base) + kFirst<MODE>;
    if (MODE == BILINEAR) {
        a.w[0] = T(1) - t;
        a.w[1] = t;
        a.dw[0] = -mask;
        a.dw[1] = mask;
    } else {
        cubic(t, a.w);
        cubic_derivative(t, a.dw);
        for (int p = 0; p < kTaps<MODE>; ++p) a.dw[p] *= mask;
    }
    return a;
}

// The axis of a coordinate known to be interior (taps inside, so far below the clamp): no clamp, no mask.
// std::fmin/fmax are library calls here (NaN rules); skipping them on the hot path is part of the interior pass.
template <typename T, int MODE> inline Axis<T, MODE> interior_axis(T c) {
    Axis<T, MODE> a;
    if (MODE == NEAREST) {
        a.first = int64_t(std::nearbyint(c));
        a.w[0] = T(1);
        a.dw[0] = T(0);
        return a;
    }
    const T base = std::floor(c), t = c - base;
    a.first = int64_t(base) + kFirst<MODE>;
    if (MODE == BILINEAR) {
        a.w[0] = T(1) - t;
        a.w[1] = t;
        a.dw[0] = T(-1);
        a.dw[1] = T(1);
    } else {
        cubic(t, a.w);
        cubic_derivative(t, a.dw);
    }
    return a;
}

// Whether every tap of a point is inside an axis of n pixels, tested in floating point so that NaN fails and
// no huge value is converted to an integer: rint(x) in [0, n) for nearest, floor(x)-f .. floor(x)+N-1-f inside.
template <int MODE, typename T> inline bool inside(T x, int64_t n) {
    if (MODE == NEAREST) return x >= T(-0.5) && x < T(n) - T(0.5);
    if (MODE == BILINEAR) return x >= T(0) && x < T(n - 1);
    return x >= T(1) && x < T(n - 2);
}

// Whether a point reads nothing but fill: not finite, or with zeros/constant every tap of any mode outside.
template <typename T> inline bool only_fill(T x, T y, int64_t width, int64_t height, int pad) {
    if (!(std::isfinite(x) && std::isfinite(y))) return true;
    if (pad != ZEROS && pad != CONSTANT) return false;
    return x < T(-2) || x >= T(width + 1) || y < T(-2) || y >= T(height + 1);
}

// What a call reads: the image, its coordinates and its fill, typed. Built once per call from wk_call.
template <typename T> struct Source {
    const T *img;
    int64_t in_batch, C, H, W, sb, sc, sh, sw;
    const T *coords;
    bool use_matrix;
    int64_t coord_batch, out_h, out_w;
    const T *fill;
    int64_t fill_batch;
    int pad;

    explicit Source(const wk_call &k)
        : img(static_cast<const T *>(k.image)), in_batch(k.in_batch), C(k.channels), H(k.height), W(k.width),
          sb(k.image_stride[0]), sc(k.image_stride[1]), sh(k.image_stride[2]), sw(k.image_stride[3]),
          coords(static_cast<const T *>(k.coords)), use_matrix(k.use_matrix != 0), coord_batch(k.coord_batch),
          out_h(k.out_h), out_w(k.out_w), fill(static_cast<const T *>(k.fill)), fill_batch(k.fill_batch),
          pad(k.pad) {}

    const T *image_of(int64_t b) const { return img + (in_batch > 1 ? b : 0) * sb; }
    const T *fill_of(int64_t b) const { return fill + (fill_batch > 1 ? b : 0) * C; }

    // Source points of columns j0 .. j0+n of output row i of batch b. Matrix points are computed in double and
    // rounded to T, as the reference holds its grid; an affine row needs no division.
    void points(int64_t b, int64_t i, int64_t j0, int64_t n, T *px, T *py) const {
        const int64_t cb = coord_batch > 1 ? b : 0;
        if (!use_matrix) {
            const T *g = coords + ((cb * out_h + i) * out_w + j0) * 2;
            for (int64_t k = 0; k < n; ++k) {
                px[k] = g[2 * k];
                py[k] = g[2 * k + 1];
            }
            return;
        }
        const T *m = coords + cb * 9;
        const double a00 = m[0], a10 = m[3], a20 = m[6];
        const double cx = double(m[1]) * double(i) + double(m[2]);
        const double cy = double(m[4]) * double(i) + double(m[5]);
        const double cw = double(m[7]) * double(i) + double(m[8]);
        if (a20 == 0.0 && cw == 1.0) {
            for (int64_t k = 0; k < n; ++k) {
                const double j = double(j0 + k);
                px[k] = T(a00 * j + cx);
                py[k] = T(a10 * j + cy);
            }
            return;
        }
        for (int64_t k = 0; k < n; ++k) {
            const double j = double(j0 + k), den = a20 * j + cw;
            px[k] = T((a00 * j + cx) / den);
            py[k] = T((a10 * j + cy) / den);
        }
    }
};

// A point whose taps may leave the image, mapped tap by tap: the slow path of forward and backward.
// idx -1 marks a tap outside (zeros/constant); its weight counts towards fill.
template <typename T, int MODE> struct BorderTaps {
    static constexpr int N = kTaps<MODE>;
    Axis<T, MODE> ax, ay;
    int64_t col[N], row[N];

    BorderTaps(T x, T y, int64_t width, int64_t height, int pad) : ax(axis<T, MODE>(x)), ay(axis<T, MODE>(y)) {
        for (int p = 0; p < N; ++p) {
            col[p] = border(ax.first + p, width, pad);
            row[p] = border(ay.first + p, height, pad);
        }
    }
};

constexpr int kTile = 256;        // the largest row pass (the backward's)
constexpr int kColumnTile = 64;   // the forward's row pass: see forward.cpp

}  // namespace wk
