// GEMM kernels for the `cupy` backend: C = op(A) @ op(B) (+ C when accumulate), row-major.
//
// op(A) is M x K, op(B) is K x N, C is M x N with leading dimension ldc. A is stored M x K
// (lda >= K) or, with trans_a, K x M (lda >= M); B is stored K x N (ldb >= N) or, with trans_b,
// N x K (ldb >= K). Transposes cost nothing: the tile loaders read either layout and always
// store the tile k-major in shared memory.
//
// Kernels (launch configuration: tinygrad_lite/backends/cuda_launch.py, which the host tests
// check against the preconditions written here):
//   gemm_tiled16_f32 / _f64  the readable baseline: 16 x 16 threads, one output each,
//                            16 x 16 shared tiles. grid (ceil(N/16), ceil(M/16), batch).
//   sgemm_128x128            256 threads, 128 x 128 block tile, BK = 8, 8 x 8 outputs per
//                            thread in registers, float4 global loads, double-buffered shared
//                            memory (2 x 2 x 8 x 128 floats = 16 KiB static).
//                            grid (ceil(N/128), ceil(M/128), batch).
//                            `vec` = 1 lets the loaders use float4; the host sets it only when
//                            A, B are 16-byte aligned and lda, ldb, a_stride, b_stride are
//                            multiples of 4 (then every in-range group of 4 is aligned). Edge tiles (M, N, K not
//                            multiples of the tile) fall back to guarded scalar loads and
//                            guarded stores, so every size >= 1 is valid.
// Batching: blockIdx.z = z; A is offset by (z % a_mod) * a_stride, B by (z % b_mod) * b_stride,
// C by z * c_stride (a_mod = 1 broadcasts one A over the batch; conv uses a_mod = groups).
// Every index is 32-bit: the host refuses operands with 2^31 or more elements.

template <typename T>
__device__ __forceinline__ T load_a(const T* A, int lda, int trans, int M, int K, int m, int k) {
    if (m >= M || k >= K) return T(0);
    return trans ? A[(long long)k * lda + m] : A[(long long)m * lda + k];
}

template <typename T>
__device__ __forceinline__ T load_b(const T* B, int ldb, int trans, int K, int N, int k, int n) {
    if (k >= K || n >= N) return T(0);
    return trans ? B[(long long)n * ldb + k] : B[(long long)k * ldb + n];
}

template <typename T>
__device__ __forceinline__ void gemm_tiled16(
        const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C,
        int M, int N, int K, int lda, int ldb, int ldc, int trans_a, int trans_b,
        int accumulate, int a_mod, long long a_stride, int b_mod, long long b_stride,
        long long c_stride) {
    __shared__ T As[16][17];   // [k][m], +1 column: no bank conflicts on the transposed store
    __shared__ T Bs[16][17];   // [k][n]
    const int z = blockIdx.z;
    A += (z % a_mod) * a_stride;
    B += (z % b_mod) * b_stride;
    C += z * c_stride;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row = blockIdx.y * 16 + ty, col = blockIdx.x * 16 + tx;
    T acc = T(0);
    for (int k0 = 0; k0 < K; k0 += 16) {
        // thread (ty, tx) loads A(m0 + ty, k0 + tx) and B(k0 + ty, n0 + tx)
        As[tx][ty] = load_a(A, lda, trans_a, M, K, blockIdx.y * 16 + ty, k0 + tx);
        Bs[ty][tx] = load_b(B, ldb, trans_b, K, N, k0 + ty, col);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < 16; ++kk) acc += As[kk][ty] * Bs[kk][tx];
        __syncthreads();
    }
    if (row < M && col < N) {
        T* c = C + (long long)row * ldc + col;
        *c = accumulate ? *c + acc : acc;
    }
}

extern "C" __global__ void __launch_bounds__(256) gemm_tiled16_f32(
        const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
        int M, int N, int K, int lda, int ldb, int ldc, int trans_a, int trans_b,
        int accumulate, int a_mod, long long a_stride, int b_mod, long long b_stride,
        long long c_stride) {
    gemm_tiled16<float>(A, B, C, M, N, K, lda, ldb, ldc, trans_a, trans_b, accumulate,
                        a_mod, a_stride, b_mod, b_stride, c_stride);
}

extern "C" __global__ void __launch_bounds__(256) gemm_tiled16_f64(
        const double* __restrict__ A, const double* __restrict__ B, double* __restrict__ C,
        int M, int N, int K, int lda, int ldb, int ldc, int trans_a, int trans_b,
        int accumulate, int a_mod, long long a_stride, int b_mod, long long b_stride,
        long long c_stride) {
    gemm_tiled16<double>(A, B, C, M, N, K, lda, ldb, ldc, trans_a, trans_b, accumulate,
                         a_mod, a_stride, b_mod, b_stride, c_stride);
}

// ---- the register-tiled fp32 kernel ------------------------------------------------------

#define BM 128
#define BN 128
#define BK 8
#define TM 8
#define TN 8

// Four consecutive elements of a row-major matrix (rows x cols, leading dimension ld) starting
// at (r, c): one float4 when vec and all four are in range, else guarded scalars (zero outside).
__device__ __forceinline__ float4 load4(const float* __restrict__ P, int ld, int rows, int cols,
                                        int r, int c, int vec) {
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (r >= rows) return v;
    const float* p = P + (long long)r * ld + c;
    if (vec && c + 3 < cols) return *reinterpret_cast<const float4*>(p);
    if (c < cols) v.x = p[0];
    if (c + 1 < cols) v.y = p[1];
    if (c + 2 < cols) v.z = p[2];
    if (c + 3 < cols) v.w = p[3];
    return v;
}

