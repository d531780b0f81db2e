#!/usr/bin/env bash
# One prepared run for a lent GPU machine (one H200; CUDA 13, cupy-cuda13x, numpy, pytest,
# hypothesis, Cython and torch preinstalled; no network). In one call, under 5 minutes:
#   1. builds the package's Cython kernels in place (in the background, while the GPU tests run);
#   2. runs the GPU tests: every CUDA kernel and the cublas path against NumPy float64 on fresh
#      random inputs with NaN-poisoned outputs (tests/gpu), device semantics, the nvcc compile
#      checks and the launch-configuration checks;
#   3. python -m benchmarks.gpu_check: sgemm vs cuBLAS (TF32 off) at 1024..8192, conv fwd+bwd vs
#      cuDNN (torch) on the three reference layers + one large layer, the seed MLP and the small
#      CNN one epoch on the GPU vs the CPU (loss compared); its table is printed last.
# Writes under $OUT when set: gpu_tests.xml, gpu_tests.log, gpu_check.json, build.log.
# Usage (device tool): bash benchmarks/gpu_check.sh   (exit status: 0 all passed)
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD"
unset CUPY_TF32                      # cuBLAS in full fp32
OUTDIR="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUTDIR"
start=$(date +%s)
PY=${PYTHON:-python}

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
nvcc --version 2>/dev/null | tail -1
$PY -c "import cupy, numpy, torch; print('cupy', cupy.__version__, '| numpy', numpy.__version__, '| torch', torch.__version__, '| GPUs', cupy.cuda.runtime.getDeviceCount())"

echo "== build (background)"
( $PY setup.py -q build_ext --inplace > "$OUTDIR/build.log" 2>&1; echo $? > "$OUTDIR/build.rc" ) &
build_pid=$!

echo "== GPU tests"
GPU_CHECK_SEED=${GPU_CHECK_SEED:-$(( (RANDOM << 15) | RANDOM ))}
export GPU_CHECK_SEED
echo "random inputs: GPU_CHECK_SEED=$GPU_CHECK_SEED"
HYPOTHESIS_PROFILE=ci timeout 170 $PY -m pytest -q -p no:cacheprovider -rs \
    tests/gpu tests/test_devices.py tests/cuda \
    --junitxml="$OUTDIR/gpu_tests.xml" \
    > "$OUTDIR/gpu_tests.log" 2>&1
tests_rc=$?
tail -25 "$OUTDIR/gpu_tests.log"

wait $build_pid
echo "build exit status: $(cat "$OUTDIR/build.rc") (log: build.log)"

echo "== benchmarks (elapsed $(( $(date +%s) - start )) s)"
timeout 200 $PY -m benchmarks.gpu_check --json "$OUTDIR/gpu_check.json" ${GPU_CHECK_QUICK:+--quick}
bench_rc=$?
echo "tests exit status: $tests_rc, benchmark exit status: $bench_rc, total $(( $(date +%s) - start )) s"
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ]
