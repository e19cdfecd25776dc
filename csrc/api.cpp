// The C ABI: checks what a caller could get wrong in a way that would read out of bounds, then picks the
// kernel instantiation (dtype x mode x layout) once per call, outside the hot loops.
#include "kernels.hpp"
#include "pool.hpp"
#include "taps.hpp"

#ifndef WK_BUILD_INFO
#define WK_BUILD_INFO "unknown build"
#endif

namespace {

bool channels_last(const wk_call &k) { return k.image_stride[1] == 1 && k.channels > 1; }

int check(const wk_call &k) {
    if (k.dtype != 0 && k.dtype != 1) return -1;
    if (k.mode < 0 || k.mode > 2 || k.pad < 0 || k.pad > 5) return -2;
    if (k.in_batch <= 0 || k.channels <= 0 || k.height <= 0 || k.width <= 0) return -3;
    if (k.batch <= 0 || k.out_h < 0 || k.out_w < 0) return -4;
    if ((k.in_batch != 1 && k.in_batch != k.batch) || (k.coord_batch != 1 && k.coord_batch != k.batch) ||
        (k.fill_batch != 1 && k.fill_batch != k.batch))
        return -5;
    return 0;
}


template <typename T, int M> void forward_of(const wk_call &k) {
    if (channels_last(k) && k.out_stride[1] == 1)
        wk::forward<T, M, true>(k);
    else
        wk::forward<T, M, false>(k);
}
template <typename T, int M> void backward_of(const wk_call &k) {
    if (channels_last(k))
        wk::backward<T, M, true>(k);
    else
        wk::backward<T, M, false>(k);
}

template <typename T> void forward_typed(const wk_call &k) {
    switch (k.mode) {
        case wk::NEAREST: return forward_of<T, wk::NEAREST>(k);
        case wk::BILINEAR: return forward_of<T, wk::BILINEAR>(k);
        default: return forward_of<T, wk::BICUBIC>(k);
    }
}
template <typename T> void backward_typed(const wk_call &k) {
    switch (k.mode) {
        case wk::NEAREST: return backward_of<T, wk::NEAREST>(k);
        case wk::BILINEAR: return backward_of<T, wk::BILINEAR>(k);
        default: return backward_of<T, wk::BICUBIC>(k);
    }
}

}  // namespace

extern "C" {

int wk_forward(const wk_call *call) {
    if (int err = check(*call)) return err;
    if (call->out_h == 0 || call->out_w == 0) return 0;
    // the NCHW kernels read and write rows with column stride 1, the channels-last ones channels with stride 1
    const bool cl_out = channels_last(*call) && call->out_stride[1] == 1;
    if (!cl_out && (call->out_stride[3] != 1 || call->image_stride[3] != 1)) return -6;
    if (call->dtype == 0)
        forward_typed<float>(*call);
    else
        forward_typed<double>(*call);
    return 0;
}

int wk_backward(const wk_call *call) {
    if (int err = check(*call)) return err;
    if (call->dtype == 0)
        backward_typed<float>(*call);
    else
        backward_typed<double>(*call);
    return 0;
}

int wk_abi_version(void) { return WK_ABI_VERSION; }
const char *wk_build_info(void) { return WK_BUILD_INFO; }
int wk_pool_size(void) { return wk::pool_size(); }

}  // extern "C"
