"""Families whose attention does not go through the transformers attention interface, captured
through module hooks (module_hooks.InlineAttentionHooks): Falcon (rotary with multi-query or
new_decoder_architecture kv groups, ALiBi multi-head and multi-query), MPT (ALiBi; 6 heads: slopes
that are not the standard ones), GPT-J (rotary on part of the head dim, pairs interleaved) and
CodeGen (its own qkv split and the same rotary). Tiny random models, weights N(0, 0.15²) so that
attention is far from uniform, T = 48, float32.

Per family: the probabilities recomputed from the recorded Q/K and settings (scale, causal, ALiBi
and the layer's own slopes) match the model's own eager probabilities to <= 1e-4, the self-check
passed on them, O = P·V from the recorded V, wrong settings are caught, the trace is valid (v2
exactly when a layer has its own ALiBi slopes) and, with ATTNSCOPE_CLI, `attnscope-cli map` at full
resolution reproduces the eager probabilities (CPU, F32 trace; and on the GPU for the ALiBi
families with their own slopes, F16 trace against the float64 recomputation from its stored
values). Falcon also with SDPA. Attention the hooks cannot observe, and a Falcon-ALiBi bias that
bfloat16 has made non-linear (positions beyond 256), are refused with the reason.
"""

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from attnscope_capture import module_hooks  # noqa: E402
from attnscope_capture.capture import capture_ids  # noqa: E402
from attnscope_capture.recorder import standard_alibi_slopes  # noqa: E402
from attnscope_capture.reference import attention_probs  # noqa: E402
from attnscope_capture.trace_reader import read_trace  # noqa: E402
from capture_testing import (NEGATIVE_CONTROL, QKV_TOLERANCE, SEED, SEQ_LEN, TOLERANCE, VOCAB,  # noqa: E402
                             family_runs, cli_map_error, cli_or_skip, cli_path, input_ids,
                             max_abs_dp, reinit_weights, run_cli, write_checked_trace)

LAYERS = 3


def _falcon(**kwargs):
    return transformers.FalconConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=LAYERS,
                                     num_attention_heads=4, max_position_embeddings=256, **kwargs)


# arch: (config class name, config factory, family, kv heads, ALiBi, own slopes)
ARCHES = {
    "falcon-rotary-mqa": ("FalconConfig", lambda: _falcon(alibi=False, multi_query=True), "falcon", 1, False, False),
    "falcon-rotary-newarch": ("FalconConfig", lambda: _falcon(alibi=False, new_decoder_architecture=True,
                                                              num_kv_heads=2), "falcon", 2, False, False),
    "falcon-alibi": ("FalconConfig", lambda: _falcon(alibi=True, multi_query=False, parallel_attn=False, bias=True),
                     "falcon", 4, True, True),
    "falcon-alibi-mqa": ("FalconConfig", lambda: _falcon(alibi=True, multi_query=True), "falcon", 1, True, True),
    "mpt": ("MptConfig", lambda: transformers.MptConfig(d_model=64, n_heads=4, n_layers=LAYERS, expansion_ratio=2,
                                                        max_seq_len=256, vocab_size=VOCAB), "mpt", 4, True, False),
    "mpt-6-heads": ("MptConfig", lambda: transformers.MptConfig(d_model=96, n_heads=6, n_layers=LAYERS,
                                                                expansion_ratio=2, max_seq_len=256, vocab_size=VOCAB),
                    "mpt", 6, True, True),
    "gptj": ("GPTJConfig", lambda: transformers.GPTJConfig(vocab_size=VOCAB, n_positions=256, n_embd=64,
                                                           n_layer=LAYERS, n_head=4, rotary_dim=8),
             "gptj", 4, False, False),
    "codegen": ("CodeGenConfig", lambda: transformers.CodeGenConfig(vocab_size=VOCAB, n_positions=256, n_ctx=256,
                                                                    n_embd=64, n_layer=LAYERS, n_head=4, rotary_dim=8),
                "codegen", 4, False, False),
}
FALCON = [a for a in ARCHES if a.startswith("falcon")]
OWN_SLOPES = [a for a, spec in ARCHES.items() if spec[5]]


_build, eager_runs = family_runs(ARCHES)


