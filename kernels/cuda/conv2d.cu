// conv2d for the `cupy` backend: im2col / col2im, an implicit-GEMM forward, and both backward
// passes. Layouts as backends/base.py: x (N, C, H, W), w (O, C/G, kh, kw), y (N, O, OH, OW),
// columns (N, C*kh*kw, OH*OW) with the C*kh*kw axis ordered (c, i, j). All arrays C-contiguous.
//
// The three GEMM-shaped kernels share one block-tile engine (tile_gemm): 256 threads, a 64 x 64
// output tile, BK = 16, 4 x 4 outputs per thread. Its loaders compute the im2col index of every
// element on the fly (implicit GEMM: no column buffer for the forward and the weight gradient).
// With Kd = (C/G)*kh*kw, L = OH*OW, Og = O/G, for group g = blockIdx.z:
//   conv2d_fwd        y[n, g*Og + o, l]    = sum_k  w[g*Og + o, k] * im2col(x)[n, g*Kd + k, l]
//                     GEMM M = Og, N = N_img*L, reduction Kd.  grid (ceil(N_img*L/64), ceil(Og/64), G)
//   conv2d_dcols      cols[n, g*Kd + k, l] = sum_o  w[g*Og + o, k] * gy[n, g*Og + o, l]
//                     GEMM M = Kd, N = N_img*L, reduction Og; col2im then gathers it into gx.
//                     grid (ceil(N_img*L/64), ceil(Kd/64), G)
//   conv2d_wgrad      part[s, g*Og + o, k] = sum_{(n,l) in split s} gy[n, g*Og+o, l] * im2col(x)[n, g*Kd+k, l]
//                     GEMM M = Og, N = Kd, reduction N_img*L cut into S splits of `chunk`
//                     (a multiple of 16); the host sums the S partials (deterministic: no atomics).
//                     grid (ceil(Kd/64), ceil(Og/64), G*S)
//   im2col            one thread per column element, grid-stride loop.
//   col2im            the gather form: one thread per image element sums the column entries that
//                     read it (deterministic, no atomics), grid-stride loop.
// Every index is 32-bit: the host refuses tensors with 2^31 or more elements.

struct Geom {
    int N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW;
};

// Kernels take the geometry as 16 int32 scalars, in this order (what the host passes).
#define GEOM_PARAMS int N, int C, int H, int W, int O, int G, int kh, int kw, int sh, int sw, \
                    int ph, int pw, int dh, int dw, int OH, int OW
#define GEOM_INIT const Geom g{N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW}

template <typename T>
__device__ __forceinline__ T im2col_at(const T* __restrict__ x, const Geom& g, int grp, int k,
                                       int col) {
    const int L = g.OH * g.OW, kk = g.kh * g.kw;
    const int n = col / L, l = col - n * L;
    const int oh = l / g.OW, ow = l - oh * g.OW;
    const int c = k / kk, rem = k - c * kk;
    const int i = rem / g.kw, j = rem - i * g.kw;
    const int h = oh * g.sh - g.ph + i * g.dh, w = ow * g.sw - g.pw + j * g.dw;
    if (h < 0 || h >= g.H || w < 0 || w >= g.W) return T(0);
    const int ch = grp * (g.C / g.G) + c;
    return x[((n * g.C + ch) * g.H + h) * g.W + w];
}

// C-tile engine. Op provides a(m, r), b(r, n), store(m, n, v) and the loader orders
// A_M_FAST / B_N_FAST (which index consecutive threads walk, to follow the memory layout).
template <typename T, class Op>
__device__ __forceinline__ void tile_gemm(const Op& op, int M, int N, int r0, int r1) {
    __shared__ T As[16][64 + 1];
    __shared__ T Bs[16][64 + 1];
    const int t = threadIdx.x;
    const int m0 = blockIdx.y * 64, n0 = blockIdx.x * 64;
    const int ty = t / 16, tx = t % 16;
    T acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = T(0);
    for (int rb = r0; rb < r1; rb += 16) {
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            const int e = t + 256 * q;
            int m, r;
            if (Op::A_M_FAST) { m = e % 64; r = e / 64; } else { r = e % 16; m = e / 16; }
            As[r][m] = (m0 + m < M && rb + r < r1) ? op.a(m0 + m, rb + r) : T(0);
            int n;
            if (Op::B_N_FAST) { n = e % 64; r = e / 64; } else { r = e % 16; n = e / 16; }
            Bs[r][n] = (n0 + n < N && rb + r < r1) ? op.b(rb + r, n0 + n) : T(0);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < 16; ++kk) {
            T a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int m = m0 + ty + 16 * i;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int n = n0 + tx + 16 * j;
            if (m < M && n < N) op.store(m, n, acc[i][j]);
        }
    }
}

template <typename T>
struct FwdOp {
    static constexpr bool A_M_FAST = false;   // w rows are contiguous in k
    static constexpr bool B_N_FAST = true;    // im2col columns walk l
    const T* x; const T* w; T* y; Geom g; int grp, Og, Kd, L;
    __device__ T a(int m, int r) const { return w[(grp * Og + m) * Kd + r]; }
    __device__ T b(int r, int n) const { return im2col_at(x, g, grp, r, n); }
    __device__ void store(int m, int n, T v) const {
        const int img = n / L, l = n - img * L;
        y[(img * g.O + grp * Og + m) * L + l] = v;
    }
};

