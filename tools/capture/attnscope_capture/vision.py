"""Vision models: where the patch tokens are, what the model saw, and how an image becomes input.

Token layout (docs/trace-format.md, "Vision traces"): the patch tokens are the last rows·cols
positions, row-major (patch (r, c) is position T − rows·cols + r·cols + c); the positions before
them are prefix tokens named "[CLS]", "[REG0]" … "[REGn]", "[DIST]"; patches are named "p{r},{c}".
The families below put their tokens in that order (their embedding modules concatenate
[CLS] (+ [DIST]) (+ registers) and then the flattened patch grid); a family not listed is refused
rather than laid out by guess. tests/test_vision.py checks the layout of each family by changing
the pixels of one patch and finding the one token whose layer-0 query moves.

The `image` tensor holds the pixels the model saw: U8 [height, width, 3], after the processor's
resize/crop and before its normalisation, recovered from the model's input as
pixel_values · std + mean (÷ the rescale factor), rounded and clipped to 0..255.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

# model_type -> names of the prefix tokens, in order, before the patch grid.
_PREFIX = {
    "vit": lambda config: ["[CLS]"],
    "deit": lambda config: ["[CLS]", "[DIST]"],
    "dinov2": lambda config: ["[CLS]"],
    "dinov2_with_registers": lambda config: ["[CLS]"] + [f"[REG{i}]" for i in
                                                          range(int(config.num_register_tokens))],
    "clip_vision_model": lambda config: ["[CLS]"],
    "siglip_vision_model": lambda config: [],
}
# Full (image + text) models whose vision tower is captured: model_type -> the tower's class.
VISION_TOWERS = {"clip": "CLIPVisionModel", "siglip": "SiglipVisionModel"}
VISION_MODEL_TYPES = tuple(sorted(_PREFIX)) + tuple(sorted(VISION_TOWERS))

# Used when the model folder has no image processor (preprocessor_config.json): ViTImageProcessor's
# defaults. Recorded in the trace's extra.preprocess.
FALLBACK_MEAN = (0.5, 0.5, 0.5)
FALLBACK_STD = (0.5, 0.5, 0.5)
MAX_IMAGE_SIDE = 8192  # docs/trace-format.md: 1 <= height, width <= 8192


def supported_families() -> str:
    return ", ".join(VISION_MODEL_TYPES)


def check_vision_model_type(model_type: Optional[str], name: str) -> None:
    if model_type not in _PREFIX and model_type not in VISION_TOWERS:
        raise ValueError(f"{name}: model_type {model_type!r} is not a vision family the capture can lay "
                         f"out (its patch tokens could not be placed on the image); supported: "
                         f"{supported_families()}")


def _pair(value: Any, what: str) -> Tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{what}: expected one integer or two, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def vision_layout(config: Any, pixel_hw: Sequence[int], length: int) -> Tuple[List[int], List[str]]:
    """(patch_grid [rows, cols], the T token names) of a vision model run on an image of
    pixel_hw = (height, width) that gave T = `length` attention positions."""
    model_type = getattr(config, "model_type", None)
    check_vision_model_type(model_type, type(config).__name__)
    if model_type in VISION_TOWERS:
        raise ValueError(f"model_type {model_type!r}: capture its vision tower ({VISION_TOWERS[model_type]})")
    patch_h, patch_w = _pair(getattr(config, "patch_size"), "patch_size")
    height, width = int(pixel_hw[0]), int(pixel_hw[1])
    rows, cols = height // patch_h, width // patch_w
    prefix = _PREFIX[model_type](config)
    if rows < 1 or cols < 1 or len(prefix) + rows * cols != length:
        raise ValueError(f"{model_type}: a {height}x{width} image in {patch_h}x{patch_w} patches is a "
                         f"{rows}x{cols} grid, which with the prefix tokens {prefix} makes "
                         f"{len(prefix) + rows * cols} positions, but the attention layers saw T = "
                         f"{length}: the token layout is not the one the capture knows")
    names = list(prefix) + [f"p{r},{c}" for r in range(rows) for c in range(cols)]
    return [rows, cols], names


def patch_position(length: int, grid: Sequence[int], row: int, col: int) -> int:
    """Position of patch (row, col) under the layout rule."""
    rows, cols = int(grid[0]), int(grid[1])
    return length - rows * cols + row * cols + col


# ---- input images ------------------------------------------------------------------------------

def synthetic_image(seed: int, height: int = 224, width: int = 224):
    """A procedurally generated RGB image (PIL), the same for the same seed and size: a smooth
    colour gradient with a grating, and a circle, a square and a triangle of distinct colours at
    seeded positions. For trying a model without an image file."""
    from PIL import Image

    generator = torch.Generator().manual_seed(int(seed))
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    y = (torch.arange(height, dtype=torch.float32)[:, None] + 0.5) / height
    x = (torch.arange(width, dtype=torch.float32)[None, :] + 0.5) / width
    corners = rand(2, 3) * 0.5 + 0.1
    image = corners[0][:, None, None] * (1 - x) + corners[1][:, None, None] * x
    angle, freq = rand(1).item() * math.pi, 4 + rand(1).item() * 8
    image = image + 0.06 * torch.sin(2 * math.pi * freq * (x * math.cos(angle) + y * math.sin(angle)))
    image = image.expand(3, height, width).clone()
    side = min(height, width)
    for kind in range(3):
        radius = (0.10 + 0.08 * rand(1).item()) * side
        cy = radius + rand(1).item() * (height - 2 * radius)
        cx = radius + rand(1).item() * (width - 2 * radius)
        dy = torch.arange(height, dtype=torch.float32)[:, None] + 0.5 - cy
        dx = torch.arange(width, dtype=torch.float32)[None, :] + 0.5 - cx
        theta = rand(1).item() * 2 * math.pi
        if kind == 0:
            inside = dx * dx + dy * dy <= radius * radius
        elif kind == 1:
            u = dx * math.cos(theta) + dy * math.sin(theta)
            v = -dx * math.sin(theta) + dy * math.cos(theta)
            inside = (u.abs() <= 0.8 * radius) & (v.abs() <= 0.8 * radius)
        else:
            inside = torch.ones(height, width, dtype=torch.bool)
            for k in range(3):
                a = theta + 2 * math.pi * k / 3
                inside &= dx * math.cos(a) + dy * math.sin(a) <= 0.5 * radius
        colour = torch.zeros(3)
        colour[kind] = 0.9
        colour[(kind + 1) % 3] = 0.3 * rand(1).item()
        image = torch.where(inside[None], colour[:, None, None], image)
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous()
    return Image.fromarray(pixels.numpy(), mode="RGB")


def load_image(path: str):
    """An image file as RGB (PIL); a clear error naming the file otherwise."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as error:
        raise ImportError(f"reading --image needs Pillow (PIL): {error}")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise OSError(f"--image {path}: no such file")
    except (UnidentifiedImageError, OSError) as error:
        raise OSError(f"--image {path}: not an image Pillow can read ({error})")