@pytest.mark.parametrize("arch", list(ARCHES))
def test_matches_eager(arch, eager_runs, summary_rows, tmp_path):
    model, config, ids, probs, result = eager_runs(arch)
    _, _, family, kv_heads, alibi, own = ARCHES[arch]
    # Module hooks, or the attention interface where a later transformers routes the family there.
    assert result.implementations in ([f"{family} (module hooks, eager)"], ["eager"]), result.implementations
    assert len(result.captures) == LAYERS == len(probs) == result.attention_layers
    heads = probs[0].shape[0]
    for layer, cap in enumerate(result.captures):
        s = cap.settings
        assert cap.source_layer == layer
        assert (s["heads"], s["kv_heads"]) == (heads, kv_heads)
        assert tuple(cap.k.shape) == (kv_heads, SEQ_LEN, s["head_dim"])
        assert s["causal"] and s["sliding_window"] is None and s["softcap"] is None
        assert math.isclose(s["scale"], s["head_dim"] ** -0.5, rel_tol=1e-6)
        assert s["alibi"] == alibi
        assert (s["alibi_slopes"] is not None) == own
    assert result.positional == ("alibi" if alibi else "rope-applied")
    max_dp = max_abs_dp(result.captures, probs)
    assert max_dp <= TOLERANCE, f"{arch}: max |dp| {max_dp:.3e}"
    # The self-check compared the same thing, on the model's own P.
    assert result.check.passed and result.check.compared == "probabilities", result.check.message()
    # O = P·V from the recorded V and the GQA mapping.
    for cap in result.captures:
        group = cap.settings["heads"] // cap.settings["kv_heads"]
        out = attention_probs(cap.q, cap.k, cap.settings) @ cap.v.double().repeat_interleave(group, dim=0)
        assert (out - cap.out.double()).abs().max().item() <= TOLERANCE
    # The trace: v2 exactly when a layer has its own slopes; they come back as recorded.
    path = tmp_path / f"tiny-{arch}.attn.safetensors"
    write_checked_trace(result, ids, path, path.stem)
    meta, _ = read_trace(str(path))
    assert meta["version"] == ("2" if own else "1")
    for layer, cap in zip(meta["layers"], result.captures):
        assert layer.get("alibi_slopes") == cap.settings["alibi_slopes"]
    summary_rows.append((arch, "eager hooks", max_dp, path.stat().st_size))
    # Negative controls: the comparison sees a wrong scale, a flipped mask, a lost ALiBi bias and
    # standard slopes in place of the model's own.
    assert max_abs_dp(result.captures, probs, scale=result.captures[0].settings["scale"] * 1.25) > NEGATIVE_CONTROL
    assert max_abs_dp(result.captures, probs, causal=False) > NEGATIVE_CONTROL
    if alibi:
        no_alibi = max_abs_dp(result.captures, probs, alibi=False)
        assert no_alibi > NEGATIVE_CONTROL
        summary_rows.append((arch, "no alibi", no_alibi, None))
    if own:
        standard = max_abs_dp(result.captures, probs, alibi_slopes=None)
        assert standard > NEGATIVE_CONTROL
        summary_rows.append((arch, "std slopes", standard, None))
    cli = cli_path()
    if cli is None:
        return
    run = run_cli(cli, "info", str(path))
    info = run.stdout + run.stderr
    assert "passed" in info and (("ALiBi slopes per head" in info) == own), info
    worst, _ = cli_map_error(cli, path, probs, heads, tmp_path, ["--cpu"])
    assert worst <= TOLERANCE, f"attnscope-cli map --cpu on the {arch} trace: max |dp| {worst:.3e}"
    summary_rows.append((arch, "C++ f32 CPU", worst, None))


@pytest.mark.parametrize("arch", OWN_SLOPES)
def test_own_slopes_on_the_gpu(arch, eager_runs, summary_rows, tmp_path):
    """The layer's own slopes reach the GPU map (spec.alibiSlope): an F16 trace, layer 0, against
    the float64 recomputation from its stored 16-bit Q/K with the same slopes."""
    cli = cli_or_skip()
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the GPU map is checked on the GPU machine")
    model, config, ids, probs, result = eager_runs(arch)
    path = tmp_path / f"tiny-{arch}-f16.attn.safetensors"
    write_checked_trace(result, ids, path, path.stem, dtype="f16")
    meta, tensors = read_trace(str(path))
    reference = [attention_probs(tensors[f"layers.{i}.q"].float(), tensors[f"layers.{i}.k"].float(), layer)
                 for i, layer in enumerate(meta["layers"])]
    worst, _ = cli_map_error(cli, path, reference, probs[0].shape[0], tmp_path, [], layers=[0])
    assert worst <= 2 * TOLERANCE, f"attnscope-cli map (GPU) on the {arch} trace: max |dp| {worst:.3e}"
    summary_rows.append((arch, "C++ f16 GPU", worst, None))


