"""What a real target brings: LRE relation files as --facts with the paper's prompt format, half precision,
accelerate's device_map (loading from the local HF cache is in test_loading)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.adapters import neuron_space_for
from core.capture import capture_pooled
from core.hooks import neuron_hooks
from core.importers import load_facts
from core.loading import load_causal_lm
from core.store import RunStore

ROOT = Path(__file__).resolve().parent.parent


def write_lre(folder: Path, name: str, count: int, templates=("The CEO of {} is", "{} is led by")) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({
        "name": name.replace("_", " "), "prompt_templates": list(templates), "prompt_templates_zs": ["Who runs {}?"],
        "properties": {"relation_type": "factual", "domain_name": "company", "range_name": "person", "symmetric": False},
        "samples": [{"subject": f"{name} subject {i}", "object": f"Person {i}"} for i in range(count)],
    }))


def test_an_lre_folder_is_a_corpus_with_the_paper_settings(tmp_path):
    write_lre(tmp_path / "factual", "company_ceo", 120)
    write_lre(tmp_path / "factual", "rare_relation", 20)
    corpus = load_facts(tmp_path / "factual", min_facts=100)
    assert corpus.relation_names == ["company_ceo"] and corpus.prompt_suffix == "? Answer:"
    facts = corpus.relations["company_ceo"].facts
    assert sum(f.split == "evaluation" for f in facts) == 50
    assert corpus.prompts(relation="company_ceo", template_kind="train")[0].text.endswith("? Answer:")


def test_run_on_lre_files_in_bfloat16_writes_paper_prompts_and_explains_a_model_that_knows_nothing(tiny_models, tmp_path):
    for name in ("company_ceo", "company_hq", "person_father"):
        write_lre(tmp_path / "factual", name, 70)
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "precompute", "run", "--model", str(tiny_models["llama"]), "--facts",
         str(tmp_path / "factual"), "--out", str(out), "--dtype", "bfloat16", "--k", "5", "--k-sweep", "5",
         "--threads", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "answers 0 of its" in done.stderr and "use a model that knows these facts" in done.stderr
    assert "Traceback" not in done.stderr
    baseline = RunStore(out).table("baseline")
    assert len(baseline) == 3 * 70 * 3  # every fact under 2 main templates and 1 held-out one
    assert baseline.text.str.endswith("? Answer:").all()
    assert set(baseline.template_kind) == {"train", "heldout"}


def test_device_map_auto_loads_and_captures_what_a_plain_model_captures(tiny_models):
    """device="auto" asks accelerate for a device map; our capture hooks see the same activations as on a plain
    model. Without a GPU, accelerate keeps every module on the CPU, so this is no test of a split over devices
    (the next test is, where two GPUs exist)."""
    texts = ["The CEO of Vexacorp is", "Kaldoria Tower is located in", "a"]
    plain = load_causal_lm(tiny_models["llama"], device="cpu")
    dispatched = load_causal_lm(tiny_models["llama"], device="auto")
    if not torch.cuda.is_available():
        assert {p.device.type for p in dispatched.model.parameters()} == {"cpu"}
    results = []
    for lm in (plain, dispatched):
        hooks = neuron_hooks(lm.model, neuron_space_for(lm.config))
        results.append(capture_pooled(hooks, lm.tokenizer, texts, batch_size=2))
    assert np.allclose(results[0], results[1], atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_a_model_split_over_gpus_captures_what_a_plain_model_captures(tiny_models):
    texts = ["The CEO of Vexacorp is", "a"]
    plain = load_causal_lm(tiny_models["llama"], device="cpu")
    split = load_causal_lm(tiny_models["llama"], device="auto")
    assert len(set(split.model.hf_device_map.values())) > 1
    captured = [capture_pooled(neuron_hooks(lm.model, neuron_space_for(lm.config)), lm.tokenizer, texts)
                for lm in (plain, split)]
    assert np.allclose(captured[0], captured[1], atol=1e-4)
