"""The embedded demo model: a plain Hugging Face directory, small, trained deterministically, and it knows its facts."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.paths import DEMO_CORPUS_DIR, DEMO_MODEL_DIR
from core.prompt_outcome import evaluate_prompts
from core.facts import FactCorpus, load_corpus
from core.loading import load_causal_lm
from precompute.demo_model import DemoModelConfig, train_demo_model

ROOT = Path(__file__).resolve().parent.parent
built = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")


@built
def test_loads_with_plain_transformers_offline():
    code = (
        "from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM;"
        f"m = AutoModelForCausalLM.from_pretrained({str(DEMO_MODEL_DIR)!r});"
        f"t = AutoTokenizer.from_pretrained({str(DEMO_MODEL_DIR)!r});"
        "assert isinstance(m, LlamaForCausalLM);"
        "print(t.decode(m.generate(**t('The father of Bouzei Hulir is', return_tensors='pt'), max_new_tokens=3, do_sample=False)[0]))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "The father of Bouzei Hulir is" in done.stdout


@built
def test_is_small_and_documents_its_training():
    size = sum(p.stat().st_size for p in DEMO_MODEL_DIR.iterdir())
    assert size <= 30 * 2**20
    summary = json.loads((DEMO_MODEL_DIR / "training.json").read_text())
    assert summary["corpus_fingerprint"] == load_corpus(DEMO_CORPUS_DIR).fingerprint()
    assert summary["training_seconds"] <= 30 * 60


@built
def test_recalls_its_training_facts_in_every_language():
    lm = load_causal_lm(DEMO_MODEL_DIR)
    corpus = load_corpus(DEMO_CORPUS_DIR)
    for lang in corpus.languages:
        prompts = corpus.prompts(language=lang, template_kind="train")[::17]
        outcomes = evaluate_prompts(lm.model, lm.tokenizer, prompts, batch_size=256)
        assert sum(o.correct for o in outcomes) / len(outcomes) >= 0.95, lang


def test_training_is_deterministic_from_the_seed(tmp_path):
    demo = load_corpus(DEMO_CORPUS_DIR)
    rel = demo.relations["person_father"]
    small = FactCorpus({"person_father": rel}, ["en"], "", "two-relation slice")
    small.relations["person_father"].templates = {"en": rel.templates["en"]}
    cfg = DemoModelConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                          epochs=1, batch_size=32, warmup_steps=5, threads=1)
    quiet = lambda *_: None  # noqa: E731
    train_demo_model(small, tmp_path / "a", cfg, log=quiet)
    train_demo_model(small, tmp_path / "b", cfg, log=quiet)
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "b" / "tokenizer.json").read_text()
    cfg.seed = 1
    train_demo_model(small, tmp_path / "c", cfg, log=quiet)
    c = load_file(tmp_path / "c" / "model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)
