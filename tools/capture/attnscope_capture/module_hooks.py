"""Module hooks for attention layers that do not go through transformers' attention interface.

Two kinds:

- BLOOM (`BloomHooks`): BloomAttention computes everything inline: the fused QKV projection, its
  `_reshape` into Q, K, V [batch, heads, T, d], the ALiBi bias added with `baddbmm` (scaled by
  `inv_norm_factor`), the softmax, P·V and the output projection `dense`. The hooks take Q/K/V from
  `_reshape`, the ALiBi tensor from the forward call and the attention output from the input of
  `dense`, and hand them to the recorder like any attention function's call.

- Falcon, MPT, GPT-J and CodeGen (`InlineAttentionHooks`): their attention modules rotate Q/K
  (Falcon's rotary variants, GPT-J's interleaved rotary on part of the head dimension, CodeGen's
  own layout and qkv split) or add an ALiBi bias (Falcon's ALiBi variant, MPT) in code of their
  own, then compute the scores as a matmul of Q and Kᵀ, a softmax and a matmul of P and V (eager),
  or call `torch.nn.functional.scaled_dot_product_attention` (Falcon with SDPA). While such a
  module runs, a `TorchFunctionMode` watches those calls and keeps their operands: Q and K as the
  scores' matmul saw them (after whatever rotation the model applies), V and P from the second
  matmul (or Q, K, V and the mask from the SDPA call), the softmax input. Nothing in it depends on
  the module's internal method names, only on the calls every such implementation makes.

ALiBi: the bias a layer really adds is read from what the model computed, not assumed: in eager
mode the softmax input minus scale·q·k, in SDPA mode the float mask; each head's slope is the
least-squares fit of that bias against the key position over the visible keys. Slopes equal to
the format's standard 2^(-8(h+1)/H) are written as `alibi: true`; others (Falcon, which adds its
bias before multiplying by 1/sqrt(d); BLOOM or MPT with a head count that is not a power of two)
as the layer's `alibi_slopes` (format v2). The self-check (check.py) then compares the probabilities
recomputed from the recorded Q/K, scale and slopes with the model's own P (eager) or output (SDPA),
so a bias that is not ALiBi (not linear in the key position) or a scale read wrongly refuses the
capture instead of writing a wrong trace.

A module whose attention the watch cannot see (a flash-attention kernel, einsum, a fused op) is
refused with a message naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch.overrides import TorchFunctionMode

from .recorder import ALIBI_SLOPE_TOLERANCE, standard_alibi_slopes  # noqa: F401 (re-exported)

IMPLEMENTATION = "bloom (module hooks)"


class BloomHooks:
    """Installs the hooks on every BloomAttention of a model; remove() undoes them."""

    CLASS_NAMES = ("BloomAttention",)

    def __init__(self, recorder):
        self.recorder = recorder
        self.handles: List[Any] = []
        self.patched: List[torch.nn.Module] = []
        self.pending: Dict[int, Dict[str, Any]] = {}

    def install(self, model: torch.nn.Module) -> bool:
        for module in model.modules():
            if type(module).__name__ in self.CLASS_NAMES and hasattr(module, "_reshape") \
                    and isinstance(getattr(module, "dense", None), torch.nn.Module):
                self._install(module)
        return bool(self.patched)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        for module in self.patched:
            if "_reshape" in vars(module):
                del module._reshape  # the class's method again
        self.handles.clear()
        self.patched.clear()
        self.pending.clear()

    def _install(self, module: torch.nn.Module) -> None:
        pending = self.pending
        original = module._reshape

        def reshape(fused_qkv):
            parts = original(fused_qkv)
            if id(module) in pending:
                pending[id(module)]["qkv"] = parts
            return parts

        module._reshape = reshape
        self.patched.append(module)

        def before_attention(mod, args, kwargs):
            alibi = kwargs.get("alibi", args[2] if len(args) > 2 else None)
            pending[id(mod)] = {"alibi": alibi}

        def before_dense(dense, args):
            entry = pending.pop(id(module), None)
            if entry is not None and "qkv" in entry and args:
                self._record(module, entry, args[0])

        self.handles.append(module.register_forward_pre_hook(before_attention, with_kwargs=True))
        self.handles.append(module.dense.register_forward_pre_hook(before_dense))

    def _record(self, module, entry: Dict[str, Any], context: torch.Tensor) -> None:
        heads = int(getattr(module, "num_heads"))
        q, k, v = entry["qkv"]
        if q.dim() == 4 and q.shape[1] != heads and q.shape[2] == heads:  # [B, T, H, d]
            q, k, v = (x.transpose(1, 2) for x in (q, k, v))
        batch, _, length, dim = q.shape
        # `dense` receives the heads merged: [B, T, H·d] -> [B, T, H, d], as attention functions return.
        out = context.reshape(batch, length, heads, v.shape[-1])
        kwargs = {"scaling": float(module.inv_norm_factor), "is_causal": True, "attnscope_alibi": True,
                  "attnscope_alibi_slopes": self._slopes(entry["alibi"], heads, length)}
        self.recorder._record(module, q, k, v, (out, None), IMPLEMENTATION, kwargs)

    @staticmethod
    def _slopes(alibi: Any, heads: int, length: int) -> Optional[List[float]]:
        """BLOOM's bias is slope_h · (key position), added unscaled (baddbmm's beta = 1): the slopes
        are its values at key position 1. Not the standard ones when H is not a power of two (BLOOM
        interleaves extra slopes); the recorder then keeps them as the layer's alibi_slopes."""
        if not isinstance(alibi, torch.Tensor) or length < 2:
            return None
        rows = alibi.reshape(-1, heads, alibi.shape[-1])[0].double()
        return [float(x) for x in rows[:, 1] - rows[:, 0]]


