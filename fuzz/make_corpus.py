#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_trace_reader into fuzz/corpus/.

Standard library only (struct + json), so it also shows that trace format v1 needs nothing but
the spec in docs/trace-format.md: an 8-byte little-endian header length, a JSON header with a
__metadata__ object of strings, and the raw tensor bytes. A few valid traces and a few broken
ones; every file stays well under 20 KB.

    python3 fuzz/make_corpus.py
"""

import json
import math
import os
import random
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
ALIGN = 8  # the header is padded with spaces so the data section starts 8-byte aligned


def encode(values, dtype):
    if dtype == "F32":
        return struct.pack(f"<{len(values)}f", *values)
    if dtype == "F16":
        return struct.pack(f"<{len(values)}e", *values)
    if dtype == "BF16":  # the top half of an F32 (truncation is good enough for seeds)
        return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in values)
    if dtype == "U8":  # a vision trace's image bytes
        return bytes(values)
    raise ValueError(dtype)


def metadata(T, layers, kind="causal-lm", patch_grid=None):
    meta = {
        "format": "attnscope.trace",
        "version": "1",
        "model": "corpus",
        "source": "make_corpus.py",
        "kind": kind,
        "text": " ".join(f"w{i}" for i in range(T)),
        "tokens": json.dumps([f"w{i}" for i in range(T)]),
        "token_ids": json.dumps(list(range(T))),
        "layers": json.dumps(layers),
    }
    if patch_grid:
        meta["patch_grid"] = json.dumps(patch_grid)
    return meta


def layer(heads, kv_heads, head_dim, causal=True, window=None, softcap=None, alibi=False):
    return {"heads": heads, "kv_heads": kv_heads, "head_dim": head_dim, "scale": 1 / math.sqrt(head_dim),
            "causal": causal, "sliding_window": window, "softcap": softcap, "alibi": alibi,
            "positional": "rope-applied"}


def image(meta, tensors):
    """tensors: list of (name, dtype, shape, values)."""
    header = {"__metadata__": meta}
    data = b""
    for name, dtype, shape, values in tensors:
        raw = encode(values, dtype)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % ALIGN)
    return struct.pack("<Q", len(text)) + text + data


def qkv_trace(T, layers, dtype, rng, extra=(), **kwargs):
    tensors = []
    for i, l in enumerate(layers):
        for slot, h in (("q", l["heads"]), ("k", l["kv_heads"]), ("v", l["kv_heads"])):
            shape = [h, T, l["head_dim"]]
            tensors.append((f"layers.{i}.{slot}", dtype, shape, [rng.gauss(0, 1) for _ in range(math.prod(shape))]))
    return image(metadata(T, layers, **kwargs), tensors + list(extra))


def main():
    rng = random.Random(7)
    os.makedirs(OUT, exist_ok=True)
    files = {}
    files["valid_f32_mha.attn.safetensors"] = qkv_trace(4, [layer(2, 2, 4)], "F32", rng)
    files["valid_f16_gqa.attn.safetensors"] = qkv_trace(
        6, [layer(4, 2, 8), layer(4, 2, 8, window=3, softcap=30.0)], "F16", rng)
    files["valid_bf16_alibi_encoder.attn.safetensors"] = qkv_trace(
        5, [layer(2, 1, 4, causal=False, alibi=True)], "BF16", rng, kind="encoder")
    files["valid_vision.attn.safetensors"] = qkv_trace(
        5, [layer(1, 1, 4, causal=False)], "F32", rng, kind="vision", patch_grid=[2, 2])
    T = 4
    probs = [1.0 / (q + 1) if k <= q else 0.0 for h in range(2) for q in range(T) for k in range(T)]
    files["valid_weights_only.attn.safetensors"] = image(
        metadata(T, [layer(2, 2, 4)]), [("layers.0.attn", "F16", [2, T, T], probs)])

    good = files["valid_f16_gqa.attn.safetensors"]
    files["broken_truncated.attn.safetensors"] = good[: len(good) - 16]
    files["broken_header_length.attn.safetensors"] = struct.pack("<Q", 1 << 40) + good[8:]
    bad = qkv_trace(3, [layer(4, 3, 2)], "F32", rng)  # kv_heads does not divide heads
    files["broken_gqa.attn.safetensors"] = bad
    # A vision trace with its image: a [CLS] token, a 2x3 patch grid and a 6x9 RGB image (U8).
    pixels = [rng.randrange(256) for _ in range(6 * 9 * 3)]
    files["valid_vision_image.attn.safetensors"] = qkv_trace(
        7, [layer(2, 1, 4, causal=False)], "F16", rng, kind="vision", patch_grid=[2, 3],
        extra=[("image", "U8", [6, 9, 3], pixels)])

    for name, data in files.items():
        assert len(data) < 20_000, name
        with open(os.path.join(OUT, name), "wb") as handle:
            handle.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
