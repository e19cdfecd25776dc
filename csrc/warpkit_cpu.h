/* The C ABI of warpkit's compiled CPU sampler, loaded from Python with ctypes (warpkit/_native/_abi.py
 * mirrors this struct field by field). No libtorch: tensors arrive as raw pointers, sizes and element strides,
 * so one build serves every torch version.
 *
 * Conventions: image (Bi, C, H, W) with any element strides; coordinates contiguous, either a grid
 * (Bg, H_out, W_out, 2) of source points (x, y) in pixels or (Bm, 3, 3) destination -> source matrices;
 * fill contiguous (Bf, C). A batch of 1 broadcasts against `batch`. dtype 0 is float32, 1 float64, and every
 * floating pointer has that dtype. */
#ifndef WARPKIT_CPU_H
#define WARPKIT_CPU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WK_ABI_VERSION 1

#if defined(_WIN32)
#define WK_EXPORT __declspec(dllexport)
#else
#define WK_EXPORT __attribute__((visibility("default")))
#endif

typedef struct wk_call {
    int32_t dtype;       /* 0 float32, 1 float64 */
    int32_t mode;        /* 0 nearest, 1 bilinear, 2 bicubic */
    int32_t pad;         /* 0 zeros, 1 constant, 2 replicate, 3 reflect, 4 reflect101, 5 wrap */
    int32_t use_matrix;  /* coords are (Bm, 3, 3) matrices instead of a grid */
    int32_t threads;     /* worker threads wanted (torch.get_num_threads()); <= 1 runs on the caller */
    int32_t want_image;  /* backward: compute d/d image */
    int32_t want_coords; /* backward: compute d/d coords */
    int32_t order;       /* forward NCHW loop order: 0 by shape, 1 channel-outer, 2 pixel-outer (tests) */
    int64_t in_batch, channels, height, width;
    int64_t image_stride[4];
    const void *image;
    const void *coords;
    int64_t coord_batch;
    const void *fill;
    int64_t fill_batch;
    int64_t batch, out_h, out_w;
    void *out;               /* forward: the output; backward: the incoming gradient (read only) */
    int64_t out_stride[4];
    void *grad_image;        /* backward: (Bi, C, H, W), every element written */
    int64_t grad_image_stride[4];
    void *grad_coords;       /* backward: like coords, contiguous, every element written */
} wk_call;

/* 0 on success; a negative code for arguments the caller should have rejected. */
WK_EXPORT int wk_forward(const wk_call *call);
WK_EXPORT int wk_backward(const wk_call *call);
WK_EXPORT int wk_abi_version(void);
/* The compiler and flags the library was built with (for `warpkit bench` and the tests). */
WK_EXPORT const char *wk_build_info(void);
/* Worker threads started so far in this process (0 after a fork: the child starts its own). */
WK_EXPORT int wk_pool_size(void);

#ifdef __cplusplus
}
#endif
#endif
