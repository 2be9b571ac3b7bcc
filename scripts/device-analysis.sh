#!/usr/bin/env bash
# On the GPU machine: the real-model-scale checks and benchmarks of the GPU analysis engine, in
# one run, with the PyTorch anchors measured in the same call.
#   device run, carry ["build/carry-a.tar.xz", ".device/anchors"]:
#     cd build && tar xJf carry-a.tar.xz && cd .. && BIN=build/carry-a bash scripts/device-analysis.sh [steps]
# Binaries (attnscope-cli, attnscope-bench-gpu-map) are built on the development machine
# (`cmake --preset engine`, stripped, tarred: DEVELOPERS.md "Running prebuilt binaries").
# .device/anchors holds copies of ../shared/bench/{map,analysis}_anchor.py.
# Steps (default all): selftest map model long masks (profile and mapncu run only when named)
#   selftest  attnscope-cli selftest --gpu (SELFTEST_FLAGS, default --quick)
#   map       attnscope-bench-gpu-map at 8k/32k/128k, d = 64, and map_anchor.py; ratios; the stages
#             (ATTNSCOPE_MAP_TIMING); the same with ATTNSCOPE_MAP_KERNEL=mma (the earlier passes)
#   mapncu    ncu on the map's wgmma passes at 128k (runs only when named)
#   model     synth a Llama-3-8B-shaped trace (32 layers × 32 heads / 8 kv, d = 128, T = 32768,
#             bf16, ~13 GB) into the page cache, `analyze --all --timing` on the GPU, and
#             analysis_anchor.py per layer; ratios (MODEL_LAYERS overrides the layer count)
#             MODEL_VARIANTS="ENV=VALUE ..." re-runs analyze once per setting (e.g.
#             ATTNSCOPE_ANALYSIS_LSE=fragments) and prints its per-layer median
#   long      a 1,048,576-token one-layer trace (LONG_HEADS query heads): overview map + analyze
#   masks     one head at T = 131,072: `profile` with the trace-derived block masks (gamma:0.9,
#             topk:8, vslash) against the same profile with causal only; the difference is what
#             deriving the three masks costs (block mass on the GPU + the block lists)
#   profile   ncu (hardware counters, clocks left alone) on one layer's analysis passes of the
#             model shape: speed of light, occupancy, warp stalls, pipes (ncu-passes.txt)
set -uo pipefail
STEPS=${*:-selftest map model long masks}
OUT=${OUT:-$PWD/out/device}
BIN=${BIN:-build/engine}
CLI=$BIN/app/attnscope-cli
MAPBENCH=$BIN/bench/attnscope-bench-gpu-map
ANCHORS=${ANCHORS:-$PWD/.device/anchors}
WORK=${WORK:-/tmp/attnscope-scale}
MODEL_LAYERS=${MODEL_LAYERS:-32}
LONG_HEADS=${LONG_HEADS:-4}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv | tee "$OUT/gpu.txt"
echo "host: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; date $(date -u +%FT%TZ)"
status=0
has() { [[ " $STEPS " == *" $1 "* ]]; }

if has selftest; then
    "$CLI" selftest --gpu ${SELFTEST_FLAGS---quick} >"$OUT/selftest.log" 2>&1 || status=1
    grep -E "^FAIL|error" "$OUT/selftest.log" | head -20
    grep -E "^(PASS|FAIL)  (analysis|map)" "$OUT/selftest.log"
    tail -2 "$OUT/selftest.log"
fi

if has map; then
    echo "---- map: attnscope vs PyTorch chunked (same call) ----"
    "$MAPBENCH" --tokens 8192,32768,131072 --dim 64 --reps 10 | tee "$OUT/map.jsonl" || status=1
    timeout 300 python3 "$ANCHORS/map_anchor.py" --tokens 8192,32768,131072 --dim 64 --json | tee "$OUT/map-anchor.jsonl"
    python3 - "$OUT/map.jsonl" "$OUT/map-anchor.jsonl" <<'PY'
import json, sys
ours = {r["T"]: r for r in map(json.loads, (l for l in open(sys.argv[1]) if l.startswith("{")))}
anchor = {r["T"]: r for r in map(json.loads, (l for l in open(sys.argv[2]) if l.startswith("{")))}
for T in sorted(ours):
    o, a = ours[T], anchor.get(T)
    line = f"T={T:>7}: host-in {o['ms_host_in']:8.2f} ms, on device {o['ms_resident']:8.2f} ms ({o['tflops_resident']:.0f} TFLOP/s)"
    if a: line += f"; torch {a['ms']:8.2f} ms -> host-in {a['ms']/o['ms_host_in']:.1f}x, resident {a['ms']/o['ms_resident']:.1f}x"
    print(line)
