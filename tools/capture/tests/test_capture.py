"""Capture-tool tests: tiny random-initialised models of each covered architecture.

For each architecture the captured Q/K, run back through the recorded settings (scale, causal,
sliding window, softcap, GQA mapping), must reproduce the model's own eager attention
probabilities (output_attentions) to <= 1e-4 in float32, also when the model runs SDPA, and the
written trace must satisfy the format invariants the C++ reader checks and open with
`attnscope-cli info` (when ATTNSCOPE_CLI names the binary).
"""

import json
import math
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from attnscope_capture.capture import capture_ids  # noqa: E402
from attnscope_capture.reference import attention_probs  # noqa: E402
from attnscope_capture.trace_reader import read_trace, validate_trace  # noqa: E402
from attnscope_capture.trace_writer import write_trace  # noqa: E402
from capture_testing import (INIT_RANGE, NEGATIVE_CONTROL, QKV_TOLERANCE, SEED, SEQ_LEN, SLIDING_WINDOW,  # noqa: E402
                             TEXT, TOLERANCE, VOCAB, cli_or_skip, eager_run_cache, max_abs_dp, save_with_tokenizer)

CAPTURE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DECODER = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
               initializer_range=INIT_RANGE)


def _config(arch):
    t = transformers
    if arch == "llama":
        return t.LlamaConfig(**DECODER)
    if arch == "mistral":
        return t.MistralConfig(**DECODER, sliding_window=SLIDING_WINDOW)
    if arch == "qwen2":
        # layer 0 full attention, layers 1-2 sliding window
        return t.Qwen2Config(**DECODER, use_sliding_window=True, sliding_window=SLIDING_WINDOW,
                             max_window_layers=1)
    if arch == "qwen3":
        return t.Qwen3Config(**DECODER, head_dim=16)
    if arch == "gemma2":
        # softcap low enough to bite on these scores; alternating sliding/full layers
        return t.Gemma2Config(**DECODER, head_dim=16, query_pre_attn_scalar=16,
                              attn_logit_softcapping=2.0, sliding_window=SLIDING_WINDOW)
    if arch == "gpt2":
        return t.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=3, n_head=4, n_positions=256,
                            initializer_range=INIT_RANGE)
    if arch == "bert":
        return t.BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=3,
                            num_attention_heads=4, intermediate_size=128,
                            max_position_embeddings=256, initializer_range=INIT_RANGE)
    raise KeyError(arch)


ARCHITECTURES = ["llama", "qwen2", "mistral", "gpt2", "bert", "qwen3", "gemma2"]


def _expected_window(config, layer):
    """Sliding window the config says layer `layer` uses (None = full attention)."""
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return window if layer_types[layer] == "sliding_attention" else None
    return window


def _build(arch, implementation, state_dict=None):
    config = _config(arch)
    torch.manual_seed(SEED)
    model = transformers.AutoModel.from_config(config, attn_implementation=implementation)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model.eval(), config