# -- Falcon, MPT, GPT-J, CodeGen ---------------------------------------------------------------

# Names of the torch functions the watch looks at (names, not objects: torch.matmul,
# Tensor.matmul and the @ operator's Tensor.__matmul__ all count as a matmul).
MATMUL_NAMES = frozenset({"matmul", "__matmul__", "bmm"})
BADDBMM_NAMES = frozenset({"baddbmm"})
SOFTMAX_NAMES = frozenset({"softmax"})
SDPA_NAMES = frozenset({"scaled_dot_product_attention"})
MASKED = -1e30  # softmax inputs / mask entries at or below this are masked keys
# Fitted slopes that are the standard ones times one factor (to this relative tolerance) are taken
# as exactly that: the fit on float32 scores carries ~1e-7 relative noise per head, the factor fitted
# over all heads far less. Factors this close to 1 are the standard slopes themselves.
SLOPE_FACTOR_TOLERANCE = 1e-5


def _attribute_scale(name: str) -> Callable[[torch.nn.Module, int], Optional[float]]:
    def scale(module, head_dim):
        value = getattr(module, name, None)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        return float(value) if isinstance(value, (int, float)) and value > 0 else None
    return scale


def _inverse_attribute_scale(name: str) -> Callable[[torch.nn.Module, int], Optional[float]]:
    def scale(module, head_dim):
        value = _attribute_scale(name)(module, head_dim)
        return 1.0 / value if value else None
    return scale


@dataclass(frozen=True)
class InlineFamily:
    name: str
    classes: Tuple[str, ...]
    # The multiplier of q·k in the module's eager code (None: 1/sqrt(d)); SDPA calls give theirs.
    scale: Callable[[torch.nn.Module, int], Optional[float]]
    # The forward argument that carries an ALiBi bias (name, position after hidden_states' 0), or None.
    bias_argument: Optional[Tuple[str, int]]
    positional: str  # how positions enter Q/K when there is no ALiBi bias


FAMILIES = (
    # Falcon: rotary (Q/K rotated before the scores) or ALiBi (config.alibi: an `alibi` tensor
    # passed to every layer); multi-query (one kv head), new_decoder_architecture (kv groups,
    # broadcast to every query head before the scores) or multi-head.
    InlineFamily("falcon", ("FalconAttention", "FalconFlashAttention2"), _attribute_scale("inv_norm_factor"),
                 ("alibi", 1), "rope-applied"),
    # MPT: ALiBi through `position_bias`, added after the scores were scaled by softmax_scale.
    InlineFamily("mpt", ("MptAttention",), _attribute_scale("softmax_scale"), ("position_bias", 1), "none"),
    # GPT-J: rotary on the first rotary_dim dims of each head, pairs interleaved; scores / scale_attn.
    InlineFamily("gptj", ("GPTJAttention", "GPTJFlashAttention2"), _inverse_attribute_scale("scale_attn"),
                 None, "rope-applied"),
    # CodeGen: its own qkv split (mp_num blocks) and the same interleaved partial rotary.
    InlineFamily("codegen", ("CodeGenAttention",), _inverse_attribute_scale("scale_attn"), None,
                 "rope-applied"),
)


