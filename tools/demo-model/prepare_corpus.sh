#!/usr/bin/env bash
# Builds the demo-model corpus from two free Debian packages:
#   - the King James Bible (bible-kjv): the last 5% (by lines) is held out for validation and for
#     the demo trace text, so the demo trace shows text the model never trained on;
#   - the GCIDE dictionary (dict-gcide): training only (KJV alone is too small, see
#     shared/docs/demo-model-notes.md).
# Usage: tools/demo-model/prepare_corpus.sh [OUT_DIR]   (default: .device/corpus, gitignored)
# Writes OUT_DIR/{train.txt,val.txt,SOURCES.txt}.
set -euo pipefail

OUT_DIR=${1:-.device/corpus}
HOLDOUT_PERCENT=5
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

command -v bible >/dev/null || { echo "error: 'bible' not found: apt-get install bible-kjv" >&2; exit 1; }
mkdir -p "$OUT_DIR"

bible "gen1:1-rev22:21" > "$WORK/kjv.txt"
KJV_LINES=$(wc -l < "$WORK/kjv.txt")
if [ "$KJV_LINES" -lt 1000 ]; then
    echo "error: $WORK/kjv.txt has only $KJV_LINES lines; expected the whole KJV (~30k+)" >&2; exit 1
fi
VAL_LINES=$(( KJV_LINES * HOLDOUT_PERCENT / 100 ))
TRAIN_LINES=$(( KJV_LINES - VAL_LINES ))

(cd "$WORK" && apt-get download dict-gcide >/dev/null && dpkg -x dict-gcide_*.deb gcide)
zcat "$WORK"/gcide/usr/share/dictd/gcide.dict.dz | iconv -f latin1 -t utf-8 > "$WORK/gcide.txt"

head -n "$TRAIN_LINES" "$WORK/kjv.txt" > "$WORK/kjv-train.txt"
tail -n "$VAL_LINES" "$WORK/kjv.txt" > "$OUT_DIR/val.txt.tmp"
cat "$WORK/kjv-train.txt" "$WORK/gcide.txt" > "$OUT_DIR/train.txt.tmp"
mv "$OUT_DIR/val.txt.tmp" "$OUT_DIR/val.txt"
mv "$OUT_DIR/train.txt.tmp" "$OUT_DIR/train.txt"

{
    echo "kjv: bible-kjv $(dpkg-query -W -f='${Version}' bible-kjv-text 2>/dev/null || echo '?'), $KJV_LINES lines"
    echo "kjv train: first $TRAIN_LINES lines; kjv val (held out): last $VAL_LINES lines ($HOLDOUT_PERCENT%)"
    echo "gcide: $(ls "$WORK"/dict-gcide_*.deb | xargs -n1 basename), $(wc -c < "$WORK/gcide.txt") bytes"
    echo "train.txt = kjv train + gcide: $(wc -c < "$OUT_DIR/train.txt") bytes"
    echo "val.txt = kjv held out: $(wc -c < "$OUT_DIR/val.txt") bytes"
} | tee "$OUT_DIR/SOURCES.txt"
