"""Running a model on one sequence and turning what the recorder saw into a trace."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch

from .check import CheckResult, check_captures, default_tolerance
from .recorder import AttentionRecorder, LayerCapture
from .trace_writer import DTYPES, write_trace
from .vision import (VISION_TOWERS, check_vision_model_type, describe, image_source_name,
                     image_to_pixel_values, load_image, pixels_seen, synthetic_image, vision_layout)

REPLACEMENT_CHAR = "\ufffd"


@dataclass
class CaptureResult:
    captures: List[LayerCapture]
    attention_layers: int                 # attention calls in the forward pass (all layers)
    implementations: List[str]            # which attention functions actually ran
    positional: str
    kind: str
    extra: Dict[str, Any] = field(default_factory=dict)
    check: Optional[CheckResult] = None   # the self-check (None when check_rows was 0)
    patch_grid: Optional[List[int]] = None  # vision: [rows, cols]
    tokens: Optional[List[str]] = None      # vision: the token names by the layout rule


class CaptureMismatch(RuntimeError):
    """The recorded Q/K/V and settings do not reproduce the model's own attention."""

    def __init__(self, check: CheckResult):
        super().__init__(check.message())
        self.check = check


def detect_positional(model: torch.nn.Module) -> str:
    """How positions enter Q/K: rotary (stored after rotation), learned absolute, or none."""
    names = [type(m).__name__ for m in model.modules()]
    if any("Rotary" in n for n in names):
        return "rope-applied"
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Embedding) and leaf in ("wpe", "position_embeddings",
                                                               "embed_positions"):
            return "learned"
    return "none"


def detect_kind(captures: Sequence[LayerCapture]) -> str:
    return "causal-lm" if all(c.settings["causal"] for c in captures) else "encoder"


def _run_capture(model: torch.nn.Module, inputs: Dict[str, Any], layers: Optional[Sequence[int]],
                 store_dtype: torch.dtype, record_output: bool, check_rows: int,
                 check_tolerance: Optional[float]) -> CaptureResult:
    """Runs `model(**inputs)` once under the recorder, then the self-check of `check_rows` rows per
    layer against the model's own attention (check.py; tolerance by default from the model's dtype)."""
    recorder = AttentionRecorder(model, layers, store_dtype, record_output, check_rows)
    with torch.no_grad(), recorder:
        model(**inputs)
    if recorder.calls == 0:
        raise RuntimeError(f"attnscope_capture: {type(model).__name__} ran no hooked attention "
                           "function; this architecture is not supported (see README coverage)")
    if layers is not None:
        missing = sorted(set(int(i) for i in layers) - {c.source_layer for c in recorder.captures})
        if missing:
            raise ValueError(f"--layers {missing}: the model has {recorder.calls} attention layers "
                             f"(0..{recorder.calls - 1})")
    implementation = getattr(model.config, "_attn_implementation", None)
    check = None
    if check_rows > 0:
        tolerance = check_tolerance if check_tolerance is not None else \
            default_tolerance(next(model.parameters()).dtype)
        check = check_captures(recorder.captures, tolerance)
    return CaptureResult(captures=recorder.captures, attention_layers=recorder.calls, check=check,
                         implementations=sorted(recorder.implementations_seen),
                         positional="alibi" if any(c.settings["alibi"] for c in recorder.captures)
                         else recorder.positional_hint or detect_positional(model),
                         kind=detect_kind(recorder.captures),
                         extra={"attn_implementation": implementation,
                                "modules": [c.module_name for c in recorder.captures],
                                "model_type": getattr(model.config, "model_type", None)})


def capture_ids(model: torch.nn.Module, input_ids: torch.Tensor,
                layers: Optional[Sequence[int]] = None, store_dtype: torch.dtype = torch.float32,
                record_output: bool = False,
                attention_mask: Optional[torch.Tensor] = None, check_rows: int = 32,
                check_tolerance: Optional[float] = None) -> CaptureResult:
    """Runs `model` once on input_ids [1, T] and returns the captured attention layers, with the
    self-check of `check_rows` rows per layer against the model's own attention (check.py;
    tolerance by default from the model's dtype)."""
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"input_ids must be [1, T], got {tuple(input_ids.shape)}")
    device = next(model.parameters()).device
    kwargs: Dict[str, Any] = {"input_ids": input_ids.to(device)}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask.to(device)
    if getattr(model.config, "use_cache", None) is not None:
        kwargs["use_cache"] = False
    return _run_capture(model, kwargs, layers, store_dtype, record_output, check_rows, check_tolerance)


