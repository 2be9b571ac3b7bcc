#!/usr/bin/env bash
# GPU fault injection on the GPU machine (docs/reliability.md "GPU faults"): the self-test's fault
# cases, then each injected fault through the CLI, each followed by the same command clean.
#   device: run, carry ["build/carry-f2.tar.xz"]:  bash scripts/device-faults.sh
#   (build/carry-f2: attnscope-cli of the engine preset, stripped, in build/carry-f2/app)
# Prints one "== CASE rc N" line per run; the logs go to $OUT/faults/ when OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
[[ -d build/carry-f2 ]] || (cd build && tar xJf carry-f2.tar.xz)
C=${CLI:-build/carry-f2/app/attnscope-cli}
LOG=${OUT:-/tmp}/faults
mkdir -p "$LOG"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
step() {  # NAME ENV-ASSIGNMENT|- COMMAND...
    local name=$1 env=$2
    shift 2
    if [[ $env == - ]]; then "$@" >"$LOG/$name.log" 2>&1; else env "$env" "$@" >"$LOG/$name.log" 2>&1; fi
    local rc=$?
    echo "== $name rc $rc"
    grep -E "injected|error|failed|FAIL|not collected|Cupti|CUPTI|passed|GPU memory|^ *(causal|sliding)" "$LOG/$name.log" | head -8 | cut -c1-400
}
"$C" synth -o "$T/t.attn.safetensors" --tokens 2048 --layers 2 --no-progress >/dev/null
step selftest-faults ATTNSCOPE_SELFTEST=faults "$C" selftest --gpu --quick
step profile-launch ATTNSCOPE_INJECT_FAULT=profile-launch:5 "$C" profile --shape 1,4,1024,64 --variants causal,sliding:128 --gpu --no-progress
step profile-clean - "$C" profile --shape 1,4,1024,64 --variants causal,sliding:128 --gpu --no-progress
step map-pass ATTNSCOPE_INJECT_FAULT=map-pass:1 "$C" map "$T/t.attn.safetensors" --layer 0 --head 0 -o "$T/m.png" --no-progress
step map-clean - "$C" map "$T/t.attn.safetensors" --layer 0 --head 0 -o "$T/m.png" --no-progress
step analysis-upload ATTNSCOPE_INJECT_FAULT=analysis-upload:1 "$C" analyze "$T/t.attn.safetensors" --no-progress --no-heads
step analysis-launch ATTNSCOPE_INJECT_FAULT=analysis-launch:3 "$C" analyze "$T/t.attn.safetensors" --no-progress --no-heads
step analysis-clean - "$C" analyze "$T/t.attn.safetensors" --no-progress --no-heads
# Out of GPU memory, refused before anything is allocated (ATTNSCOPE_GPU_MEMORY_LIMIT: as if the
# GPU had that much): the analysis of a layer, the map of a head, a profile; each then clean.
step analysis-oom ATTNSCOPE_GPU_MEMORY_LIMIT=1M "$C" analyze "$T/t.attn.safetensors" --no-progress --no-heads
step map-oom ATTNSCOPE_GPU_MEMORY_LIMIT=256K "$C" map "$T/t.attn.safetensors" --layer 0 --head 0 -o "$T/m2.png" --no-progress
step profile-oom ATTNSCOPE_GPU_MEMORY_LIMIT=4M "$C" profile --shape 1,4,4096,64 --variants causal --gpu --no-progress
step oom-clean - "$C" analyze "$T/t.attn.safetensors" --no-progress --no-heads
step cupti-metrics ATTNSCOPE_INJECT_FAULT=cupti-metrics:1 "$C" profile --shape 1,4,1024,64 --variants causal,sliding:128 --metrics --gpu --no-progress
step metrics-clean - "$C" profile --shape 1,4,1024,64 --variants causal,sliding:128 --metrics --gpu --no-progress