PY
    echo "stages (ATTNSCOPE_MAP_TIMING=1, one map each way per T):"
    for T in 8192 32768 131072; do
        ATTNSCOPE_MAP_TIMING=1 "$MAPBENCH" --tokens $T --dim 64 --reps 1 2>&1 >/dev/null | grep "map stages" | sed -n '3p;4p;9p'
    done
    # The previous passes (forward-kernel lse, mma.sync pooling) in the same call, for the ratio.
    echo "---- map with ATTNSCOPE_MAP_KERNEL=mma (the passes before the wgmma ones) ----"
    ATTNSCOPE_MAP_KERNEL=mma "$MAPBENCH" --tokens 8192,32768,131072 --dim 64 --reps 10 | tee "$OUT/map-mma.jsonl" || status=1
    for T in 8192 131072; do
        ATTNSCOPE_MAP_KERNEL=mma ATTNSCOPE_MAP_TIMING=1 "$MAPBENCH" --tokens $T --dim 64 --reps 1 2>&1 >/dev/null | grep "map stages" | sed -n '3p;4p;9p'
    done
fi

if has mapncu; then
    echo "---- mapncu: ncu on the map's wgmma passes at T = 131072 (lse, then pooling) ----"
    NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
    timeout 200 "$NCU" --clock-control none -k regex:mapSm90Kernel --launch-skip 0 --launch-count 2 --section SpeedOfLight \
        --section Occupancy --section LaunchStats --section WarpStateStats --section ComputeWorkloadAnalysis \
        "$MAPBENCH" --tokens 131072 --dim 64 --reps 1 >"$OUT/ncu-map.txt" 2>&1 || status=1
    grep -E "mapSm90Kernel|Duration|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Issue Slots Busy|Executed Ipc A|Warp Cycles Per Issued|Theoretical Occupancy|Pipe" "$OUT/ncu-map.txt" | head -50
    # Instructions, the MUFU (xu) pipe and the main stall reasons, per issued instruction.
    M=smsp__inst_executed.sum,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active
    for r in barrier long_scoreboard short_scoreboard math_pipe_throttle wait no_instruction mio_throttle dispatch_stall; do
        M=$M,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio
    done
    timeout 120 "$NCU" --clock-control none -k regex:mapSm90Kernel --launch-count 2 --metrics "$M" \
        "$MAPBENCH" --tokens 131072 --dim 64 --reps 1 >"$OUT/ncu-map-metrics.txt" 2>&1 || status=1
    grep -E "mapSm90Kernel|smsp__|sm__" "$OUT/ncu-map-metrics.txt" | head -30
fi

if has model; then
    echo "---- model: Llama-3-8B-shaped trace, T = 32768 ----"
    TRACE=$WORK/llama8b-32k.attn.safetensors
    t0=$(date +%s.%N)
    "$CLI" synth -o "$TRACE" --layers "$MODEL_LAYERS" --heads 32 --kv-heads 8 --head-dim 128 --tokens 32768 \
        --dtype bf16 --no-progress >"$OUT/synth.log" 2>&1 || { status=1; tail -5 "$OUT/synth.log"; }
    echo "synth: $(python3 -c "print(f'{$(date +%s.%N)-$t0:.1f}')") s, $(du -h "$TRACE" | cut -f1)"
    cat "$TRACE" >/dev/null  # into the page cache
    t0=$(date +%s.%N)
    "$CLI" analyze "$TRACE" --all --timing --no-heads --no-progress >"$OUT/analyze-model.log" 2>&1 || status=1
    echo "analyze wall (process): $(python3 -c "print(f'{$(date +%s.%N)-$t0:.1f}')") s"
    grep -v "^ *[0-9]* *GPU " "$OUT/analyze-model.log" | head -30; grep -E "^ *[0-9]+ +GPU " "$OUT/analyze-model.log" | sed -n "1,3p;\$p"
    for variant in ${MODEL_VARIANTS:-}; do
        env "$variant" "$CLI" analyze "$TRACE" --all --timing --no-heads --no-progress >"$OUT/analyze-model-variant.log" 2>&1 || status=1
        echo "variant $variant:"; grep -E "^ *[0-9]+ +GPU " "$OUT/analyze-model-variant.log" | sed -n "1,2p;\$p"
        python3 - "$OUT/analyze-model-variant.log" <<'PY'
