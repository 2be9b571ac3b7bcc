"""The capture's self-check: never a silently wrong trace.

For every recorded layer, the probabilities of a sample of query rows are recomputed from what
the recorder kept (Q, K, V and the layer's settings, with the rules the C++ engine applies:
reference.attention_probs) and compared with the model's own attention on those rows:

- "probabilities": the attention function returned them (eager): max |Δp| over heads, rows, keys;
- "output": it did not (SDPA, flash, flex): the recomputed P·V against the function's output,
  max |ΔO| divided by max |v| of the layer (O is a weighted mean of V rows, so this bounds how far
  the probabilities moved; the same scale as |Δp|).

A layer above the tolerance makes the capture refuse to write the trace (capture.py), unless it is
asked to write it anyway (--allow-mismatch), in which case the status goes into the trace's
metadata (`capture_check`, docs/trace-format.md) and `attnscope-cli info` shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from .recorder import LayerCapture
from .reference import attention_probs

# Default tolerance by the dtype the model computes in: float32 scores agree with the float64
# recomputation to ~1e-6; 16-bit models round Q·Kᵀ before the softmax, so their own
# probabilities carry that rounding (bf16 keeps 8 significant bits, f16 11).
DEFAULT_TOLERANCES = {torch.float32: 1e-4, torch.float64: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


def default_tolerance(dtype: torch.dtype) -> float:
    return DEFAULT_TOLERANCES.get(dtype, 1e-4)


@dataclass
class LayerCheck:
    layer: int             # index in the trace (file order)
    source_layer: int      # index among the model's attention layers
    module: str
    compared: str          # "probabilities", "output" or "none" (nothing to compare with)
    max_abs_delta: float
    rows: int
    note: str = ""         # why this layer may not match, when something recorded says so


@dataclass
class CheckResult:
    tolerance: float
    layers: List[LayerCheck] = field(default_factory=list)

    @property
    def checked(self) -> List[LayerCheck]:
        return [c for c in self.layers if c.compared != "none"]

    @property
    def worst(self) -> Optional[LayerCheck]:
        checked = self.checked
        return max(checked, key=lambda c: c.max_abs_delta) if checked else None

    @property
    def max_abs_delta(self) -> float:
        worst = self.worst
        return worst.max_abs_delta if worst is not None else 0.0

    @property
    def passed(self) -> bool:
        # Not comparable at all (no layer gave probabilities or an output) is not a pass.
        return bool(self.checked) and self.max_abs_delta <= self.tolerance

    @property
    def compared(self) -> str:
        kinds = sorted({c.compared for c in self.checked})
        return "+".join(kinds) if kinds else "none"

    def metadata(self) -> Dict[str, Any]:
        """The trace's `capture_check` object."""
        worst = self.worst
        return {"status": "passed" if self.passed else "mismatch",
                "max_abs_delta": float(self.max_abs_delta), "compared": self.compared,
                "tolerance": float(self.tolerance),
                "worst_layer": worst.layer if worst is not None else -1,
                "rows_checked": max((c.rows for c in self.layers), default=0)}

    def message(self) -> str:
        """Why the check failed, naming the layer and max |Δp|."""
        worst = self.worst
        if worst is None:
            return ("the capture could not be checked: no attention layer returned probabilities "
                    "or an output to compare with")
        what = "|Δp|" if worst.compared == "probabilities" else "|ΔO|/max|v|"
        bad = [c for c in self.checked if c.max_abs_delta > self.tolerance]
        return (f"layer {worst.layer} ({worst.module}, model layer {worst.source_layer}): max {what} "
                f"{worst.max_abs_delta:.3g} between the probabilities recomputed from the recorded "
                f"Q/K and settings and the model's own attention, above the tolerance "
                f"{self.tolerance:.0e} ({len(bad)} of {len(self.checked)} layers above it): the trace "
                f"would not show what the model computed{'; ' + worst.note if worst.note else ''}")


def check_layer(cap: LayerCapture, layer: int, tolerance: float = 1e-4) -> LayerCheck:
    rows = cap.check_rows or []
    base = dict(layer=layer, source_layer=cap.source_layer, module=cap.module_name, rows=len(rows))
    residual = cap.settings.get("alibi_residual")
    if residual is not None and residual > tolerance:  # in logits: a bias this far from linear is not ALiBi
        base["note"] = (f"its ALiBi bias is not linear in the key position (up to {residual:.2g} from the "
                        "best slopes; Falcon computes slope × position in bfloat16, which is exact only for "
                        "power-of-two slopes and positions up to 256), and the trace format's ALiBi is "
                        "slope × (k − q)")
    if not rows or (cap.check_probs is None and cap.check_out is None):
        return LayerCheck(compared="none", max_abs_delta=0.0, **base)
    probs = attention_probs(cap.q, cap.k, cap.settings, rows=rows)  # [H, rows, T] float64
    if cap.check_probs is not None:
        delta = (probs - cap.check_probs).abs().max().item()
        return LayerCheck(compared="probabilities", max_abs_delta=float(delta), **base)
    group = cap.settings["heads"] // cap.settings["kv_heads"]
    v = cap.v.double().repeat_interleave(group, dim=0)       # [H, T, dv]
    out = probs @ v                                           # [H, rows, dv]
    scale = max(cap.v.double().abs().max().item(), 1e-30)
    delta = (out - cap.check_out).abs().max().item() / scale
    return LayerCheck(compared="output", max_abs_delta=float(delta), **base)


def check_captures(captures: Sequence[LayerCapture], tolerance: float) -> CheckResult:
    """Compares every captured layer (file order) with the model's own attention."""
    result = CheckResult(tolerance=float(tolerance))
    for i, cap in enumerate(captures):
        result.layers.append(check_layer(cap, i, tolerance))
    return result

