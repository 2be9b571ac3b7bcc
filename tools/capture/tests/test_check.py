"""Learned sinks (GPT-OSS) and the capture's self-check: never a silently wrong trace.

GPT-OSS puts a learned per-head sink logit in the softmax denominator. Before format v2 the
capture dropped it and wrote a trace whose recomputed probabilities differed from the model's by
up to 0.6. Here a tiny random GPT-OSS (sinks drawn in [-1, 3] so that they take a real share of
the mass, sliding/full layers) must match its own eager probabilities to <= 1e-4 from the
recorded Q/K and sinks, in Python and, with ATTNSCOPE_CLI, in the C++ engine (`map` at full
resolution and `analyze`'s learned-sink share against 1 - the row sums, on the CPU and on the GPU
when there is one). A capture whose data do not reproduce the model (sinks not recorded, a
wrong scale) is refused, or written with --allow-mismatch and the status in the trace.
"""

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from attnscope_capture import recorder as recorder_module  # noqa: E402
from attnscope_capture.__main__ import EXIT_MISMATCH, main  # noqa: E402
from attnscope_capture.capture import capture_ids  # noqa: E402
from attnscope_capture.check import check_captures  # noqa: E402
from attnscope_capture.reference import attention_probs  # noqa: E402
from attnscope_capture.trace_reader import read_trace, validate_trace  # noqa: E402
from capture_testing import (INIT_RANGE, NEGATIVE_CONTROL, SEED, SLIDING_WINDOW, TEXT, TOLERANCE,  # noqa: E402
                             VOCAB, cli_map_error, cli_or_skip, cli_path, eager_probs, input_ids, max_abs_dp,
                             run_cli, save_with_tokenizer, write_checked_trace)


def _gpt_oss(implementation="eager"):
    if not hasattr(transformers, "GptOssConfig"):
        pytest.skip(f"transformers {transformers.__version__} has no GPT-OSS")
    config = transformers.GptOssConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=4,
        num_experts_per_tok=2, sliding_window=SLIDING_WINDOW, max_position_embeddings=256,
        initializer_range=INIT_RANGE)
    torch.manual_seed(SEED)
    model = transformers.AutoModel.from_config(config, attn_implementation=implementation).eval()
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for module in model.modules():
            sinks = getattr(module, "sinks", None)
            if isinstance(sinks, torch.nn.Parameter):
                sinks.copy_(torch.empty(sinks.shape).uniform_(-1.0, 3.0, generator=generator))
    return model, config


def _llama(implementation):
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        initializer_range=INIT_RANGE)
    torch.manual_seed(SEED)
    return transformers.AutoModel.from_config(config, attn_implementation=implementation).eval()


@pytest.fixture(scope="module")
def gpt_oss_run():
    model, config = _gpt_oss()
    ids = input_ids()
    probs = eager_probs(model, ids)
    result = capture_ids(model, ids, record_output=True)
    return model, config, ids, probs, result


def test_gpt_oss_sinks_are_recorded(gpt_oss_run):
    model, config, ids, probs, result = gpt_oss_run
    modules = dict(model.named_modules())
    assert len(result.captures) == config.num_hidden_layers
    for cap in result.captures:
        expected = modules[cap.module_name].sinks.detach().float().tolist()
        assert cap.settings["sinks"] == pytest.approx(expected, abs=0.0)
    windows = {c.settings["sliding_window"] for c in result.captures}
    assert None in windows and SLIDING_WINDOW in windows  # sliding and full layers


def test_gpt_oss_matches_eager_with_sinks(gpt_oss_run, summary_rows, tmp_path):
    model, config, ids, probs, result = gpt_oss_run
    max_dp = max_abs_dp(result.captures, probs)
    assert max_dp <= TOLERANCE, f"gpt-oss: max |dp| {max_dp:.3e}"
    # The self-check saw the eager probabilities and passed at the same precision.
    assert result.check.passed and result.check.compared == "probabilities"
    assert result.check.max_abs_delta <= TOLERANCE
    # Negative control: without the sinks the probabilities are wrong (the 0.6), and
    # the self-check says so.
    no_sinks = max_abs_dp(result.captures, probs, sinks=None)
    assert no_sinks > NEGATIVE_CONTROL
    saved = [c.settings["sinks"] for c in result.captures]
    try:
        for c in result.captures:
            c.settings["sinks"] = None
        assert not check_captures(result.captures, TOLERANCE).passed
    finally:
        for c, s in zip(result.captures, saved):
            c.settings["sinks"] = s
    # O = P V with the sink taking mass but giving no value.
    for cap in result.captures:
        group = cap.settings["heads"] // cap.settings["kv_heads"]
        out = attention_probs(cap.q, cap.k, cap.settings) @ cap.v.double().repeat_interleave(group, 0)
        assert (out - cap.out.double()).abs().max().item() <= TOLERANCE
    path = tmp_path / "gpt-oss.attn.safetensors"
    write_checked_trace(result, ids, path, "tiny-gpt-oss")
    meta, tensors = read_trace(str(path))
    assert meta["version"] == "2" and meta["capture_check"]["status"] == "passed"
    for i, cap in enumerate(result.captures):
        assert tensors[f"layers.{i}.sinks"].tolist() == pytest.approx(cap.settings["sinks"], abs=0.0)
    summary_rows.append(("gpt-oss", "eager", max_dp, path.stat().st_size))
    summary_rows.append(("gpt-oss", "no sinks", no_sinks, None))