@pytest.fixture(scope="module")
def eager_runs():
    """Per architecture: eager model, config, ids, eager probabilities, capture (cached per module)."""
    return eager_run_cache(_build)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_eager_probabilities_match(arch, eager_runs, summary_rows, tmp_path):
    model, config, ids, probs, result = eager_runs(arch)
    assert result.implementations == ["eager"]
    assert len(result.captures) == len(probs) == result.attention_layers
    max_dp = max_abs_dp(result.captures, probs)
    assert max_dp <= TOLERANCE, f"{arch}: max |dp| {max_dp:.3e} > {TOLERANCE}"
    path = tmp_path / f"{arch}.attn.safetensors"
    write_trace(str(path), result.captures, model=f"tiny-{arch}", kind=result.kind,
                text="", tokens=[str(int(t)) for t in ids[0]], token_ids=ids[0].tolist(),
                positional=result.positional, dtype="f32")
    summary_rows.append((arch, "eager", max_dp, path.stat().st_size))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_recorded_settings(arch, eager_runs):
    model, config, ids, probs, result = eager_runs(arch)
    heads = getattr(config, "num_attention_heads", None) or config.n_head
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    for layer, cap in enumerate(result.captures):
        s = cap.settings
        assert cap.source_layer == layer
        assert (s["heads"], s["kv_heads"]) == (heads, kv_heads)
        assert tuple(cap.q.shape) == (heads, SEQ_LEN, s["head_dim"])
        assert tuple(cap.k.shape) == (kv_heads, SEQ_LEN, s["head_dim"])
        assert cap.v.shape[:2] == (kv_heads, SEQ_LEN)
        assert s["causal"] == (arch != "bert")
        assert s["sliding_window"] == _expected_window(config, layer)
        assert s["softcap"] == getattr(config, "attn_logit_softcapping", None)
        if arch == "gemma2":
            assert math.isclose(s["scale"], config.query_pre_attn_scalar ** -0.5)
        else:
            assert math.isclose(s["scale"], s["head_dim"] ** -0.5)
    if arch in ("qwen2", "gemma2"):  # mixed layers: both kinds must be present
        windows = {c.settings["sliding_window"] for c in result.captures}
        assert None in windows and SLIDING_WINDOW in windows
    assert result.kind == ("encoder" if arch == "bert" else "causal-lm")
    assert result.positional == ("learned" if arch in ("gpt2", "bert") else "rope-applied")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_output_equals_probabilities_times_v(arch, eager_runs):
    """The recorded V and the GQA mapping reproduce the layer output: O = P V."""
    model, config, ids, probs, result = eager_runs(arch)
    for cap in result.captures:
        group = cap.settings["heads"] // cap.settings["kv_heads"]
        v = cap.v.double().repeat_interleave(group, dim=0)
        out = attention_probs(cap.q, cap.k, cap.settings) @ v
        assert (out - cap.out.double()).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_wrong_settings_are_detected(arch, eager_runs):
    """Negative control: the comparison is sharp enough to catch a wrong scale or mask."""
    model, config, ids, probs, result = eager_runs(arch)
    cap, reference = result.captures[-1], probs[-1]
    wrong_scale = dict(cap.settings, scale=cap.settings["scale"] * 1.25)
    assert (attention_probs(cap.q, cap.k, wrong_scale) - reference).abs().max() > NEGATIVE_CONTROL
    wrong_mask = dict(cap.settings, causal=not cap.settings["causal"])
    assert (attention_probs(cap.q, cap.k, wrong_mask) - reference).abs().max() > NEGATIVE_CONTROL


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_sdpa_capture(arch, eager_runs, summary_rows):
    eager_model, config, ids, probs, eager_result = eager_runs(arch)
    model, _ = _build(arch, "sdpa", eager_model.state_dict())
    result = capture_ids(model, ids)
    assert result.implementations == ["sdpa"], result.implementations
    assert [a.settings for a in result.captures] == [b.settings for b in eager_result.captures]
    pairs = list(zip(result.captures, eager_result.captures))
    if getattr(config, "attn_logit_softcapping", None):
        # SDPA has no logit softcap, so from layer 1 on the model's own hidden states differ from
        # eager; only the first layer sees identical inputs under both implementations.
        pairs = pairs[:1]
    for a, b in pairs:
        for name in ("q", "k", "v"):
            diff = (getattr(a, name) - getattr(b, name)).abs().max().item()
            assert diff <= QKV_TOLERANCE, f"{arch} layer {a.source_layer} {name}: {diff:.3e}"
    max_dp = max((attention_probs(a.q, a.k, a.settings) - probs[a.source_layer]).abs().max().item()
                 for a, _ in pairs)
    assert max_dp <= TOLERANCE
    summary_rows.append((arch, "sdpa", max_dp, None))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="flex attention test needs CUDA")
