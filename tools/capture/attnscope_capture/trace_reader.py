"""Reading and validating attnscope traces from Python.

validate_trace() checks the invariants the C++ reader (core/trace.h) relies on, from the raw
bytes: header length, JSON header, all __metadata__ values strings, required keys, dtypes,
offsets contiguous and in range, shape x dtype = byte size, one q/k/v per layer object, T equal
everywhere and equal to the token count, GQA head counts that divide; for a vision trace the
patch_grid (rows*cols <= T) and the optional U8 `image` [height, width, 3] (vision only).
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Any, Dict, List, Tuple

HEADER_LENGTH_BYTES = 8
DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2}
REQUIRED_KEYS = ("format", "version", "model", "source", "kind", "text", "tokens", "layers")
MAX_IMAGE_SIDE = 8192  # a vision trace's `image` [height, width, 3] U8
REQUIRED_LAYER_KEYS = ("heads", "kv_heads", "head_dim", "scale", "causal", "sliding_window",
                       "softcap", "alibi", "positional")
OPTIONAL_TENSORS = ("out",)
VERSIONS = ("1", "2")  # v2: layers.{i}.sinks, a layer's alibi_slopes


def read_header(path: str) -> Tuple[Dict[str, Any], int]:
    """The safetensors JSON header of `path` and the offset where the data section starts."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        prefix = handle.read(HEADER_LENGTH_BYTES)
        if len(prefix) != HEADER_LENGTH_BYTES:
            raise ValueError(f"{path}: truncated: {size} bytes, expected at least 8")
        (length,) = struct.unpack("<Q", prefix)
        if HEADER_LENGTH_BYTES + length > size:
            raise ValueError(f"{path}: header length {length} runs past the end ({size} bytes)")
        header = json.loads(handle.read(length).decode("utf-8"))
    return header, HEADER_LENGTH_BYTES + length


def validate_trace(path: str) -> List[str]:
    """Problems found in the trace at `path` (an empty list means valid)."""
    problems: List[str] = []
    header, data_start = read_header(path)
    data_size = os.path.getsize(path) - data_start
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict):
        return [f"{path}: no __metadata__ object"]
    for key, value in meta.items():
        if not isinstance(value, str):
            problems.append(f"__metadata__.{key}: expected a string, got {type(value).__name__}")
    for key in REQUIRED_KEYS:
        if key not in meta:
            problems.append(f"__metadata__.{key}: missing")
    if problems:
        return problems
    if meta["format"] != "attnscope.trace" or meta["version"] not in VERSIONS:
        problems.append(f"format/version: expected attnscope.trace/1 or 2, got "
                        f"{meta['format']}/{meta['version']}")
    if meta["kind"] not in ("causal-lm", "encoder", "vision"):
        problems.append(f"kind: unexpected {meta['kind']!r}")
    tokens, layers = json.loads(meta["tokens"]), json.loads(meta["layers"])
    if "token_ids" in meta:
        token_ids = json.loads(meta["token_ids"])
        if len(tokens) != len(token_ids):
            problems.append(f"tokens: {len(tokens)} strings but {len(token_ids)} ids")
    length = len(tokens)
    if meta["kind"] == "vision":
        grid = json.loads(meta["patch_grid"]) if "patch_grid" in meta else None
        if not (isinstance(grid, list) and len(grid) == 2 and all(isinstance(x, int) and x > 0 for x in grid)):
            problems.append(f"patch_grid: a vision trace needs [rows, cols] of positive integers, got {grid!r}")
        elif grid[0] * grid[1] > length:
            problems.append(f"patch_grid: {grid[0]}x{grid[1]} patches but only T = {length} tokens")
    spans = []
    for name, info in header.items():
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if name == "image":
            if meta["kind"] != "vision":
                problems.append(f"image: only a vision trace may hold an image (kind is {meta['kind']!r})")
            if dtype != "U8" or len(shape) != 3 or shape[2] != 3 or \
                    not all(1 <= x <= MAX_IMAGE_SIDE for x in shape[:2]):
                problems.append(f"image: {dtype} {shape}, expected U8 [height, width, 3] with 1..{MAX_IMAGE_SIDE} "
                                "per side")
                continue
            expected = 1
        elif dtype not in DTYPE_BYTES:
            problems.append(f"{name}: dtype {dtype}, expected F32/F16/BF16")
            continue
        else:
            expected = DTYPE_BYTES[dtype]
        for dim in shape:
            expected *= dim
        if end - begin != expected:
            problems.append(f"{name}: {end - begin} bytes, shape {shape} x {dtype} needs {expected}")
        if not 0 <= begin <= end <= data_size:
            problems.append(f"{name}: offsets [{begin}, {end}) outside the data ({data_size} bytes)")
        spans.append((begin, end, name))
    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin != position:
            problems.append(f"{name}: starts at {begin}, expected {position} (gap or overlap)")
        position = end
    if position != data_size:
        problems.append(f"data section: {data_size} bytes, tensors cover {position}")
    expected_names = set()
    for i, layer in enumerate(layers):
        for key in REQUIRED_LAYER_KEYS:
            if key not in layer:
                problems.append(f"layers[{i}].{key}: missing")
        heads, kv_heads, dim = layer.get("heads"), layer.get("kv_heads"), layer.get("head_dim")
        if not heads or not kv_heads or heads % kv_heads:
            problems.append(f"layers[{i}]: heads {heads} not a multiple of kv_heads {kv_heads}")
            continue
        for part, count in (("q", heads), ("k", kv_heads), ("v", kv_heads)):
            name = f"layers.{i}.{part}"
            expected_names.add(name)
            info = header.get(name)
            if info is None:
                problems.append(f"{name}: missing")
                continue
            shape = info["shape"]
            if len(shape) != 3 or shape[0] != count or shape[1] != length or \
                    (part != "v" and shape[2] != dim):
                problems.append(f"{name}: shape {shape}, expected [{count}, {length}, "
                                f"{dim if part != 'v' else 'dv'}]")
        for part in OPTIONAL_TENSORS:
            if f"layers.{i}.{part}" in header:
                expected_names.add(f"layers.{i}.{part}")
        slopes = layer.get("alibi_slopes")
        if slopes is not None:
            if meta["version"] == "1":
                problems.append(f"layers[{i}].alibi_slopes: a layer's own ALiBi slopes need version 2")
            if layer.get("alibi") is not True:
                problems.append(f"layers[{i}].alibi_slopes: given but alibi is not true")
            if not isinstance(slopes, list) or len(slopes) != heads or \
                    not all(isinstance(x, (int, float)) and math.isfinite(x) for x in slopes):
                problems.append(f"layers[{i}].alibi_slopes: expected {heads} finite numbers, got {slopes!r}")
        sinks = header.get(f"layers.{i}.sinks")
        if sinks is not None:
            expected_names.add(f"layers.{i}.sinks")
            if meta["version"] == "1":
                problems.append(f"layers.{i}.sinks: learned sinks need version 2")
            if sinks["shape"] != [heads]:
                problems.append(f"layers.{i}.sinks: shape {sinks['shape']}, expected [{heads}]")
    if "image" in header:
        expected_names.add("image")
    for name in sorted(set(header) - expected_names):
        problems.append(f"{name}: tensor not described by any layer object")
    return problems


def read_trace(path: str):
    """(metadata with JSON fields decoded, {name: torch.Tensor}) of a trace."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as handle:
        meta = dict(handle.metadata() or {})
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    for key in ("tokens", "token_ids", "layers", "extra", "documents", "patch_grid", "capture_check"):
        if key in meta:
            meta[key] = json.loads(meta[key])
    return meta, tensors
