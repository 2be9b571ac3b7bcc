"""What the capture tests share: the tiny models' sizes and tolerances, their input ids and eager
probabilities, max |dp| against them, the families' tiny models built one way, a checked trace write, attnscope-cli (ATTNSCOPE_CLI) with its
full-resolution maps read back, and a model saved with a small byte-level tokenizer.

Imported by the test modules after their `pytest.importorskip("torch")`; pytest puts this folder
on sys.path (no __init__.py here), conftest.py puts the capture package there.
"""

import os
import subprocess

import pytest

torch = pytest.importorskip("torch")

from attnscope_capture.capture import capture_ids  # noqa: E402
from attnscope_capture.reference import attention_probs  # noqa: E402
from attnscope_capture.trace_reader import validate_trace  # noqa: E402
from attnscope_capture.trace_writer import write_trace  # noqa: E402

TOLERANCE = 1e-4          # max |dp| allowed between recomputed and eager probabilities (f32)
QKV_TOLERANCE = 1e-5      # eager and SDPA runs see the same Q/K/V up to float rounding
NEGATIVE_CONTROL = 1e-3   # a wrong setting must move the probabilities at least this much
SEQ_LEN = 48
SLIDING_WINDOW = 8        # much shorter than SEQ_LEN so that the window matters
VOCAB = 320               # >= the byte-level test tokenizer's vocabulary
INIT_RANGE = 0.15         # larger than the default 0.02 so that attention is far from uniform
SEED = 1234
TEXT = "In the beginning was the word. Heads attend to copies, and the word was with attention."


def input_ids(length=SEQ_LEN):
    """Token ids [1, length] drawn from SEED (ids 0-2 left out)."""
    return torch.randint(3, VOCAB, (1, length), generator=torch.Generator().manual_seed(SEED))


def eager_probs(model, ids):
    """The model's own attention probabilities per layer ([heads, T, T], float64)."""
    with torch.no_grad():
        outputs = model(input_ids=ids, output_attentions=True)
    assert outputs.attentions is not None and len(outputs.attentions) > 0
    return [a[0].double() for a in outputs.attentions]


def max_abs_dp(captures, probs, **override):
    """max |dp| of the probabilities recomputed from each capture's Q/K and settings (with
    `override` replacing settings) against probs[layer]."""
    assert len(captures) == len(probs)
    return max((attention_probs(c.q, c.k, dict(c.settings, **override)) - p).abs().max().item()
               for c, p in zip(captures, probs))


def eager_run_cache(build):
    """Getter for a module fixture: per architecture, built once with build(arch, "eager"):
    (model, config, ids, eager probabilities, capture with outputs)."""
    cache = {}

    def get(arch):
        if arch not in cache:
            model, config = build(arch, "eager")
            ids = input_ids()
            probs = eager_probs(model, ids)
            cache[arch] = (model, config, ids, probs, capture_ids(model, ids, record_output=True))
        return cache[arch]
    return get


def reinit_weights(model):
    """Weights N(0, INIT_RANGE²), biases 0: one rule for every family (their own init functions use
    other ranges and names, some near uniform attention)."""
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
                module.weight.copy_(torch.empty(module.weight.shape).normal_(0.0, INIT_RANGE, generator=generator))
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()


def build_family(arch, class_name, factory, implementation, state_dict=None):
    """The tiny model of `arch` from its config class `class_name` (skipped when this transformers
    has no such class, or cannot build it with `implementation`), re-initialised with
    reinit_weights unless `state_dict` (an eager model's) is given. Returns (model, config)."""
    import transformers
    if not hasattr(transformers, class_name):
        pytest.skip(f"transformers {transformers.__version__} has no {class_name}")
    config = factory()
    torch.manual_seed(SEED)
    try:
        model = transformers.AutoModel.from_config(config, attn_implementation=implementation)
    except (ValueError, ImportError) as error:
        pytest.skip(f"{arch}: transformers {transformers.__version__} cannot build it with "
                    f"{implementation}: {error}")
    if state_dict is None:
        reinit_weights(model)
    else:
        model.load_state_dict(state_dict)
    return model.eval(), config


def family_runs(arches):
    """For a table {arch: (config class name, config factory, ...)}: build(arch, implementation,
    state_dict=None) through build_family, and the module fixture `eager_runs` over it
    (eager_run_cache). A test module binds both: `_build, eager_runs = family_runs(ARCHES)`."""
    def build(arch, implementation, state_dict=None):
        class_name, factory = arches[arch][:2]
        return build_family(arch, class_name, factory, implementation, state_dict)

    @pytest.fixture(scope="module")
    def eager_runs():
        return eager_run_cache(build)
    return build, eager_runs


def write_checked_trace(result, ids, path, model, dtype="f32"):
    """Writes a capture result with its self-check as a trace and asserts that it is valid."""
    write_trace(str(path), result.captures, model=model, kind=result.kind, text="",
                tokens=[str(int(t)) for t in ids[0]], token_ids=ids[0].tolist(),
                positional=result.positional, dtype=dtype, capture_check=result.check.metadata())
    assert validate_trace(str(path)) == []


def cli_path():
    """attnscope-cli named by ATTNSCOPE_CLI, or None when it is unset or not there."""
    cli = os.environ.get("ATTNSCOPE_CLI")
    return cli if cli and os.path.exists(cli) else None


def cli_or_skip(purpose="check the C++ engine"):
    """attnscope-cli named by ATTNSCOPE_CLI, or skip with the reason."""
    cli = cli_path()
    if cli is None:
        pytest.skip(f"ATTNSCOPE_CLI does not name an attnscope-cli binary; set it to {purpose}")
    return cli


def run_cli(cli, *args, timeout=300):
    """Runs attnscope-cli, asserts exit code 0 (the message has its output) and returns the run."""
    run = subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, f"attnscope-cli {' '.join(args)}:\n{run.stdout}\n{run.stderr}"
    return run


def read_map_csv(path):
    """A map written by `attnscope-cli map -o FILE.csv` as float64 (the header row skipped)."""
    with open(path) as handle:
        lines = handle.read().splitlines()[1:]  # header: key of each column
    return torch.tensor([[float(x) for x in line.split(",")] for line in lines], dtype=torch.float64)


def cli_map_error(cli, path, reference, heads, folder, flags, layers=None):
    """max |dp| of `attnscope-cli map` at full resolution against reference[layer][head] (every
    layer of reference, or `layers`), and where the last map ran (its output after " on ")."""
    worst, where = 0.0, ""
    for layer in (range(len(reference)) if layers is None else layers):
        for head in range(heads):
            csv = folder / f"l{layer}h{head}.csv"
            out = run_cli(cli, "map", str(path), "--layer", str(layer), "--head", str(head), "--size",
                          f"{SEQ_LEN}x{SEQ_LEN}", "-o", str(csv), *flags).stdout
            where = out.rsplit(" on ", 1)[-1].strip()
            worst = max(worst, (read_map_csv(csv) - reference[layer][head]).abs().max().item())
    return worst, where


def save_with_tokenizer(model, folder, corpus):
    """Saves the tiny model with a small byte-level BPE tokenizer trained on `corpus` (no
    downloads); the tokenizer puts <bos> first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - 16, special_tokens=["<bos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    model.save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>",
                            clean_up_tokenization_spaces=False).save_pretrained(folder)
