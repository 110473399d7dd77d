"""Shared fixtures: tiny random-initialised models of every supported family, saved like real checkpoints."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TINY_TEXTS = [
    "The father of Talor Venmik is Brod Kasel",
    "The mother of Talor Venmik is Mira Kasel",
    "Der Vater von Talor Venmik ist Brod Kasel",
    "Le père de Talor Venmik est Brod Kasel",
    "Vexacorp has its headquarters in Brevonna",
    "Kaldoria Tower is located in Kaldoria",
]


def make_tokenizer(vocab_size: int = 300):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(TINY_TEXTS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def tiny_config(family: str, vocab_size: int):
    from transformers import GPT2Config, LlamaConfig, MistralConfig, Qwen2Config

    common = dict(vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if family == "gpt2":
        return GPT2Config(n_embd=16, n_layer=2, n_head=2, n_positions=64, **common)
    cls = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config}[family]
    return cls(hidden_size=16, intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=64, **common)


def save_tiny_model(family: str, directory: Path, seed: int = 0) -> Path:
    from transformers import AutoModelForCausalLM

    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, len(tokenizer)))
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


FAMILIES = ("llama", "mistral", "qwen2", "gpt2")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tiny_models")
    return {family: save_tiny_model(family, base / family) for family in FAMILIES}


def pytest_sessionfinish(session, exitstatus):
    """Close what the pages cached (DuckDB connections) before the interpreter exits, so DuckDB's bindings
    do not report live objects at shutdown."""
    import gc
    import logging

    try:
        import streamlit as st

        logging.getLogger("streamlit").setLevel(logging.ERROR)
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("streamlit"):
                logging.getLogger(name).setLevel(logging.ERROR)

        st.cache_resource.clear()
        st.cache_data.clear()
    except Exception:
        pass
    gc.collect()
    # Page scripts run under AppTest leave their module namespaces alive (held by the test runner's records of
    # examples); those namespaces hold stores and their connections. Clear them so DuckDB's objects are freed.
    from core.store import RunStore

    for store in [obj for obj in gc.get_objects() if type(obj) is RunStore]:
        for holder in gc.get_referrers(store):
            if isinstance(holder, dict) and holder.get("__name__") == "__main__":
                holder.clear()
        store.close()
    gc.collect()


# Modules that start servers, subprocesses or pipeline runs, or run hundreds of examples: the fast tier
# (`python -m pytest -m "not slow"`) leaves them out; the README's test command runs everything.
SLOW_MODULES = {"test_kill_resume", "test_hostile_links", "test_hostile_input", "test_bench_scripts",
                "test_browser_user", "test_precompute", "test_distributed", "test_synthetic_run", "test_demo_run",
                "test_scale", "test_real_inputs", "test_demo_model", "test_isolation"}
BROWSER_MODULES = {"test_browser_user"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if module in BROWSER_MODULES:
            item.add_marker(pytest.mark.browser)