template <typename T>
struct DcolsOp {
    static constexpr bool A_M_FAST = true;    // w^T: consecutive k are contiguous
    static constexpr bool B_N_FAST = true;    // gy walks l
    const T* w; const T* gy; T* cols; Geom g; int grp, Og, Kd, L;
    __device__ T a(int m, int r) const { return w[(grp * Og + r) * Kd + m]; }
    __device__ T b(int r, int n) const {
        const int img = n / L, l = n - img * L;
        return gy[(img * g.O + grp * Og + r) * L + l];
    }
    __device__ void store(int m, int n, T v) const {
        const int img = n / L, l = n - img * L;
        cols[(img * g.G * Kd + grp * Kd + m) * L + l] = v;
    }
};

template <typename T>
struct WgradOp {
    static constexpr bool A_M_FAST = false;   // gy rows walk l
    static constexpr bool B_N_FAST = false;   // im2col^T: consecutive r walk l
    const T* gy; const T* x; T* part; Geom g; int grp, Og, Kd, L, split;
    __device__ T a(int m, int r) const {
        const int img = r / L, l = r - img * L;
        return gy[(img * g.O + grp * Og + m) * L + l];
    }
    __device__ T b(int r, int n) const { return im2col_at(x, g, grp, n, r); }
    __device__ void store(int m, int n, T v) const {
        part[((long long)split * g.O + grp * Og + m) * Kd + n] = v;
    }
};

#define CONV_KERNELS(T, SFX)                                                                    \
extern "C" __global__ void __launch_bounds__(256) conv2d_fwd_##SFX(                             \
        const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y, GEOM_PARAMS) {                   \
    GEOM_INIT;          \
    FwdOp<T> op{x, w, y, g, (int)blockIdx.z, g.O / g.G, (g.C / g.G) * g.kh * g.kw,             \
                g.OH * g.OW};                                                                   \
    tile_gemm<T>(op, op.Og, g.N * op.L, 0, op.Kd);                                              \
}                                                                                               \
extern "C" __global__ void __launch_bounds__(256) conv2d_dcols_##SFX(                           \
        const T* __restrict__ w, const T* __restrict__ gy, T* __restrict__ cols, GEOM_PARAMS) {                   \
    GEOM_INIT;      \
    DcolsOp<T> op{w, gy, cols, g, (int)blockIdx.z, g.O / g.G, (g.C / g.G) * g.kh * g.kw,       \
                  g.OH * g.OW};                                                                 \
    tile_gemm<T>(op, op.Kd, g.N * op.L, 0, op.Og);                                              \
}                                                                                               \
extern "C" __global__ void __launch_bounds__(256) conv2d_wgrad_##SFX(                           \
        const T* __restrict__ gy, const T* __restrict__ x, T* __restrict__ part, GEOM_PARAMS,   \
        int splits, int chunk) {                                                            \
    GEOM_INIT;                                                                \
    const int grp = blockIdx.z / splits, s = blockIdx.z - grp * splits;                         \
    WgradOp<T> op{gy, x, part, g, grp, g.O / g.G, (g.C / g.G) * g.kh * g.kw, g.OH * g.OW, s};  \
    const int R = g.N * op.L, r0 = s * chunk;                                                   \
    tile_gemm<T>(op, op.Og, op.Kd, r0, min(R, r0 + chunk));                                     \
}                                                                                               \
extern "C" __global__ void __launch_bounds__(256) im2col_##SFX(                                 \
        const T* __restrict__ x, T* __restrict__ cols, GEOM_PARAMS) {                   \
    GEOM_INIT;                                \
    const int L = g.OH * g.OW, K = g.C * g.kh * g.kw, total = g.N * K * L;                      \
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) { \
        const int n = e / (K * L), rest = e - n * K * L, k = rest / L, l = rest - k * L;        \
        /* im2col_at with one group: channel index k / (kh*kw) is the absolute channel */       \
        Geom g1 = g; g1.G = 1;                                                                  \
        cols[e] = im2col_at(x, g1, 0, k, n * L + l);                                            \
    }                                                                                           \
}                                                                                               \
extern "C" __global__ void __launch_bounds__(256) col2im_##SFX(                                 \
        const T* __restrict__ cols, T* __restrict__ x, GEOM_PARAMS) {                   \
    GEOM_INIT;                                \
    const int L = g.OH * g.OW, K = g.C * g.kh * g.kw, total = g.N * g.C * g.H * g.W;            \
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) { \
        const int w = e % g.W, h = (e / g.W) % g.H, c = (e / (g.W * g.H)) % g.C;                \
        const int n = e / (g.W * g.H * g.C);                                                    \
        T s = T(0);                                                                             \
        for (int i = 0; i < g.kh; ++i) {                                                        \
            const int hp = h + g.ph - i * g.dh;                                                 \
            if (hp < 0 || hp % g.sh) continue;                                                  \
            const int oh = hp / g.sh;                                                           \
            if (oh >= g.OH) continue;                                                           \
            for (int j = 0; j < g.kw; ++j) {                                                    \
                const int wp = w + g.pw - j * g.dw;                                             \
                if (wp < 0 || wp % g.sw) continue;                                              \
                const int ow = wp / g.sw;                                                       \
                if (ow >= g.OW) continue;                                                       \
                const int k = (c * g.kh + i) * g.kw + j;                                        \
                s += cols[(n * K + k) * L + oh * g.OW + ow];                                    \
            }                                                                                   \
        }                                                                                       \
        x[e] = s;                                                                               \
    }                                                                                           \
}

CONV_KERNELS(float, f32)
CONV_KERNELS(double, f64)
