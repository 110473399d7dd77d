import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, BertConfig, BertForMaskedLM

from core.loading import ModelLoadError, load_causal_lm, model_fingerprint


def test_loads_a_local_directory(tiny_models):
    lm = load_causal_lm(tiny_models["llama"])
    assert lm.model.config.model_type == "llama"
    assert not lm.model.training
    assert lm.tokenizer.pad_token is not None
    ref = AutoModelForCausalLM.from_pretrained(tiny_models["llama"])
    ids = torch.tensor([[1, 4, 5, 6]])
    assert torch.equal(lm.model(input_ids=ids).logits, ref(input_ids=ids).logits)


def test_bfloat16_dtype(tiny_models):
    lm = load_causal_lm(tiny_models["qwen2"], dtype="bfloat16")
    assert next(lm.model.parameters()).dtype == torch.bfloat16


def test_loads_an_id_from_the_local_cache_only(tiny_models, tmp_path):
    # The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/...}.
    repo = tmp_path / "hub" / "models--acme--tiny-llama"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    shutil.copytree(tiny_models["llama"], snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    lm = load_causal_lm("acme/tiny-llama", cache_dir=tmp_path / "hub")
    assert lm.directory == snapshot
    with pytest.raises(ModelLoadError, match="neither a local directory nor in the local Hugging Face cache"):
        load_causal_lm("acme/not-cached", cache_dir=tmp_path / "hub")


def test_wrong_path(tmp_path):
    with pytest.raises(ModelLoadError, match="nothing is downloaded"):
        load_causal_lm(tmp_path / "does" / "not" / "exist")


def test_a_file_instead_of_a_directory(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        load_causal_lm(f)


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_causal_lm(tmp_path)


def test_missing_weights(tiny_models, tmp_path):
    target = shutil.copytree(tiny_models["llama"], tmp_path / "m")
    (target / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no model.safetensors"):
        load_causal_lm(target)


def test_pickle_weights_are_refused(tiny_models, tmp_path):
    target = shutil.copytree(tiny_models["llama"], tmp_path / "m")
    (target / "model.safetensors").rename(target / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="never pickles"):
        load_causal_lm(target)


def test_missing_shard(tiny_models, tmp_path):
    target = shutil.copytree(tiny_models["llama"], tmp_path / "m")
    (target / "model.safetensors").rename(target / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (target / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="model-00002-of-00002.safetensors"):
        load_causal_lm(target)


def test_corrupt_weights(tiny_models, tmp_path):
    target = shutil.copytree(tiny_models["llama"], tmp_path / "m")
    (target / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        load_causal_lm(target)


def test_non_causal_model(tmp_path):
    model = BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    model.save_pretrained(tmp_path, safe_serialization=True)
    with pytest.raises(ModelLoadError, match="not a causal language model"):
        load_causal_lm(tmp_path)


def test_unknown_dtype(tiny_models):
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        load_causal_lm(tiny_models["llama"], dtype="float8")


def test_fingerprint_changes_with_weights(tiny_models, tmp_path):
    a = model_fingerprint(tiny_models["llama"])
    assert a == model_fingerprint(tiny_models["llama"])
    target = shutil.copytree(tiny_models["llama"], tmp_path / "m")
    data = bytearray((target / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (target / "model.safetensors").write_bytes(bytes(data))
    assert model_fingerprint(target) != a
