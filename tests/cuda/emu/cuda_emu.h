// A CPU emulation of the few CUDA features our kernels use, so that kernels/cuda/*.cu run
// unchanged (compiled as C++20 by g++) in tests/cuda/test_emulated.py without a GPU.
// One block runs at a time: a launch starts blockDim std::threads, which walk the grid's blocks
// together (a barrier between blocks); __syncthreads() is the same std::barrier; __shared__
// variables are function statics (shared by the block's threads; blocks run one after another). What this checks: the index arithmetic, the edge
// guards, the tile loaders and the synchronization pattern -- not speed, not the GPU memory
// model beyond barriers, not occupancy (the nvcc/ptxas checks cover resources).
#pragma once
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

struct dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<>* emu_barrier = nullptr;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __syncthreads() emu_barrier->arrive_and_wait()

struct alignas(16) float4 { float x, y, z, w; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
using std::fmaf;
using std::max;
using std::min;

// Run kernel k on grid x block with its arguments given as an array of pointers to values (as
// cudaLaunchKernel takes them).
template <typename... A, std::size_t... I>
void emu_call(void (*k)(A...), void** args, std::index_sequence<I...>) {
    k(*static_cast<std::remove_reference_t<A>*>(args[I])...);
}

template <typename... A>
void emu_launch(void (*k)(A...), dim3 grid, dim3 block, void** args) {
    gridDim = grid;
    blockDim = block;
    const unsigned n = block.x * block.y * block.z;
    std::barrier<> bar(n);
    emu_barrier = &bar;
    std::vector<std::thread> threads;
    threads.reserve(n);
    for (unsigned t = 0; t < n; ++t)
        threads.emplace_back([=, &bar] {
            threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
            for (unsigned bz = 0; bz < grid.z; ++bz)
                for (unsigned by = 0; by < grid.y; ++by)
                    for (unsigned bx = 0; bx < grid.x; ++bx) {
                        blockIdx = {bx, by, bz};
                        emu_call(k, args, std::index_sequence_for<A...>{});
                        bar.arrive_and_wait();   // the block is done: shared memory is free
                    }
        });
    for (auto& th : threads) th.join();
}

#define EMU_EXPORT(name)                                                                       \
    extern "C" void emu_##name(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, \
                               unsigned bz, void** args) {                                     \
        emu_launch(name, dim3{gx, gy, gz}, dim3{bx, by, bz}, args);                            \
    }
