#!/usr/bin/env bash
# On the GPU machine: build the engine CLI, then profile attention variants with CUPTI timing and
# range-profiler metrics (synthetic T=16k and the demo trace's real Q/K/V) and measure the CUPTI
# activity overhead. Logs and exports go to $OUT; the tables are printed last.
#   device run, carry ["third_party"]:  bash scripts/device-profile.sh
# Needs third_party/eigen (cp -r /usr/include/eigen3 third_party/eigen) in the tree.
set -uo pipefail
OUT=${OUT:-$PWD/out/device}
mkdir -p "$OUT"
EIGEN=${ATTNSCOPE_EIGEN_DIR:-$PWD/third_party/eigen}
BUILD=${BUILD:-build/engine}
CLI=$BUILD/app/attnscope-cli
DEMO=resources/demo/kjv-llama6.attn.safetensors
# Sampling: enough samples for a stable median, bounded so the whole script fits one lease.
SAMPLING="--warmup 3 --min-samples 10 --max-samples 40 --timeout 3"
SYNTH_VARIANTS=causal,full,sliding:1024,document:8,alibi,softcap:30,topk:8,gamma:0.9,linear,decode
DEMO_VARIANTS=causal,sliding:256,document:4,alibi,softcap:30,topk:4,gamma:0.9,vslash,linear,decode

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
t0=$(date +%s)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNSCOPE_GUI=OFF -DATTNSCOPE_TESTS=OFF \
      -DATTNSCOPE_CUDA=ON -DATTNSCOPE_EIGEN_DIR="$EIGEN" >"$OUT/configure.log" 2>&1 \
    || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build "$BUILD" --target attnscope-cli -j "$(nproc)" >"$OUT/build.log" 2>&1 \
    || { grep -E "error|FAILED|undefined" "$OUT/build.log" | head -40; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"

run() {  # name, timeout, args...
    local name=$1 limit=$2
    shift 2
    timeout "$limit" "$CLI" profile "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"
    echo "$name: exit $? after $(( $(date +%s) - t0 )) s"
}
run synth16k 150 --shape 1,16,16384,128 --variants "$SYNTH_VARIANTS" --gpu --metrics $SAMPLING \
    --json "$OUT/synth16k.json" --csv "$OUT/synth16k.csv" --perfetto "$OUT/synth16k.trace.json"
run demo 60 "$DEMO" --layer 3 --head all --variants "$DEMO_VARIANTS" --gpu --metrics $SAMPLING \
    --json "$OUT/demo.json" --csv "$OUT/demo.csv" --perfetto "$OUT/demo.trace.json"
run overhead16k 60 --shape 1,16,16384,128 --variants causal,sliding:1024,linear --overhead
run overhead2k 30 --shape 1,8,2048,64 --variants causal,sliding:256,linear --overhead

echo "---- tables ($(( $(date +%s) - t0 )) s) ----"
for f in synth16k demo overhead16k overhead2k; do
    echo "== $f"
    cat "$OUT/$f.txt"
    grep -v "^\[" "$OUT/$f.err" | tail -5
done
