"""python -m attnscope_capture --model PATH_OR_NAME (--text "..." | --text-file F | --image F |
--synthetic-image SEED) -o out.attn.safetensors"""

from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_MISMATCH = 3  # the self-check refused the capture (1: other errors, 2: usage)


def parse_layers(spec: str):
    try:
        layers = sorted({int(part) for part in spec.split(",") if part.strip() != ""})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers expects comma-separated integers, got {spec!r}")
    if not layers or layers[0] < 0:
        raise argparse.ArgumentTypeError(f"--layers expects non-negative integers, got {spec!r}")
    return layers


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return number


def json_object(value: str):
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--extra is not valid JSON: {error}")
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("--extra must be a JSON object")
    return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m attnscope_capture",
        description="Capture Q/K/V (Q and K after RoPE, GQA kv heads kept) of a Hugging Face model "
                    "on one text, or of a vision model (ViT, DeiT, DINOv2 with or without "
                    "registers, the CLIP or SigLIP vision tower) on one image, and write an "
                    "attnscope trace (*.attn.safetensors).")
    parser.add_argument("--model", required=True, help="local folder or hub name of the model")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="input text")
    source.add_argument("--text-file", help="UTF-8 file holding the input text")
    source.add_argument("--image", help="image file (PNG, JPEG, ... read with Pillow) for a vision "
                                        "model: a `vision` trace with patch_grid and the pixels the "
                                        "model saw")
    source.add_argument("--synthetic-image", type=non_negative_int, metavar="SEED",
                        help="a procedurally generated image (gradient, grating, a circle, a square "
                             "and a triangle) at the model's input size, for a vision model")
    parser.add_argument("--no-image", action="store_true",
                        help="vision: do not store the `image` tensor in the trace")
    parser.add_argument("--layers", type=parse_layers,
                        help="attention layers to keep, e.g. 0,3,5 (default: all)")
    parser.add_argument("--max-tokens", type=positive_int, help="truncate the input to N tokens")
    parser.add_argument("--dtype", choices=["bf16", "f16", "f32"], default="f16",
                        help="stored tensor dtype (default f16)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    parser.add_argument("--compute-dtype", choices=["bf16", "f16", "f32"], default="f32",
                        help="dtype the model runs in (default f32)")
    parser.add_argument("--attn-implementation",
                        help="eager, sdpa, flash_attention_2, flex_attention, ... (default: the "
                             "model's own)")
    parser.add_argument("--with-output", action="store_true",
                        help="also store each layer's attention output as layers.{i}.out")
    parser.add_argument("--allow-mismatch", action="store_true",
                        help="write the trace even when the self-check fails (the recorded data do "
                             "not reproduce the model's attention); the status is stored in the "
                             "trace and shown by attnscope-cli info")
    parser.add_argument("--check-rows", type=non_negative_int, default=32,
                        help="query rows per layer the self-check compares with the model's own "
                             "attention (default 32; 0 turns the check off)")
    parser.add_argument("--check-tolerance", type=float, default=None,
                        help="largest max |dp| the self-check accepts (default 1e-4 for f32 "
                             "models, 1e-2 for f16, 5e-2 for bf16)")
    parser.add_argument("--extra", type=json_object, default=None,
                        help="JSON object merged into the trace's \"extra\" metadata")
    parser.add_argument("-o", "--output", required=True, help="output trace path")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    vision = args.image is not None or args.synthetic_image is not None
    if vision and args.max_tokens is not None:
        parser.error("--max-tokens is for text; an image gives one token per patch (plus prefix tokens)")
    if not vision and args.no_image:
        parser.error("--no-image is for --image / --synthetic-image")
    if vision:
        text = None
        if args.image is not None and not os.path.isfile(args.image):
            print(f"error: --image {args.image}: no such file", file=sys.stderr)
            return 2
    elif args.text_file is not None:
        try:
            with open(args.text_file, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as error:
            print(f"error: --text-file {args.text_file}: {error}", file=sys.stderr)
            return 2
    else:
        text = args.text
    try:
        from .capture import CaptureMismatch, capture_image, capture_text
    except ImportError as error:
        print(f"error: attnscope_capture needs torch, transformers and safetensors: {error}",
              file=sys.stderr)
        return 2
    try:
        common = dict(layers=args.layers, dtype=args.dtype, device=args.device,
                      compute_dtype=args.compute_dtype, attn_implementation=args.attn_implementation,
                      record_output=args.with_output, extra=args.extra,
                      allow_mismatch=args.allow_mismatch, check_rows=args.check_rows,
                      check_tolerance=args.check_tolerance)
        if vision:
            summary = capture_image(args.model, args.output, image_path=args.image,
                                    synthetic_seed=args.synthetic_image,
                                    store_image=not args.no_image, **common)
        else:
            summary = capture_text(args.model, text, args.output, max_tokens=args.max_tokens,
                                   **common)
    except CaptureMismatch as error:
        print(f"error: {error}; {args.output} not written (--allow-mismatch writes it with the "
              f"status recorded)", file=sys.stderr)
        return EXIT_MISMATCH
    except ImportError as error:
        print(f"error: attnscope_capture needs torch, transformers and safetensors: {error}",
              file=sys.stderr)
        return 2
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    grid = f", patch grid {summary['patch_grid'][0]}x{summary['patch_grid'][1]}" \
        if summary.get("patch_grid") else ""
    print(f"wrote {args.output}: {summary['tokens']} tokens{grid}, {summary['layers']} of "
          f"{summary['attention_layers']} attention layers, kind {summary['kind']}, "
          f"ran {','.join(summary['implementations'])}, {summary['bytes']} bytes")
    if summary.get("preprocess", "").startswith("no image processor"):
        print(f"note: {summary['preprocess']}", file=sys.stderr)
    check = summary["check"]
    if check is None:
        print("self-check: off (--check-rows 0)")
    elif check.passed:
        print(f"self-check: passed, max |dp| {check.max_abs_delta:.2e} <= {check.tolerance:.0e} "
              f"({check.compared})")
    else:
        print(f"warning: self-check FAILED, written because of --allow-mismatch: {check.message()}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
