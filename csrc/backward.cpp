// Backward: gradients of sum(grad_out * out) with respect to the image and the coordinates (grid or matrix).
//
// Determinism without atomics: one task per (image, channel block). A task owns its blocks' planes of the image
// gradient (it zeroes and scatters into them alone) and its own slot of the coordinate-gradient partials; the
// slots are summed afterwards in a fixed order. Results are bitwise repeatable for a given thread count.
#include <algorithm>
#include <vector>

#include "kernels.hpp"
#include "pool.hpp"
#include "taps.hpp"

namespace wk {
namespace {

template <typename T, int MODE, bool CL> struct Backward {
    static constexpr int N = kTaps<MODE>, NN = N * N;
    using A = typename Acc<T, MODE>::type;

    Source<T> s;
    const T *gout;
    int64_t gb, gc, gh, gw;   // strides of grad_out
    T *gimg;
    int64_t ib, ic, ih, iw;   // strides of the image gradient
    bool want_image, want_coords;
    int64_t batch, blocks, per_block;
    int64_t toff[NN], tgoff[NN];
    std::vector<T> *grid_slots;        // (blocks, B, H_out, W_out, 2)
    std::vector<double> *matrix_slots;  // (blocks, B, 9)

    explicit Backward(const wk_call &k)
        : s(k), gout(static_cast<const T *>(k.out)), gb(k.out_stride[0]), gc(k.out_stride[1]), gh(k.out_stride[2]),
          gw(k.out_stride[3]), gimg(static_cast<T *>(k.grad_image)), ib(k.grad_image_stride[0]),
          ic(k.grad_image_stride[1]), ih(k.grad_image_stride[2]), iw(k.grad_image_stride[3]),
          want_image(k.want_image != 0), want_coords(k.want_coords != 0), batch(k.batch) {
        for (int ty = 0; ty < N; ++ty)
            for (int tx = 0; tx < N; ++tx) {
                toff[ty * N + tx] = ty * s.sh + tx * s.sw;
                tgoff[ty * N + tx] = ty * ih + tx * iw;
            }
    }

    // d out / d point of one border point for channels c0 .. c1, scattering into the image gradient.
    void border_point(const T *img, T *gi, const T *fill, const T *g, T x, T y, int64_t c0, int64_t c1, double &dx,
                      double &dy) const {
        if (only_fill(x, y, s.W, s.H, s.pad)) return;  // fill is read: no gradient to the image or the point
        const BorderTaps<T, MODE> t(x, y, s.W, s.H, s.pad);
        T w[NN], wx[NN], wy[NN], fx = T(0), fy = T(0);
        int64_t at[NN], gat[NN];
        int taps = 0;
        for (int ty = 0; ty < N; ++ty)
            for (int tx = 0; tx < N; ++tx) {
                const T dwx = t.ay.w[ty] * t.ax.dw[tx], dwy = t.ay.dw[ty] * t.ax.w[tx];
                if (t.row[ty] < 0 || t.col[tx] < 0) {  // reads fill: out = ... + fill * sum(outside weights)
                    fx += dwx;
                    fy += dwy;
                    continue;
                }
                w[taps] = t.ay.w[ty] * t.ax.w[tx];
                wx[taps] = dwx;
                wy[taps] = dwy;
                at[taps] = t.row[ty] * s.sh + t.col[tx] * s.sw;
                gat[taps++] = t.row[ty] * ih + t.col[tx] * iw;
            }
        for (int64_t c = c0; c < c1; ++c) {
            const T gv = g[c * gc];
            if (want_image)
                for (int q = 0; q < taps; ++q) gi[c * ic + gat[q]] += gv * w[q];
            if (want_coords && MODE != NEAREST) {
                const T *p = img + c * s.sc;
                A sx = A(fx) * A(fill[c]), sy = A(fy) * A(fill[c]);
                if (fx == T(0)) sx = A(0);  // no fill tap: a huge or NaN fill must not leak in
                if (fy == T(0)) sy = A(0);
                for (int q = 0; q < taps; ++q) {
                    sx += A(wx[q]) * A(p[at[q]]);
                    sy += A(wy[q]) * A(p[at[q]]);
                }
                dx += double(gv) * double(sx);
                dy += double(gv) * double(sy);
            }
        }
    }

    void task(int64_t t) const {
        const int64_t bi = t / blocks, block = t - bi * blocks;
        const int64_t c0 = block * per_block, c1 = std::min(s.C, c0 + per_block);
        if (c0 >= c1) return;
        const T *img = s.img + bi * s.sb;
        T *gi = gimg + bi * ib;
        if (want_image)
            for (int64_t c = c0; c < c1; ++c)
                for (int64_t y = 0; y < s.H; ++y)
                    for (int64_t x = 0; x < s.W; ++x) gi[c * ic + y * ih + x * iw] = T(0);
        alignas(64) T px[kTile], py[kTile], w[kTile * NN], wx[kTile * NN], wy[kTile * NN];
        int64_t off[kTile], goff[kTile];
        int32_t interior[kTile], edge[kTile];
        double dxs[kTile], dys[kTile];
        const bool passes = s.H >= N && s.W >= N;
        for (int64_t b = 0; b < batch; ++b) {
            if (s.in_batch > 1 && b != bi) continue;
            const T *fill = s.fill_of(b);
            double acc[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
            // column tiles outer, rows inner, as in the forward: the rows of a tile read and scatter into a
            // compact region of the source
            for (int64_t j0 = 0; j0 < s.out_w; j0 += kColumnTile) {
                const int n = int(std::min<int64_t>(kColumnTile, s.out_w - j0));
                for (int64_t i = 0; i < s.out_h; ++i) {
                    const T *grow = gout + b * gb + i * gh;
                    s.points(b, i, j0, n, px, py);
                    int inner = 0, edges = 0;
                    for (int k = 0; k < n; ++k) {
                        dxs[k] = dys[k] = 0.0;
                        const T x = px[k], y = py[k];
                        if (!(passes && inside<MODE>(x, s.W) && inside<MODE>(y, s.H))) {
                            edge[edges++] = k;
                            continue;
                        }
                        interior[inner++] = k;
                        const Axis<T, MODE> ax = interior_axis<T, MODE>(x), ay = interior_axis<T, MODE>(y);
                        off[k] = ay.first * s.sh + ax.first * s.sw;
                        goff[k] = ay.first * ih + ax.first * iw;
                        for (int ty = 0; ty < N; ++ty)
                            for (int tx = 0; tx < N; ++tx) {
                                w[k * NN + ty * N + tx] = ay.w[ty] * ax.w[tx];
                                wx[k * NN + ty * N + tx] = ay.w[ty] * ax.dw[tx];
                                wy[k * NN + ty * N + tx] = ay.dw[ty] * ax.w[tx];
                            }
                    }
                    const T *g = grow + j0 * gw;
                    if (CL) {  // pixels outer, the block's channels inner (contiguous)
                        for (int q = 0; q < inner; ++q) {
                            const int k = interior[q];
                            interior_channels(img, gi, g + k * gw, off[k], goff[k], k, w, wx, wy, c0, c1, dxs[k],
                                              dys[k]);
                        }
                    } else {  // channel planes outer: each plane's scatter stays in cache
                        for (int64_t c = c0; c < c1; ++c)
                            for (int q = 0; q < inner; ++q) {
                                const int k = interior[q];
                                interior_channels(img, gi, g + k * gw, off[k], goff[k], k, w, wx, wy, c, c + 1,
                                                  dxs[k], dys[k]);
                            }
                    }
                    for (int e = 0; e < edges; ++e) {
                        const int k = edge[e];
                        border_point(img, gi, fill, g + k * gw, px[k], py[k], c0, c1, dxs[k], dys[k]);
                    }
                    if (want_coords) store_coords(b, i, j0, n, block, px, py, dxs, dys, acc);
                }
            }
            if (want_coords && s.use_matrix) std::copy(acc, acc + 9, matrix_slots->data() + (block * batch + b) * 9);
        }
    }

    inline void interior_channels(const T *img, T *gi, const T *g, int64_t off, int64_t goff, int k, const T *w,
                                  const T *wx, const T *wy, int64_t c0, int64_t c1, double &dx, double &dy) const {
        const T *wk = w + k * NN, *wxk = wx + k * NN, *wyk = wy + k * NN;
        for (int64_t c = c0; c < c1; ++c) {
            const T gv = g[c * gc];
            if (want_image) {
                T *q = gi + c * ic + goff;
                for (int t = 0; t < NN; ++t) q[tgoff[t]] += gv * wk[t];
            }
            if (want_coords && MODE != NEAREST) {  // nearest: piecewise constant, no gradient to the point
                const T *p = img + c * s.sc + off;
                A sx = A(0), sy = A(0);
                for (int t = 0; t < NN; ++t) {
                    sx += A(wxk[t]) * A(p[toff[t]]);
                    sy += A(wyk[t]) * A(p[toff[t]]);
                }
                dx += double(gv) * double(sx);
                dy += double(gv) * double(sy);
            }
        }
    }

    // The row tile's d/d point into the grid slot, or its share of d/d matrix into acc:
    // x = (m0 . p) / (m2 . p), y = (m1 . p) / (m2 . p) with p = (j, i, 1).
    void store_coords(int64_t b, int64_t i, int64_t j0, int n, int64_t block, const T *px, const T *py,
                      const double *dxs, const double *dys, double *acc) const {
        if (!s.use_matrix) {
            T *slot = grid_slots->data() + (((block * batch + b) * s.out_h + i) * s.out_w + j0) * 2;
            for (int k = 0; k < n; ++k) {
                slot[2 * k] = T(dxs[k]);
                slot[2 * k + 1] = T(dys[k]);
            }
            return;
        }
        const T *m = s.coords + (s.coord_batch > 1 ? b : 0) * 9;
        const double a20 = m[6], cw = double(m[7]) * double(i) + double(m[8]);
        const double fi = double(i);
        const bool affine = a20 == 0.0 && cw == 1.0;  // affine rows: no divisions
        for (int k = 0; k < n; ++k) {
            const double dx = dxs[k], dy = dys[k];
            if (dx == 0.0 && dy == 0.0) continue;  // also keeps 0 * inf (a point at infinity) out of the sums
            const double j = double(j0 + k), den = affine ? 1.0 : a20 * j + cw;
            const double wt0 = -(dx * double(px[k]) + dy * double(py[k]));
            const double xt = affine ? dx : dx / den, yt = affine ? dy : dy / den, wt = affine ? wt0 : wt0 / den;
            acc[0] += xt * j;
            acc[1] += xt * fi;
            acc[2] += xt;
            acc[3] += yt * j;
            acc[4] += yt * fi;
            acc[5] += yt;
            acc[6] += wt * j;
            acc[7] += wt * fi;
            acc[8] += wt;
        }
    }
};

}  // namespace

template <typename T, int MODE, bool CL> void backward(const wk_call &call) {
    Backward<T, MODE, CL> bw(call);
    const int64_t batch = call.batch, C = call.channels, in_batch = call.in_batch;
    const double work = double(batch) * call.out_h * call.out_w * C * kTaps<MODE> * kTaps<MODE> * 2;
    const int threads = threads_for(call, work);
    // enough channel blocks to give every thread work; channels-last blocks are whole cache lines (16 floats)
    // so that two tasks never write the same line of the image gradient
    const int64_t line = CL ? int64_t(64 / sizeof(T)) : 1;
    int64_t blocks = std::min(C, std::max<int64_t>(1, (2 * threads + in_batch - 1) / in_batch));
    int64_t per_block = (C + blocks - 1) / blocks;
    per_block = (per_block + line - 1) / line * line;
    blocks = (C + per_block - 1) / per_block;
    bw.blocks = blocks;
    bw.per_block = per_block;
    std::vector<T> grid_slots;
    std::vector<double> matrix_slots;
    if (call.want_coords) {
        if (call.use_matrix)
            matrix_slots.assign(size_t(blocks * batch * 9), 0.0);
        else
            grid_slots.resize(size_t(blocks * batch * call.out_h * call.out_w * 2));
    }
    bw.grid_slots = &grid_slots;
    bw.matrix_slots = &matrix_slots;
    parallel_for(in_batch * blocks, threads, [&](int64_t t) { bw.task(t); });
    if (!call.want_coords) return;
    // sum the slots in a fixed order (blocks, then the batch when one set of coordinates served every image)
    T *grad = static_cast<T *>(call.grad_coords);
    const int64_t folded = call.coord_batch;
    if (call.use_matrix) {
        for (int64_t cb = 0; cb < folded; ++cb)
            for (int e = 0; e < 9; ++e) {
                double sum = 0.0;
                for (int64_t b = 0; b < batch; ++b) {
                    if (folded > 1 && b != cb) continue;
                    for (int64_t k = 0; k < blocks; ++k) sum += matrix_slots[size_t((k * batch + b) * 9 + e)];
                }
                grad[cb * 9 + e] = T(sum);
            }
        return;
    }
    const int64_t points = call.out_h * call.out_w * 2;
    const int64_t chunk = 4096;
    parallel_for((folded * points + chunk - 1) / chunk, threads, [&](int64_t t) {
        const int64_t e1 = std::min(folded * points, (t + 1) * chunk);
        for (int64_t e = t * chunk; e < e1; ++e) {
            const int64_t cb = e / points, q = e - cb * points;
            T sum = T(0);
            for (int64_t b = 0; b < batch; ++b) {
                if (folded > 1 && b != cb) continue;
                for (int64_t k = 0; k < blocks; ++k) sum += grid_slots[size_t((k * batch + b) * points + q)];
            }
            grad[e] = sum;
        }
    });
}

#define WK_INSTANTIATE(T, M)                                    \
    template void backward<T, M, false>(const wk_call &); \
    template void backward<T, M, true>(const wk_call &);
WK_INSTANTIATE(float, NEAREST)
WK_INSTANTIATE(float, BILINEAR)
WK_INSTANTIATE(float, BICUBIC)
WK_INSTANTIATE(double, NEAREST)
WK_INSTANTIATE(double, BILINEAR)
WK_INSTANTIATE(double, BICUBIC)

}  // namespace wk
