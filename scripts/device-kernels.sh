#!/usr/bin/env bash
# On the GPU machine (no Qt, no Eigen): build the engine (core + kernels + Qt-free CLI + bench),
# run the GPU self-test, the PyTorch anchors and attnscope-bench, logs to $OUT.
#   device run, carry ["third_party", ".device"]:  bash scripts/device-kernels.sh [all|selftest|bench]
# Needs third_party/eigen (cp -r /usr/include/eigen3 third_party/eigen) and
# .device/anchors/torch_anchors.py (a copy of ../shared/bench/torch_anchors.py) in the tree.
# Environment: SELFTEST_FLAGS (default --quick), BENCH_FLAGS, ANCHORS_JSONL, ANCHOR_TIMEOUT, OUT,
# PREBUILT=1 (use attnscope-cli and attnscope-bench already in $BUILD, e.g. built on the development
# machine with `cmake --preset engine` and carried: saves the GPU machine's build minutes),
# MMA_BENCH_FLAGS (when set, attnscope-bench also runs on the mma.sync kernels with these flags).
# On an sm_90 device the wgmma kernels run by default; the self-test also checks the mma.sync
# kernels (ATTNSCOPE_FLEX_PATH=mma).
set -uo pipefail
MODE=${1:-all}
OUT=${OUT:-$PWD/out/device}
mkdir -p "$OUT"
JOBS=$(nproc)
EIGEN=${ATTNSCOPE_EIGEN_DIR:-$PWD/third_party/eigen}
ANCHORS_PY=${ANCHORS_PY:-$PWD/.device/anchors/torch_anchors.py}
BUILD=${BUILD:-build/engine}
SELFTEST_FLAGS=${SELFTEST_FLAGS---quick}  # set to "" for every shape
ANCHOR_TIMEOUT=${ANCHOR_TIMEOUT:-240}
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
t0=$(date +%s)
if [[ ${PREBUILT:-0} == 1 && -x $BUILD/app/attnscope-cli && -x $BUILD/bench/attnscope-bench ]]; then
    echo "build: prebuilt binaries in $BUILD"
else
    # The `engine` preset's settings, with the carried Eigen.
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNSCOPE_GUI=OFF -DATTNSCOPE_TESTS=OFF \
          -DATTNSCOPE_CUDA=ON -DATTNSCOPE_EIGEN_DIR="$EIGEN" >"$OUT/configure.log" 2>&1 \
        || { tail -30 "$OUT/configure.log"; exit 1; }
    cmake --build "$BUILD" --target attnscope-cli attnscope-bench -j "$JOBS" >"$OUT/build.log" 2>&1 \
        || { grep -E "error|FAILED|undefined" "$OUT/build.log" | head -40; exit 1; }
    echo "build: $(( $(date +%s) - t0 )) s"
fi

status=0
if [[ $MODE == all || $MODE == selftest ]]; then
    "$BUILD/app/attnscope-cli" selftest --gpu $SELFTEST_FLAGS >"$OUT/selftest.log" 2>&1 || status=1
    grep -E "^FAIL|error" "$OUT/selftest.log" | head -40
    ATTNSCOPE_FLEX_PATH=mma "$BUILD/app/attnscope-cli" selftest --gpu $SELFTEST_FLAGS >"$OUT/selftest-mma.log" 2>&1 \
        || status=1
    grep -E "^FAIL|error" "$OUT/selftest-mma.log" | head -20 | sed 's/^/mma.sync: /'
fi
if [[ $MODE == all || $MODE == bench ]]; then
    # Anchors from an earlier run on the same machine kind can be reused (ANCHORS_JSONL=file).
    [[ -n ${ANCHORS_JSONL:-} && -s ${ANCHORS_JSONL:-} ]] && cp "$ANCHORS_JSONL" "$OUT/anchors.jsonl"
    if [[ -f $ANCHORS_PY && ! -s $OUT/anchors.jsonl ]]; then
        # Flex variants for the first shape (each needs a torch.compile); cuDNN/FA2 for all shapes.
        timeout "$ANCHOR_TIMEOUT" python3 "$ANCHORS_PY" --shape 2,16,8192,128 >"$OUT/anchors.jsonl" 2>"$OUT/anchors.err"
        timeout 120 python3 "$ANCHORS_PY" --no-flex --shape 1,16,32768,128 --shape 2,32,8192,64 --shape 8,16,1024,128 \
            >>"$OUT/anchors.jsonl" 2>>"$OUT/anchors.err"
    fi
    "$BUILD/bench/attnscope-bench" --anchors "$OUT/anchors.jsonl" --json "$OUT/bench.json" ${BENCH_FLAGS:-} \
        >"$OUT/bench.log" 2>&1 || status=1
    if [[ -n ${MMA_BENCH_FLAGS:-} ]]; then
        ATTNSCOPE_FLEX_PATH=mma "$BUILD/bench/attnscope-bench" --anchors "$OUT/anchors.jsonl" \
            --json "$OUT/bench-mma.json" $MMA_BENCH_FLAGS >"$OUT/bench-mma.log" 2>&1 || status=1
    fi
fi

echo "---- summary ($(( $(date +%s) - t0 )) s) ----"
[[ -f $OUT/selftest.log ]] && { grep -c "^PASS" "$OUT/selftest.log" | sed 's/^/selftest PASS lines: /'; tail -1 "$OUT/selftest.log"; }
[[ -f $OUT/anchors.jsonl ]] && python3 - "$OUT/anchors.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
        if "ms" in r: print(f"anchor {r['impl']:<15} {r['variant']:<9} {r['B']},{r['H']},{r['T']},{r['D']:<4} {r['ms']:8.3f} ms {r['tflops']:6.1f} TF/s")
PY
[[ -f $OUT/selftest-mma.log ]] && tail -1 "$OUT/selftest-mma.log" | sed 's/^/mma.sync: /'
[[ -f $OUT/bench.log ]] && cat "$OUT/bench.log"
[[ -f $OUT/bench-mma.log ]] && { echo "---- mma.sync kernels ----"; cat "$OUT/bench-mma.log"; }
exit $status