// Each of the 256 threads fetches 4 of the 128 x 8 A tile and 4 of the 8 x 128 B tile.
// A not transposed (stored M x K): thread t reads row t / 2, k columns (t % 2) * 4 .. + 3.
// A transposed (stored K x M): thread t reads k row t / 32, m columns (t % 32) * 4 .. + 3.
// Same for B with the roles of the two layouts swapped.
__device__ __forceinline__ float4 fetch_a(const float* A, int lda, int trans, int M, int K,
                                          int m0, int k0, int t, int vec) {
    return trans ? load4(A, lda, K, M, k0 + t / 32, m0 + (t % 32) * 4, vec)
                 : load4(A, lda, M, K, m0 + t / 2, k0 + (t % 2) * 4, vec);
}

__device__ __forceinline__ float4 fetch_b(const float* B, int ldb, int trans, int K, int N,
                                          int k0, int n0, int t, int vec) {
    return trans ? load4(B, ldb, N, K, n0 + t / 2, k0 + (t % 2) * 4, vec)
                 : load4(B, ldb, K, N, k0 + t / 32, n0 + (t % 32) * 4, vec);
}

// Store the fetched values into the k-major shared tiles As[k][m], Bs[k][n].
__device__ __forceinline__ void store_a(float (*As)[BM], float4 v, int trans, int t) {
    if (trans) {
        *reinterpret_cast<float4*>(&As[t / 32][(t % 32) * 4]) = v;
    } else {
        const int m = t / 2, k = (t % 2) * 4;
        As[k][m] = v.x; As[k + 1][m] = v.y; As[k + 2][m] = v.z; As[k + 3][m] = v.w;
    }
}

__device__ __forceinline__ void store_b(float (*Bs)[BN], float4 v, int trans, int t) {
    if (trans) {
        const int n = t / 2, k = (t % 2) * 4;
        Bs[k][n] = v.x; Bs[k + 1][n] = v.y; Bs[k + 2][n] = v.z; Bs[k + 3][n] = v.w;
    } else {
        *reinterpret_cast<float4*>(&Bs[t / 32][(t % 32) * 4]) = v;
    }
}

extern "C" __global__ void __launch_bounds__(256, 2) sgemm_128x128(
        const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
        int M, int N, int K, int lda, int ldb, int ldc, int trans_a, int trans_b,
        int accumulate, int a_mod, long long a_stride, int b_mod, long long b_stride,
        long long c_stride, int vec) {
    __shared__ __align__(16) float As[2][BK][BM];
    __shared__ __align__(16) float Bs[2][BK][BN];
    const int z = blockIdx.z;
    A += (z % a_mod) * a_stride;
    B += (z % b_mod) * b_stride;
    C += z * c_stride;
    const int t = threadIdx.x;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    // Thread (ty, tx) of a 16 x 16 grid owns rows ty*4 + {0..3, 64..67} and columns
    // tx*4 + {0..3, 64..67}: two float4 reads per operand per k step, conflict-free.
    const int ty = t / 16, tx = t % 16;

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

    float4 ra = fetch_a(A, lda, trans_a, M, K, m0, 0, t, vec);
    float4 rb = fetch_b(B, ldb, trans_b, K, N, 0, n0, t, vec);
    store_a(As[0], ra, trans_a, t);
    store_b(Bs[0], rb, trans_b, t);
    __syncthreads();

    int buf = 0;
    for (int k0 = 0; k0 < K; k0 += BK) {
        const bool more = k0 + BK < K;
        if (more) {   // fetch the next tile into registers while this one is multiplied
            ra = fetch_a(A, lda, trans_a, M, K, m0, k0 + BK, t, vec);
            rb = fetch_b(B, ldb, trans_b, K, N, k0 + BK, n0, t, vec);
        }
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float a[TM], b[TN];
            const float4 a0 = *reinterpret_cast<const float4*>(&As[buf][kk][ty * 4]);
            const float4 a1 = *reinterpret_cast<const float4*>(&As[buf][kk][ty * 4 + 64]);
            const float4 b0 = *reinterpret_cast<const float4*>(&Bs[buf][kk][tx * 4]);
            const float4 b1 = *reinterpret_cast<const float4*>(&Bs[buf][kk][tx * 4 + 64]);
            a[0] = a0.x; a[1] = a0.y; a[2] = a0.z; a[3] = a0.w;
            a[4] = a1.x; a[5] = a1.y; a[6] = a1.z; a[7] = a1.w;
            b[0] = b0.x; b[1] = b0.y; b[2] = b0.z; b[3] = b0.w;
            b[4] = b1.x; b[5] = b1.y; b[6] = b1.z; b[7] = b1.w;
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) {   // the other buffer is free: everyone finished reading it last step
            store_a(As[buf ^ 1], ra, trans_a, t);
            store_b(Bs[buf ^ 1], rb, trans_b, t);
            __syncthreads();
            buf ^= 1;
        }
    }

#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + ty * 4 + (i & 3) + (i >> 2) * 64;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int n = n0 + tx * 4 + (j & 3) + (j >> 2) * 64;
            if (n < N) {
                float* c = C + (long long)m * ldc + n;
                *c = accumulate ? *c + acc[i][j] : acc[i][j];
            }
        }
    }
}
