"""Interception of the attention computation of transformers models.

transformers (4.48+ and 5.x) routes every attention layer through one call,
    attention_interface(module, query, key, value, attention_mask, scaling=..., dropout=...,
                        sliding_window=..., softcap=..., **kwargs)
where attention_interface is the modeling module's own `eager_attention_forward` for "eager" and an
entry of the global registry ALL_ATTENTION_FUNCTIONS for "sdpa", "flash_attention_2",
"flex_attention", ... At that point query is [batch, heads, T, d] with the positional rotation
applied, and key/value are [batch, kv_heads, T, d] (GQA not yet expanded). Wrapping both the
registry entries and the per-module eager function therefore captures the same tensors whatever
implementation runs, without output_attentions (which SDPA/flash/flex cannot provide).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

EAGER_FUNCTION_NAME = "eager_attention_forward"


@dataclass
class LayerCapture:
    """What one attention layer saw in one forward pass (batch row 0)."""

    source_layer: int          # index among the model's attention layers, in call order
    module_name: str           # qualified module name inside the model
    q: torch.Tensor            # [heads, T, d], positional rotation applied
    k: torch.Tensor            # [kv_heads, T, d]
    v: torch.Tensor            # [kv_heads, T, dv]
    out: Optional[torch.Tensor]  # [heads, T, dv] attention output before o_proj, when recorded
    settings: Dict[str, Any] = field(default_factory=dict)
    # The model's own attention on a sample of rows, for the self-check (check.py): the
    # probabilities [heads, rows, T] when the attention function returned them (eager), else its
    # output [heads, rows, dv]. Float64 on the CPU.
    check_rows: Optional[List[int]] = None
    check_probs: Optional[torch.Tensor] = None
    check_out: Optional[torch.Tensor] = None


def _registry():
    """The global attention-function registry of the installed transformers, or None."""
    try:
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    except ImportError:  # pragma: no cover - very old transformers
        return None
    return ALL_ATTENTION_FUNCTIONS


def _layer_index_of(module) -> Optional[int]:
    for name in ("layer_idx", "layer_id"):
        value = getattr(module, name, None)
        if isinstance(value, int):
            return value
    return None


def resolve_scale(module, scaling: Optional[float], head_dim: int, call_index: int) -> float:
    """The multiplier of q.k that the layer's eager implementation uses.

    Most models pass `scaling` explicitly. GPT-2 style modules do not: their eager function
    derives it from scale_attn_weights / scale_attn_by_inverse_layer_idx.
    """
    if scaling is not None:
        return float(scaling)
    if hasattr(module, "scale_attn_weights"):
        scale = 1.0 / math.sqrt(head_dim) if module.scale_attn_weights else 1.0
        if getattr(module, "scale_attn_by_inverse_layer_idx", False):
            layer = _layer_index_of(module)
            scale /= float((layer if layer is not None else call_index) + 1)
        return scale
    module_scaling = getattr(module, "scaling", None)
    if isinstance(module_scaling, (int, float)):
        return float(module_scaling)
    return 1.0 / math.sqrt(head_dim)


def resolve_causal(module, kwargs: Dict[str, Any]) -> bool:
    """Causality of the layer: the module's own flag is authoritative.

    kwargs["is_causal"] is not: some models pass False when they hand over an explicit (causal)
    mask instead, which would record a wrong setting.
    """
    flag = getattr(module, "is_causal", None)
    if isinstance(flag, bool):
        return flag
    flag = kwargs.get("is_causal")
    if isinstance(flag, bool):
        return flag
    return True


def resolve_sliding_window(module, kwargs: Dict[str, Any]) -> Optional[int]:
    window = kwargs.get("sliding_window")
    if window is None:
        window = getattr(module, "sliding_window", None)
    if isinstance(window, bool) or window is None:
        return None
    window = int(window)
    return window if window > 0 else None


def resolve_sinks(module, kwargs: Dict[str, Any], heads: int, index: int) -> Optional[List[float]]:
    """Learned sink logits, one per query head (GPT-OSS passes them as `s_aux`; the module holds
    them as `sinks`), or None. They join every row's softmax denominator with no value."""
    value = None
    for name in ("s_aux", "sinks"):
        if isinstance(kwargs.get(name), torch.Tensor):
            value = kwargs[name]
            break
    if value is None and isinstance(getattr(module, "sinks", None), torch.Tensor):
        value = module.sinks
    if value is None:
        return None
    flat = value.detach().to(device="cpu", dtype=torch.float32).reshape(-1)
    if flat.numel() != heads:
        raise RuntimeError(f"attnscope_capture: layer {index} ({type(module).__name__}): {flat.numel()} "
                           f"sink logits, expected one per query head ({heads})")
    return [float(x) for x in flat]


