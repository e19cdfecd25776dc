// Entry points of the typed kernels (forward.cpp, backward.cpp); api.cpp picks the instantiation.
#pragma once

#include "warpkit_cpu.h"

namespace wk {

// CL: channels-last image and output (channel stride 1), else NCHW (column stride 1).
template <typename T, int MODE, bool CL> void forward(const wk_call &call);
template <typename T, int MODE, bool CL> void backward(const wk_call &call);

// Rows per parallel task: a few tasks per thread balance the load; small calls stay on the caller's thread,
// where waking the pool (tens of microseconds) would cost more than the work.
int threads_for(const wk_call &call, double work);

}  // namespace wk
