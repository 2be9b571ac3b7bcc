#!/usr/bin/env python3
"""Trains the tiny vision demo model on generated shapes and captures the bundled vision trace.

Task ("which shape is in the majority?"): 96x96 RGB images, each with 2 to 7 shapes (circles,
squares, triangles) in random cells of a jittered 4x4 layout, with random sizes, rotations and
colours, on a textured background (a tinted grating with noise), crossed by up to two thin lines
(occluders). One shape type appears k in {2, 3} times, each other type fewer than k times; the
label is that type (3 classes, chance 1/3). Colour and position say nothing about the label, so
the model must recognise every shape (local) and compare counts over the whole image (global).
Images are generated on the fly on the GPU from a seeded generator: the training stream and the
held-out set (--eval-images, another seed) never repeat an image in practice.

Model: transformers `Dinov2WithRegistersModel` (a ViT with register tokens: pre-norm blocks,
layer scale, learned position embeddings), 6 layers x 6 heads, head dim 32 (hidden 192, MLP
768), 8x8 patches -> a 12x12 grid, [CLS] + 4 registers, T = 149; a linear classifier on the final
[CLS] (after the last layer norm), so the class evidence must be gathered into [CLS] by attention.
The registers are drawn N(0, 0.02^2) like [CLS] (transformers starts them at zero, which would
keep the four identical); the (learned) position embeddings start as 2-D sin-cos of the patch
row and column (as in MAE) times 0.5, [CLS]'s at zero.
Training: AdamW, bf16 autocast, SDPA, batch --batch, warm-up then cosine decay over
progress = max(step / --steps, seconds / --max-seconds), stopping when it reaches 1 (the step
count therefore depends on the GPU's speed; --max-seconds 0 makes it a pure step count).

Then: the first held-out image (in generation order) with at least 5 shapes that the model
classifies correctly is saved as PNG; the backbone is saved with save_pretrained plus an image
processor (ViTImageProcessor: no resize, mean 0.5, std 0.5: exactly the training normalisation);
the capture tool (`python -m attnscope_capture --image …`, eager attention, f16) writes the trace;
and the trace is scored from its stored f16 Q/K: per head, the mean attention distance of patch
queries over patch keys, in patches ("patch_distance"), their mass on the prefix tokens ([CLS],
registers; "prefix_share", and per prefix token), on their 3x3 patch neighbourhood
("local_3x3_share") and on the patches that show a shape ("shape_patch_share"; [CLS]'s too).
--check TRACE only scores an existing trace.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURE_ROOT = os.path.join(os.path.dirname(HERE), "capture")
sys.path.insert(0, CAPTURE_ROOT)

SIZE, PATCH, CELLS = 96, 8, 4
CELL = SIZE // CELLS
MAX_SHAPES = 7
SHAPE_NAMES = ("circle", "square", "triangle")
MAX_TRACE_BYTES = 4 * 1000 * 1000
MEAN, STD = 0.5, 0.5
POS_INIT_SCALE = 0.5


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default="/tmp/vision-demo", help="folder for the model and the image")
    p.add_argument("-o", "--output", help="trace to write (e.g. shapes-vit.attn.safetensors)")
    p.add_argument("--checks-json", help="where to write the training log and the trace's scores")
    p.add_argument("--samples-png", help="a 4x4 grid of training images, for looking at the data")
    p.add_argument("--check", metavar="TRACE", help="only score an existing trace")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--max-seconds", type=float, default=140.0)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--eval-images", type=int, default=2048)
    p.add_argument("--device", default="cuda")
    return p.parse_args(argv)


# ---- data ----------------------------------------------------------------------------------------

def hsv_to_rgb(h, s, v):
    """h, s, v in [0, 1] (same shape) -> [..., 3]."""
    import torch
    k = lambda n: (n + h * 6) % 6  # noqa: E731
    f = lambda n: v - v * s * torch.clamp(torch.minimum(k(n), 4 - k(n)), 0, 1)  # noqa: E731
    return torch.stack([f(5), f(3), f(1)], dim=-1)


def render_batch(generator, n, device):
    """n images: uint8 [n, 3, SIZE, SIZE], labels [n] (the majority type), counts [n, 3]."""
    import torch
    rand = lambda *shape: torch.rand(*shape, generator=generator, device=device)  # noqa: E731
    majority = (rand(n) * 3).long().clamp(max=2)
    k = 2 + (rand(n) < 0.5).long()
    counts = (rand(n, 3) * k[:, None]).long().clamp(max=2)
    counts = torch.minimum(counts, k[:, None] - 1)
    counts.scatter_(1, majority[:, None], k[:, None])
    slot = torch.arange(MAX_SHAPES, device=device)[None, :]
    c0, c1, c2 = counts[:, 0:1], counts[:, 1:2], counts[:, 2:3]
    types = torch.where(slot < c0, 0, torch.where(slot < c0 + c1, 1, torch.where(slot < c0 + c1 + c2, 2, -1)))
    cells = rand(n, CELLS * CELLS).argsort(dim=1)[:, :MAX_SHAPES]
    cy = (cells // CELLS).float() * CELL + CELL / 2 + (rand(n, MAX_SHAPES) - 0.5) * 6
    cx = (cells % CELLS).float() * CELL + CELL / 2 + (rand(n, MAX_SHAPES) - 0.5) * 6
    radius = 6 + rand(n, MAX_SHAPES) * 4
    theta = rand(n, MAX_SHAPES) * 2 * math.pi
    colour = hsv_to_rgb(rand(n, MAX_SHAPES), 0.55 + 0.45 * rand(n, MAX_SHAPES), 0.75 + 0.25 * rand(n, MAX_SHAPES))

    yy = torch.arange(SIZE, device=device, dtype=torch.float32)[None, :, None] + 0.5
    xx = torch.arange(SIZE, device=device, dtype=torch.float32)[None, None, :] + 0.5
    base = hsv_to_rgb(rand(n), 0.2 + 0.4 * rand(n), 0.15 + 0.3 * rand(n))            # [n, 3]
    angle, freq = rand(n)[:, None, None] * math.pi, (2 + 6 * rand(n))[:, None, None]
    grating = torch.sin(2 * math.pi * freq * (xx * torch.cos(angle) + yy * torch.sin(angle)) / SIZE)
    noise = torch.randn(n, 3, SIZE, SIZE, generator=generator, device=device)
    image = base[:, :, None, None] * (1 + 0.35 * grating[:, None]) + 0.03 * noise
    for s in range(MAX_SHAPES):
        dy, dx = yy - cy[:, s, None, None], xx - cx[:, s, None, None]
        r, th = radius[:, s, None, None], theta[:, s, None, None]
        circle = dx * dx + dy * dy <= (0.9 * r) ** 2
        u, v = dx * torch.cos(th) + dy * torch.sin(th), -dx * torch.sin(th) + dy * torch.cos(th)
        square = (u.abs() <= 0.8 * r) & (v.abs() <= 0.8 * r)
        triangle = torch.ones_like(circle)
        for corner in range(3):
            a = th + 2 * math.pi * corner / 3
            triangle &= dx * torch.cos(a) + dy * torch.sin(a) <= 0.65 * r
        t = types[:, s, None, None]
        inside = torch.where(t == 0, circle, torch.where(t == 1, square, triangle)) & (t >= 0)
        image = torch.where(inside[:, None], colour[:, s, :, None, None], image)
    for _ in range(2):  # thin occluding lines, each present with probability 0.7
        present = (rand(n) < 0.7)[:, None, None]
        py, px = rand(n)[:, None, None] * SIZE, rand(n)[:, None, None] * SIZE
        a = rand(n)[:, None, None] * math.pi
        line = ((xx - px) * -torch.sin(a) + (yy - py) * torch.cos(a)).abs() <= 0.8
        grey = (0.3 + 0.6 * rand(n))[:, None, None, None].expand(n, 3, 1, 1)
        image = torch.where((line & present)[:, None], grey, image)
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels, majority, counts


def normalise(pixels):
    return (pixels.float() / 255.0 - MEAN) / STD


# ---- model ---------------------------------------------------------------------------------------

def sincos_2d(grid, dim):
    """[grid*grid, dim]: for patch (r, c) row-major, sin/cos of r and of c at dim/4 frequencies."""
    import torch
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    r = torch.arange(grid, dtype=torch.float32).repeat_interleave(grid)[:, None] * omega
    c = torch.arange(grid, dtype=torch.float32).repeat(grid)[:, None] * omega
    return torch.cat([torch.sin(r), torch.cos(r), torch.sin(c), torch.cos(c)], dim=1)


def build_model(device, implementation="sdpa"):
    import torch
    import transformers
    config = transformers.Dinov2WithRegistersConfig(
        hidden_size=192, num_hidden_layers=6, num_attention_heads=6, mlp_ratio=4, image_size=SIZE,
        patch_size=PATCH, num_register_tokens=4, drop_path_rate=0.0, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0)
    backbone = transformers.AutoModel.from_config(config, attn_implementation=implementation)
    # transformers initialises the registers to zero: four identical tokens without position
    # embeddings would get identical gradients and stay identical. Draw them like [CLS].
    with torch.no_grad():
        backbone.embeddings.register_tokens.normal_(0.0, config.initializer_range)
        # Position embeddings (still learned) start as 2-D sin-cos of the patch row and column
        # (as in MAE), scaled by POS_INIT_SCALE, so that spatial neighbourhoods are there from step 0.
        grid = SIZE // PATCH
        backbone.embeddings.position_embeddings[0, 1:] = POS_INIT_SCALE * sincos_2d(grid, config.hidden_size)
        backbone.embeddings.position_embeddings[0, 0] = 0.0
    head = torch.nn.Linear(config.hidden_size, len(SHAPE_NAMES))
    return backbone.to(device), head.to(device)


def classify(backbone, head, pixel_values):
    cls = backbone(pixel_values=pixel_values).last_hidden_state[:, 0]  # [CLS] after the final norm
    return head(cls)


def evaluate(backbone, head, images, labels, batch=512):
    import torch
    backbone.eval()
    correct, predictions = 0, []
    with torch.no_grad(), torch.autocast(device_type=images.device.type, dtype=torch.bfloat16,
                                         enabled=images.device.type == "cuda"):
        for start in range(0, len(images), batch):
            logits = classify(backbone, head, normalise(images[start:start + batch]))
            predictions.append(logits.float().argmax(dim=1))
    backbone.train()
    predictions = torch.cat(predictions)
    correct = (predictions == labels).float().mean().item()
    return correct, predictions


def train(args, log):
    import torch
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    held_generator = torch.Generator(device=device).manual_seed(args.seed + 1)
    held_images, held_labels, held_counts = render_batch(held_generator, args.eval_images, device)
    backbone, head = build_model(device)
    parameters = list(backbone.parameters()) + list(head.parameters())
    decay = [p for p in parameters if p.dim() >= 2]
    no_decay = [p for p in parameters if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.99),
                                  **({"fused": True} if device.type == "cuda" else {}))
    backbone.train()
    start, step, recent, curve = time.time(), 0, [], []
    while True:
        elapsed = time.time() - start
        progress = step / args.steps
        if args.max_seconds > 0:
            progress = max(progress, elapsed / args.max_seconds)
        if progress >= 1.0:
            break
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = lr
        pixels, labels, _ = render_batch(generator, args.batch, device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = classify(backbone, head, normalise(pixels))
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        step += 1
        recent.append(((logits.argmax(dim=1) == labels).float().mean(), loss.detach()))
        recent = recent[-100:]
        if step % 500 == 0:
            train_acc = torch.stack([a for a, _ in recent]).mean().item()
            train_loss = torch.stack([l for _, l in recent]).mean().item()
            held_acc, _ = evaluate(backbone, head, held_images, held_labels)
            row = {"step": step, "seconds": round(time.time() - start, 1), "lr": lr,
                   "train_loss": round(train_loss, 4), "train_acc": round(train_acc, 4),
                   "held_out_acc": round(held_acc, 4)}
            curve.append(row)
            log(json.dumps(row))
    seconds = time.time() - start
    train_acc = torch.stack([a for a, _ in recent]).mean().item()
    train_loss = torch.stack([l for _, l in recent]).mean().item()
    held_acc, predictions = evaluate(backbone, head, held_images, held_labels)
    summary = {"steps": step, "seconds": round(seconds, 1), "images_seen": step * args.batch,
               "final_train_acc_last100": round(train_acc, 4), "final_train_loss_last100": round(train_loss, 4),
               "held_out_acc": round(held_acc, 4), "held_out_images": args.eval_images, "curve": curve}
    log(json.dumps({k: v for k, v in summary.items() if k != "curve"}))
    return backbone, head, (held_images, held_labels, held_counts, predictions), summary


def save_png(pixels_chw, path):
    from PIL import Image
    Image.fromarray(pixels_chw.permute(1, 2, 0).cpu().numpy(), mode="RGB").save(path)


def save_samples(generator_seed, device, path):
    import torch
    generator = torch.Generator(device=device).manual_seed(generator_seed)
    pixels, _, _ = render_batch(generator, 16, device)
    grid = pixels.view(4, 4, 3, SIZE, SIZE).permute(2, 0, 3, 1, 4).reshape(3, 4 * SIZE, 4 * SIZE)
    save_png(grid, path)


# ---- scoring the trace ---------------------------------------------------------------------------

def score_trace(path):
    """Per layer and head, from the stored Q/K (as the app reads them): patch_distance (mean over
    patch queries of the attention-weighted mean Euclidean distance, in patches, to the patch
    keys, normalised by the query's mass on patch keys) and prefix_share (mean over patch queries
    of the mass on the prefix tokens), plus each prefix token's mean share."""
    import torch
    from attnscope_capture.reference import attention_probs
    from attnscope_capture.trace_reader import read_trace, validate_trace

    problems = validate_trace(path)
    meta, tensors = read_trace(path)
    rows, cols = meta["patch_grid"]
    length = len(meta["tokens"])
    prefix = length - rows * cols
    r = torch.arange(rows * cols) // cols
    c = torch.arange(rows * cols) % cols
    distance = ((r[:, None] - r[None, :]) ** 2 + (c[:, None] - c[None, :]) ** 2).double().sqrt()
    uniform = distance.mean().item()
    # Patches showing a shape: >= 8 of their pixels bright and saturated (shapes have value >= 0.75
    # and saturation >= 0.55; the background value <= 0.6, the occluding lines are grey).
    image = tensors["image"].float() / 255 if "image" in tensors else None
    shape_patch = None
    if image is not None:
        brightest, darkest = image.max(dim=-1).values, image.min(dim=-1).values
        shape_pixel = (brightest >= 0.7) & ((brightest - darkest) / brightest.clamp(min=1e-6) >= 0.45)
        size_h, size_w = image.shape[0] // rows, image.shape[1] // cols
        shape_patch = shape_pixel.view(rows, size_h, cols, size_w).sum(dim=(1, 3)).flatten() >= 8
    neighbour = ((r[:, None] - r[None, :]).abs() <= 1) & ((c[:, None] - c[None, :]).abs() <= 1)
    layers = []
    for i, layer in enumerate(meta["layers"]):
        q, k = tensors[f"layers.{i}.q"].float(), tensors[f"layers.{i}.k"].float()
        probs = attention_probs(q, k, layer)                          # [H, T, T] float64
        patch_rows = probs[:, prefix:, :]                             # patch queries
        to_patches = patch_rows[:, :, prefix:]
        mass = to_patches.sum(dim=-1)
        mean_distance = ((to_patches * distance[None]).sum(dim=-1) / mass).mean(dim=-1)
        prefix_share = patch_rows[:, :, :prefix].sum(dim=-1).mean(dim=-1)
        per_token = patch_rows[:, :, :prefix].mean(dim=1)             # [H, prefix]
        cls_on_patches = probs[:, 0, prefix:].sum(dim=-1) if prefix else None
        local = (to_patches * neighbour[None]).sum(dim=-1).mean(dim=-1)
        extra = {"local_3x3_share": [round(x, 3) for x in local.tolist()]}
        if shape_patch is not None:
            extra["shape_patch_share"] = [round(x, 3) for x in
                                          to_patches[:, :, shape_patch].sum(dim=-1).mean(dim=-1).tolist()]
            if prefix:
                extra["cls_shape_patch_share"] = [round(x, 3) for x in
                                                  probs[:, 0, prefix:][:, shape_patch].sum(dim=-1).tolist()]
        layers.append({
            "patch_distance": [round(x, 3) for x in mean_distance.tolist()],
            "prefix_share": [round(x, 3) for x in prefix_share.tolist()],
            "prefix_token_share": [[round(x, 3) for x in head] for head in per_token.tolist()],
            "cls_mass_on_patches": None if cls_on_patches is None else [round(x, 3) for x in cls_on_patches.tolist()],
            **extra,
        })
    with open(path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    return {"trace": os.path.basename(path), "bytes": os.path.getsize(path), "sha256": digest,
            "validator_problems": problems, "patch_grid": [rows, cols], "prefix_tokens": meta["tokens"][:prefix],
            "uniform_patch_distance": round(uniform, 3), "capture_check": meta.get("capture_check"),
            "shape_patches": None if shape_patch is None else int(shape_patch.sum()),
            "uniform_local_3x3_share": round(neighbour.float().sum(dim=1).mean().item() / (rows * cols), 3),
            "image_shape": list(tensors["image"].shape) if "image" in tensors else None, "layers": layers}


def print_scores(scores, log):
    log(f"trace {scores['trace']}: {scores['bytes']} bytes, sha256 {scores['sha256']}, grid "
        f"{scores['patch_grid']}, prefix {scores['prefix_tokens']}, image {scores['image_shape']}, "
        f"validator {scores['validator_problems'] or 'ok'}, check {scores['capture_check']}")
    log(f"uniform attention over the patches: patch_distance {scores['uniform_patch_distance']}, "
        f"local_3x3_share {scores['uniform_local_3x3_share']}, shape patches {scores['shape_patches']} of "
        f"{scores['patch_grid'][0] * scores['patch_grid'][1]}")
    for i, layer in enumerate(scores["layers"]):
        log(f"L{i} patch_distance {layer['patch_distance']}  prefix_share {layer['prefix_share']}")
        log(f"L{i} prefix_token_share (per head: {scores['prefix_tokens']}) {layer['prefix_token_share']}")
        log(f"L{i} cls_mass_on_patches {layer['cls_mass_on_patches']}")
        log(f"L{i} local_3x3_share {layer['local_3x3_share']}  shape_patch_share "
            f"{layer.get('shape_patch_share')}  cls_shape_patch_share {layer.get('cls_shape_patch_share')}")


# ---- main ----------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    log = lambda text: print(text, flush=True)  # noqa: E731
    if args.check:
        scores = score_trace(args.check)
        print_scores(scores, log)
        if args.checks_json:
            with open(args.checks_json, "w") as handle:
                json.dump(scores, handle, indent=1)
        return 0
    if not args.output:
        sys.exit("error: -o/--output is required (or --check TRACE)")
    import torch
    import transformers
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    os.makedirs(args.work, exist_ok=True)
    if args.samples_png:
        save_samples(args.seed + 2, torch.device(args.device), args.samples_png)
    backbone, head, (images, labels, counts, predictions), training = train(args, log)

    total = counts.sum(dim=1)
    candidates = ((predictions == labels) & (total >= 5)).nonzero().flatten().tolist()
    if not candidates:
        sys.exit("error: no held-out image with >= 5 shapes is classified correctly")
    index = candidates[0]
    with torch.no_grad():
        backbone.eval()
        logits = classify(backbone, head, normalise(images[index:index + 1]).float())
        probability = torch.softmax(logits.float(), dim=1)[0].tolist()
    image_path = os.path.join(args.work, "shapes-heldout.png")
    save_png(images[index], image_path)
    demo = {"task": "which shape type is in the majority (circle, square, triangle)",
            "held_out_index": index, "held_out_seed": args.seed + 1,
            "counts": dict(zip(SHAPE_NAMES, counts[index].tolist())),
            "label": SHAPE_NAMES[labels[index].item()],
            "prediction": SHAPE_NAMES[int(torch.tensor(probability).argmax())],
            "probabilities": [round(p, 4) for p in probability],
            "train": {k: v for k, v in training.items() if k != "curve"},
            "seed": args.seed, "script": "tools/demo-model/make_vision_demo.py"}
    model_dir = os.path.join(args.work, "shapes-vit")
    backbone.save_pretrained(model_dir)
    torch.save(head.state_dict(), os.path.join(model_dir, "classifier_head.pt"))
    transformers.ViTImageProcessor(do_resize=False, size={"height": SIZE, "width": SIZE},
                                   image_mean=[MEAN] * 3, image_std=[STD] * 3).save_pretrained(model_dir)
    command = [sys.executable, "-m", "attnscope_capture", "--model", model_dir, "--image", image_path,
               "--dtype", "f16", "--device", args.device, "--attn-implementation", "eager",
               "--extra", json.dumps({"demo": demo}), "-o", args.output]
    log("capture: " + " ".join(command[1:-4]) + " --extra '{\"demo\": …}' -o " + args.output)
    env = dict(os.environ, PYTHONPATH=CAPTURE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               HF_HUB_OFFLINE="1")
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    log(run.stdout.strip() + ("\n" + run.stderr.strip() if run.stderr.strip() else ""))
    if run.returncode != 0:
        sys.exit(f"error: the capture failed (exit {run.returncode})")
    scores = score_trace(args.output)
    print_scores(scores, log)
    result = {"training": training, "demo": demo, "scores": scores}
    if scores["bytes"] > MAX_TRACE_BYTES or scores["validator_problems"]:
        log(f"error: trace {scores['bytes']} bytes (limit {MAX_TRACE_BYTES}) or invalid")
    if args.checks_json:
        with open(args.checks_json, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
