"""Writer for attnscope trace files (docs/trace-format.md, format "attnscope.trace" v1 / v2).

A trace is a safetensors file: tensors layers.{i}.q [heads,T,d], layers.{i}.k / .v [kv_heads,T,d],
optional layers.{i}.out [heads,T,dv], and for layers with learned sink logits (GPT-OSS) the
v2 tensor layers.{i}.sinks [heads] F32, and for a vision trace the U8 tensor `image`
[height, width, 3]; __metadata__ holds only strings (JSON for structured
values). A layer whose ALiBi slopes are not the standard ones lists them as `alibi_slopes` (v2).
The version written is the lowest that holds the content: 2 with sinks or own slopes, else 1.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import torch

from . import SOURCE
from .recorder import LayerCapture

FORMAT = "attnscope.trace"
VERSION = "1"
SINKS_VERSION = "2"  # layers.{i}.sinks and a layer's own alibi_slopes
KINDS = ("causal-lm", "encoder", "vision")
MAX_IMAGE_SIDE = 8192  # the `image` tensor of a vision trace: 1..8192 pixels per side
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
# Keys of a per-layer object, in the order the format lists them.
LAYER_KEYS = ("heads", "kv_heads", "head_dim", "scale", "causal", "sliding_window", "softcap",
              "alibi", "positional")


def layer_object(capture: LayerCapture, positional: str) -> Dict[str, Any]:
    obj = {key: capture.settings[key] for key in LAYER_KEYS if key != "positional"}
    own = capture.settings.get("alibi_slopes")
    if own is not None:  # v2: the model's own ALiBi slopes (the standard ones are not written)
        if not capture.settings.get("alibi") or len(own) != capture.settings["heads"]:
            raise ValueError(f"alibi_slopes: {len(own)} slopes for {capture.settings['heads']} heads "
                             f"(alibi {capture.settings.get('alibi')}); expected one per head with alibi")
        obj["alibi_slopes"] = [float(x) for x in own]
    obj["positional"] = positional
    obj["source_layer"] = capture.source_layer
    return obj


def image_tensor(image: torch.Tensor, kind: str) -> torch.Tensor:
    """The `image` tensor as written: uint8 [height, width, 3], 1..MAX_IMAGE_SIDE per side, vision only."""
    if kind != "vision":
        raise ValueError(f"image: only a vision trace stores the image (kind is {kind!r})")
    if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.dim() != 3 or \
            image.shape[2] != 3:
        raise ValueError(f"image: expected a uint8 tensor [height, width, 3], got "
                         f"{getattr(image, 'dtype', type(image).__name__)} {tuple(getattr(image, 'shape', ()))}")
    if not (1 <= image.shape[0] <= MAX_IMAGE_SIDE and 1 <= image.shape[1] <= MAX_IMAGE_SIDE):
        raise ValueError(f"image: {image.shape[0]}x{image.shape[1]}, expected 1..{MAX_IMAGE_SIDE} per side")
    return image.detach().cpu().contiguous()


def build_metadata(*, model: str, kind: str, text: str, tokens: Sequence[str],
                   token_ids: Optional[Sequence[int]], layers: List[Dict[str, Any]],
                   extra: Optional[Dict[str, Any]] = None,
                   documents: Optional[Sequence[int]] = None,
                   patch_grid: Optional[Sequence[int]] = None,
                   version: str = VERSION,
                   capture_check: Optional[Dict[str, Any]] = None) -> Dict[str, str]:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if token_ids is not None and len(tokens) != len(token_ids):
        raise ValueError(f"{len(tokens)} token strings but {len(token_ids)} token ids")
    meta = {
        "format": FORMAT,
        "version": version,
        "model": model,
        "source": SOURCE,
        "kind": kind,
        "text": text,
        "tokens": json.dumps(list(tokens), ensure_ascii=False),
        "layers": json.dumps(layers),
    }
    if token_ids is not None:  # optional: a vision trace has none
        meta["token_ids"] = json.dumps([int(t) for t in token_ids])
    if kind == "vision":
        if patch_grid is None or len(patch_grid) != 2:
            raise ValueError("a vision trace needs patch_grid [rows, cols]")
        rows, cols = int(patch_grid[0]), int(patch_grid[1])
        if rows < 1 or cols < 1 or rows * cols > len(tokens):
            raise ValueError(f"patch_grid [{rows}, {cols}]: expected positive rows and cols with "
                             f"rows*cols <= T = {len(tokens)}")
        meta["patch_grid"] = json.dumps([rows, cols])
    elif patch_grid is not None:
        raise ValueError(f"patch_grid is only for kind 'vision', not {kind!r}")
    if documents is not None:
        meta["documents"] = json.dumps([int(d) for d in documents])
    if extra:
        meta["extra"] = json.dumps(extra, ensure_ascii=False)
    if capture_check is not None:
        meta["capture_check"] = json.dumps(capture_check)
    return meta


def write_trace(path: str, captures: List[LayerCapture], *, model: str, kind: str, text: str,
                tokens: Sequence[str], token_ids: Optional[Sequence[int]], positional: str,
                dtype: str = "f16", extra: Optional[Dict[str, Any]] = None,
                capture_check: Optional[Dict[str, Any]] = None,
                patch_grid: Optional[Sequence[int]] = None,
                image: Optional[torch.Tensor] = None) -> Dict[str, str]:
    """Writes the trace atomically (temporary file in the same folder, then os.replace).

    Returns the metadata written. Layers are numbered 0..n-1 in file order; each layer object
    records the model's own layer index as "source_layer". A vision trace (kind "vision") has a
    patch_grid [rows, cols] and optionally `image`, a uint8 [height, width, 3] tensor of the pixels
    the model saw, stored as the U8 tensor `image` after the layer tensors.
    """
    from safetensors.torch import save_file

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if not captures:
        raise ValueError("no attention layer was captured: nothing to write")
    length = len(tokens)
    tensors: Dict[str, torch.Tensor] = {}
    for i, cap in enumerate(captures):
        for name, tensor in (("q", cap.q), ("k", cap.k), ("v", cap.v), ("out", cap.out)):
            if tensor is None:
                continue
            if tensor.dim() != 3 or tensor.shape[1] != length:
                raise ValueError(f"layers.{i}.{name}: expected [heads, {length}, d], got "
                                 f"{tuple(tensor.shape)}")
            tensors[f"layers.{i}.{name}"] = tensor.to(DTYPES[dtype]).contiguous()
        sinks = cap.settings.get("sinks")
        if sinks is not None:
            if len(sinks) != cap.settings["heads"]:
                raise ValueError(f"layers.{i}.sinks: {len(sinks)} logits for "
                                 f"{cap.settings['heads']} heads")
            tensors[f"layers.{i}.sinks"] = torch.tensor([float(s) for s in sinks],
                                                        dtype=torch.float32)
    if image is not None:
        tensors["image"] = image_tensor(image, kind)
    has_sinks = any(c.settings.get("sinks") is not None or c.settings.get("alibi_slopes") is not None
                    for c in captures)
    meta = build_metadata(model=model, kind=kind, text=text, tokens=tokens, token_ids=token_ids,
                          layers=[layer_object(c, positional) for c in captures], extra=extra,
                          patch_grid=patch_grid,
                          version=SINKS_VERSION if has_sinks else VERSION,
                          capture_check=capture_check)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".attnscope-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return meta