def capture_pixels(model: torch.nn.Module, pixel_values: torch.Tensor,
                   layers: Optional[Sequence[int]] = None, store_dtype: torch.dtype = torch.float32,
                   record_output: bool = False, check_rows: int = 32,
                   check_tolerance: Optional[float] = None) -> CaptureResult:
    """Runs a vision model (ViT, DeiT, DINOv2 with or without registers, the CLIP or SigLIP vision
    tower) once on pixel_values [1, 3, H, W] and returns its attention layers as a `vision`
    capture: patch_grid and token names by the layout rule (vision.py), positional `learned`,
    with the same self-check as text models."""
    if pixel_values.dim() != 4 or pixel_values.shape[0] != 1 or pixel_values.shape[1] != 3:
        raise ValueError(f"pixel_values must be [1, 3, H, W], got {tuple(pixel_values.shape)}")
    check_vision_model_type(getattr(model.config, "model_type", None), type(model).__name__)
    parameter = next(model.parameters())
    inputs = {"pixel_values": pixel_values.to(device=parameter.device, dtype=parameter.dtype)}
    result = _run_capture(model, inputs, layers, store_dtype, record_output, check_rows,
                          check_tolerance)
    length = int(result.captures[0].q.shape[1])
    result.patch_grid, result.tokens = vision_layout(model.config, pixel_values.shape[-2:], length)
    result.kind = "vision"
    result.positional = "learned"  # every family above adds learned position embeddings to the input
    return result


def display_tokens(tokenizer, ids: Sequence[int]) -> List[str]:
    """One readable string per token: its decoded text, or the raw token when it is a partial
    UTF-8 sequence (byte-level BPE splits multi-byte characters)."""
    raw = tokenizer.convert_ids_to_tokens(list(ids))
    shown = []
    for token_id, token in zip(ids, raw):
        text = tokenizer.decode([int(token_id)], clean_up_tokenization_spaces=False)
        shown.append(token if (REPLACEMENT_CHAR in text or text == "") else text)
    return shown


def tokenize(tokenizer, text: str, max_tokens: Optional[int]):
    """Token ids of `text` (with the tokenizer's special tokens) and the text they cover."""
    try:
        enc = tokenizer(text, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
    except (NotImplementedError, TypeError, ValueError):
        enc, offsets = tokenizer(text), None
    ids = list(enc["input_ids"])
    if max_tokens is not None and len(ids) > max_tokens:
        ids = ids[:max_tokens]
        if offsets is not None:
            end = max(e for _, e in offsets[:max_tokens])
            text = text[:end]
        else:
            text = tokenizer.decode(ids, skip_special_tokens=True)
    return ids, text


def load_model(name: str, device: str, compute_dtype: str, attn_implementation: Optional[str]):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(name)
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"{name}: encoder-decoder models are not supported (see README coverage)")
    kwargs: Dict[str, Any] = {"dtype": DTYPES[compute_dtype]}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModel.from_pretrained(name, **kwargs).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(name)
    return model, tokenizer


def capture_text(model_name: str, text: str, output: str, *, layers: Optional[Sequence[int]] = None,
                 max_tokens: Optional[int] = None, dtype: str = "f16", device: str = "cpu",
                 compute_dtype: str = "f32", attn_implementation: Optional[str] = None,
                 record_output: bool = False,
                 extra: Optional[Dict[str, Any]] = None, allow_mismatch: bool = False,
                 check_rows: int = 32, check_tolerance: Optional[float] = None) -> Dict[str, Any]:
    """Loads model + tokenizer, captures `text`, writes the trace. Returns a short summary.

    Raises CaptureMismatch, writing nothing, when the self-check finds the recorded data does not
    reproduce the model's attention; with allow_mismatch the trace is written with the status."""
    model, tokenizer = load_model(model_name, device, compute_dtype, attn_implementation)
    ids, covered = tokenize(tokenizer, text, max_tokens)
    if not ids:
        raise ValueError("the text produced no tokens")
    result = capture_ids(model, torch.tensor([ids]), layers=layers,
                         store_dtype=torch.float32, record_output=record_output,
                         check_rows=check_rows, check_tolerance=check_tolerance)
    if result.check is not None and not result.check.passed and not allow_mismatch:
        raise CaptureMismatch(result.check)
    display_name = os.path.basename(os.path.normpath(model_name)) if os.path.isdir(model_name) \
        else model_name
    extra = dict(result.extra, **(extra or {}))
    extra["implementations_run"] = result.implementations
    extra["compute_dtype"] = compute_dtype
    write_trace(output, result.captures, model=display_name, kind=result.kind, text=covered,
                tokens=display_tokens(tokenizer, ids), token_ids=ids,
                positional=result.positional, dtype=dtype, extra=extra,
                capture_check=result.check.metadata() if result.check is not None else None)
    return {"tokens": len(ids), "layers": len(result.captures),
            "check": result.check,
            "attention_layers": result.attention_layers, "kind": result.kind,
            "implementations": result.implementations, "bytes": os.path.getsize(output)}


