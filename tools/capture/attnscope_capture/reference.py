"""Attention probabilities recomputed from captured Q/K with a layer's recorded settings.

This is the contract a trace makes: softmax(mask(softcap(scale * q.k))) with the GQA mapping
"query head h uses kv head h // (heads / kv_heads)" must reproduce what the model computed.
Used by the capture tests and by the demo-trace checks. Full T x T: meant for verification and
moderate T (a few thousand), not for long traces (the C++ engine handles those tile by tile).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch


def allowed_mask(length: int, causal: bool, sliding_window: Optional[int],
                 device: Optional[torch.device] = None) -> torch.Tensor:
    """[T, T] bool: key j visible from query i (same rule as attnscope's MaskSpec)."""
    i = torch.arange(length, device=device)[:, None]
    j = torch.arange(length, device=device)[None, :]
    allowed = torch.ones(length, length, dtype=torch.bool, device=device)
    if causal:
        allowed &= j <= i
    if sliding_window:
        distance = (i - j) if causal else (i - j).abs()
        allowed &= distance < int(sliding_window)
    return allowed


def attention_probs(q: torch.Tensor, k: torch.Tensor, settings: Dict[str, Any],
                    heads: Optional[Sequence[int]] = None,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Probabilities [len(heads), T, T] from q [H, T, d] and k [Hkv, T, d].

    settings: a trace layer object (scale, causal, sliding_window, softcap, alibi).
    """
    if settings.get("alibi"):
        raise NotImplementedError("ALiBi layers are not recomputed by this reference")
    num_heads, num_kv = q.shape[0], k.shape[0]
    if num_heads % num_kv:
        raise ValueError(f"q has {num_heads} heads, not a multiple of k's {num_kv} kv heads")
    group = num_heads // num_kv
    head_list = list(range(num_heads)) if heads is None else [int(h) for h in heads]
    qh = q[head_list].to(dtype)
    kh = k[[h // group for h in head_list]].to(dtype)
    scores = torch.matmul(qh, kh.transpose(-1, -2)) * float(settings["scale"])
    softcap = settings.get("softcap")
    if softcap:
        scores = float(softcap) * torch.tanh(scores / float(softcap))
    mask = allowed_mask(q.shape[1], bool(settings.get("causal", True)),
                        settings.get("sliding_window"), device=q.device)
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)
