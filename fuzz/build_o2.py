#!/usr/bin/env python3
"""Links a fuzz target with its own sources and the listed core sources compiled at -O2.

The fuzz preset is a Debug build (about 600-2,000 executions a second per target); long
campaigns use this instead: the same flags as the fuzz build (libFuzzer coverage, ASan + UBSan)
with -O2 added, for the target's own objects and the core files it spends its time in, linked
ahead of the fuzz build's Debug core library (whose copies of those files are then not pulled).

    cmake --preset fuzz && cmake --build build/fuzz --target fuzz_trace_reader
    python3 fuzz/build_o2.py fuzz_trace_reader trace_reader trace_metadata trace_validate \\
        trace_access trace_types json mapped_guard status
    # -> build/fuzz-o2/fuzz_trace_reader
"""
import json
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "fuzz")
OUT = os.path.join(ROOT, "build", "fuzz-o2")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    target, core = sys.argv[1], sys.argv[2:]
    commands = json.load(open(os.path.join(BUILD, "compile_commands.json")))
    link = subprocess.run(["ninja", "-C", BUILD, "-t", "commands", "fuzz/" + target], check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]
    link_args = shlex.split(link.split("&&")[1])
    own = [a for a in link_args if a.startswith("fuzz/CMakeFiles/" + target + ".dir/")]
    wanted = {}  # object path in the fuzz build -> its compile command
    for e in commands:
        out = e.get("output") or shlex.split(e["command"])[shlex.split(e["command"]).index("-o") + 1]
        name = os.path.splitext(os.path.basename(e["file"]))[0]
        if out in own or (out.startswith("core/CMakeFiles/attnscope_core.dir/") and name in core):
            wanted[out] = e
    missing = set(core) - {os.path.splitext(os.path.basename(e["file"]))[0] for e in wanted.values()}
    if missing:
        sys.exit("no such core source: " + ", ".join(sorted(missing)))
    os.makedirs(os.path.join(OUT, target + ".objects"), exist_ok=True)
    objects = {}
    for out, e in wanted.items():
        args = shlex.split(e["command"])
        obj = os.path.join(OUT, target + ".objects", out.replace("/", "_"))
        args[args.index("-o") + 1] = obj
        args.insert(1, "-O2")
        args.append("-O2")  # the last -O wins
        print("compile", os.path.relpath(e["file"], ROOT), flush=True)
        subprocess.run(args, check=True, cwd=BUILD)
        objects[out] = obj
    extra = [objects[o] for o in wanted if o not in own]
    new_link = []
    for a in link_args:
        if a in own:
            new_link.append(objects[a])
        elif a.endswith("libattnscope_core.a") and extra:
            new_link += extra + [a]
            extra = []
        elif a == "fuzz/" + target:
            new_link.append(os.path.join(OUT, target + ".bin"))
        else:
            new_link.append(a)
    new_link = [a for a in new_link if a != ":"]
    subprocess.run(new_link, check=True, cwd=BUILD)
    os.replace(os.path.join(OUT, target + ".bin"), os.path.join(OUT, target))
    print("wrote", os.path.join(OUT, target))


if __name__ == "__main__":
    main()