@dataclass
class Preprocess:
    """How an image became pixel_values: pixel_values = (pixels · rescale − mean) / std."""

    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    rescale: float          # 1/255 when the pipeline scales to 0..1, else 1
    description: str        # recorded in the trace's extra.preprocess


def _triple(value: Any, default: float) -> Tuple[float, float, float]:
    if value is None:
        return (default,) * 3
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    values = [float(v) for v in value]
    if len(values) != 3:
        raise ValueError(f"expected 3 per-channel values, got {values}")
    return tuple(values)  # type: ignore[return-value]


def preprocess_from_processor(processor: Any) -> Preprocess:
    normalize = bool(getattr(processor, "do_normalize", True))
    rescale = bool(getattr(processor, "do_rescale", True))
    mean = _triple(getattr(processor, "image_mean", None), 0.0) if normalize else (0.0,) * 3
    std = _triple(getattr(processor, "image_std", None), 1.0) if normalize else (1.0,) * 3
    factor = float(getattr(processor, "rescale_factor", 1 / 255)) if rescale else 1.0
    return Preprocess(mean=mean, std=std, rescale=factor,
                      description=f"{type(processor).__name__} from the model folder (resize/crop as it "
                                  f"is configured; rescale {factor:.6g}, mean {list(mean)}, std {list(std)})")


