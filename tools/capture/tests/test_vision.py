"""Vision models (issue 18 item 4): ViT (ViTModel, ViTForImageClassification, a rectangular grid),
DeiT, the CLIP and SigLIP vision towers, DINOv2 and DINOv2 with registers.

Tiny random-initialised models (3 layers, 4 heads, 32x32 images in 8x8 patches, weights
N(0, 0.15^2) so that attention is far from uniform; no download). For each family: the
probabilities recomputed from the captured Q/K must match the model's own eager attention
(output_attentions) to <= 1e-4 in float32, also when the model runs SDPA; the self-check passes;
the trace is `vision` with patch_grid, the token names of the layout rule and the U8 `image`; the
layout itself is checked by changing the pixels of one patch and finding the one position whose
layer-0 query moves; a wrong scale or a causal mask is detected. The command line captures an
image file through the model folder's image processor, a synthetic image without one, and a full
CLIP model's vision tower.
"""

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")
pytest.importorskip("PIL")

from capture_testing import INIT_RANGE, NEGATIVE_CONTROL, SEED, TOLERANCE, cli_or_skip  # noqa: E402
from attnscope_capture.capture import capture_pixels  # noqa: E402
from attnscope_capture.check import check_captures  # noqa: E402
from attnscope_capture.reference import attention_probs  # noqa: E402
from attnscope_capture.trace_reader import read_trace, validate_trace  # noqa: E402
from attnscope_capture.trace_writer import write_trace  # noqa: E402
from attnscope_capture.vision import (fallback_pixel_values, patch_position, pixels_seen,  # noqa: E402
                                      synthetic_image)

LAYOUT_TOLERANCE = 1e-5   # a layer-0 query "moved" when it changed by more than this
LAYERS, HEADS, HIDDEN = 3, 4, 64
CAPTURE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, patch_size=8)

# family -> (prefix token names, image height, width)
FAMILIES = {
    "vit": (["[CLS]"], 32, 32),
    "vit-classifier": (["[CLS]"], 32, 32),
    "vit-rect": (["[CLS]"], 32, 48),
    "deit": (["[CLS]", "[DIST]"], 32, 32),
    "clip": (["[CLS]"], 32, 32),
    "siglip": ([], 32, 32),
    "dinov2": (["[CLS]"], 32, 32),
    "dinov2-registers": (["[CLS]", "[REG0]", "[REG1]", "[REG2]", "[REG3]"], 32, 32),
}


def _config(family):
    t = transformers
    _, height, width = FAMILIES[family]
    if family in ("vit", "vit-classifier"):
        return t.ViTConfig(**COMMON, intermediate_size=128, image_size=32, num_labels=3)
    if family == "vit-rect":
        try:
            return t.ViTConfig(**COMMON, intermediate_size=128, image_size=[height, width])
        except (TypeError, ValueError) as error:
            pytest.skip(f"transformers {t.__version__} refuses a rectangular ViT image_size: {error}")
    if family == "deit":
        return t.DeiTConfig(**COMMON, intermediate_size=128, image_size=32)
    if family == "clip":
        return t.CLIPVisionConfig(**COMMON, intermediate_size=128, image_size=32)
    if family == "siglip":
        return t.SiglipVisionConfig(**COMMON, intermediate_size=128, image_size=32)
    if family == "dinov2":
        return t.Dinov2Config(**COMMON, mlp_ratio=2, image_size=32)
    if family == "dinov2-registers":
        return t.Dinov2WithRegistersConfig(**COMMON, mlp_ratio=2, image_size=32, num_register_tokens=4)
    raise KeyError(family)


def _build(family, implementation, state_dict=None):
    config = _config(family)
    auto = transformers.AutoModelForImageClassification if family == "vit-classifier" \
        else transformers.AutoModel
    torch.manual_seed(SEED)
    model = auto.from_config(config, attn_implementation=implementation).eval()
    if state_dict is not None:
        model.load_state_dict(state_dict)
    else:
        generator = torch.Generator().manual_seed(SEED)
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() >= 2:  # projections, patch convolution, CLS/registers, positions
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * INIT_RANGE)
    return model, config


def _pixels(family):
    _, height, width = FAMILIES[family]
    image = synthetic_image(SEED, height, width)

    class Size:  # fallback_pixel_values reads image_size from the config
        image_size = [height, width]
    return fallback_pixel_values(image, Size, "test")


def _eager_probs(model, pixel_values):
    with torch.no_grad():
        outputs = model(pixel_values=pixel_values, output_attentions=True)
    assert outputs.attentions is not None and len(outputs.attentions) == LAYERS
    return [a[0].double() for a in outputs.attentions]


