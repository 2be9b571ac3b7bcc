#!/usr/bin/env bash
# On the GPU machine: the cudnn:* rows (cuDNN's fused SDPA inside attnscope) next to attnscope's
# own kernels and PyTorch's cuDNN SDPA, in one call: the GPU self-test, `attnscope-cli profile`
# and ../shared/bench/torch_anchors.py (carried as .device/anchors/torch_anchors.py).
#   here:   build the engine preset's attnscope-cli, strip it into build/carry-c/app, tar -cJf build/carry-c.tar.xz
#   device run, carry ["build/carry-c.tar.xz", ".device/anchors"]:
#     cd build && tar xJf carry-c.tar.xz && cd .. && BIN=build/carry-c bash scripts/device-cudnn.sh
# Order: the profiles, the anchors, then the self-test (the time-boxed parts first).
# attnscope loads the cuDNN PyTorch uses (site-packages/nvidia/cudnn/lib) unless ATTNSCOPE_CUDNN_LIB
# is set, so both sides run the same cuDNN build. Settings: SHAPES (first;second), VARIANTS,
# EXTRA_VARIANTS (first shape only), PROFILE_FLAGS, SELFTEST_FLAGS (default --quick), OUT.
# $OUT: env.txt (+ the anchors' stderr), profile.txt, profile1.json, profile1.trace.json (Perfetto),
# profile2.json, anchors.jsonl, selftest.log; cuDNN's warnings (why an engine refused a graph,
# CUDNN_LOGLEVEL_DBG=2) are in the logs of the runs.
set -uo pipefail
OUT=${OUT:-$PWD/out/device}
mkdir -p "$OUT"
BIN=${BIN:-build/engine}
CLI=$BIN/app/attnscope-cli
ANCHORS_PY=${ANCHORS_PY:-$PWD/.device/anchors/torch_anchors.py}
SHAPE1=${SHAPE1:-2,16,8192,128}
SHAPE2=${SHAPE2:-2,32,8192,64}
VARIANTS=${VARIANTS:-causal,cudnn:causal,full,cudnn:full}
EXTRA_VARIANTS=${EXTRA_VARIANTS:-sliding:1024,cudnn:sliding:1024,alibi,cudnn:alibi,softcap:30,cudnn:softcap:30}
PROFILE_FLAGS=${PROFILE_FLAGS:---max-samples 100 --timeout 5}
SELFTEST_FLAGS=${SELFTEST_FLAGS---quick}
export PYTHONUNBUFFERED=1

# PyTorch's NVIDIA library folders: cuDNN's sub-libraries and NVRTC (runtime-compiled engines).
nvlibs=$(python3 -c 'import glob, os, torch; r = os.path.dirname(torch.__file__); print(":".join(sorted(glob.glob(os.path.join(r, "..", "nvidia", "*", "lib")) + glob.glob(os.path.join(r, "..", "nvidia", "*", "*", "lib")))))' 2>/dev/null)
export LD_LIBRARY_PATH=${nvlibs:+$nvlibs:}/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [[ -z ${ATTNSCOPE_CUDNN_LIB:-} ]]; then
    for d in ${nvlibs//:/ }; do [[ -e $d/libcudnn.so.9 ]] && export ATTNSCOPE_CUDNN_LIB=$(realpath "$d/libcudnn.so.9") && break; done
fi
{
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv
    echo "ATTNSCOPE_CUDNN_LIB=${ATTNSCOPE_CUDNN_LIB:-(search)}"
    python3 -c 'import torch; print("torch", torch.__version__, "cuDNN", torch.backends.cudnn.version())'
    ldconfig -p | grep -E "libcudnn.so.9|libnvrtc.so" | head -4
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# cuDNN's warnings (why an engine refused a graph) go to each run's log.
export CUDNN_LOGLEVEL_DBG=${CUDNN_LOGLEVEL_DBG:-2} CUDNN_LOGDEST_DBG=${CUDNN_LOGDEST_DBG:-stderr}
t0=$(date +%s)
timeout "${PROFILE_TIMEOUT:-240}" "$CLI" profile --gpu --shape "$SHAPE1" --variants "$VARIANTS,$EXTRA_VARIANTS" \
    $PROFILE_FLAGS --json "$OUT/profile1.json" --perfetto "$OUT/profile1.trace.json" >"$OUT/profile.txt" 2>&1
echo "profile $SHAPE1 rc=$?"
timeout "${PROFILE_TIMEOUT:-240}" "$CLI" profile --gpu --shape "$SHAPE2" --variants "$VARIANTS" $PROFILE_FLAGS \
    --json "$OUT/profile2.json" >>"$OUT/profile.txt" 2>&1
echo "profile $SHAPE2 rc=$? ($(( $(date +%s) - t0 )) s)"
cat "$OUT/profile.txt"

if [[ -f $ANCHORS_PY ]]; then
    timeout "${ANCHOR_TIMEOUT:-150}" python3 "$ANCHORS_PY" --no-flex --variants full,causal --shape "$SHAPE1" \
        --shape "$SHAPE2" >"$OUT/anchors.jsonl" 2>>"$OUT/env.txt"
    echo "anchors rc=$?"
fi
t0=$(date +%s)
timeout "${SELFTEST_TIMEOUT:-180}" "$CLI" selftest --gpu $SELFTEST_FLAGS >"$OUT/selftest.log" 2>&1
echo "selftest rc=$? ($(( $(date +%s) - t0 )) s)"
grep -E "^(FAIL|SKIP|INFO)|^PASS  cudnn|passed" "$OUT/selftest.log" | head -60

# attnscope vs cuDNN-in-attnscope vs PyTorch's cuDNN SDPA (TFLOP/s of the same FLOP count).
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
anchors = {}
if os.path.exists(f"{out}/anchors.jsonl"):
    for line in open(f"{out}/anchors.jsonl"):
        if line.startswith("{"):
            r = json.loads(line)
            if "ms" in r: anchors[(r["impl"], r["variant"], r["B"], r["H"], r["T"], r["D"])] = r
for name in ("profile1.json", "profile2.json"):
    path = f"{out}/{name}"
    if not os.path.exists(path): continue
    for s in json.load(open(path))["shapes"]:
        p = s["problem"]
        key = (p["batch"], p["heads"], p["tokens"], p["headDim"])
        rows = {v["variant"]: v for v in s["variants"]}
        for v in s["variants"]:
            base = v["variant"].removeprefix("cudnn:")
            t = anchors.get(("sdpa-cudnn", base) + key)
            line = f"{','.join(map(str, key)):<16} {v['variant']:<20} "
            if "error" in v:
                print(line + "error: " + v["error"][:300]); continue
            line += f"{v['stats']['medianMs']:8.3f} ms {v['tflops']:6.1f} TF/s rel err {v['relError'] if v['relError'] is not None else float('nan'):.2e}"
            own = rows.get(base)
            if v["variant"].startswith("cudnn:") and own and "error" not in own:
                # the issue's "× cuDNN": attnscope's speed in units of cuDNN's, both inside attnscope
                line += f"  attnscope {base} = {v['stats']['medianMs'] / own['stats']['medianMs']:.2f}x cuDNN"
            if t: line += f"  torch cuDNN SDPA {t['tflops']:6.1f} TF/s (this row = {v['tflops'] / t['tflops']:.2f}x)"
            print(line)
PY
