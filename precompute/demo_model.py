"""Train the embedded demo model: a small LlamaForCausalLM and its own BPE tokenizer, on CPU, from a seed."""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from core.facts import FactCorpus, training_sentence

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]
MIN_DEMO_VOCAB = 256 + len(SPECIAL_TOKENS)  # the byte-level alphabet and the special tokens come first


@dataclass
class DemoModelConfig:
    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    epochs: int = 30
    templates_per_fact: int = 3  # train templates drawn per (fact, language) each epoch
    batch_size: int = 64
    learning_rate: float = 3e-3
    warmup_steps: int = 200
    weight_decay: float = 0.0
    loss_on: str = "all"  # "all" tokens of a sentence, or only the "object" tokens
    seed: int = 0
    threads: int = 2


def training_texts(corpus: FactCorpus) -> list[tuple[str, str]]:
    """(prompt, gold) for every fact x language x train template."""
    return [(p.text, p.gold) for p in corpus.prompts(template_kind="train")]


def train_tokenizer(corpus: FactCorpus, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Every template of every language (held-out ones too: a tokenizer is not a fact) plus every entity.
    texts = [training_sentence(t, g) for t, g in training_texts(corpus)]
    texts += [p.text for p in corpus.prompts(template_kind="heldout")]
    tok.train_from_iterator(sorted(set(texts)), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", padding_side="left",
    )


def build_model(cfg: DemoModelConfig, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config)


def _encode_examples(tokenizer, pairs: list[tuple[str, str]]) -> list[tuple[list[int], int]]:
    """Token ids (BOS ... EOS) and where the object starts, for each (prompt, gold)."""
    out = []
    prompt_ids = tokenizer([p for p, _ in pairs])["input_ids"]
    full_ids = tokenizer([training_sentence(p, g) for p, g in pairs])["input_ids"]
    for pids, fids in zip(prompt_ids, full_ids):
        start = len(pids) if fids[: len(pids)] == pids else 1
        out.append((fids + [tokenizer.eos_token_id], start))
    return out


def _batches(examples, order, batch_size, pad_id, loss_on):
    for i in range(0, len(order), batch_size):
        chunk = [examples[j] for j in order[i : i + batch_size]]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, (ids, start) in enumerate(chunk):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            mask[r, : len(ids)] = 1
            first = start if loss_on == "object" else 1
            labels[r, first : len(ids)] = torch.tensor(ids[first:])
        yield input_ids, mask, labels


def train_demo_model(corpus: FactCorpus, out_dir: Path, cfg: DemoModelConfig, log=print) -> dict:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    started = time.time()
    tokenizer = train_tokenizer(corpus, cfg.vocab_size)
    model = build_model(cfg, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params:,} parameters; tokenizer: {len(tokenizer)} tokens")

    # Group train prompts per (relation, language, subject) so each epoch draws templates per fact.
    by_fact: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for p in corpus.prompts(template_kind="train"):
        by_fact.setdefault((p.relation, p.language, p.subject), []).append((p.text, p.gold))
    keys = sorted(by_fact)
    encoded = {k: _encode_examples(tokenizer, v) for k, v in by_fact.items()}

    per_epoch = sum(min(cfg.templates_per_fact, len(encoded[k])) for k in keys)
    total_steps = cfg.epochs * math.ceil(per_epoch / cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    step, tokens = 0, 0
    bar = tqdm(total=total_steps, desc="training demo model", unit="step")
    for epoch in range(cfg.epochs):
        examples = []
        for k in keys:
            examples.extend(rng.sample(encoded[k], min(cfg.templates_per_fact, len(encoded[k]))))
        order = list(range(len(examples)))
        rng.shuffle(order)
        loss_sum, n = 0.0, 0
        for input_ids, mask, labels in _batches(examples, order, cfg.batch_size, tokenizer.pad_token_id, cfg.loss_on):
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            tokens += int(mask.sum())
            loss_sum, n = loss_sum + loss.item(), n + 1
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / n:.3f}", tok_s=f"{tokens / (time.time() - started):.0f}")
    bar.close()
    model.eval()
    seconds = time.time() - started
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    summary = {
        "config": asdict(cfg),
        "parameters": n_params,
        "vocab_size": len(tokenizer),
        "training_seconds": round(seconds, 1),
        "training_tokens": tokens,
        "steps": step,
        "corpus_fingerprint": corpus.fingerprint(),
        "torch": torch.__version__,
    }
    (out_dir / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