def fallback_pixel_values(image, config: Any, reason: str) -> Tuple[torch.Tensor, Preprocess]:
    """No image processor: resize to the config's image_size (PIL bilinear) unless the image has
    that size, scale to 0..1 and normalise with mean 0.5, std 0.5 (ViTImageProcessor's defaults)."""
    from PIL import Image

    height, width = _pair(getattr(config, "image_size"), "image_size")
    resized = image if image.size == (width, height) else image.resize((width, height), Image.BILINEAR)
    data = torch.tensor(bytearray(resized.tobytes()), dtype=torch.uint8).view(height, width, 3)
    mean, std = torch.tensor(FALLBACK_MEAN), torch.tensor(FALLBACK_STD)
    values = (data.permute(2, 0, 1).float() / 255.0 - mean[:, None, None]) / std[:, None, None]
    how = "kept" if image.size == (width, height) else f"resized from {image.size[1]}x{image.size[0]} (PIL bilinear)"
    return values[None], Preprocess(
        mean=FALLBACK_MEAN, std=FALLBACK_STD, rescale=1 / 255,
        description=f"no image processor ({reason}): {height}x{width} {how}, scaled to 0..1, "
                    f"normalised with mean 0.5, std 0.5 per channel (ViTImageProcessor's defaults)")


def image_to_pixel_values(model_name: str, config: Any, image) -> Tuple[torch.Tensor, Preprocess]:
    """pixel_values [1, 3, H, W] for `image` through the model folder's own image processor when it
    has one (AutoImageProcessor), else fallback_pixel_values."""
    try:
        from transformers import AutoImageProcessor
        processor = AutoImageProcessor.from_pretrained(model_name)
    except Exception as error:  # no preprocessor_config.json, offline, unknown processor type
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if len(reason) > 160:
            reason = reason[:157] + "..."
        return fallback_pixel_values(image, config, reason)
    values = processor(images=image, return_tensors="pt")["pixel_values"]
    if not isinstance(values, torch.Tensor):
        values = torch.as_tensor(values)
    if values.dim() != 4 or values.shape[0] != 1 or values.shape[1] != 3:
        raise ValueError(f"{type(processor).__name__} gave pixel_values of shape {tuple(values.shape)}, "
                         "expected [1, 3, height, width]")
    return values.float(), preprocess_from_processor(processor)


def pixels_seen(pixel_values: torch.Tensor, preprocess: Preprocess) -> torch.Tensor:
    """The `image` tensor: U8 [height, width, 3], the pixels before normalisation."""
    if pixel_values.dim() != 4 or pixel_values.shape[0] != 1 or pixel_values.shape[1] != 3:
        raise ValueError(f"pixel_values must be [1, 3, H, W], got {tuple(pixel_values.shape)}")
    height, width = int(pixel_values.shape[2]), int(pixel_values.shape[3])
    if not (1 <= height <= MAX_IMAGE_SIDE and 1 <= width <= MAX_IMAGE_SIDE):
        raise ValueError(f"image {height}x{width}: the trace's image must be 1..{MAX_IMAGE_SIDE} per side")
    mean = torch.tensor(preprocess.mean, dtype=torch.float64)[:, None, None]
    std = torch.tensor(preprocess.std, dtype=torch.float64)[:, None, None]
    values = (pixel_values[0].detach().to("cpu", torch.float64) * std + mean) / preprocess.rescale
    return values.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()


def image_source_name(path: Optional[str], seed: Optional[int]) -> str:
    return os.path.basename(path) if path is not None else f"synthetic image, seed {seed}"


def describe(extra: Dict[str, Any], preprocess: Preprocess, source: str, original_size: Tuple[int, int],
             pixel_hw: Sequence[int]) -> None:
    """Adds the image's provenance to the trace's extra metadata."""
    extra["image_source"] = source
    extra["image_original_size"] = [int(original_size[1]), int(original_size[0])]  # [height, width]
    extra["image_size"] = [int(pixel_hw[0]), int(pixel_hw[1])]
    extra["preprocess"] = preprocess.description