def sample_rows(length: int, count: int = 32) -> List[int]:
    """Query rows the self-check compares: all of them up to `count`, else `count` evenly spaced
    ones from the first to the last."""
    if length <= count:
        return list(range(length))
    return sorted({round(i * (length - 1) / (count - 1)) for i in range(count)})


def _probabilities(weights: Any, heads: int, length: int) -> bool:
    """Whether an attention function's second result holds probabilities [batch, heads, T, T]
    (eager does; SDPA, flash and flex return None): non-negative rows summing to at most 1
    (exactly 1 without a learned sink)."""
    if not isinstance(weights, torch.Tensor) or weights.dim() != 4:
        return False
    if tuple(weights.shape[1:]) != (heads, length, length):
        return False
    w = weights[0].detach().float()
    sums = w.sum(dim=-1)
    return bool((w >= -1e-6).all()) and bool((sums <= 1.0 + 1e-3).all())


ALIBI_SLOPE_TOLERANCE = 1e-6  # relative: slopes this close to the standard ones are the standard ones


def standard_alibi_slopes(heads: int) -> List[float]:
    """The slopes the trace format's `alibi: true` means: 2^(-8 (h+1) / H)."""
    return [2.0 ** (-8.0 * (h + 1) / heads) for h in range(heads)]


def own_alibi_slopes(slopes: Optional[Sequence[float]], heads: int) -> Optional[List[float]]:
    """The layer's `alibi_slopes` (format v2): None when `slopes` is None or the standard slopes
    (within ALIBI_SLOPE_TOLERANCE), else the slopes as floats (one per query head)."""
    if slopes is None:
        return None
    values = [float(x) for x in slopes]
    if len(values) != heads or not all(math.isfinite(x) for x in values):
        raise RuntimeError(f"attnscope_capture: {len(values)} ALiBi slopes {values[:8]} for {heads} "
                           "heads; expected one finite slope per query head")
    standard = standard_alibi_slopes(heads)
    if all(abs(x - s) <= ALIBI_SLOPE_TOLERANCE * s for x, s in zip(values, standard)):
        return None
    return values


def resolve_softcap(module, kwargs: Dict[str, Any]) -> Optional[float]:
    cap = kwargs.get("softcap")
    if cap is None:
        config = getattr(module, "config", None)
        cap = getattr(config, "attn_logit_softcapping", None) if config is not None else None
    if cap is None or float(cap) <= 0:
        return None
    return float(cap)


