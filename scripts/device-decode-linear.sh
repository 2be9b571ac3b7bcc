#!/usr/bin/env bash
# Issue 14 item 2 on the GPU machine: the self-test, then decode and linear attention benches,
# old (build/carry-kn-old) and new (build/carry-kn) binaries alternating. Logs go to $OUT.
set -u
OUT=${OUT:-out}; mkdir -p "$OUT"
NEW=build/carry-kn; OLD=build/carry-kn-old
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 150 $NEW/app/attnscope-cli selftest --gpu > "$OUT/selftest.log" 2>&1; echo "selftest rc $?" >> "$OUT/selftest.log"
ATTNSCOPE_FLEX_PATH=mma timeout 90 $NEW/app/attnscope-cli selftest --gpu --quick > "$OUT/selftest-mma.log" 2>&1; echo "selftest-mma rc $?" >> "$OUT/selftest-mma.log"
grep -E "FAIL|decode|linear|rc |passed|failed" "$OUT/selftest.log" | grep -vE "^PASS .*(full|causal|sliding|prefix|document|alibi|softcap|relbias|blocks|dilated|cudnn)" | tail -40
grep -cE "^PASS" "$OUT/selftest.log"; grep -E "FAIL|rc " "$OUT/selftest-mma.log" | head
S="1,32,4096,128;1,32,32768,128;1,32,131072,128"
B="--variants decode --reps 50 --warmup 5"
for round in 1 2; do
  for r in 1 2 4 8; do echo "== old gqa $r round $round"; $OLD/bench/attnscope-bench $B --gqa $r --shapes "$S"; done
  echo "== new round $round"; $NEW/bench/attnscope-bench $B --gqa 1,2,4,8 --shapes "$S" --json "$OUT/decode-new-$round.json"
done > "$OUT/bench-decode.log" 2>&1
L="--variants linear,linear:0.01 --reps 20 --warmup 3 --shapes 2,16,8192,128;1,16,32768,128;2,32,8192,64;8,16,1024,128"
for round in 1 2; do
  echo "== old round $round"; $OLD/bench/attnscope-bench $L
  echo "== new round $round"; $NEW/bench/attnscope-bench $L
done > "$OUT/bench-linear.log" 2>&1
for r in 1 2 4 8; do
  echo "== old 1M gqa $r"; $OLD/bench/attnscope-bench $B --gqa $r --shapes "1,$((8 * r)),1048576,128"
  echo "== new 1M gqa $r"; $NEW/bench/attnscope-bench $B --gqa $r --shapes "1,$((8 * r)),1048576,128"
done > "$OUT/bench-decode-1m.log" 2>&1
cat "$OUT/bench-linear.log"; grep -E "==|decode|kv heads" "$OUT/bench-decode.log" "$OUT/bench-decode-1m.log" | sed 's/^.*log://'