@pytest.fixture(scope="module")
def eager_runs():
    cache = {}

    def get(family):
        if family not in cache:
            model, config = _build(family, "eager")
            pixel_values, preprocess = _pixels(family)
            probs = _eager_probs(model, pixel_values)
            result = capture_pixels(model, pixel_values, record_output=True)
            cache[family] = (model, config, pixel_values, preprocess, probs, result)
        return cache[family]
    return get


def _max_dp(captures, probs):
    assert len(captures) == len(probs)
    return max((attention_probs(c.q, c.k, c.settings) - p).abs().max().item()
               for c, p in zip(captures, probs))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_vision_eager_probabilities_match(family, eager_runs, summary_rows, tmp_path):
    model, config, pixel_values, preprocess, probs, result = eager_runs(family)
    prefix, height, width = FAMILIES[family]
    rows, cols = height // 8, width // 8
    assert result.implementations == ["eager"]
    assert result.kind == "vision" and result.positional == "learned"
    assert result.patch_grid == [rows, cols]
    assert result.tokens == prefix + [f"p{r},{c}" for r in range(rows) for c in range(cols)]
    max_dp = _max_dp(result.captures, probs)
    assert max_dp <= TOLERANCE, f"{family}: max |dp| {max_dp:.3e} > {TOLERANCE}"
    assert result.check.passed and result.check.compared == "probabilities"
    assert result.check.max_abs_delta <= TOLERANCE
    for cap in result.captures:
        s = cap.settings
        assert (s["heads"], s["kv_heads"], s["head_dim"]) == (HEADS, HEADS, HIDDEN // HEADS)
        assert s["causal"] is False and s["sliding_window"] is None and s["softcap"] is None
        assert s["alibi"] is False and s["sinks"] is None
        assert abs(s["scale"] - (HIDDEN // HEADS) ** -0.5) < 1e-12
        assert tuple(cap.q.shape) == (HEADS, len(result.tokens), HIDDEN // HEADS)
    path = tmp_path / f"{family}.attn.safetensors"
    write_trace(str(path), result.captures, model=f"tiny-{family}", kind="vision", text="",
                tokens=result.tokens, token_ids=None, positional=result.positional, dtype="f32",
                patch_grid=result.patch_grid, image=pixels_seen(pixel_values, preprocess),
                capture_check=result.check.metadata())
    assert validate_trace(str(path)) == []
    summary_rows.append((family, "eager", max_dp, path.stat().st_size))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_vision_output_equals_probabilities_times_v(family, eager_runs):
    model, config, pixel_values, preprocess, probs, result = eager_runs(family)
    for cap in result.captures:
        out = attention_probs(cap.q, cap.k, cap.settings) @ cap.v.double()
        assert (out - cap.out.double()).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("family", list(FAMILIES))
def test_vision_sdpa_capture(family, eager_runs, summary_rows):
    eager_model, config, pixel_values, preprocess, probs, eager_result = eager_runs(family)
    model, _ = _build(family, "sdpa", eager_model.state_dict())
    result = capture_pixels(model, pixel_values)
    assert result.implementations == ["sdpa"], result.implementations
    assert [c.settings for c in result.captures] == [c.settings for c in eager_result.captures]
    assert result.tokens == eager_result.tokens and result.patch_grid == eager_result.patch_grid
    max_dp = _max_dp(result.captures, probs)
    assert max_dp <= TOLERANCE, f"{family} (sdpa): max |dp| {max_dp:.3e}"
    assert result.check.passed and result.check.compared == "output"
    summary_rows.append((family, "sdpa", max_dp, None))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_vision_token_layout(family, eager_runs):
    """The layout rule holds for the model: changing the pixels of patch (r, c) moves the layer-0
    query of position T - rows*cols + r*cols + c and of no other position."""
    model, config, pixel_values, preprocess, probs, result = eager_runs(family)
    rows, cols = result.patch_grid
    length = len(result.tokens)
    base = capture_pixels(model, pixel_values, layers=[0], check_rows=0).captures[0].q
    for r, c in ((0, 0), (rows - 1, cols - 1), (1, cols - 2), (rows - 2, 0)):
        changed = pixel_values.clone()
        changed[:, :, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] += 0.75
        q = capture_pixels(model, changed, layers=[0], check_rows=0).captures[0].q
        moved = ((q - base).abs().amax(dim=(0, 2)) > LAYOUT_TOLERANCE).nonzero().flatten().tolist()
        assert moved == [patch_position(length, result.patch_grid, r, c)], (family, r, c, moved)
        assert result.tokens[moved[0]] == f"p{r},{c}"


@pytest.mark.parametrize("family", ["vit", "siglip", "dinov2-registers"])
def test_vision_wrong_settings_are_detected(family, eager_runs):
    """Negative controls: a wrong scale or a causal mask moves the probabilities, and the
    self-check refuses such a capture."""
    model, config, pixel_values, preprocess, probs, result = eager_runs(family)
    cap, reference = result.captures[-1], probs[-1]
    wrong_scale = dict(cap.settings, scale=cap.settings["scale"] * 1.25)
    assert (attention_probs(cap.q, cap.k, wrong_scale) - reference).abs().max() > NEGATIVE_CONTROL
    causal = dict(cap.settings, causal=True)
    assert (attention_probs(cap.q, cap.k, causal) - reference).abs().max() > NEGATIVE_CONTROL
    original = cap.settings
    try:
        cap.settings = wrong_scale
        check = check_captures(result.captures, TOLERANCE)
    finally:
        cap.settings = original
    assert not check.passed and check.worst.layer == len(result.captures) - 1


def test_vision_image_tensor(eager_runs, tmp_path):
    """`image` holds the pixels before normalisation: U8 [H, W, 3] that normalise back to the
    model's input, written after the layer tensors; only a vision trace may hold one."""
    model, config, pixel_values, preprocess, probs, result = eager_runs("vit-rect")
    image = pixels_seen(pixel_values, preprocess)
    assert image.dtype == torch.uint8 and tuple(image.shape) == (32, 48, 3)
    again = (image.permute(2, 0, 1).double() / 255 - 0.5) / 0.5
    assert (again - pixel_values[0].double()).abs().max().item() <= 0.5 / 255 / 0.5 + 1e-6
    path = tmp_path / "rect.attn.safetensors"
    meta = write_trace(str(path), result.captures, model="tiny-vit-rect", kind="vision", text="",
                       tokens=result.tokens, token_ids=None, positional="learned", dtype="f16",
                       patch_grid=result.patch_grid, image=image)
    assert "token_ids" not in meta and json.loads(meta["patch_grid"]) == [4, 6]
    assert validate_trace(str(path)) == []
    meta, tensors = read_trace(str(path))
    assert torch.equal(tensors["image"], image)
    from attnscope_capture.trace_reader import read_header
    header, _ = read_header(str(path))
    last = max((info["data_offsets"][1], name) for name, info in header.items() if name != "__metadata__")
    assert last[1] == "image" and header["image"]["dtype"] == "U8"
    with pytest.raises(ValueError, match="only a vision trace"):
        write_trace(str(tmp_path / "x.attn.safetensors"), result.captures, model="m", kind="encoder",
                    text="", tokens=result.tokens, token_ids=None, positional="learned", image=image)
    with pytest.raises(ValueError, match="uint8"):
        write_trace(str(tmp_path / "x.attn.safetensors"), result.captures, model="m", kind="vision",
                    text="", tokens=result.tokens, token_ids=None, positional="learned",
                    patch_grid=result.patch_grid, image=image.float())
    # Written around write_trace: an F16 image and an image in an encoder trace are reported.
    from safetensors.torch import save_file
    from attnscope_capture.trace_writer import build_metadata, layer_object
    tensors = {f"layers.{i}.{n}": getattr(c, n) for i, c in enumerate(result.captures) for n in "qkv"}
    layers = [layer_object(c, "learned") for c in result.captures]
    bad = tmp_path / "bad.attn.safetensors"
    save_file(dict(tensors, image=image.half()), str(bad), metadata=build_metadata(
        model="m", kind="vision", text="", tokens=result.tokens, token_ids=None, layers=layers,
        patch_grid=result.patch_grid))
    assert any(p.startswith("image:") for p in validate_trace(str(bad)))
    save_file(dict(tensors, image=image), str(bad), metadata=build_metadata(
        model="m", kind="encoder", text="", tokens=result.tokens, token_ids=None, layers=layers))
    assert any("only a vision trace" in p for p in validate_trace(str(bad)))


# ---- command line ------------------------------------------------------------------------------

def _run_cli(*args):
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = CAPTURE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "attnscope_capture", *args], env=env,
                          capture_output=True, text=True, timeout=300)


MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.3, 0.25]


@pytest.fixture(scope="module")
def saved_vit(tmp_path_factory):
    """A tiny ViT with its own image processor (resize to 32x32, mean/std of its own)."""
    folder = tmp_path_factory.mktemp("tiny-vit")
    model, _ = _build("vit", "eager")
    model.save_pretrained(str(folder))
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=MEAN,
                                   image_std=STD).save_pretrained(str(folder))
    return str(folder)


