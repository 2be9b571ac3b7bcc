"""The families of issue 18's survey that go through the transformers attention interface and so
need no capture code of their own: Phi-3, Phi (partial rotary, qk layernorm), GPT-NeoX (rotary on
a quarter of the head dim), OLMo 2 (qk norm), Gemma 3 (sliding/full pattern, qk norm), StableLM
(partial rotary), Cohere (qk norm), OPT (learned positions), Mixtral (MoE, GQA), Starcoder2
(sliding window), Granite (its own attention multiplier as the scale), GPT-BigCode (multi-query),
ModernBERT (encoder, local/global layers) and RoBERTa (encoder). Tiny random models, weights
N(0, 0.15²) so that attention is far from uniform, T = 48, float32.

Per family: the probabilities recomputed from the recorded Q/K and settings match the model's
own eager probabilities to <= 1e-4, the self-check passed on them, O = P·V from the recorded V, a
wrong scale and a flipped mask are caught, the trace is valid and, with ATTNSCOPE_CLI,
`attnscope-cli map --cpu` at full resolution reproduces the eager probabilities of every layer and
head. With SDPA (where the family has it) the capture's Q/K/V equal the eager ones and its
probabilities match eager too. The rows go to the summary (tools/capture/README.md's table).
"""

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from attnscope_capture.capture import capture_ids  # noqa: E402
from attnscope_capture.reference import attention_probs  # noqa: E402
from capture_testing import (NEGATIVE_CONTROL, QKV_TOLERANCE, SLIDING_WINDOW, TOLERANCE, VOCAB,  # noqa: E402
                             family_runs, cli_map_error, cli_path, max_abs_dp, run_cli,
                             write_checked_trace)

LAYERS = 3
# Token ids 0-2 never occur in the input (capture_testing.input_ids): special ids go there, so a
# family's own defaults (e.g. Phi-3's pad id 32000) do not point outside the tiny vocabulary.
SPECIAL = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)
DECODER = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=LAYERS,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, **SPECIAL)
ENCODER = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=LAYERS,
               num_attention_heads=4, max_position_embeddings=256, **SPECIAL)
LOCAL_WINDOW = 16  # ModernBERT's local layers: keys within 8 positions either side


def _t():
    return transformers


