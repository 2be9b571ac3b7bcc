"""attnscope_capture: record Q/K/V of Hugging Face transformers models (text, and vision models on
an image) as attnscope traces.

The recorder wraps the attention function that transformers dispatches to (eager, SDPA, flash,
flex, ...), so it sees Q and K after the positional rotation and V with GQA kv heads intact,
whatever implementation the model runs. See tools/capture/README.md.
"""

__version__ = "0.1.0"
SOURCE = f"attnscope_capture {__version__}"

# Public names, imported lazily so that `python -m attnscope_capture --help` and the clear
# "needs torch" error work without torch installed.
_EXPORTS = {
    "AttentionRecorder": "recorder", "LayerCapture": "recorder",
    "CaptureResult": "capture", "capture_ids": "capture", "capture_text": "capture",
    "capture_pixels": "capture", "capture_image": "capture",
    "write_trace": "trace_writer", "attention_probs": "reference",
    "read_trace": "trace_reader",
}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
