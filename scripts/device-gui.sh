#!/usr/bin/env bash
# The GUI on the GPU machine (issue 13, item 6): the whole ctest suite (QtTest units, CLI end-to-end
# checks, the capture tests) built here with Qt + CUDA, run there under Xvfb with GLX, then the
# screenshot tour on a 128k-token trace (map, profiler with GPU rows, kernel timeline) and the
# responsiveness benchmark (attnscope-gui-harness) at 128k. The GPU machine has no Qt and no X server, so what they
# need travels from here in one archive.
#   here:    scripts/device-gui.sh pack     -> build/carry-gui.tar.xz (~36 MiB; needs gcc, xz, icupkg)
#   device:  run, carry ["build/carry-gui.tar.xz"], timeout_s 540:   bash scripts/device-gui.sh run
#   here:    scripts/device-gui.sh run      (a rehearsal: Mesa softpipe, the GPU tests skip)
#
# pack: builds $BUILD (default build/release) under the team's build lock and strips its test
#   executables, attnscope, attnscope-cli and attnscope-gui-harness into build/carry-gui/tree. The eleven that hold the
#   CUDA kernels (~23 MB each) are near-identical, and xz with a 256 MiB window stores them about
#   once (39 executables, 260 MB -> ~10 MB). From this Debian machine it adds every ldd-resolved
#   library except glibc's and the GPU driver's; Qt's xcb and offscreen platform plugins with the
#   GLX integration; Xvfb with xkbcomp and the XKB data; glxinfo (from .gl/mesa-utils-bin_*.deb,
#   `apt-get download mesa-utils-bin`, when not installed); pdfinfo and xmllint, which tests call;
#   the DejaVu fonts; and Mesa's swrast DRI driver, for Xvfb's own GLX and the client fallback.
#   Two libraries are cut down to fit the device tool's 64 MiB (the tracked tree takes 22):
#   - libLLVM (117 MB; 23 MB compressed), which the driver links for llvmpipe: a stand-in built
#     here defines the symbols the driver imports, each returning 0, and Mesa runs softpipe,
#     which does not call LLVM (GALLIUM_DRIVER=softpipe DRAW_USE_LLVM=0);
#   - ICU's data (31 MB), rebuilt with icupkg without what Qt never asks ICU for (display names,
#     break dictionaries, transliteration, CJK collation): 7.5 -> 2.2 MB compressed.
#   pack fails when a carried program resolves a library outside the archive, or the archive and
#   the tracked tree together come near 64 MiB. PACK_NO_BUILD=1 packs what is built.
#   PACK_LEAVE_OUT='views_tst_report|app_tst_stress' leaves those test executables (and their ctest
#   entries) out when the archive would not fit; the run then does not know them (say so).
# run: unpacks the archive into build/carry-gui, makes the paths compiled into the tests
#   (/work/main/..., the build dir) resolve to this checkout and the carried tree, starts Xvfb with
#   GLX, renders OpenGL on the GPU through the driver's GLX library (__GLX_VENDOR_LIBRARY_NAME=
#   nvidia) or, when that does not load, on Mesa softpipe (the summary says which), runs ctest
#   (the machine's; a small runner when it has none) with every test on the xcb platform of that
#   display, so the OpenGL timeline tests run and the GPU tests (the GPU self-test on both kernel
#   paths among them) run on the GPU, then the screenshot tour on a synthetic 128k-token trace and
#   --bench-responsiveness at 128k, and prints a summary: passed / failed / skipped per test with
#   every skip's reason, skips for lack of a GPU or of OpenGL called out.
# Results in $OUT: summary.txt, logs.tgz (run and ctest logs, tour and benchmark output, Xvfb log,
#   glxinfo, every tour PNG), gpu-map-128k.png, gpu-map-128k-token-level.png,
#   gpu-profiler-128k.png, gpu-kernel-timeline-128k.png.
# Environment: OUT, BUILD, CTEST_JOBS (6), CTEST_TIMEOUT (360 s for the whole suite), TOUR_TOKENS
#   (131072), TOUR_HEADS (8), TOUR_TRACE (a trace for the tour instead: its shots are named
#   gpu-<trace name>-*.png), TOUR_TIMEOUT (150 s), BENCH_TIMEOUT (60 s), SKIP_TESTS=1, SKIP_TOUR=1,
#   SKIP_BENCH=1, GL_VENDOR ("nvidia mesa": the GLX vendor libraries tried in turn).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build/release}
STAGE=$ROOT/build/carry-gui
ARCHIVE=$ROOT/build/carry-gui.tar.xz
CARRY_LIMIT_MIB=64
STEP=${1:-}