class AttentionRecorder:
    """Context manager that records Q/K/V of the attention layers of `model`.

    layers: indices (in call order) to keep, or None for all. Tensors are moved to the CPU in
    `store_dtype` as soon as they are seen, so a long sequence does not hold GPU memory per layer.
    """

    def __init__(self, model: torch.nn.Module, layers: Optional[List[int]] = None,
                 store_dtype: torch.dtype = torch.float32, record_output: bool = False,
                 check_rows: int = 32):
        self.model = model
        self.check_rows = check_rows  # rows per layer kept for the self-check (0: none)
        self.layers = None if layers is None else set(int(i) for i in layers)
        self.store_dtype = store_dtype
        self.record_output = record_output
        self.captures: List[LayerCapture] = []
        self.calls = 0
        self.implementations_seen: set = set()
        self._module_names = {id(m): n for n, m in model.named_modules()}
        self._patched_registry: Dict[str, Callable] = {}
        self._patched_modules: Dict[str, Callable] = {}
        self._module_hooks = None
        # How positions enter Q/K, when a module hook knows it better than the model's module
        # names (GPT-J and CodeGen rotate Q/K without a *Rotary* module): "rope-applied".
        self.positional_hint: Optional[str] = None

    # -- patching ------------------------------------------------------------------------------
    def __enter__(self):
        registry = _registry()
        if registry is not None:
            for key in list(registry.keys()):
                original = registry[key]
                self._patched_registry[key] = original
                registry[key] = self._wrap(original, key)
        for module in self.model.modules():
            module_name = type(module).__module__
            pymod = sys.modules.get(module_name)
            if pymod is None or module_name in self._patched_modules:
                continue
            original = getattr(pymod, EAGER_FUNCTION_NAME, None)
            if callable(original):
                self._patched_modules[module_name] = original
                setattr(pymod, EAGER_FUNCTION_NAME, self._wrap(original, "eager"))
        # Layers that compute attention inline (BLOOM, Falcon, MPT, GPT-J, CodeGen): hooks on the
        # module (module_hooks.py).
        from .module_hooks import BloomHooks, InlineAttentionHooks
        self._module_hooks = [BloomHooks(self), InlineAttentionHooks(self)]
        for hooks in self._module_hooks:
            hooks.install(self.model)
        if not self._patched_registry and not self._patched_modules:
            raise RuntimeError("attnscope_capture: found no attention function to hook in this "
                               "transformers installation (expected ALL_ATTENTION_FUNCTIONS or "
                               f"a module-level {EAGER_FUNCTION_NAME})")
        return self

    def __exit__(self, *exc):
        registry = _registry()
        if registry is not None:
            for key, original in self._patched_registry.items():
                registry[key] = original
        for module_name, original in self._patched_modules.items():
            setattr(sys.modules[module_name], EAGER_FUNCTION_NAME, original)
        self._patched_registry.clear()
        self._patched_modules.clear()
        for hooks in self._module_hooks or []:
            hooks.remove()
        self._module_hooks = None
        return False

    def _wrap(self, original: Callable, implementation: str) -> Callable:
        recorder = self

        def attnscope_recording_attention(module, query, key, value, attention_mask, *args, **kwargs):
            result = original(module, query, key, value, attention_mask, *args, **kwargs)
            recorder._record(module, query, key, value, result, implementation, kwargs)
            return result

        attnscope_recording_attention.__wrapped__ = original
        return attnscope_recording_attention

    # -- recording -----------------------------------------------------------------------------
    def _record(self, module, query, key, value, result, implementation, kwargs):
        index = self.calls
        self.calls += 1
        self.implementations_seen.add(implementation)
        if self.layers is not None and index not in self.layers:
            return
        if query.dim() != 4 or key.dim() != 4 or value.dim() != 4:
            raise RuntimeError(f"attnscope_capture: layer {index} ({type(module).__name__}): expected "
                               f"4-D [batch, heads, T, d] query/key/value, got {tuple(query.shape)}, "
                               f"{tuple(key.shape)}, {tuple(value.shape)}")
        heads, kv_heads = query.shape[1], key.shape[1]
        if heads % kv_heads != 0:
            raise RuntimeError(f"attnscope_capture: layer {index}: {heads} query heads are not a "
                               f"multiple of {kv_heads} kv heads")
        if query.shape[2] != key.shape[2]:
            raise RuntimeError(f"attnscope_capture: layer {index}: query length {query.shape[2]} != "
                               f"key length {key.shape[2]} (run without a KV cache: use_cache=False)")
        head_dim = query.shape[-1]
        length = int(query.shape[2])
        attn_output = result[0] if isinstance(result, tuple) else result
        out = None
        if self.record_output:
            # Implementations return [batch, T, heads, dv].
            out = self._store(attn_output[0].transpose(0, 1))
        check_rows = check_probs = check_out = None
        if self.check_rows > 0:
            check_rows = sample_rows(length, self.check_rows)
            weights = result[1] if isinstance(result, tuple) and len(result) > 1 else None
            if _probabilities(weights, int(heads), length):
                check_probs = weights[0][:, check_rows].detach().to(device="cpu", dtype=torch.float64)
            elif isinstance(attn_output, torch.Tensor) and attn_output.dim() == 4 and \
                    tuple(attn_output.shape[1:3]) == (length, int(heads)):
                check_out = attn_output[0][check_rows].transpose(0, 1).detach().to(
                    device="cpu", dtype=torch.float64)
        settings = {
            "heads": int(heads),
            "kv_heads": int(kv_heads),
            "head_dim": int(head_dim),
            "scale": resolve_scale(module, kwargs.get("scaling"), head_dim, index),
            "causal": resolve_causal(module, kwargs),
            "sliding_window": resolve_sliding_window(module, kwargs),
            "softcap": resolve_softcap(module, kwargs),
            "alibi": bool(kwargs.get("attnscope_alibi", False)),  # set by module hooks (BLOOM, Falcon, MPT)
            # The model's own slopes when they are not the standard 2^(-8(h+1)/H) (format v2).
            "alibi_slopes": own_alibi_slopes(kwargs.get("attnscope_alibi_slopes"), int(heads))
            if kwargs.get("attnscope_alibi") else None,
            # How far the bias the model added is from those slopes (module hooks that read it from
            # the scores; not written to the trace): explains a failed self-check.
            "alibi_residual": kwargs.get("attnscope_alibi_residual"),
            "sinks": resolve_sinks(module, kwargs, int(heads), index),
        }
        self.captures.append(LayerCapture(
            source_layer=index,
            module_name=self._module_names.get(id(module), type(module).__name__),
            q=self._store(query[0]), k=self._store(key[0]), v=self._store(value[0]),
            out=out, settings=settings, check_rows=check_rows, check_probs=check_probs,
            check_out=check_out))

    def _store(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach().to(device="cpu", dtype=self.store_dtype).contiguous()