def load_vision_model(name: str, device: str, compute_dtype: str, attn_implementation: Optional[str]):
    """A vision model for capture_image: the model itself (AutoModel) for ViT, DeiT and DINOv2
    (with or without registers), the vision tower for a full CLIP or SigLIP model."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(name)
    model_type = getattr(config, "model_type", None)
    check_vision_model_type(model_type, name)
    kwargs: Dict[str, Any] = {"dtype": DTYPES[compute_dtype]}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    cls = getattr(transformers, VISION_TOWERS[model_type]) if model_type in VISION_TOWERS \
        else transformers.AutoModel
    return cls.from_pretrained(name, **kwargs).to(device).eval()


def capture_image(model_name: str, output: str, *, image_path: Optional[str] = None,
                  synthetic_seed: Optional[int] = None, layers: Optional[Sequence[int]] = None,
                  dtype: str = "f16", device: str = "cpu", compute_dtype: str = "f32",
                  attn_implementation: Optional[str] = None, record_output: bool = False,
                  extra: Optional[Dict[str, Any]] = None, allow_mismatch: bool = False,
                  check_rows: int = 32, check_tolerance: Optional[float] = None,
                  store_image: bool = True) -> Dict[str, Any]:
    """Loads a vision model, runs it on one image (a file, or synthetic_image(seed) at the model's
    input size), writes a `vision` trace with patch_grid, the token names and (store_image) the
    `image` tensor of the pixels the model saw. Raises CaptureMismatch, writing nothing, when the
    self-check fails (unless allow_mismatch)."""
    if (image_path is None) == (synthetic_seed is None):
        raise ValueError("capture_image needs exactly one of image_path and synthetic_seed")
    model = load_vision_model(model_name, device, compute_dtype, attn_implementation)
    if image_path is not None:
        image = load_image(image_path)
    else:
        height, width = _pair_size(getattr(model.config, "image_size", 224))
        image = synthetic_image(synthetic_seed, height, width)
    pixel_values, preprocess = image_to_pixel_values(model_name, model.config, image)
    result = capture_pixels(model, pixel_values, layers=layers, store_dtype=torch.float32,
                            record_output=record_output, check_rows=check_rows,
                            check_tolerance=check_tolerance)
    if result.check is not None and not result.check.passed and not allow_mismatch:
        raise CaptureMismatch(result.check)
    display_name = os.path.basename(os.path.normpath(model_name)) if os.path.isdir(model_name) \
        else model_name
    extra = dict(result.extra, **(extra or {}))
    extra["implementations_run"] = result.implementations
    extra["compute_dtype"] = compute_dtype
    source = image_source_name(image_path, synthetic_seed)
    describe(extra, preprocess, source, image.size, pixel_values.shape[-2:])
    rows, cols = result.patch_grid
    write_trace(output, result.captures, model=display_name, kind="vision",
                text=f"{source}: {pixel_values.shape[-2]}x{pixel_values.shape[-1]} pixels, "
                     f"{rows}x{cols} patches",
                tokens=result.tokens, token_ids=None, positional=result.positional, dtype=dtype,
                extra=extra, patch_grid=result.patch_grid,
                image=pixels_seen(pixel_values, preprocess) if store_image else None,
                capture_check=result.check.metadata() if result.check is not None else None)
    return {"tokens": len(result.tokens), "layers": len(result.captures), "check": result.check,
            "attention_layers": result.attention_layers, "kind": "vision",
            "patch_grid": result.patch_grid, "preprocess": preprocess.description,
            "implementations": result.implementations, "bytes": os.path.getsize(output)}


def _pair_size(value: Any):
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)
