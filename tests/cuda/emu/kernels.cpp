// Every kernel of kernels/cuda/*.cu, compiled for the CPU emulation (cuda_emu.h).
#include "cuda_emu.h"
#include "sgemm.cu"
#include "conv2d.cu"
#include "pool.cu"

EMU_EXPORT(gemm_tiled16_f32)
EMU_EXPORT(gemm_tiled16_f64)
EMU_EXPORT(sgemm_128x128)
EMU_EXPORT(conv2d_fwd_f32)
EMU_EXPORT(conv2d_fwd_f64)
EMU_EXPORT(conv2d_dcols_f32)
EMU_EXPORT(conv2d_dcols_f64)
EMU_EXPORT(conv2d_wgrad_f32)
EMU_EXPORT(conv2d_wgrad_f64)
EMU_EXPORT(im2col_f32)
EMU_EXPORT(im2col_f64)
EMU_EXPORT(col2im_f32)
EMU_EXPORT(col2im_f64)
EMU_EXPORT(max_pool2d_fwd_f32)
EMU_EXPORT(max_pool2d_fwd_f64)
EMU_EXPORT(max_pool2d_bwd_f32)
EMU_EXPORT(max_pool2d_bwd_f64)
EMU_EXPORT(avg_pool2d_fwd_f32)
EMU_EXPORT(avg_pool2d_fwd_f64)
EMU_EXPORT(avg_pool2d_bwd_f32)
EMU_EXPORT(avg_pool2d_bwd_f64)