def family_of(module: torch.nn.Module) -> Optional[InlineFamily]:
    name = type(module).__name__
    for family in FAMILIES:
        if name in family.classes:
            return family
    return None


class _AttentionWatch(TorchFunctionMode):
    """Keeps, for one attention module's forward, the operands of the calls that make attention:
    the first matmul whose result is [.., T, T] (scores: Q and Kᵀ), the softmax input before the
    next matmul that takes a [.., T, T] operand (P·V), that matmul, and an SDPA call."""

    def __init__(self, length: int):
        super().__init__()
        self.length = length
        self.qk: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self.softmax_input: Optional[torch.Tensor] = None
        self.pv: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None
        self.sdpa: Optional[Dict[str, Any]] = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in MATMUL_NAMES and len(args) >= 2:
            self._matmul(args[0], args[1], result)
        elif name in BADDBMM_NAMES:
            self._matmul(kwargs.get("batch1", args[1] if len(args) > 1 else None),
                         kwargs.get("batch2", args[2] if len(args) > 2 else None), result)
        elif name in SOFTMAX_NAMES and args:
            x = args[0]
            if self.qk is not None and self.pv is None and self._square(x):
                self.softmax_input = x.detach().clone()
        elif name in SDPA_NAMES and self.sdpa is None and self.qk is None:
            names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal")
            call = dict(zip(names, args))
            call.update({k: v for k, v in kwargs.items()})
            if all(isinstance(call.get(k), torch.Tensor) for k in names[:3]) and isinstance(result, torch.Tensor):
                call = {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v) for k, v in call.items()}
                call["result"] = result.detach().clone()
                self.sdpa = call
        return result

    def _square(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor) and x.dim() >= 3 and tuple(x.shape[-2:]) == (self.length, self.length)

    def _matmul(self, a: Any, b: Any, result: Any) -> None:
        if not all(isinstance(x, torch.Tensor) and x.dim() >= 3 for x in (a, b, result)):
            return  # weights are 2-D: projections (FalconLinear's input @ W.T) are not attention
        if self.qk is None:
            if self._square(result) and a.shape[-2] == self.length and a.shape[-1] == b.shape[-2]:
                self.qk = (a.detach().clone(), b.detach().clone())
        elif self.pv is None and self._square(a) and b.shape[-2] == self.length:
            self.pv = (a.detach().clone(), b.detach().clone(), result.detach().clone())


def _as_heads(x: torch.Tensor, batch: int) -> torch.Tensor:
    """[B, H, T, d] from [B, H, T, d] or [B·H, T, d]."""
    return x if x.dim() == 4 else x.reshape(batch, -1, *x.shape[-2:])


