"""Attention probabilities recomputed from captured Q/K with a layer's recorded settings.

This is the contract a trace makes, the same rules the C++ engine applies
(core/src/attention_spec.cpp, docs/trace-format.md "Scores"): s = scale * q.k, then the softcap
c * tanh(s / c), then the ALiBi bias slope_h * (k - q) with slope_h = 2^(-8 (h+1) / H) or the
layer's own `alibi_slopes` (format v2: Falcon, BLOOM/MPT with a head count that is not a power of 2), then the
mask (causal, sliding window), then a softmax over the visible keys whose denominator also holds
the layer's learned sink logit of the head when it has one (format v2, GPT-OSS):
p = exp(s - L') with L' = logaddexp(L, sink_h). GQA: query head h uses kv head
h // (heads / kv_heads). Used by the capture's self-check (check.py), the capture tests and the
demo-trace checks. Rows may be a sample; the keys are always all T (meant for verification and
moderate T, not for long traces: the C++ engine handles those tile by tile).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch


def allowed_mask(length: int, causal: bool, sliding_window: Optional[int],
                 device: Optional[torch.device] = None,
                 rows: Optional[Sequence[int]] = None) -> torch.Tensor:
    """[len(rows) or T, T] bool: key j visible from query i (same rule as attnscope's MaskSpec)."""
    query = torch.arange(length, device=device) if rows is None else \
        torch.tensor([int(r) for r in rows], device=device)
    i = query[:, None]
    j = torch.arange(length, device=device)[None, :]
    allowed = torch.ones(len(query), length, dtype=torch.bool, device=device)
    if causal:
        allowed &= j <= i
    if sliding_window:
        distance = (i - j) if causal else (i - j).abs()
        allowed &= distance < int(sliding_window)
    return allowed


def alibi_slopes(heads: int) -> torch.Tensor:
    """The standard ALiBi slopes 2^(-8 (h+1) / H) that the trace format names (float64)."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / heads) for h in range(heads)], dtype=torch.float64)


def attention_probs(q: torch.Tensor, k: torch.Tensor, settings: Dict[str, Any],
                    heads: Optional[Sequence[int]] = None,
                    dtype: torch.dtype = torch.float64,
                    rows: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Probabilities [len(heads), len(rows), T] from q [H, T, d] and k [Hkv, T, d].

    settings: a trace layer object (scale, causal, sliding_window, softcap, alibi, alibi_slopes) plus, for a
    layer with learned sinks, "sinks": one logit per query head. rows: query positions (default
    all). With a sink the rows sum to 1 - exp(sink - L') instead of 1.
    """
    num_heads, num_kv = q.shape[0], k.shape[0]
    if num_heads % num_kv:
        raise ValueError(f"q has {num_heads} heads, not a multiple of k's {num_kv} kv heads")
    group = num_heads // num_kv
    length = q.shape[1]
    head_list = list(range(num_heads)) if heads is None else [int(h) for h in heads]
    row_list = list(range(length)) if rows is None else [int(r) for r in rows]
    qh = q[head_list][:, row_list].to(dtype)
    kh = k[[h // group for h in head_list]].to(dtype)
    scores = torch.matmul(qh, kh.transpose(-1, -2)) * float(settings["scale"])
    softcap = settings.get("softcap")
    if softcap:
        scores = float(softcap) * torch.tanh(scores / float(softcap))
    if settings.get("alibi"):
        own = settings.get("alibi_slopes")
        every = alibi_slopes(num_heads) if own is None else torch.tensor([float(x) for x in own],
                                                                          dtype=torch.float64)
        slopes = every[head_list].to(device=q.device, dtype=dtype)
        offset = (torch.arange(length, device=q.device)[None, :] -
                  torch.tensor(row_list, device=q.device)[:, None]).to(dtype)
        scores = scores + slopes[:, None, None] * offset[None]
    mask = allowed_mask(length, bool(settings.get("causal", True)),
                        settings.get("sliding_window"), device=q.device, rows=row_list)
    scores = scores.masked_fill(~mask, float("-inf"))
    sinks = settings.get("sinks")
    if sinks is None:
        return torch.softmax(scores, dim=-1)
    # The sink is one more logit per row in the denominator, with no value: softmax over
    # [scores, sink] and drop the sink's column (what GPT-OSS's eager attention does).
    sink = torch.tensor([float(sinks[h]) for h in head_list], device=q.device, dtype=dtype)
    sink_column = sink[:, None, None].expand(len(head_list), len(row_list), 1)
    return torch.softmax(torch.cat([scores, sink_column], dim=-1), dim=-1)[..., :-1]
