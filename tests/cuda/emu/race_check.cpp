// Race check of the CUDA kernels' synchronization under the CPU emulation, built with
// -fsanitize=thread by tests/cuda/test_emulated.py: a missing or misplaced __syncthreads()
// (e.g. in sgemm_128x128's double buffering) is a data race on the emulated shared memory,
// which ThreadSanitizer reports (and the program then exits non-zero). The kernels that use
// __syncthreads() are here; the pooling and im2col/col2im kernels have none.
#include <cstdio>
#include <random>
#include "cuda_emu.h"
#include "sgemm.cu"
#include "conv2d.cu"

EMU_EXPORT(sgemm_128x128)
EMU_EXPORT(gemm_tiled16_f64)
EMU_EXPORT(conv2d_fwd_f32)
EMU_EXPORT(conv2d_dcols_f32)
EMU_EXPORT(conv2d_wgrad_f32)

template <typename T>
static std::vector<T> rnd(size_t n, unsigned seed) {
    std::mt19937 g(seed);
    std::normal_distribution<double> d;
    std::vector<T> v(n);
    for (auto& x : v) x = T(d(g));
    return v;
}

template <typename... V>
static void run(void (*f)(unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void**),
                dim3 grid, dim3 block, V*... vals) {
    void* args[] = {static_cast<void*>(vals)...};
    f(grid.x, grid.y, grid.z, block.x, block.y, block.z, args);
}

int main() {
    // sgemm_128x128: 2 x 1 tiles, K = 20 (three k-steps, the last partial), both layouts of
    // each operand and both load paths (float4 for the plain layout, scalar for the transposed
    // one), accumulate on.
    const int M = 130, N = 100, K = 20;
    auto A = rnd<float>(M * K + 64, 1), B = rnd<float>(K * N + 64, 2);
    std::vector<float> C(M * N);
    for (int ta = 0; ta < 2; ++ta) {
        const float *a = A.data(), *b = B.data();
        float* c = C.data();
        int tb = ta, vec = 1 - ta;
        int m = M, n = N, k = K, lda = ta ? M : K, ldb = tb ? K : N, ldc = N;
        int one = 1, acc = 1;
        long long s0 = 0;
        run(emu_sgemm_128x128, {1, 2, 1}, {256, 1, 1}, &a, &b, &c, &m, &n, &k, &lda, &ldb,
            &ldc, &ta, &tb, &acc, &one, &s0, &one, &s0, &s0, &vec);
    }
    // gemm_tiled16_f64
    {
        auto a64 = rnd<double>(20 * 20, 3), b64 = rnd<double>(20 * 30, 4);
        std::vector<double> c64(20 * 30);
        const double *a = a64.data(), *b = b64.data();
        double* c = c64.data();
        int m = 20, n = 30, k = 20, lda = 20, ldb = 30, ldc = 30, f = 0, one = 1;
        long long s0 = 0;
        run(emu_gemm_tiled16_f64, {2, 2, 1}, {16, 16, 1}, &a, &b, &c, &m, &n, &k, &lda, &ldb,
            &ldc, &f, &f, &f, &one, &s0, &one, &s0, &s0);
    }
    // conv2d: N=2, C=4, 9x8, O=6, G=2, 3x3, pad 1 -> OH=9, OW=8; fwd, dcols, wgrad (2 splits)
    {
        int g[16] = {2, 4, 9, 8, 6, 2, 3, 3, 1, 1, 1, 1, 1, 1, 9, 8};
        auto x = rnd<float>(2 * 4 * 9 * 8, 5), w = rnd<float>(6 * 2 * 9, 6);
        auto gy = rnd<float>(2 * 6 * 72, 7);
        std::vector<float> y(2 * 6 * 72), cols(2 * 4 * 9 * 72), part(2 * 6 * 18);
        const float *px = x.data(), *pw = w.data(), *pgy = gy.data();
        float *py = y.data(), *pc = cols.data(), *pp = part.data();
        int splits = 2, chunk = 80;
        run(emu_conv2d_fwd_f32, {3, 1, 2}, {256, 1, 1}, &px, &pw, &py, &g[0], &g[1], &g[2], &g[3],
            &g[4], &g[5], &g[6], &g[7], &g[8], &g[9], &g[10], &g[11], &g[12], &g[13], &g[14],
            &g[15]);
        run(emu_conv2d_dcols_f32, {3, 1, 2}, {256, 1, 1}, &pw, &pgy, &pc, &g[0], &g[1], &g[2],
            &g[3], &g[4], &g[5], &g[6], &g[7], &g[8], &g[9], &g[10], &g[11], &g[12], &g[13],
            &g[14], &g[15]);
        run(emu_conv2d_wgrad_f32, {1, 1, 4}, {256, 1, 1}, &pgy, &px, &pp, &g[0], &g[1], &g[2],
            &g[3], &g[4], &g[5], &g[6], &g[7], &g[8], &g[9], &g[10], &g[11], &g[12], &g[13],
            &g[14], &g[15], &splits, &chunk);
    }
    std::puts("race check done");
    return 0;
}
