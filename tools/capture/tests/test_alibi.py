"""ALiBi through module hooks (BLOOM): its attention does not go through the transformers attention
interface, so module_hooks.py takes Q/K/V, the ALiBi tensor and the output from the module. A
tiny BLOOM with 4 heads (standard slopes) must match its own eager probabilities to <= 1e-4 from
the recorded Q/K with `alibi: true`, in Python and in the C++ engine (`map --cpu`, with
ATTNSCOPE_CLI); one with 6 heads (BLOOM's interleaved slopes, not the format's standard ones) is
written with its own slopes (`alibi_slopes`, format v2) and matches too.
"""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from attnscope_capture.capture import capture_ids  # noqa: E402
from attnscope_capture.module_hooks import IMPLEMENTATION  # noqa: E402
from attnscope_capture.recorder import standard_alibi_slopes  # noqa: E402
from attnscope_capture.trace_reader import read_trace  # noqa: E402
from capture_testing import (NEGATIVE_CONTROL, SEED, TOLERANCE, VOCAB, cli_map_error, cli_path,  # noqa: E402
                             eager_probs, input_ids, max_abs_dp, write_checked_trace)


def _bloom(heads):
    config = transformers.BloomConfig(vocab_size=VOCAB, hidden_size=16 * heads, n_layer=3, n_head=heads,
                                      initializer_range=0.15)
    torch.manual_seed(SEED)
    return transformers.AutoModel.from_config(config, attn_implementation="eager").eval(), config


def test_bloom_alibi_matches_eager(summary_rows, tmp_path):
    model, config = _bloom(4)
    ids = input_ids()
    probs = eager_probs(model, ids)
    result = capture_ids(model, ids, record_output=True)
    assert result.implementations == [IMPLEMENTATION]
    assert len(result.captures) == config.n_layer == len(probs)
    assert result.positional == "alibi"
    for cap in result.captures:
        assert cap.settings["alibi"] and cap.settings["causal"]
        assert cap.settings["scale"] == pytest.approx((config.hidden_size // config.n_head) ** -0.5)
    max_dp = max_abs_dp(result.captures, probs)
    assert max_dp <= TOLERANCE, f"bloom: max |dp| {max_dp:.3e}"
    # The self-check compared P·V with BLOOM's own output; without ALiBi it would fail.
    assert result.check.passed and result.check.compared == "output", result.check.message()
    no_alibi = max_abs_dp(result.captures, probs, alibi=False)
    assert no_alibi > NEGATIVE_CONTROL
    path = tmp_path / "bloom.attn.safetensors"
    write_checked_trace(result, ids, path, "tiny-bloom")
    summary_rows.append(("bloom", "eager hooks", max_dp, path.stat().st_size))
    summary_rows.append(("bloom", "no alibi", no_alibi, None))
    cli = cli_path()
    if cli is None:
        return
    worst, _ = cli_map_error(cli, path, probs, config.n_head, tmp_path, ["--cpu"])
    assert worst <= TOLERANCE, f"attnscope-cli map --cpu on the BLOOM trace: max |dp| {worst:.3e}"
    summary_rows.append(("bloom", "C++ f32 CPU", worst, None))


def test_bloom_six_heads_keep_their_own_slopes(summary_rows, tmp_path):
    """6 heads: BLOOM interleaves extra slopes (2^-2, 2^-4, ... then 2^-1, 2^-3, ...), not the
    standard 2^(-8(h+1)/6). They are recorded as the layer's alibi_slopes and written as v2; with
    the standard slopes instead the probabilities would be off by far."""
    model, config = _bloom(6)
    ids = input_ids()
    probs = eager_probs(model, ids)
    result = capture_ids(model, ids)
    assert result.check.passed, result.check.message()
    for cap in result.captures:
        slopes = cap.settings["alibi_slopes"]
        assert slopes is not None and len(slopes) == 6
        assert slopes != pytest.approx(standard_alibi_slopes(6), rel=1e-3)
    max_dp = max_abs_dp(result.captures, probs)
    assert max_dp <= TOLERANCE, f"bloom 6 heads: max |dp| {max_dp:.3e}"
    standard = max_abs_dp(result.captures, probs, alibi_slopes=None)
    assert standard > NEGATIVE_CONTROL
    path = tmp_path / "bloom6.attn.safetensors"
    write_checked_trace(result, ids, path, "tiny-bloom-6")
    assert read_trace(str(path))[0]["version"] == "2"
    summary_rows.append(("bloom-6-heads", "eager hooks", max_dp, path.stat().st_size))
    summary_rows.append(("bloom-6-heads", "std slopes", standard, None))
    cli = cli_path()
    if cli is None:
        return
    worst, _ = cli_map_error(cli, path, probs, 6, tmp_path, ["--cpu"], layers=[0])
    assert worst <= TOLERANCE, f"attnscope-cli map --cpu on the 6-head BLOOM trace: max |dp| {worst:.3e}"
    summary_rows.append(("bloom-6-heads", "C++ f32 CPU", worst, None))
