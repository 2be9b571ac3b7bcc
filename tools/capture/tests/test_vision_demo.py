"""The bundled vision demo trace (resources/demo/shapes-vit.attn.safetensors, issue 18 item 4) is
what resources/demo/README.md says: a valid vision trace with its image and a passed self-check,
F16 and at most 4 MB, and the register-sink head the README points to (L2H3) is there when the
probabilities are recomputed from the stored Q/K."""

import os
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from attnscope_capture.trace_reader import read_trace, validate_trace  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEMO = os.path.join(REPO, "resources", "demo", "shapes-vit.attn.safetensors")
MAX_BYTES = 4 * 1000 * 1000


@pytest.fixture(scope="module")
def demo():
    if not os.path.exists(DEMO):
        pytest.skip(f"{DEMO} is not there")
    return read_trace(DEMO)


def test_vision_demo_is_a_valid_vision_trace(demo):
    meta, tensors = demo
    assert validate_trace(DEMO) == []
    assert os.path.getsize(DEMO) <= MAX_BYTES
    assert meta["kind"] == "vision" and meta["version"] == "1" and meta["patch_grid"] == [12, 12]
    assert meta["tokens"] == ["[CLS]", "[REG0]", "[REG1]", "[REG2]", "[REG3]"] + \
        [f"p{r},{c}" for r in range(12) for c in range(12)]
    assert "token_ids" not in meta
    assert meta["capture_check"]["status"] == "passed"
    assert meta["capture_check"]["max_abs_delta"] <= 1e-4
    image = tensors["image"]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (96, 96, 3)
    assert len(meta["layers"]) == 6
    for i, layer in enumerate(meta["layers"]):
        assert (layer["heads"], layer["kv_heads"], layer["head_dim"], layer["causal"]) == (6, 6, 32, False)
        assert tensors[f"layers.{i}.q"].dtype == torch.float16
    demo_info = meta["extra"]["demo"]
    assert demo_info["label"] == demo_info["prediction"]
    assert sum(demo_info["counts"].values()) >= 5


def test_vision_demo_scores_match_the_readme(demo):
    sys.path.insert(0, os.path.join(REPO, "tools", "demo-model"))
    try:
        import make_vision_demo
    finally:
        sys.path.pop(0)
    scores = make_vision_demo.score_trace(DEMO)
    assert scores["validator_problems"] == []
    layer2 = scores["layers"][2]
    assert layer2["prefix_share"][3] >= 0.9                       # L2H3: a register sink
    assert layer2["prefix_token_share"][3][2] + layer2["prefix_token_share"][3][3] >= 0.9  # REG1 + REG2
    assert layer2["shape_patch_share"][2] >= 0.95                 # L2H2: on the shapes
    for layer in scores["layers"]:                                # no local heads (README)
        assert max(layer["local_3x3_share"]) < 0.1
