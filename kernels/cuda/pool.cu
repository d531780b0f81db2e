// 2-D pooling for the `cupy` backend, as backends/base.py: x (N, C, H, W) C-contiguous, windows
// kh x kw with stride (sh, sw) and zero-based padding (ph, pw); OH = (H + 2ph - kh) / sh + 1.
//   max_pool2d_fwd   y and idx (int64: h*W + w of the winner in the unpadded plane); padding
//                    reads -inf; ties go to the first in row-major window order; a NaN wins (as
//                    NumPy's argmax). A window of padding only keeps its first position.
//   max_pool2d_bwd   gather form: one thread per x element sums gy over the windows whose idx
//                    names it (deterministic, no atomics).
//   avg_pool2d_fwd   mean over the window, padded zeros counted (divisor kh*kw).
//   avg_pool2d_bwd   gather form: sum over covering windows of gy / (kh*kw).
// All four: one thread per output (fwd) or input (bwd) element, grid-stride loop, 256 threads.

struct PoolGeom {
    int N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW;
};

// Kernels take the geometry as 12 int32 scalars, in this order (what the host passes).
#define POOL_PARAMS int N, int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw, \
                    int OH, int OW
#define POOL_INIT const PoolGeom g{N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW}

// The windows (oh, ow) covering input row h: oh*sh - ph <= h <= oh*sh - ph + kh - 1.
__device__ __forceinline__ void cover(int h, int k, int s, int p, int out, int& lo, int& hi) {
    const int top = h + p;                         // oh*s <= top
    const int low = top - k + 1;                   // oh*s >= low
    lo = low <= 0 ? 0 : (low + s - 1) / s;
    hi = min(top / s, out - 1);
}

#define POOL_KERNELS(T, SFX, NEG_INF)                                                           \
extern "C" __global__ void __launch_bounds__(256) max_pool2d_fwd_##SFX(                         \
        const T* __restrict__ x, T* __restrict__ y, long long* __restrict__ idx, POOL_PARAMS) {                                     \
    POOL_INIT;  \
    const int total = g.N * g.C * g.OH * g.OW;                                                  \
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) { \
        const int ow = e % g.OW, oh = (e / g.OW) % g.OH, nc = e / (g.OW * g.OH);                \
        const T* plane = x + (long long)nc * g.H * g.W;                                         \
        const int h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;                                 \
        T best = NEG_INF;                                                                       \
        long long bi = (long long)h0 * g.W + w0;                                                \
        bool nan = false;                                                                       \
        for (int i = 0; i < g.kh && !nan; ++i) {                                                \
            const int h = h0 + i;                                                               \
            if (h < 0 || h >= g.H) continue;                                                    \
            for (int j = 0; j < g.kw; ++j) {                                                    \
                const int w = w0 + j;                                                           \
                if (w < 0 || w >= g.W) continue;                                                \
                const T v = plane[h * g.W + w];                                                 \
                if (!(v <= best)) {   /* v > best, or v is NaN (which then wins for good) */   \
                    best = v; bi = (long long)h * g.W + w;                                      \
                    if (v != v) { nan = true; break; }                                          \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        y[e] = best;                                                                            \
        idx[e] = bi;                                                                            \
    }                                                                                           \
}                                                                                               \
extern "C" __global__ void __launch_bounds__(256) max_pool2d_bwd_##SFX(                         \
        const T* __restrict__ gy, const long long* __restrict__ idx, T* __restrict__ gx,        \
        POOL_PARAMS) {                                     \
    POOL_INIT;                                                                           \
    const int total = g.N * g.C * g.H * g.W;                                                    \
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) { \
        const int w = e % g.W, h = (e / g.W) % g.H, nc = e / (g.W * g.H);                       \
        int plo, phi, qlo, qhi;                                                                 \
        cover(h, g.kh, g.sh, g.ph, g.OH, plo, phi);                                             \
        cover(w, g.kw, g.sw, g.pw, g.OW, qlo, qhi);                                             \
        const long long me = (long long)h * g.W + w;                                            \
        const long long base = (long long)nc * g.OH * g.OW;                                     \
        T s = T(0);                                                                             \
        for (int p = plo; p <= phi; ++p)                                                        \
            for (int q = qlo; q <= qhi; ++q) {                                                  \
                const long long o = base + p * g.OW + q;                                        \
                if (idx[o] == me) s += gy[o];                                                   \
            }                                                                                   \
        gx[e] = s;                                                                              \
    }                                                                                           \
}                                                                                               \
extern "C" __global__ void __launch_bounds__(256) avg_pool2d_fwd_##SFX(                         \
        const T* __restrict__ x, T* __restrict__ y, POOL_PARAMS) {                                     \
    POOL_INIT;                               \
    const int total = g.N * g.C * g.OH * g.OW;                                                  \
    const T inv = T(1) / T(g.kh * g.kw);                                                        \
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) { \
        const int ow = e % g.OW, oh = (e / g.OW) % g.OH, nc = e / (g.OW * g.OH);                \
        const T* plane = x + (long long)nc * g.H * g.W;                                         \
        const int h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;                                 \
        T s = T(0);                                                                             \
        for (int i = max(0, -h0); i < g.kh && h0 + i < g.H; ++i)                                \
            for (int j = max(0, -w0); j < g.kw && w0 + j < g.W; ++j)                            \
                s += plane[(h0 + i) * g.W + w0 + j];                                            \
        y[e] = s * inv;                                                                         \
    }                                                                                           \
}                                                                                               \
extern "C" __global__ void __launch_bounds__(256) avg_pool2d_bwd_##SFX(                         \
        const T* __restrict__ gy, T* __restrict__ gx, POOL_PARAMS) {                                     \
    POOL_INIT;                             \
    const int total = g.N * g.C * g.H * g.W;                                                    \
    const T inv = T(1) / T(g.kh * g.kw);                                                        \
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) { \
        const int w = e % g.W, h = (e / g.W) % g.H, nc = e / (g.W * g.H);                       \
        int plo, phi, qlo, qhi;                                                                 \
        cover(h, g.kh, g.sh, g.ph, g.OH, plo, phi);                                             \
        cover(w, g.kw, g.sw, g.pw, g.OW, qlo, qhi);                                             \
        const T* plane = gy + (long long)nc * g.OH * g.OW;                                      \
        T s = T(0);                                                                             \
        for (int p = plo; p <= phi; ++p)                                                        \
            for (int q = qlo; q <= qhi; ++q) s += plane[p * g.OW + q];                          \
        gx[e] = s * inv;                                                                        \
    }                                                                                           \
}

POOL_KERNELS(float, f32, -__int_as_float(0x7f800000))
POOL_KERNELS(double, f64, -__longlong_as_double(0x7ff0000000000000LL))