@pytest.mark.parametrize("backend", ["cpu", "default"])
def test_gpt_oss_cpp_engine_matches(backend, gpt_oss_run, summary_rows, tmp_path):
    """The C++ engine reads the v2 trace and reproduces the model: full-resolution maps against
    the probabilities, the learned-sink share against 1 - their row sums. 'cpu': an F32 trace
    against the model's own eager probabilities. 'default' runs on the GPU when there is one,
    which computes on 16-bit Q/K: an F16 trace against the float64 recomputation from its stored
    values (the self-test's tolerance, 1e-4 of the largest probability, plus the sums' 2e-4)."""
    cli = cli_or_skip()
    model, config, ids, probs, result = gpt_oss_run
    dtype = "f32" if backend == "cpu" else "f16"
    path = tmp_path / f"gpt-oss-{dtype}.attn.safetensors"
    write_checked_trace(result, ids, path, "tiny-gpt-oss", dtype=dtype)
    if backend == "cpu":
        reference, tolerance = probs, TOLERANCE
    else:
        meta, tensors = read_trace(str(path))
        reference = [attention_probs(tensors[f"layers.{i}.q"].float(), tensors[f"layers.{i}.k"].float(),
                                     dict(layer, sinks=tensors[f"layers.{i}.sinks"].tolist()))
                     for i, layer in enumerate(meta["layers"])]
        tolerance = 2 * TOLERANCE
    info = run_cli(cli, "info", str(path)).stdout
    assert "attnscope.trace v2" in info and "learned sink logits" in info and "passed" in info
    flags = ["--cpu"] if backend == "cpu" else []
    worst, on = cli_map_error(cli, path, reference, config.num_attention_heads, tmp_path, flags)
    assert worst <= tolerance, f"attnscope-cli map ({on}): max |dp| {worst:.3e}"
    analysis = tmp_path / "analysis.json"
    run_cli(cli, "analyze", str(path), "--json", str(analysis), *flags)
    with open(analysis) as handle:
        heads = json.load(handle)["heads"]
    share_error = 0.0
    for h in heads:
        learned = h["sinks"]["learnedSink"]
        assert learned is not None, f"layer {h['layer']} head {h['head']}: no learned sink in the analysis"
        share = (1.0 - reference[h["layer"]][h["head"]].sum(dim=-1)).mean().item()
        share_error = max(share_error, abs(learned["share"] - share))
    assert share_error <= tolerance, f"learned-sink share off by {share_error:.3e}"
    summary_rows.append(("gpt-oss", f"C++ {dtype} {on[:8]}", worst, None))
    summary_rows.append(("gpt-oss", f"share {dtype}", share_error, None))


def test_corrupted_capture_is_refused():
    """The check is sharp on models without sinks too, comparing probabilities (eager) or the
    attention function's output (SDPA): a 25% wrong scale fails it, naming the layer."""
    ids = input_ids()
    for implementation, compared in (("eager", "probabilities"), ("sdpa", "output")):
        result = capture_ids(_llama(implementation), ids)
        assert result.check.passed, result.check.message()
        assert result.check.compared == compared
        result.captures[-1].settings["scale"] *= 1.25
        check = check_captures(result.captures, TOLERANCE)
        assert not check.passed
        assert check.worst.layer == len(result.captures) - 1
        assert f"layer {check.worst.layer}" in check.message() and "above the tolerance" in check.message()


def test_bf16_model_within_its_tolerance(summary_rows):
    """A bf16 model's own probabilities carry the rounding of Q·Kᵀ to bf16: the default tolerance
    for bf16 models (5e-2) must hold for a correct capture."""
    model = _llama("eager").to(torch.bfloat16)
    result = capture_ids(model, input_ids())
    assert result.check.tolerance == 5e-2
    assert result.check.passed, result.check.message()
    summary_rows.append(("llama bf16", "eager", result.check.max_abs_delta, None))


@pytest.fixture(scope="module")
def saved_gpt_oss(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-gpt-oss")
    model, _ = _gpt_oss()
    save_with_tokenizer(model, str(folder), [TEXT] * 20)
    return str(folder)


def test_cli_refuses_a_mismatch(saved_gpt_oss, tmp_path, monkeypatch, capsys):
    """End to end: a capture that loses the sinks (as before format v2) is refused with exit code
    3 and a message naming the layer and max |dp|; --allow-mismatch writes it with the status,
    which attnscope-cli info shows. The correct capture passes and writes v2."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never wait on the network
    args = ["--model", saved_gpt_oss, "--text", TEXT, "--dtype", "f32", "--attn-implementation", "eager"]
    good = tmp_path / "good.attn.safetensors"
    assert main(args + ["-o", str(good)]) == 0, capsys.readouterr().err
    meta, _ = read_trace(str(good))
    assert meta["version"] == "2" and meta["capture_check"]["status"] == "passed"
    assert meta["capture_check"]["max_abs_delta"] <= TOLERANCE
    capsys.readouterr()

    monkeypatch.setattr(recorder_module, "resolve_sinks", lambda *a, **k: None)
    refused = tmp_path / "refused.attn.safetensors"
    assert main(args + ["-o", str(refused)]) == EXIT_MISMATCH
    err = capsys.readouterr().err
    assert not refused.exists()
    assert "layer " in err and "max |Δp|" in err and "--allow-mismatch" in err, err

    allowed = tmp_path / "allowed.attn.safetensors"
    assert main(args + ["-o", str(allowed), "--allow-mismatch"]) == 0
    assert "self-check FAILED" in capsys.readouterr().err
    meta, _ = read_trace(str(allowed))
    assert meta["capture_check"]["status"] == "mismatch"
    assert meta["capture_check"]["max_abs_delta"] > NEGATIVE_CONTROL
    assert validate_trace(str(allowed)) == []
    cli = cli_path()
    if cli is not None:
        info = run_cli(cli, "info", str(allowed)).stdout
        assert "MISMATCH" in info and "--allow-mismatch" in info, info
