"""Load a causal LM and its tokenizer from a local directory or the local HF cache, offline."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import core  # noqa: F401  (switches the hub to offline mode before transformers loads)

DTYPES = ("float32", "bfloat16", "float16")


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what is missing and what to do."""


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    source: str  # what the user asked for: a path or a cached id
    directory: Path  # the resolved local directory holding config and weights

    @property
    def config(self):
        return self.model.config


def _torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")


def cached_snapshot(repo_id: str, cache_dir: str | Path | None = None) -> Path | None:
    """The local snapshot of a hub id in the Hugging Face cache (models--org--name/snapshots/<rev>), read from
    the cache's own layout: nothing is ever fetched."""
    from huggingface_hub import constants

    root = Path(cache_dir or constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    ref = root / "refs" / "main"
    if ref.is_file():
        snapshot = root / "snapshots" / ref.read_text().strip()
        return snapshot if snapshot.is_dir() else None
    snapshots = sorted((root / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    return snapshots[-1] if snapshots else None


def resolve_model_dir(source: str | Path, cache_dir: str | Path | None = None) -> Path:
    """A local directory for `source`: itself if it is one, else its snapshot in the HF cache."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{path} is a file; give the model's directory (with config.json and weights)")
        return path
    if isinstance(source, str) and HUB_ID.match(source):
        snapshot = cached_snapshot(source, cache_dir)
        if snapshot is not None:
            return snapshot
    raise ModelLoadError(
        f"model {str(source)!r} is neither a local directory nor in the local Hugging Face cache; "
        "nothing is downloaded: pass a directory with config.json, safetensors weights and tokenizer files"
    )


def weight_files(directory: Path) -> list[Path]:
    single = directory / "model.safetensors"
    if single.exists():
        return [single]
    index = directory / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError) as exc:
            raise ModelLoadError(f"{index} is not a valid safetensors index ({exc})") from exc
        missing = [s for s in shards if not (directory / s).exists()]
        if missing:
            raise ModelLoadError(f"{directory} is missing weight shards: {', '.join(missing)}")
        return [directory / s for s in shards]
    others = sorted(p.name for p in directory.glob("*.bin")) + sorted(p.name for p in directory.glob("*.pt*"))
    hint = f" (found {', '.join(others)}: only safetensors weights are loaded, never pickles)" if others else ""
    raise ModelLoadError(f"{directory} has no model.safetensors or model.safetensors.index.json{hint}")


def config_fields(source: str | Path) -> SimpleNamespace:
    """config.json's fields as attributes, read as plain JSON (transformers is not imported): what a page shows
    before the model itself has loaded. ModelLoadError when there is no readable config."""
    path = resolve_model_dir(source) / "config.json"
    try:
        return SimpleNamespace(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"{path} could not be read ({exc})") from exc


def load_config(directory: Path):
    from transformers import AutoConfig

    if not (directory / "config.json").exists():
        raise ModelLoadError(f"{directory} has no config.json: it is not a Hugging Face model directory")
    try:
        return AutoConfig.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
    except (ValueError, OSError, KeyError) as exc:
        raise ModelLoadError(f"{directory / 'config.json'} could not be read: {exc}") from exc


def check_causal(config) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    architectures = getattr(config, "architectures", None) or []
    if getattr(config, "is_encoder_decoder", False) or config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelLoadError(f"model type {config.model_type!r} is not a causal language model")
    if architectures and not any(a in causal_classes or a.endswith("ForCausalLM") for a in architectures):
        raise ModelLoadError(f"model is a {', '.join(architectures)}, not a causal language model (…ForCausalLM)")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tiktoken.model", "spiece.model")


def load_tokenizer(directory: Path):
    from transformers import AutoTokenizer

    if not any((directory / name).exists() for name in TOKENIZER_FILES):
        # Checked first: transformers would otherwise suggest installing sentencepiece or tiktoken.
        raise ModelLoadError(f"{directory} has no tokenizer files (one of {', '.join(TOKENIZER_FILES)}): copy the "
                             "model's tokenizer files into that folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{directory} has no usable tokenizer files ({exc})") from exc
    if tokenizer.pad_token is None:
        # Batching needs a pad token; the EOS token is the usual stand-in for Llama-family models.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    source: str | Path, dtype: str = "float32", device: str = "cpu", cache_dir: str | Path | None = None
) -> LoadedModel:
    """Load model and tokenizer. `device` is "cpu", "cuda", "cuda:N" or "auto" (accelerate's device_map)."""
    from transformers import AutoModelForCausalLM

    torch_dtype = _torch_dtype(dtype)
    directory = resolve_model_dir(source, cache_dir)
    config = load_config(directory)
    check_causal(config)
    weight_files(directory)
    tokenizer = load_tokenizer(directory)
    kwargs: dict[str, Any] = dict(
        local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=torch_dtype
    )
    if device == "auto":
        kwargs["device_map"] = "auto"
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, **kwargs)
    except Exception as exc:  # safetensors, torch and transformers each raise their own types for a bad file
        _raise_if_out_of_memory(exc, directory, device, dtype)
        raise ModelLoadError(f"weights in {directory} could not be loaded: {exc}") from exc
    if device != "auto":
        try:
            model.to(device)
        except (RuntimeError, AssertionError) as exc:
            del model
            _raise_if_out_of_memory(exc, directory, device, dtype)
            raise ModelLoadError(f"cannot move the model to device {device!r}: {exc}") from exc
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, source=str(source), directory=directory)


def _raise_if_out_of_memory(exc: Exception, directory: Path, device: str, dtype: str) -> None:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        raise ModelLoadError(
            f"the model in {directory} does not fit on {device} in {dtype}: use --device auto (accelerate spreads "
            "it over the GPUs, then CPU memory), a smaller --dtype, or a machine with more memory") from exc


FULL_HASH_LIMIT = 256 << 20
EDGE_BYTES = 8 << 20


def model_fingerprint(directory: Path) -> str:
    """SHA-256 naming a model for a run's manifest: config and weights.

    Weight files up to 256 MiB are hashed whole; larger shards by size plus their
    first and last 8 MiB, so a 13B checkpoint is named in seconds, not minutes.
    """
    digest = hashlib.sha256()
    for path in [directory / "config.json", *weight_files(directory)]:
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with open(path, "rb") as fh:
            if size <= FULL_HASH_LIMIT:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            else:
                digest.update(fh.read(EDGE_BYTES))
                fh.seek(size - EDGE_BYTES)
                digest.update(fh.read(EDGE_BYTES))
    return digest.hexdigest()
