"""Module hooks for attention layers that do not go through transformers' attention interface.

BLOOM's attention (BloomAttention) computes everything inline: the fused QKV projection, its
`_reshape` into Q, K, V [batch, heads, T, d], the ALiBi bias added with `baddbmm` (scaled by
`inv_norm_factor`), the softmax, P·V and the output projection `dense`. The hooks take Q/K/V from
`_reshape`, the ALiBi tensor from the forward call and the attention output from the input of
`dense`, and hand them to the recorder like any attention function's call. ALiBi is recorded as
the trace format's `alibi: true`, whose slopes are the standard 2^(-8(h+1)/H): BLOOM's slopes for
a head count that is not a power of two are different, and such a model is refused rather than
written wrong. The self-check then compares the recomputed P·V with BLOOM's own output.
"""

from __future__ import annotations

from typing import Any, Dict, List

import torch

IMPLEMENTATION = "bloom (module hooks)"
ALIBI_SLOPE_TOLERANCE = 1e-6  # relative; the slopes are stored in the model's dtype


def standard_alibi_slopes(heads: int) -> List[float]:
    """The slopes the trace format's `alibi: true` means: 2^(-8 (h+1) / H)."""
    return [2.0 ** (-8.0 * (h + 1) / heads) for h in range(heads)]


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
        self._check_alibi(module, entry["alibi"], heads, length)
        # `dense` receives the heads merged: [B, T, H·d] -> [B, T, H, d], as attention functions return.
        out = context.reshape(batch, length, heads, v.shape[-1])
        kwargs = {"scaling": float(module.inv_norm_factor), "is_causal": True, "attnscope_alibi": True}
        self.recorder._record(module, q, k, v, (out, None), IMPLEMENTATION, kwargs)

    @staticmethod
    def _check_alibi(module, alibi: Any, heads: int, length: int) -> None:
        """BLOOM's bias is slope_h · (key position): its slopes must be the format's."""
        if not isinstance(alibi, torch.Tensor) or length < 2:
            return
        slopes = alibi.reshape(-1, heads, alibi.shape[-1])[0, :, 1].double()  # slope_h · 1
        standard = torch.tensor(standard_alibi_slopes(heads), dtype=torch.float64, device=slopes.device)
        worst = ((slopes - standard).abs() / standard).max().item()
        if worst > ALIBI_SLOPE_TOLERANCE:
            raise RuntimeError(f"attnscope_capture: {type(module).__name__} with {heads} heads uses ALiBi "
                               f"slopes that are not the standard 2^(-8(h+1)/H) (off by {worst:.2g}; BLOOM "
                               "interleaves extra slopes when the head count is not a power of two); the "
                               "trace format stores only the standard slopes, so this model is not supported")