# glibc's own libraries and the GPU driver's: the GPU machine's must be used.
SYSTEM_LIBS='^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libmvec\.so|libpthread\.so|libdl\.so|librt\.so|libresolv\.so|libutil\.so|libanl\.so|libnsl\.so|libBrokenLocale\.so|libnss_|libcuda\.so|libnvidia-|libGLX_nvidia|libEGL_nvidia|libnvcuvid)'

die() { echo "error: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# pack (here)
# ---------------------------------------------------------------------------------------------
stage_build() {  # copies and strips the build's tests and apps into $STAGE/tree
    local tree=$STAGE/tree
    mkdir -p "$tree/tests" "$tree/app"
    local n=0
    local left=()
    for exe in "$BUILD"/tests/*_tst_*; do
        [[ -f $exe && -x $exe ]] || continue
        if [[ -n ${PACK_LEAVE_OUT:-} && $(basename "$exe") =~ ^(${PACK_LEAVE_OUT})$ ]]; then
            left+=("$(basename "$exe")")
            continue
        fi
        strip -o "$tree/tests/$(basename "$exe")" "$exe" || return 1
        n=$((n + 1))
    done
    for exe in attnscope attnscope-cli attnscope-gui-harness; do
        [[ -x $BUILD/app/$exe ]] || { echo "error: $BUILD/app/$exe not built" >&2; return 1; }
        strip -o "$tree/app/$exe" "$BUILD/app/$exe" || return 1
    done
    cp "$BUILD/tests/CTestTestfile.cmake" "$tree/tests/CTestTestfile.cmake.orig" || return 1
    local name
    for name in "${left[@]}"; do  # its add_test and set_tests_properties lines go too
        grep -v "/$name\"" "$tree/tests/CTestTestfile.cmake.orig" >"$tree/tests/ctest.tmp" &&
            mv "$tree/tests/ctest.tmp" "$tree/tests/CTestTestfile.cmake.orig"
        local testname=${name#*_}
        grep -v "\[=\[${name%%_*}/$testname\]=\]" "$tree/tests/CTestTestfile.cmake.orig" >"$tree/tests/ctest.tmp" &&
            mv "$tree/tests/ctest.tmp" "$tree/tests/CTestTestfile.cmake.orig"
    done
    echo "staged $n test executables, attnscope, attnscope-cli, attnscope-gui-harness${left:+; left out (PACK_LEAVE_OUT): ${left[*]}}"
}

copy_libs() {  # ELF files...: copies every library they resolve (but glibc's and the driver's)
    local lib=$STAGE/runtime/lib
    # Resolved with the carried libraries first, so the LLVM stand-in hides the real one's needs.
    for f in "$@"; do LD_LIBRARY_PATH=$lib ldd "$f"; done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' |
        sort -u | while read -r name path; do
            [[ $name =~ $SYSTEM_LIBS ]] && continue
            [[ -e $lib/$name ]] || cp -L "$path" "$lib/$name"
        done
}

llvm_standin() {  # DRI_DRIVER OUTDIR: a libLLVM that defines what the driver imports, as `return 0`
    local driver=$1 outdir=$2 soname version
    soname=$(readelf -d "$driver" | sed -n 's/.*Shared library: \[\(libLLVM[^]]*\)\].*/\1/p')
    [[ -n $soname ]] || return 0
    local src
    src=$(mktemp -d)
    nm -D --undefined-only "$driver" | awk '$2 ~ /@LLVM/ {print $2}' | sort -u >"$src/syms"
    version=$(sed -n '1s/.*@//p' "$src/syms")
    {
        echo "/* Stand-in for $soname: Mesa's softpipe does not call LLVM (scripts/device-gui.sh). */"
        sed 's/@.*//' "$src/syms" | awk '{printf "__asm__(\".globl %s\\n.type %s,@function\\n%s:\\n xor %%eax,%%eax\\n ret\\n\");\n", $1, $1, $1}'
    } >"$src/stub.c"
    echo "$version { global: *; };" >"$src/version.map"
    gcc -shared -fPIC -o "$outdir/$soname" -Wl,-soname,"$soname" -Wl,--version-script="$src/version.map" "$src/stub.c" \
        || return 1
    echo "$soname: stand-in with $(wc -l <"$src/syms") symbols ($version)"
    rm -rf "$src"
}

icu_subset() {  # LIBICUDATA: rebuilds it in place without the data Qt does not ask ICU for
    local lib=$1 soname sym vma size secvma secoff work
    soname=$(basename "$lib")
    read -r vma size sym < <(nm -S -D "$lib" | awk '$3 == "R" && $4 ~ /^icudt[0-9]+_dat$/ {print $1, $2, $4}')
    [[ -n $sym ]] || return 1
    read -r secvma secoff < <(readelf -SW "$lib" | awk '$2 == ".rodata" {print $4, $5}')
    work=$(mktemp -d)
    local name=${sym%_dat}l  # icudt72l: the item prefix, which icupkg takes from the file name
    mkdir -p "$work/in" "$work/out"
    tail -c +$((0x$vma - 0x$secvma + 0x$secoff + 1)) "$lib" | head -c $((0x$size)) >"$work/in/$name.dat"
    # Qt 6 calls ICU for collation (ucol), legacy codecs (ucnv) and calendars (ucal): the display
    # names of languages, regions, currencies, units and zones, break dictionaries,
    # transliteration, spelled-out numbers and the CJK collations (21 of 31 MB) go.
    icupkg -l "$work/in/$name.dat" | grep -E '^(brkitr|curr|lang|region|unit|zone|rbnf|translit)/|^coll/(zh|ko|ja|yue)' \
        >"$work/remove.txt"
    icupkg -r "$work/remove.txt" "$work/in/$name.dat" "$work/out/$name.dat" || return 1
    printf '.section .rodata\n.globl %s\n.type %s,@object\n.balign 16\n%s:\n.incbin "%s"\n.size %s, .-%s\n.section .note.GNU-stack,"",@progbits\n' \
        "$sym" "$sym" "$sym" "$work/out/$name.dat" "$sym" "$sym" >"$work/data.S"
    gcc -shared -o "$lib" -Wl,-soname,"$soname" "$work/data.S" || return 1
    echo "$soname: $(wc -l <"$work/remove.txt") of $(icupkg -l "$work/in/$name.dat" | wc -l) ICU data items left out"
    rm -rf "$work"
}

pack() {
    local qtplugins
    qtplugins=$(qtpaths6 --query QT_INSTALL_PLUGINS 2>/dev/null || echo /usr/lib/x86_64-linux-gnu/qt6/plugins)
    local dri=/usr/lib/x86_64-linux-gnu/dri
    rm -rf "$STAGE" "$ARCHIVE"
    mkdir -p "$STAGE/runtime"/{lib,bin,dri,fonts,share/X11}
    local rt=$STAGE/runtime
    if [[ ${PACK_NO_BUILD:-0} == 1 ]]; then
        stage_build || die "staging failed"
    else
        # Build and copy under the team's lock, so nobody's build rewrites a binary mid-copy.
        flock /tmp/attnscope-build.lock bash -c "cmake --build '$BUILD' && BUILD='$BUILD' bash '$0' stage-build" \
            || die "build or staging failed (someone mid-edit? retry, or PACK_NO_BUILD=1)"
    fi

    # The display and the tools the tests call.
    local glxinfo
    glxinfo=$(command -v glxinfo || true)
    if [[ -z $glxinfo ]]; then
        local deb
        deb=$(ls "$ROOT"/.gl/mesa-utils-bin_*_amd64.deb 2>/dev/null | head -1)
        [[ -n $deb ]] || die "no glxinfo: (mkdir -p .gl && cd .gl && apt-get download mesa-utils-bin)"
        dpkg -x "$deb" "$STAGE/mesa-utils" && glxinfo=$(ls "$STAGE"/mesa-utils/usr/bin/glxinfo* | head -1)
    fi
    cp "$glxinfo" "$rt/bin/glxinfo"
    rm -rf "$STAGE/mesa-utils"
    for tool in Xvfb xkbcomp pdfinfo xmllint; do
        cp "$(command -v $tool)" "$rt/bin/" || die "$tool not installed here"
    done
    cp -r /usr/share/X11/xkb "$rt/share/X11/"
    cp -L "$dri/swrast_dri.so" "$rt/dri/"
    llvm_standin "$rt/dri/swrast_dri.so" "$rt/lib" || die "could not build the libLLVM stand-in"
    cp /usr/share/fonts/truetype/dejavu/DejaVuSans{,-Bold,Mono}.ttf "$rt/fonts/"
    mkdir -p "$rt/plugins"/{platforms,xcbglintegrations,imageformats,iconengines}
    cp "$qtplugins"/platforms/lib{qxcb,qoffscreen}.so "$rt/plugins/platforms/"
    cp "$qtplugins"/xcbglintegrations/libqxcb-glx-integration.so "$rt/plugins/xcbglintegrations/"
    cp "$qtplugins"/imageformats/*.so "$rt/plugins/imageformats/"
    cp "$qtplugins"/iconengines/*.so "$rt/plugins/iconengines/" 2>/dev/null
    # glvnd's Mesa vendor library is opened at run time (the softpipe fallback).
    cp -L /usr/lib/x86_64-linux-gnu/libGLX_mesa.so.0 "$rt/lib/"

    local elf_files=()
    for f in "$STAGE"/tree/tests/* "$STAGE"/tree/app/* "$rt"/bin/* "$rt"/dri/*.so "$rt"/plugins/*/*.so; do
        [[ $f == *.orig ]] || elf_files+=("$f")
    done
    copy_libs "${elf_files[@]}"
    copy_libs "$rt"/lib/*.so*
    for icu in "$rt"/lib/libicudata.so.*; do
        [[ -f $icu ]] && { icu_subset "$icu" || die "could not subset $icu"; }
    done

    # Closure check: with LD_LIBRARY_PATH at the carried libraries only, nothing may resolve
    # anywhere else but glibc and the driver.
    local missing
    missing=$(for f in "${elf_files[@]}" "$rt"/lib/*.so*; do LD_LIBRARY_PATH=$rt/lib ldd "$f" 2>&1; done |
        awk '$2 == "=>" {print $1, $3}' | sort -u | while read -r name path; do
            [[ $name =~ $SYSTEM_LIBS ]] && continue
            [[ $path == "$rt/lib/"* ]] || echo "$name -> $path"
        done)
    [[ -z $missing ]] || die "libraries resolved outside the archive: $missing"

    {
        echo "SRC=$ROOT"
        echo "BUILD=$BUILD"
        echo "COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo +dirty)"
        echo "PACKED=$(date -u +%FT%TZ)"
    } >"$STAGE/manifest.env"
    echo "staged: $(du -sh "$STAGE" | cut -f1) ($(ls "$rt/lib" | wc -l) libraries); compressing (minutes)"
    # One stream with a window larger than the executables that share the kernels, so they dedupe;
    # the x86 filter makes machine code compress better.
    tar -C "$ROOT/build" -cf - carry-gui | xz --x86 --lzma2=preset=9e,dict=256MiB -T1 >"$ARCHIVE" || die "xz failed"
    local archive tracked
    archive=$(stat -c %s "$ARCHIVE")
    tracked=$(cd "$ROOT" && git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    echo "$ARCHIVE: $((archive / 1048576)) MiB; with the tracked tree ($((tracked / 1048576)) MiB):" \
         "$(((archive + tracked) / 1048576)) of the device tool's $CARRY_LIMIT_MIB MiB"
    (( archive + tracked < (CARRY_LIMIT_MIB - 1) * 1048576 )) || die "too large to carry"
}

# ---------------------------------------------------------------------------------------------
# run (the GPU machine, or here as a rehearsal)
# ---------------------------------------------------------------------------------------------
mini_ctest() {  # CTestTestfile.cmake: runs its tests one by one, logging as `ctest -V` does
    python3 - "$@" <<'PY'
import os, re, subprocess, sys, time
text = open(sys.argv[1]).read()
tests = []
for m in re.finditer(r'add_test\(\[=\[(.*?)\]=\] (.*?)\)\n', text):
    tests.append((m.group(1), re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))))
envs = {m.group(1): m.group(2) for m in re.finditer(r'set_tests_properties\(\[=\[(.*?)\]=\] PROPERTIES\s+ENVIRONMENT "(.*?)"', text)}
failed = 0
for i, (name, cmd) in enumerate(tests, 1):
    print(f"      Start {i}: {name}", flush=True)
    env = dict(os.environ)
    for kv in filter(None, envs.get(name, "").split(";")):
        k, _, v = kv.partition("="); env[k] = v
    t0 = time.time()
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
        out, rc = p.stdout.decode(errors="replace"), p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace"), "timeout"
    for line in out.splitlines(): print(f"{i}: {line}")
    ok = rc == 0
    failed += not ok
    print(f"{i}/{len(tests)} Test #{i}: {name} ....{'   Passed' if ok else '***Failed'}    {time.time() - t0:.2f} sec", flush=True)
print(f"{100 * (len(tests) - failed) // max(len(tests), 1)}% tests passed, {failed} tests failed out of {len(tests)}")
sys.exit(1 if failed else 0)
PY
}

summarize() {  # ctest -V log -> per-test counts, skips with reasons
    python3 - "$@" <<'PY'
import re, sys
log = open(sys.argv[1], errors="replace").read().splitlines()
names, passed, skips, fails, status, other, last, qt = {}, {}, {}, {}, {}, {}, {}, set()
for line in log:
    m = re.match(r"\s*Start\s+(\d+): (\S+)", line)
    if m: names[m.group(1)] = m.group(2); continue
    m = re.match(r"\s*\d+/\d+ Test\s+#(\d+): (\S+) \.*(.*?)\s+[\d.]+ sec", line)
    if m:
        names[m.group(1)] = m.group(2)
        st = re.sub(r"\s*\*+\s*", " ", m.group(3)).strip(" :")
        status[m.group(2)] = "Crashed" if "aborted" in st or "Exception" in st else st
        continue
    m = re.match(r"(\d+): (.*)", line)
    if not m: continue
    n, text = m.groups()
    # Counted from the lines, not from "Totals:", which a test that crashes never prints.
    if re.match(r"(PASS|FAIL!|SKIP)\s+: ", text): qt.add(n); last.pop(n, None)
    if re.match(r"PASS\s+: ", text): passed[n] = passed.get(n, 0) + 1; continue
    s = re.match(r"SKIP\s+: (\S+?\(.*?\)) (.*)", text)
    if s: skips.setdefault(n, []).append((s.group(1), s.group(2))); continue
    f = re.match(r"FAIL!\s+: (\S+?\(.*?\)) (.*)", text)
    if f: fails.setdefault(n, []).append((f.group(1), f.group(2))); continue
    w = re.match(r"(QWARN|QDEBUG|QINFO|QCRITICAL|QFATAL)\s+: (\S+?\(.*?\))", text)
    if w: last[n] = w.group(2)
    if re.match(r"(Received signal|terminate called|\s+what\(\):)", text):
        fails.setdefault(n, []).append(("", text + (f"   (in {last[n]})" if n in last else ""))); continue
    if text.strip() and not re.match(r"(Test command|Working Directory|Test timeout|Environment variables)", text):
        other[n] = text.strip()  # the last line a test printed (a summary, for the capture tests)
P = F = S = 0
gpu_skips, gl_skips = [], []
print(f"{'test':32} {'ctest':8} {'passed':>6} {'failed':>6} {'skipped':>7}   (QtTest functions)")
for n in sorted(names, key=int):
    name = names[n]
    p = passed.get(n, 0)
    f = sum(1 for fn, _ in fails.get(n, []) if fn)
    s = len(skips.get(n, []))
    P, F, S = P + p, F + f, S + s
    print(f"{name:32} {status.get(name, '?'):8.8} {p:6} {f:6} {s:7}" + ("" if n in qt else f"   (not a QtTest; its last line: {other.get(n, '-')[:120]})"))
    for fn, why in fails.get(n, []):
        print(f"    FAIL {fn} {why}" if fn else f"         {why}")
    for fn, why in skips.get(n, []):
        print(f"    skip {fn}: {why}")
        if re.search(r"\bno GPU\b|no CUDA|no usable GPU", why): gpu_skips.append(f"{name} {fn}")
        if re.search(r"OpenGL", why): gl_skips.append(f"{name} {fn}")
ok = sum(1 for v in status.values() if v == "Passed")
print(f"ctest: {ok}/{len(names)} tests passed; QtTest functions: {P} passed, {F} failed, {S} skipped")
print("skipped for lack of a GPU: " + (", ".join(gpu_skips) if gpu_skips else "none"))
print("skipped for lack of OpenGL: " + (", ".join(gl_skips) if gl_skips else "none"))
PY
}

run_device() {
    local out=${OUT:-$ROOT/out/device-gui}
    mkdir -p "$out"
    # The archive: unpacked once (a warm machine keeps build/).
    if [[ ! -f $STAGE/manifest.env || $ARCHIVE -nt $STAGE/manifest.env ]]; then
        [[ -f $ARCHIVE ]] || die "$ARCHIVE missing: run \`scripts/device-gui.sh pack\` here and carry it"
        rm -rf "$STAGE" && tar -C "$ROOT/build" -xJf "$ARCHIVE" || die "unpacking failed"
        touch "$STAGE/manifest.env"
    fi
    local SRC PACKED_BUILD COMMIT PACKED
    # shellcheck disable=SC1091
    source "$STAGE/manifest.env"
    PACKED_BUILD=$BUILD
    local rt=$STAGE/runtime tree=$STAGE/tree

    # The tests hold the paths they were built with (sources, the CLI, the demo trace): make them
    # resolve here. On the GPU machine, symbolic links; on the machine that built them, a private
    # mount namespace with the carried tree over the real build (other builds do not see it).
    if [[ $SRC != "$ROOT" ]]; then
        if [[ -e $SRC && ! -L $SRC ]]; then die "$SRC exists and is not this checkout"; fi
        mkdir -p "$(dirname "$SRC")" && ln -sfn "$ROOT" "$SRC"
    fi
    if [[ -d $PACKED_BUILD && ! -L $PACKED_BUILD && ${ATTNSCOPE_GUI_BOUND:-0} != 1 ]]; then
        echo "rehearsal: the carried tree is mounted over $PACKED_BUILD in a private mount namespace"
        exec unshare -m bash -c "mount --bind '$tree' '$PACKED_BUILD' && ATTNSCOPE_GUI_BOUND=1 OUT='$out' bash '$0' run"
    fi
    [[ -e $PACKED_BUILD ]] || { mkdir -p "$(dirname "$PACKED_BUILD")" && ln -sfn "$tree" "$PACKED_BUILD"; }

    local work
    work=$(mktemp -d /tmp/attnscope-gui.XXXXXX)
    local logs=$work/logs
    mkdir -p "$logs"
    exec > >(tee "$logs/run.log") 2>&1
    echo "== $(date -u +%FT%TZ) device-gui: archive of commit $COMMIT, packed $PACKED from $PACKED_BUILD"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/gpu: /'

    # The carried libraries, for the carried programs only (the machine's ctest and python3 keep
    # their own), then the driver's (libcuda, libGLX_nvidia) where the loader cache lacks them.
    local libs=$rt/lib driver
    driver=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia.so.0 |libcuda.so.1 / {print $NF; exit}')
    [[ -n $driver ]] || driver=$(ls /usr/local/nvidia/lib64/libcuda.so.1 2>/dev/null)
    [[ -n $driver ]] && libs+=:$(dirname "$driver")
    carried() { LD_LIBRARY_PATH=$libs "$@"; }
    export QT_PLUGIN_PATH=$rt/plugins LIBGL_DRIVERS_PATH=$rt/dri GALLIUM_DRIVER=softpipe DRAW_USE_LLVM=0
    export FONTCONFIG_FILE=$work/fonts.conf XDG_CONFIG_HOME=$work/config XDG_CACHE_HOME=$work/cache
    export XDG_RUNTIME_DIR=$work/runtime ATTNSCOPE_NO_DIALOGS=1 PATH=$PATH:$rt/bin
    mkdir -m 700 -p "$XDG_RUNTIME_DIR"
    cat >"$FONTCONFIG_FILE" <<EOF
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig><dir>$rt/fonts</dir><cachedir>$work/fontconfig</cachedir>
<alias><family>sans-serif</family><prefer><family>DejaVu Sans</family></prefer></alias>
<alias><family>monospace</family><prefer><family>DejaVu Sans Mono</family></prefer></alias></fontconfig>
EOF

    # The display: Xvfb with GLX, its own GLX on Mesa softpipe. Xvfb compiles its keymap with
    # xkbcomp from /usr/bin only (the path is compiled in) and does not start without one; the
    # GPU machine has none, so a wrapper of the carried one goes there.
    if [[ ! -x /usr/bin/xkbcomp ]]; then
        printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$rt/lib" "$rt/bin/xkbcomp" >/usr/bin/xkbcomp \
            && chmod +x /usr/bin/xkbcomp && echo "xkbcomp: a wrapper of the carried one in /usr/bin"
    fi
    local display=:${DISPLAY_NUMBER:-97}
    carried "$rt/bin/Xvfb" "$display" -screen 0 1600x1000x24 +extension GLX -nolisten tcp -fp built-ins \
        -xkbdir "$rt/share/X11/xkb" >"$logs/xvfb.log" 2>&1 &
    XVFB_PID=$!
    trap 'kill $XVFB_PID 2>/dev/null' EXIT
    for _ in $(seq 50); do [[ -S /tmp/.X11-unix/X${display#:} ]] && break; sleep 0.2; done
    kill -0 $XVFB_PID 2>/dev/null || { cat "$logs/xvfb.log"; die "Xvfb did not start"; }
    export DISPLAY=$display

    # OpenGL in the clients: the GPU through the driver's GLX library, else Mesa softpipe.
    local vendor renderer=""
    for vendor in ${GL_VENDOR:-nvidia mesa}; do
        # glvnd falls back to the server's vendor (Mesa) when the named one does not load.
        if __GLX_VENDOR_LIBRARY_NAME=$vendor carried timeout 30 glxinfo -B >"$logs/glxinfo-$vendor.txt" 2>&1; then
            renderer=$(sed -n 's/^OpenGL renderer string: //p' "$logs/glxinfo-$vendor.txt")
            [[ $vendor != nvidia ]] || grep -q "^OpenGL vendor string: NVIDIA" "$logs/glxinfo-$vendor.txt" || renderer=""
            [[ -n $renderer ]] && break
        fi
        echo "GLX through $vendor: no ($(grep -E 'Error|error|renderer string' "$logs/glxinfo-$vendor.txt" | head -2 | tr '\n' ' '))"
    done
    [[ -n $renderer ]] || { cat "$logs/xvfb.log"; die "no GLX on Xvfb"; }
    export __GLX_VENDOR_LIBRARY_NAME=$vendor
    echo "OpenGL: $renderer, $(sed -n 's/^OpenGL version string: //p' "$logs/glxinfo-$vendor.txt") (GLX vendor library $vendor)"

    # ctest: every test on the xcb platform of this display, with the carried libraries. The
    # capture tests run the machine's python3 (PyTorch), and attnscope-cli through a wrapper.
    cat >"$work/attnscope-cli" <<EOF
#!/bin/sh
LD_LIBRARY_PATH='$libs' exec '$PACKED_BUILD/app/attnscope-cli' "\$@"
EOF
    chmod +x "$work/attnscope-cli"
    local python
    python=$(command -v python3)
    echo 'subdirs("tests")' >"$tree/CTestTestfile.cmake"
    sed -e "s#QT_QPA_PLATFORM=offscreen#QT_QPA_PLATFORM=xcb;LD_LIBRARY_PATH=$libs#" \
        -e "s#^add_test(\(\[=\[python/capture\]=\]\) .*\"\([^\"]*run_tests.py\)\")#add_test(\1 \"/usr/bin/env\" \"ATTNSCOPE_CLI=$work/attnscope-cli\" \"$python\" \"\2\")#" \
        "$tree/tests/CTestTestfile.cmake.orig" >"$tree/tests/CTestTestfile.cmake"
    local t0=$SECONDS ctest_rc=skipped
    if [[ ${SKIP_TESTS:-0} == 1 ]]; then
        : >"$logs/ctest.log"
    elif command -v ctest >/dev/null; then
        echo "== $(ctest --version | head -1), -j ${CTEST_JOBS:-6}, at most ${CTEST_TIMEOUT:-360} s"
        (cd "$PACKED_BUILD" && timeout -k 5 "${CTEST_TIMEOUT:-360}" ctest -V -j "${CTEST_JOBS:-6}") >"$logs/ctest.log" 2>&1
        ctest_rc=$?
    else
        echo "== no ctest here: the tests of $PACKED_BUILD/tests/CTestTestfile.cmake one by one"
        timeout -k 5 "${CTEST_TIMEOUT:-360}" mini_ctest "$tree/tests/CTestTestfile.cmake" >"$logs/ctest.log" 2>&1
        ctest_rc=$?
    fi
    grep -E "tests passed|tests failed" "$logs/ctest.log"
    [[ ${SKIP_TESTS:-0} == 1 ]] || echo "ctest: exit $ctest_rc in $((SECONDS - t0)) s"
    summarize "$logs/ctest.log" | tee "$logs/summary-tests.txt"

    # Screenshots: the tour on a synthetic 128k-token trace (one head per planted pattern), or on
    # TOUR_TRACE. It saves as it goes, so a view that never finishes costs the later shots only.
    local tour_rc=skipped tokens=${TOUR_TOKENS:-131072}
    if [[ ${SKIP_TOUR:-0} != 1 ]]; then
        local trace=${TOUR_TRACE:-$work/synth-$((tokens / 1024))k.attn.safetensors}
        local k=$((tokens / 1024))k
        t0=$SECONDS
        if [[ -n ${TOUR_TRACE:-} ]]; then
            k=$(basename "$trace" .attn.safetensors)
            echo "== screenshot tour: $trace"
        else
            echo "== screenshot tour: synth $tokens tokens, ${TOUR_HEADS:-8} heads"
            carried "$PACKED_BUILD/app/attnscope-cli" synth -o "$trace" --tokens "$tokens" --layers 1 \
                --heads "${TOUR_HEADS:-8}" --no-progress >"$logs/synth.log" 2>&1 || tail -3 "$logs/synth.log"
        fi
        carried timeout "${TOUR_TIMEOUT:-150}" "$PACKED_BUILD/app/attnscope-gui-harness" --screenshot-tour "$work/shots" "$trace" \
            >"$logs/tour.log" 2>&1
        tour_rc=$?
        echo "tour: exit $tour_rc in $((SECONDS - t0)) s; $(ls "$work/shots" 2>/dev/null | tr '\n' ' ')"
        grep -iE "error|warning" "$logs/tour.log" | head -5
        local pair
        for pair in 01-map-overview:gpu-map-$k 02-map-token-level:gpu-map-$k-token-level \
                    09-profiler:gpu-profiler-$k 10-kernel-timeline:gpu-kernel-timeline-$k; do
            [[ -f $work/shots/${pair%%:*}.png ]] && cp "$work/shots/${pair%%:*}.png" "$out/${pair#*:}.png"
        done
        [[ -n ${TOUR_TRACE:-} ]] || rm -f "$trace"
    fi
    if [[ ${SKIP_BENCH:-0} != 1 ]]; then
        echo "== attnscope-gui-harness --bench-responsiveness --tokens $tokens"
        carried timeout "${BENCH_TIMEOUT:-60}" "$PACKED_BUILD/app/attnscope-gui-harness" --bench-responsiveness --tokens "$tokens" \
            >"$logs/bench-responsiveness.log" 2>&1
        echo "bench: exit $?"
        cat "$logs/bench-responsiveness.log"
    fi

    {
        echo "device-gui $(date -u +%FT%TZ): archive of commit $COMMIT"
        nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
        echo "OpenGL: $renderer (GLX vendor library $vendor)"
        echo "ctest exit $ctest_rc; tour exit $tour_rc"
        cat "$logs/summary-tests.txt"
    } >"$out/summary.txt"
    [[ -d $work/shots ]] && cp -r "$work/shots" "$logs/"
    tar -C "$work" -czf "$out/logs.tgz" logs
    echo "== summary"
    cat "$out/summary.txt"
    [[ $ctest_rc == 0 ]]
}

case $STEP in
    pack) pack ;;
    stage-build) stage_build ;;
    run) run_device ;;
    *) sed -n '2,42p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