def _compact_kv(k: torch.Tensor, v: torch.Tensor, heads: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """K/V [B, Hk, T, d] as the fewest kv heads: Falcon's new_decoder_architecture broadcasts each
    kv head to its group of query heads before the scores; identical consecutive groups are one
    kv head again (query head h uses kv head h // (H / Hkv), the format's GQA rule)."""
    if k.shape[1] != heads or v.shape[1] != heads:
        return k, v
    for kv_heads in range(1, heads):
        if heads % kv_heads:
            continue
        group = heads // kv_heads
        ks, vs = k[:, ::group], v[:, ::group]
        if torch.equal(ks.repeat_interleave(group, dim=1), k) and torch.equal(vs.repeat_interleave(group, dim=1), v):
            return ks.contiguous(), vs.contiguous()
    return k, v


def fit_alibi_slopes(bias: torch.Tensor, visible: torch.Tensor) -> List[float]:
    """Per head, the least-squares slope of bias [H, T, T] against the key position over the
    visible keys of each row (each row's own offset removed: softmax ignores it)."""
    bias = bias.double()
    keys = torch.arange(bias.shape[-1], dtype=torch.float64, device=bias.device)
    weight = (visible & (bias > MASKED)).double()                # [H, T, T]
    bias = torch.where(weight > 0, bias, torch.zeros_like(bias))
    count = weight.sum(-1, keepdim=True).clamp_min(1)
    x = (keys - (weight * keys).sum(-1, keepdim=True) / count) * weight
    y = (bias - (weight * bias).sum(-1, keepdim=True) / count) * weight
    denominator = (x * x).sum(dim=(-1, -2)).clamp_min(1e-300)
    return [float(s) for s in (x * y).sum(dim=(-1, -2)) / denominator]


def alibi_fit_residual(bias: torch.Tensor, visible: torch.Tensor, slopes: List[float]) -> float:
    """The largest distance (in logits) of the bias [H, T, T] from slope_h · (key position) plus
    each row's own offset, over the visible keys: ~1e-6 for an ALiBi bias computed in float32,
    more where the model rounds its bias (Falcon computes slope · position in bfloat16)."""
    bias = bias.double()
    keys = torch.arange(bias.shape[-1], dtype=torch.float64, device=bias.device)
    weight = visible & (bias > MASKED)
    line = torch.tensor(slopes, dtype=torch.float64, device=bias.device)[:, None, None] * keys
    rest = torch.where(weight, bias - line, torch.zeros_like(bias))
    count = weight.double().sum(-1, keepdim=True).clamp_min(1)
    rest = torch.where(weight, rest - rest.sum(-1, keepdim=True) / count, torch.zeros_like(rest))
    return float(rest.abs().max())


def denoise_slopes(slopes: List[float]) -> List[float]:
    """Fitted slopes as the standard ones times one factor when they are that (Falcon: 1/sqrt(d);
    MPT and BLOOM with 2^k heads: 1), else as fitted (MPT with other head counts)."""
    standard = standard_alibi_slopes(len(slopes))
    factor = sum(s * t for s, t in zip(slopes, standard)) / sum(t * t for t in standard)
    if factor <= 0 or any(abs(s - factor * t) > SLOPE_FACTOR_TOLERANCE * factor * t
                          for s, t in zip(slopes, standard)):
        return slopes
    if abs(factor - 1.0) <= SLOPE_FACTOR_TOLERANCE:
        factor = 1.0
    return [factor * t for t in standard]


class InlineAttentionHooks:
    """Forward hooks on every Falcon / MPT / GPT-J / CodeGen attention module: the pre-hook starts
    an _AttentionWatch, the post-hook (always called) stops it and records what it saw."""

    def __init__(self, recorder):
        self.recorder = recorder
        self.handles: List[Any] = []
        self.active: List[_AttentionWatch] = []
        self.pending: Dict[int, Dict[str, Any]] = {}

    def install(self, model: torch.nn.Module) -> bool:
        for module in model.modules():
            family = family_of(module)
            if family is not None:
                self.handles.append(module.register_forward_pre_hook(self._before, with_kwargs=True))
                self.handles.append(module.register_forward_hook(self._after, with_kwargs=True,
                                                                 always_call=True))
        return bool(self.handles)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        while self.active:
            self.active.pop().__exit__(None, None, None)
        self.handles.clear()
        self.pending.clear()

    def _before(self, module, args, kwargs):
        hidden = args[0] if args else kwargs.get("hidden_states")
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3:
            raise RuntimeError(f"attnscope_capture: {type(module).__name__} was called without "
                               "hidden_states [batch, T, hidden]; the capture cannot follow it")
        family = family_of(module)
        bias = None
        if family.bias_argument is not None:
            name, position = family.bias_argument
            bias = kwargs.get(name, args[position] if len(args) > position else None)
        watch = _AttentionWatch(int(hidden.shape[1]))
        self.pending[id(module)] = {"watch": watch, "batch": int(hidden.shape[0]), "family": family,
                                    "alibi": isinstance(bias, torch.Tensor), "calls": self.recorder.calls}
        watch.__enter__()
        self.active.append(watch)

    def _after(self, module, args, kwargs, output):
        entry = self.pending.pop(id(module), None)
        if entry is None:
            return
        watch = entry["watch"]
        if self.active and self.active[-1] is watch:
            self.active.pop()
            watch.__exit__(None, None, None)
        if output is None:
            return  # the forward raised (always_call): its error is the one that counts
        if self.recorder.calls > entry["calls"]:
            return  # the layer went through the attention interface after all: recorded there
        self._record(module, entry)

    def _record(self, module, entry: Dict[str, Any]) -> None:
        watch, batch, family = entry["watch"], entry["batch"], entry["family"]
        what = f"{type(module).__name__} (layer {self.recorder.calls})"
        if watch.qk is not None and watch.pv is not None:
            q = _as_heads(watch.qk[0], batch)
            k = _as_heads(watch.qk[1], batch).transpose(-1, -2)
            probs, v, out = (_as_heads(x, batch) for x in watch.pv)
            scale = family.scale(module, q.shape[-1]) or 1.0 / math.sqrt(q.shape[-1])
            logits = _as_heads(watch.softmax_input, batch) if watch.softmax_input is not None else None
            mode = "eager"
        elif watch.sdpa is not None:
            call = watch.sdpa
            q, k, v, out = call["query"], call["key"], call["value"], call["result"]
            probs = None
            scale = call.get("scale") or 1.0 / math.sqrt(q.shape[-1])
            logits = None
            mode = "sdpa"
        else:
            raise RuntimeError(f"attnscope_capture: {what} computed its attention without a matmul of Q "
                               "and Kᵀ or a scaled_dot_product_attention call that the capture can observe "
                               "(a flash-attention or other fused kernel?); load the model with "
                               "attn_implementation='eager' (or 'sdpa') to capture it")
        heads = int(q.shape[1])
        if k.shape[1] == 0 or heads % k.shape[1] or v.shape[1] != k.shape[1]:
            raise RuntimeError(f"attnscope_capture: {what}: {heads} query heads with K {tuple(k.shape)} and "
                               f"V {tuple(v.shape)}: not a GQA layout the trace format can hold")
        slopes, residual = None, None
        if entry["alibi"]:
            slopes, residual = self._alibi_slopes(what, q, k, scale, logits, watch.sdpa, mode)
        k, v = _compact_kv(k, v, heads)
        kwargs = {"scaling": float(scale), "is_causal": True, "attnscope_alibi": slopes is not None,
                  "attnscope_alibi_slopes": slopes, "attnscope_alibi_residual": residual}
        if slopes is None:
            self.recorder.positional_hint = family.positional
        # Attention functions return the output as [B, T, H, dv] and the probabilities [B, H, T, T].
        self.recorder._record(module, q, k, v, (out.transpose(1, 2), probs),
                              f"{family.name} (module hooks, {mode})", kwargs)

    @staticmethod
    def _alibi_slopes(what: str, q, k, scale: float, logits, sdpa, mode: str) -> Tuple[List[float], float]:
        """The slopes of the ALiBi bias this layer really added (see the module's docstring) and
        how far that bias is from them (alibi_fit_residual)."""
        heads, length = int(q.shape[1]), int(q.shape[2])
        if mode == "eager":
            if logits is None:
                raise RuntimeError(f"attnscope_capture: {what} adds an ALiBi bias, but the capture saw no "
                                   "softmax over its scores to read the bias from; not supported")
            kk = k[0].double().repeat_interleave(heads // k.shape[1], dim=0)
            bias = logits[0].double() - scale * (q[0].double() @ kk.transpose(-1, -2))
        else:
            mask = sdpa.get("attn_mask")
            if not isinstance(mask, torch.Tensor) or not mask.is_floating_point():
                raise RuntimeError(f"attnscope_capture: {what} adds an ALiBi bias, but its "
                                   "scaled_dot_product_attention call has no float mask to read it from; "
                                   "load the model with attn_implementation='eager'")
            bias = mask.double().expand(q.shape[0], heads, length, length)[0]
        rows = torch.arange(length, device=bias.device)
        causal = rows[None, :] <= rows[:, None]
        visible = causal.expand(heads, length, length)
        slopes = denoise_slopes(fit_alibi_slopes(bias, visible))
        return slopes, alibi_fit_residual(bias, visible, slopes)
