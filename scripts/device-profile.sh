#!/usr/bin/env bash
# On the GPU machine: build the engine CLI, then profile attention variants with CUPTI timing and
# range-profiler metrics (synthetic T=16k and the demo trace's real Q/K/V) and measure the CUPTI
# activity overhead. Logs and exports go to $OUT; the tables are printed last.
#   device run, carry ["third_party", ".device/profile-bin"]:  bash scripts/device-profile.sh
# Needs third_party/eigen (cp -r /usr/include/eigen3 third_party/eigen) in the tree.
set -uo pipefail
OUT=${OUT:-$PWD/out/device}
# Everything is written to $LOG; a few files are copied to $OUT at the end (the device tool returns
# at most 8 files).
LOG=${LOG:-/tmp/attnscope-profile}
mkdir -p "$OUT" "$LOG"
EIGEN=${ATTNSCOPE_EIGEN_DIR:-$PWD/third_party/eigen}
BUILD=${BUILD:-build/engine}
CLI=$BUILD/app/attnscope-cli
DEMO=resources/demo/kjv-llama6.attn.safetensors
# Sampling: enough samples for a stable median, bounded so the whole script fits one lease.
SAMPLING="--warmup 3 --min-samples 10 --max-samples 30 --timeout 2"
SYNTH_VARIANTS=causal,full,sliding:1024,document:8,alibi,softcap:30,topk:8,gamma:0.9,linear,decode
DEMO_VARIANTS=causal,sliding:256,document:4,alibi,softcap:30,topk:4,gamma:0.9,vslash,linear,decode

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$LOG/gpu.txt"
t0=$(date +%s)
# A CLI built here beforehand (same x86-64, CUDA 13) can be carried in .device/profile-bin to
# save the build; it is used only when it starts.
PREBUILT=.device/profile-bin/attnscope-cli
if [[ -x $PREBUILT ]] && "$PREBUILT" --version >/dev/null 2>&1; then
    CLI=$PREBUILT
    echo "using the carried $CLI ($("$CLI" --version))"
else
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNSCOPE_GUI=OFF -DATTNSCOPE_TESTS=OFF \
      -DATTNSCOPE_CUDA=ON -DATTNSCOPE_EIGEN_DIR="$EIGEN" >"$LOG/configure.log" 2>&1 \
    || { tail -30 "$LOG/configure.log"; exit 1; }
cmake --build "$BUILD" --target attnscope-cli -j "$(nproc)" >"$LOG/build.log" 2>&1 \
    || { grep -E "error|FAILED|undefined" "$LOG/build.log" | head -40; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
fi

run() {  # name, timeout, args...
    local name=$1 limit=$2
    shift 2
    timeout "$limit" "$CLI" profile "$@" >"$LOG/$name.txt" 2>"$LOG/$name.err"
    local rc=$?
    echo "$name: exit $rc after $(( $(date +%s) - t0 )) s"
    return $rc
}
run synth16k 80 --shape 1,16,16384,128 --variants "$SYNTH_VARIANTS" --gpu --metrics $SAMPLING \
    --json "$LOG/synth16k.json" --csv "$LOG/synth16k.csv" --perfetto "$LOG/synth16k.trace.json"
rc=$?
# Exit 3 means the table is complete but names failed variants; a crash or timeout retries once
# without the metrics pass so the timing table still comes back.
if [[ $rc -ne 0 && $rc -ne 3 ]]; then
    run synth16k-nometrics 40 --shape 1,16,16384,128 --variants "$SYNTH_VARIANTS" --gpu $SAMPLING \
        --json "$LOG/synth16k.json" --csv "$LOG/synth16k.csv"
fi
run demo 35 "$DEMO" --layer 3 --head all --variants "$DEMO_VARIANTS" --gpu --metrics $SAMPLING \
    --json "$LOG/demo.json" --csv "$LOG/demo.csv" --perfetto "$LOG/demo.trace.json"
run overhead16k 30 --shape 1,16,16384,128 --variants causal,sliding:1024,linear --overhead
run overhead2k 20 --shape 1,8,2048,64 --variants causal,sliding:256,linear --overhead

echo "---- tables ($(( $(date +%s) - t0 )) s) ----"
for f in synth16k synth16k-nometrics demo overhead16k overhead2k; do
    [[ -f $LOG/$f.txt ]] || continue
    echo "== $f"
    cat "$LOG/$f.txt"
    grep -v "^\[" "$LOG/$f.err" | tail -5
done | tee "$LOG/tables.txt"
cp "$LOG/tables.txt" "$OUT/" 2>/dev/null
for f in synth16k.json demo.json synth16k.trace.json demo.trace.json; do cp "$LOG/$f" "$OUT/" 2>/dev/null; done
tar -czf "$OUT/profile-logs.tar.gz" -C "$LOG" . 2>/dev/null