# arch: (config class name, config factory, encoder, what the case exercises)
ARCHES = {
    "phi3": ("Phi3Config", lambda: _t().Phi3Config(**DECODER), False, "fused qkv, GQA 4/2"),
    "phi": ("PhiConfig", lambda: _t().PhiConfig(**DECODER, partial_rotary_factor=0.5, qk_layernorm=True), False,
            "partial rotary 0.5, qk layernorm"),
    "gpt-neox": ("GPTNeoXConfig", lambda: _t().GPTNeoXConfig(
        **{k: v for k, v in DECODER.items() if k != "num_key_value_heads"}, rotary_pct=0.25), False, "rotary on a quarter of the head dim"),
    "olmo2": ("Olmo2Config", lambda: _t().Olmo2Config(**DECODER), False, "q/k RMSNorm over all heads"),
    "gemma3": ("Gemma3TextConfig", lambda: _t().Gemma3TextConfig(
        **DECODER, head_dim=16, query_pre_attn_scalar=16, sliding_window=SLIDING_WINDOW,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"]), False,
        "sliding 8 / full / sliding, qk norm, query_pre_attn_scalar"),
    "stablelm": ("StableLmConfig", lambda: _t().StableLmConfig(**DECODER, partial_rotary_factor=0.25), False,
                 "partial rotary 0.25"),
    "cohere": ("CohereConfig", lambda: _t().CohereConfig(**DECODER, use_qk_norm=True), False,
               "qk layernorm per head, interleaved rotary"),
    "opt": ("OPTConfig", lambda: _t().OPTConfig(
        vocab_size=VOCAB, hidden_size=64, ffn_dim=128, num_hidden_layers=LAYERS, num_attention_heads=4,
        max_position_embeddings=256, word_embed_proj_dim=64, **SPECIAL), False, "learned positions (offset 2)"),
    "mixtral": ("MixtralConfig", lambda: _t().MixtralConfig(**DECODER, num_local_experts=4, num_experts_per_tok=2),
                False, "MoE, GQA 4/2"),
    "starcoder2": ("Starcoder2Config", lambda: _t().Starcoder2Config(**DECODER, sliding_window=SLIDING_WINDOW),
                   False, "sliding window 8, biases"),
    "granite": ("GraniteConfig", lambda: _t().GraniteConfig(**DECODER, attention_multiplier=0.2), False,
                "scale = attention_multiplier 0.2, not 1/sqrt(d)"),
    "gpt-bigcode": ("GPTBigCodeConfig", lambda: _t().GPTBigCodeConfig(
        vocab_size=VOCAB, n_embd=64, n_layer=LAYERS, n_head=4, n_positions=256, multi_query=True, **SPECIAL), False,
        "multi-query (1 kv head), learned positions"),
    "modernbert": ("ModernBertConfig", lambda: _t().ModernBertConfig(
        **ENCODER, global_attn_every_n_layers=2, local_attention=LOCAL_WINDOW, reference_compile=False,
        cls_token_id=1, sep_token_id=2), True, "encoder, global / local 16 / global"),
    "roberta": ("RobertaConfig", lambda: _t().RobertaConfig(**{**ENCODER, "pad_token_id": 1, "bos_token_id": 0}),
                True, "encoder, learned positions after the pad id"),
}


_build, eager_runs = family_runs(ARCHES)


@pytest.mark.parametrize("arch", list(ARCHES))
def test_matches_eager(arch, eager_runs, summary_rows, tmp_path):
    model, config, ids, probs, result = eager_runs(arch)
    encoder = ARCHES[arch][2]
    assert result.implementations == ["eager"], result.implementations
    assert len(result.captures) == LAYERS == len(probs) == result.attention_layers
    assert result.kind == ("encoder" if encoder else "causal-lm")
    heads = probs[0].shape[0]
    for layer, cap in enumerate(result.captures):
        assert cap.source_layer == layer
        assert cap.settings["heads"] == heads
        assert cap.settings["causal"] == (not encoder)
    windows = [cap.settings["sliding_window"] for cap in result.captures]
    if arch in ("gemma3", "starcoder2"):
        assert SLIDING_WINDOW in windows, windows
    if arch == "modernbert":  # global and local layers (the eager match below checks the window)
        assert None in windows and any(w is not None for w in windows), windows
    if arch == "granite":
        assert math.isclose(result.captures[0].settings["scale"], 0.2, rel_tol=1e-6)
    max_dp = max_abs_dp(result.captures, probs)
    assert max_dp <= TOLERANCE, f"{arch}: max |dp| {max_dp:.3e}"
    assert result.check.passed and result.check.compared == "probabilities", result.check.message()
    for cap in result.captures:  # O = P·V from the recorded V and the GQA mapping
        group = cap.settings["heads"] // cap.settings["kv_heads"]
        out = attention_probs(cap.q, cap.k, cap.settings) @ cap.v.double().repeat_interleave(group, dim=0)
        assert (out - cap.out.double()).abs().max().item() <= TOLERANCE
    path = tmp_path / f"tiny-{arch}.attn.safetensors"
    write_checked_trace(result, ids, path, path.stem)
    summary_rows.append((arch, "eager", max_dp, path.stat().st_size))
    # Negative controls: the comparison sees a wrong scale and a flipped mask.
    assert max_abs_dp(result.captures, probs, scale=result.captures[0].settings["scale"] * 1.25) > NEGATIVE_CONTROL
    assert max_abs_dp(result.captures, probs, causal=encoder) > NEGATIVE_CONTROL
    cli = cli_path()
    if cli is None:
        return
    info = run_cli(cli, "info", str(path))
    assert "passed" in info.stdout + info.stderr
    worst, _ = cli_map_error(cli, path, probs, heads, tmp_path, ["--cpu"])
    assert worst <= TOLERANCE, f"attnscope-cli map --cpu on the {arch} trace: max |dp| {worst:.3e}"
    summary_rows.append((arch, "C++ f32 CPU", worst, None))


@pytest.mark.parametrize("arch", list(ARCHES))
def test_sdpa_matches_eager(arch, eager_runs, summary_rows):
    eager_model, config, ids, probs, eager = eager_runs(arch)
    model, _ = _build(arch, "sdpa", eager_model.state_dict())
    result = capture_ids(model, ids)
    if result.implementations != ["sdpa"]:
        pytest.skip(f"{arch} ran {result.implementations} with sdpa asked for")
    assert result.check.passed, result.check.message()
    assert [a.settings for a in result.captures] == [b.settings for b in eager.captures]
    for a, b in zip(result.captures, eager.captures):
        for name in ("q", "k", "v"):
            diff = (getattr(a, name) - getattr(b, name)).abs().max().item()
            assert diff <= QKV_TOLERANCE, f"{arch} layer {a.source_layer} {name}: {diff:.3e}"
    max_dp = max_abs_dp(result.captures, probs)
    assert max_dp <= TOLERANCE, f"{arch} SDPA capture against eager: max |dp| {max_dp:.3e}"
    summary_rows.append((arch, "sdpa", max_dp, None))