def test_flex_attention_capture_on_cuda(eager_runs):
    eager_model, config, ids, probs, eager_result = eager_runs("llama")
    model, _ = _build("llama", "flex_attention", eager_model.state_dict())
    result = capture_ids(model.cuda(), ids.cuda())
    assert result.implementations == ["flex_attention"], result.implementations
    assert max_abs_dp(result.captures, probs) <= TOLERANCE


@pytest.mark.parametrize("arch,dtype", [("llama", "f32"), ("gpt2", "f16"), ("bert", "bf16")])
def test_trace_file_invariants(arch, dtype, eager_runs, tmp_path):
    model, config, ids, probs, result = eager_runs(arch)
    path = tmp_path / "t.attn.safetensors"
    write_trace(str(path), result.captures, model=f"tiny-{arch}", kind=result.kind,
                text="x", tokens=[f"<{int(t)}>" for t in ids[0]], token_ids=ids[0].tolist(),
                positional=result.positional, dtype=dtype)
    assert validate_trace(str(path)) == []
    meta, tensors = read_trace(str(path))
    assert meta["format"] == "attnscope.trace" and meta["version"] == "1"
    assert len(meta["layers"]) == len(result.captures)
    expected_dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    for i, cap in enumerate(result.captures):
        assert meta["layers"][i]["source_layer"] == i
        assert tensors[f"layers.{i}.q"].dtype == expected_dtype
        assert torch.allclose(tensors[f"layers.{i}.q"].float(), cap.q, rtol=1e-2, atol=1e-2)
    leftovers = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert leftovers == []


def test_validator_rejects_broken_files(eager_runs, tmp_path):
    """The invariant check used above can fail: a truncated file and a wrong layer list."""
    model, config, ids, probs, result = eager_runs("llama")
    path = tmp_path / "t.attn.safetensors"
    write_trace(str(path), result.captures, model="m", kind=result.kind, text="",
                tokens=["a"] * SEQ_LEN, token_ids=ids[0].tolist(), positional="rope-applied")
    data = path.read_bytes()
    broken = tmp_path / "short.attn.safetensors"
    broken.write_bytes(data[:-16])
    assert any("data section" in p or "outside" in p for p in validate_trace(str(broken)))
    # Written around write_trace (which refuses both): a token list one short of T, and a
    # layer list that leaves the last layer's tensors undescribed.
    from safetensors.torch import save_file
    from attnscope_capture.trace_writer import build_metadata, layer_object

    tensors = {f"layers.{i}.{n}": getattr(c, n) for i, c in enumerate(result.captures)
               for n in ("q", "k", "v")}
    layers = [layer_object(c, "rope-applied") for c in result.captures]
    fewer = tmp_path / "fewer.attn.safetensors"
    save_file(tensors, str(fewer), metadata=build_metadata(
        model="m", kind="causal-lm", text="", tokens=["a"] * (SEQ_LEN - 1),
        token_ids=ids[0].tolist()[:-1], layers=layers))
    assert any("shape" in p for p in validate_trace(str(fewer)))
    extra = tmp_path / "extra.attn.safetensors"
    save_file(tensors, str(extra), metadata=build_metadata(
        model="m", kind="causal-lm", text="", tokens=["a"] * SEQ_LEN,
        token_ids=ids[0].tolist(), layers=layers[:-1]))
    assert any("not described" in p for p in validate_trace(str(extra)))


# ---- command line ------------------------------------------------------------------------------

TOKENIZER_CORPUS = ["In the beginning was the word, and the word was with attention.",
                    "Heads attend to the first token, to the previous token, and to copies."] * 20