def test_cli_image_through_the_processor(saved_vit, tmp_path):
    picture = tmp_path / "picture.png"
    synthetic_image(7, 40, 56).save(str(picture))  # not the model's size: the processor resizes
    out = tmp_path / "vit.attn.safetensors"
    run = _run_cli("--model", saved_vit, "--image", str(picture), "--dtype", "f32", "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert "patch grid 4x4" in run.stdout and "self-check: passed" in run.stdout
    assert validate_trace(str(out)) == []
    meta, tensors = read_trace(str(out))
    assert meta["kind"] == "vision" and meta["patch_grid"] == [4, 4]
    assert meta["tokens"][0] == "[CLS]" and meta["tokens"][-1] == "p3,3" and len(meta["tokens"]) == 17
    assert "token_ids" not in meta
    assert meta["capture_check"]["status"] == "passed"
    assert meta["extra"]["image_source"] == "picture.png"
    assert meta["extra"]["image_original_size"] == [40, 56] and meta["extra"]["image_size"] == [32, 32]
    assert "ViTImageProcessor" in meta["extra"]["preprocess"]
    from PIL import Image
    processor = transformers.AutoImageProcessor.from_pretrained(saved_vit)
    expected = processor(images=Image.open(picture).convert("RGB"), return_tensors="pt")["pixel_values"][0]
    image = tensors["image"]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (32, 32, 3)
    mean, std = torch.tensor(MEAN)[:, None, None], torch.tensor(STD)[:, None, None]
    again = (image.permute(2, 0, 1).float() / 255 - mean) / std
    assert (again - expected).abs().max().item() <= 0.5 / 255 / min(STD) + 1e-4


def test_cli_synthetic_image_without_processor(tmp_path):
    folder = tmp_path / "tiny-dinov2-registers"
    model, _ = _build("dinov2-registers", "eager")
    model.save_pretrained(str(folder))
    out = tmp_path / "reg.attn.safetensors"
    run = _run_cli("--model", str(folder), "--synthetic-image", "3", "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert "no image processor" in run.stderr
    meta, tensors = read_trace(str(out))
    assert meta["tokens"][:6] == ["[CLS]", "[REG0]", "[REG1]", "[REG2]", "[REG3]", "p0,0"]
    assert meta["extra"]["preprocess"].startswith("no image processor")
    assert meta["extra"]["image_source"] == "synthetic image, seed 3"
    assert tensors["layers.0.q"].dtype == torch.float16
    expected = torch.tensor(bytearray(synthetic_image(3, 32, 32).tobytes()), dtype=torch.uint8)
    assert torch.equal(tensors["image"].flatten(), expected)
    run = _run_cli("--model", str(folder), "--synthetic-image", "3", "--no-image", "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert "image" not in read_trace(str(out))[1]


def test_cli_clip_model_captures_its_vision_tower(tmp_path):
    folder = tmp_path / "tiny-clip"
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16),
        vision_config=dict(hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS,
                           num_attention_heads=HEADS, image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(SEED)
    transformers.CLIPModel(config).save_pretrained(str(folder))
    out = tmp_path / "clip.attn.safetensors"
    run = _run_cli("--model", str(folder), "--synthetic-image", "1", "--attn-implementation", "eager",
                   "-o", str(out))
    assert run.returncode == 0, run.stderr
    meta, _ = read_trace(str(out))
    assert meta["extra"]["model_type"] == "clip_vision_model" and len(meta["layers"]) == LAYERS
    assert meta["capture_check"]["compared"] == "probabilities"


def test_cli_vision_errors_are_clear(saved_vit, tmp_path):
    out = tmp_path / "x.attn.safetensors"
    run = _run_cli("--model", saved_vit, "--image", str(tmp_path / "missing.png"), "-o", str(out))
    assert run.returncode == 2 and "missing.png" in run.stderr and not out.exists()
    run = _run_cli("--model", saved_vit, "--synthetic-image", "1", "--max-tokens", "5", "-o", str(out))
    assert run.returncode == 2 and "--max-tokens" in run.stderr
    not_image = tmp_path / "not-an-image.png"
    not_image.write_text("hello")
    run = _run_cli("--model", saved_vit, "--image", str(not_image), "-o", str(out))
    assert run.returncode == 1 and "not an image" in run.stderr and not out.exists()
    text_model = tmp_path / "tiny-llama"
    transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2)).save_pretrained(str(text_model))
    run = _run_cli("--model", str(text_model), "--synthetic-image", "1", "-o", str(out))
    assert run.returncode == 1 and "not a vision family" in run.stderr and not out.exists()


def test_attnscope_cli_info_opens_vision_trace(saved_vit, tmp_path):
    cli = cli_or_skip("check that the C++ reader opens the vision trace")
    out = tmp_path / "vit.attn.safetensors"
    run = _run_cli("--model", saved_vit, "--synthetic-image", "2", "-o", str(out))
    assert run.returncode == 0, run.stderr
    info = subprocess.run([cli, "info", "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stdout + info.stderr
    data = json.loads(info.stdout)
    assert "vision" in json.dumps(data)