def test_falcon_slopes_are_the_standard_ones_scaled(eager_runs, summary_rows):
    """Falcon's bias is slope_h · (key position) with the standard slopes (exact in bfloat16 for 4
    heads), scaled by one factor for every head: the recorded slopes are the standard ones times
    that factor (kept in the summary: 1/sqrt(d) when the bias is added once before the 1/sqrt(d))."""
    for arch in ("falcon-alibi", "falcon-alibi-mqa"):
        model, config, ids, probs, result = eager_runs(arch)
        for cap in result.captures:
            slopes, standard = cap.settings["alibi_slopes"], standard_alibi_slopes(cap.settings["heads"])
            ratios = [a / b for a, b in zip(slopes, standard)]
            assert max(ratios) - min(ratios) <= 1e-5 * max(ratios), ratios
        factor = ratios[0] * math.sqrt(cap.settings["head_dim"])
        summary_rows.append((arch, "factor*sqrt(d)", factor, None))


@pytest.mark.parametrize("arch", FALCON)
def test_falcon_sdpa(arch, eager_runs, summary_rows):
    """Falcon with SDPA: Q/K/V from the scaled_dot_product_attention call, the ALiBi bias from its
    float mask; the self-check compares P·V with SDPA's own output. Layer 0 sees the same input as
    in eager mode, so its Q/K/V must equal the eager capture's."""
    eager_model, config, ids, probs, eager = eager_runs(arch)
    model, _ = _build(arch, "sdpa", eager_model.state_dict())
    result = capture_ids(model, ids)
    if result.implementations == ["falcon (module hooks, eager)"]:
        pytest.skip(f"transformers {transformers.__version__}'s Falcon ran its eager code with sdpa asked for")
    assert result.implementations in (["falcon (module hooks, sdpa)"], ["sdpa"]), result.implementations
    assert result.check.passed and result.check.compared == "output", result.check.message()
    a, b = result.captures[0], eager.captures[0]
    for name in ("q", "k", "v"):
        diff = (getattr(a, name) - getattr(b, name)).abs().max().item()
        assert diff <= QKV_TOLERANCE, f"{arch} layer 0 {name}: {diff:.3e}"
    assert (a.settings["heads"], a.settings["kv_heads"], a.settings["alibi"]) == \
        (b.settings["heads"], b.settings["kv_heads"], b.settings["alibi"])
    summary_rows.append((arch, "sdpa check", result.check.max_abs_delta, None))
    # Against the eager probabilities: equal where both implementations compute the same thing
    # (rotary); with ALiBi the model's eager and SDPA code may add the bias differently, so the
    # number is kept, not asserted (the self-check above is what guards the SDPA trace).
    max_dp = max_abs_dp(result.captures, probs)
    summary_rows.append((arch, "sdpa vs eager", max_dp, None))
    if not ARCHES[arch][4]:
        assert max_dp <= TOLERANCE, f"{arch} SDPA capture against eager: max |dp| {max_dp:.3e}"


def test_falcon_alibi_beyond_bfloat16_is_refused():
    """Falcon computes slope × key position in bfloat16: exact (and captured above) for power-of-two
    slopes up to position 256, rounded beyond, so its bias is no longer linear in the key position.
    A 300-token input is refused by the self-check with the reason, not written with a bias the
    trace format cannot hold."""
    if not hasattr(transformers, "FalconConfig"):
        pytest.skip(f"transformers {transformers.__version__} has no FalconConfig")
    config = _falcon(alibi=True, multi_query=True)
    config.max_position_embeddings = 512
    torch.manual_seed(SEED)
    model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    reinit_weights(model)
    ids = input_ids(300)
    result = capture_ids(model, ids)
    assert max(c.settings["alibi_residual"] for c in result.captures) > 1e-2
    assert not result.check.passed
    assert "not linear in the key position" in result.check.message(), result.check.message()


def test_unobservable_attention_is_refused(monkeypatch):
    """Attention computed by calls the watch does not know (here: it is told to see no matmul and
    no SDPA, as with a flash-attention kernel) is refused with the reason, nothing recorded."""
    model, _ = _build("gptj", "eager")
    monkeypatch.setattr(module_hooks, "MATMUL_NAMES", frozenset())
    monkeypatch.setattr(module_hooks, "BADDBMM_NAMES", frozenset())
    monkeypatch.setattr(module_hooks, "SDPA_NAMES", frozenset())
    with pytest.raises(RuntimeError, match="computed its attention without a matmul of Q and Kᵀ"):
        capture_ids(model, input_ids())