import re, sys
c = sorted(float(l.split()[4]) for l in open(sys.argv[1]) if re.match(r"\s*\d+\s+GPU\s", l))
if c: print(f"  per layer median {c[len(c)//2]:.1f} ms (min {c[0]:.1f}, max {c[-1]:.1f})")
PY
    done
    timeout 300 python3 "$ANCHORS/analysis_anchor.py" --tokens 32768 --heads 32 --kv-heads 8 --dim 128 | tee "$OUT/analysis-anchor.jsonl"
    python3 - "$OUT/analyze-model.log" "$OUT/analysis-anchor.jsonl" <<'PY'
import json, re, sys
rows = [l.split() for l in open(sys.argv[1]) if re.match(r"\s*\d+\s+GPU\s", l)]
anchor = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
if rows and anchor:
    compute = sorted(float(r[4]) for r in rows)
    med = compute[len(compute) // 2]
    a = anchor[0]["ms_per_layer"]
    print(f"per layer: attnscope GPU compute median {med:.1f} ms (min {compute[0]:.1f}, max {compute[-1]:.1f}); "
          f"torch chunked anchor {a:.1f} ms -> {a/med:.1f}x")
PY
    rm -f "$TRACE"
fi

if has long; then
    echo "---- long: one layer at T = 1,048,576 ----"
    TRACE=$WORK/long-1m.attn.safetensors
    "$CLI" synth -o "$TRACE" --layers 1 --heads "$LONG_HEADS" --kv-heads 1 --head-dim 128 --tokens 1048576 \
        --dtype bf16 --no-progress >"$OUT/synth-long.log" 2>&1 || { status=1; tail -5 "$OUT/synth-long.log"; }
    cat "$TRACE" >/dev/null
    t0=$(date +%s.%N)
    "$CLI" map "$TRACE" --layer 0 --head 0 -o "$OUT/long-1m-overview.png" 2>&1 | tail -2 || status=1
    echo "map wall (process, includes reading the head): $(python3 -c "print(f'{$(date +%s.%N)-$t0:.1f}')") s"
    t0=$(date +%s.%N)
    "$CLI" analyze "$TRACE" --all --timing --no-progress --block-sizes 1024 --block 1024 >"$OUT/analyze-long.log" 2>&1 || status=1
    echo "analyze wall (process): $(python3 -c "print(f'{$(date +%s.%N)-$t0:.1f}')") s"
    head -40 "$OUT/analyze-long.log"
    rm -f "$TRACE"
fi
if has masks; then
    echo "---- masks: trace-derived block masks for one head at T = 131,072 ----"
    TRACE=$WORK/masks-128k.attn.safetensors
    "$CLI" synth -o "$TRACE" --layers 1 --heads 1 --kv-heads 1 --head-dim 128 --tokens 131072 \
        --dtype bf16 --no-progress >/dev/null 2>&1 || status=1
    QUICK=(--gpu --no-accuracy --warmup 1 --min-samples 3 --max-samples 3)
    for variants in causal causal,gamma:0.9,topk:8,vslash causal,gamma:0.9,topk:8,vslash+accuracy; do
        if [[ $variants == *+accuracy ]]; then variants=${variants%+accuracy}; QUICK=(--gpu --warmup 1 --min-samples 3 --max-samples 3); fi
        t0=$(date +%s.%N)
        "$CLI" profile "$TRACE" --variants "$variants" "${QUICK[@]}" >"$OUT/masks-$variants.log" 2>&1 || status=1
        echo "profile --variants $variants: $(python3 -c "print(f'{$(date +%s.%N)-$t0:.2f}')") s (process wall)"
        grep -E "^ *(causal|gamma|topk|vslash)" "$OUT/masks-$variants.log" | head -5
    done
    rm -f "$TRACE"
fi
if has profile; then
    echo "---- profile: ncu on one layer's passes (model shape) ----"
    TRACE=$WORK/profile-32k.attn.safetensors
    "$CLI" synth -o "$TRACE" --layers 1 --heads 32 --kv-heads 8 --head-dim 128 --tokens 32768 \
        --dtype bf16 --no-progress >/dev/null 2>&1 || status=1
    # Launch order per layer: estimate, stats, window, sink+window, vertical-slash, top-k.
    NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
    timeout 400 "$NCU" --clock-control none -k regex:fragmentPassKernel --launch-skip ${PROFILE_SKIP:-1} \
        --launch-count ${PROFILE_COUNT:-5} --section SpeedOfLight --section Occupancy --section LaunchStats \
        --section WarpStateStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
        "$CLI" analyze "$TRACE" --all --no-heads --no-progress >"$OUT/ncu-passes.txt" 2>&1 || status=1
    grep -E "fragmentPassKernel|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Issue Slots Busy|Executed Ipc A|Warp Cycles Per Issued|L1/TEX Hit|Pipe" "$OUT/ncu-passes.txt" | head -80
    rm -f "$TRACE"
fi
exit $status