def _run_cli(*args):
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"  # never wait on the network for a missing model
    env["PYTHONPATH"] = CAPTURE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "attnscope_capture", *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def saved_llama(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    model, _ = _build("llama", "sdpa")
    save_with_tokenizer(model, str(folder), TOKENIZER_CORPUS)
    return str(folder)


def test_cli_capture_and_layers(saved_llama, tmp_path):
    full = tmp_path / "full.attn.safetensors"
    run = _run_cli("--model", saved_llama, "--text", TEXT, "--dtype", "f32", "-o", str(full))
    assert run.returncode == 0, run.stderr
    meta, tensors = read_trace(str(full))
    assert validate_trace(str(full)) == []
    assert meta["tokens"][0] == "<bos>" and len(meta["tokens"]) == len(meta["token_ids"])
    assert "".join(meta["tokens"][1:]) == TEXT == meta["text"]
    assert meta["extra"]["implementations_run"] == ["sdpa"]

    subset = tmp_path / "subset.attn.safetensors"
    run = _run_cli("--model", saved_llama, "--text", TEXT, "--layers", "0,2", "--max-tokens", "9",
                   "--dtype", "bf16", "-o", str(subset))
    assert run.returncode == 0, run.stderr
    meta2, tensors2 = read_trace(str(subset))
    assert validate_trace(str(subset)) == []
    assert [layer["source_layer"] for layer in meta2["layers"]] == [0, 2]
    assert len(meta2["token_ids"]) == 9 and meta2["token_ids"] == meta["token_ids"][:9]
    assert torch.allclose(tensors2["layers.1.q"].float(), tensors["layers.2.q"][:, :9],
                          rtol=2e-2, atol=2e-2)


def test_cli_errors_are_clear(saved_llama, tmp_path):
    out = tmp_path / "x.attn.safetensors"
    run = _run_cli("--model", saved_llama, "--text", TEXT, "--layers", "7", "-o", str(out))
    assert run.returncode == 1 and "--layers" in run.stderr and not out.exists()
    run = _run_cli("--model", saved_llama, "--text-file", str(tmp_path / "missing.txt"),
                   "-o", str(out))
    assert run.returncode == 2 and "missing.txt" in run.stderr
    run = _run_cli("--model", str(tmp_path / "no-model"), "--text", "a", "-o", str(out))
    assert run.returncode != 0 and not out.exists()


def _cli_with_info():
    """Path of attnscope-cli from ATTNSCOPE_CLI, or skip (with the reason) when it is unset or the
    binary has no `info` verb."""
    cli = cli_or_skip("check that the C++ reader opens the trace")
    probe = subprocess.run([cli, "info", "--help"], capture_output=True, text=True, timeout=60)
    if "unknown verb" in probe.stdout + probe.stderr:
        pytest.skip(f"{cli} has no 'info' verb in this build")
    return cli


def test_attnscope_cli_info_opens_trace(saved_llama, tmp_path):
    cli = _cli_with_info()
    path = tmp_path / "cli.attn.safetensors"
    run = _run_cli("--model", saved_llama, "--text", TEXT, "--dtype", "f16", "-o", str(path))
    assert run.returncode == 0, run.stderr
    info = subprocess.run([cli, "info", str(path)], capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stdout + info.stderr
    assert os.path.basename(saved_llama) in info.stdout
    info_json = subprocess.run([cli, "info", "--json", str(path)], capture_output=True, text=True,
                               timeout=120)
    assert info_json.returncode == 0, info_json.stdout + info_json.stderr
    assert json.loads(info_json.stdout)


@pytest.mark.parametrize("arch", ["gpt2", "bert", "mistral"])
def test_attnscope_cli_info_other_architectures(arch, eager_runs, tmp_path):
    cli = _cli_with_info()
    model, config, ids, probs, result = eager_runs(arch)
    path = tmp_path / f"{arch}.attn.safetensors"
    write_trace(str(path), result.captures, model=f"tiny-{arch}", kind=result.kind, text="",
                tokens=[f"<{int(t)}>" for t in ids[0]], token_ids=ids[0].tolist(),
                positional=result.positional, dtype="f16")
    info = subprocess.run([cli, "info", str(path)], capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stdout + info.stderr
    assert f"tiny-{arch}" in info.stdout
