"""One prompt's outcome: the greedy 2-token answer and the gold object's log-probability.

A single teacher-forced pass over prompt + gold gives the gold log-probabilities
and the first greedy token; when that token is the gold's first token, the same
pass already holds the logits for the second greedy token (a causal model sees
the same prefix). Only the other rows need a second, one-step pass. The result
equals plain greedy decoding (tested), at about half the cost. Prompts are
tokenized once (`tokenize_for_eval`) and reused across ablations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from core.correctness import head_reader, is_correct
from core.facts import Prompt
from core.generation import Batch, model_device
from core.hooks import per_row_request
from core.resume import PlainStates, ResumePoint, StateNeeds, can_prune, record_pass, resumed


@dataclass(frozen=True)
class Outcome:
    generated: str
    correct: bool
    gold_first_logprob: float  # log p(first gold token | prompt)
    gold_logprob: float  # log p(all gold tokens | prompt), teacher-forced


@dataclass(frozen=True)
class EvalTokens:
    prompt_ids: list[int]
    gold_ids: list[int]


def tokenize_for_eval(tokenizer, prompts: Sequence[Prompt]) -> list[EvalTokens]:
    texts = [p.text for p in prompts]
    prompt_ids = tokenizer(texts)["input_ids"]
    full_ids = tokenizer([f"{p.text} {p.gold}" for p in prompts])["input_ids"]
    out = []
    for p, pids, fids in zip(prompts, prompt_ids, full_ids):
        if fids[: len(pids)] == pids and len(fids) > len(pids):
            out.append(EvalTokens(pids, fids[len(pids):]))
        else:  # the tokenizer merged across the prompt/answer boundary: answer tokens on their own
            out.append(EvalTokens(pids, tokenizer(f" {p.gold}", add_special_tokens=False)["input_ids"]))
    return out


def _right_padded(rows: list[list[int]], pad_id: int, device) -> Batch:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return Batch(ids.to(device), mask.to(device))


def _plain_head(model) -> bool:
    """Logits are exactly lm_head(last hidden state) for these families (no soft-capping or scaling)."""
    from core.adapters import supported_model_types

    return model.config.model_type in supported_model_types() and model.get_output_embeddings() is not None


@torch.no_grad()
def _forward_cached(model, batch: Batch, read_positions: torch.Tensor | None = None,
                    states: PlainStates | None = None, point: ResumePoint | None = None) -> tuple[torch.Tensor, object]:
    """(final hidden states where the LM head can be applied to the few positions needed, about 10% less work
    per pass on the demo model, else the full logits; the pass's key/value cache). `read_positions` [rows, n]:
    the only positions read, where the last FFN runs (core.resume); `states`, `point`: the batch's plain pass,
    replayed up to `point`."""
    with resumed(model, states, point, read_positions if can_prune(model) else None):
        out = _cached_pass(model, batch)
    return (out.last_hidden_state if _plain_head(model) else out.logits), out.past_key_values


def _cached_pass(model, batch: Batch):
    return (model.base_model if _plain_head(model) else model)(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
        use_cache=True)


@torch.no_grad()
def _second_greedy_tokens(model, batch: Batch, cache, p_len: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """Each row's greedy token after its prompt and its own first token, as one step on the teacher-forced pass's
    cache: the cache's gold and padding positions are masked out and the first token takes the position right
    after the prompt, which is the pass over prompt + first token (the full second pass this replaces cost
    about a quarter of the effects stage)."""
    width = batch.input_ids.shape[1]
    prompt_only = (torch.arange(width, device=p_len.device)[None, :] < p_len[:, None]).to(batch.attention_mask.dtype)
    mask = torch.cat([prompt_only, torch.ones_like(prompt_only[:, :1])], dim=1)
    out = model(input_ids=first[:, None], attention_mask=mask, position_ids=p_len[:, None], past_key_values=cache,
                use_cache=True)
    return out.logits[:, -1].argmax(-1)


@dataclass(frozen=True)
class EvalBatch:
    """One batch of `eval_batches` as tensors, made once and read under every ablation: prompt + gold ids
    right-padded; each row's prompt and gold lengths; `steps` [rows, gold positions], the positions whose
    next-token logits are read (the prompt's last and each gold token but the last); the gold ids, 0-padded."""
    batch: Batch
    p_len: torch.Tensor
    g_len: torch.Tensor
    steps: torch.Tensor
    gold: torch.Tensor


def eval_batch(tokenizer, tokens: Sequence[EvalTokens], idx: list[int], device) -> EvalBatch:
    chunk = [tokens[i] for i in idx]
    batch = _right_padded([t.prompt_ids + t.gold_ids for t in chunk], tokenizer.pad_token_id, device)
    device = batch.input_ids.device
    p_len = torch.tensor([len(t.prompt_ids) for t in chunk], device=device)
    g_len = torch.tensor([len(t.gold_ids) for t in chunk], device=device)
    width = int(g_len.max())
    steps = ((p_len - 1)[:, None] + torch.arange(width, device=device)[None, :]).clamp(max=batch.input_ids.shape[1] - 1)
    gold = torch.zeros((len(chunk), width), dtype=torch.long)
    for i, t in enumerate(chunk):
        gold[i, : len(t.gold_ids)] = torch.tensor(t.gold_ids)
    return EvalBatch(batch, p_len, g_len, steps, gold.to(device))


@torch.no_grad()
def _evaluate_batch(model, tokenizer, inputs: EvalBatch, states: PlainStates | None = None,
                    point: ResumePoint | None = None) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
    eos = tokenizer.eos_token_id
    batch, steps = inputs.batch, inputs.steps
    hidden, cache = _forward_cached(model, batch, steps, states, point)
    rows = torch.arange(steps.shape[0], device=hidden.device)
    p_len, g_len, steps = inputs.p_len.to(hidden.device), inputs.g_len.to(hidden.device), steps.to(hidden.device)
    width = steps.shape[1]
    step_logits = hidden[rows[:, None], steps]
    if _plain_head(model):
        step_logits = model.get_output_embeddings()(step_logits)
    step_lp = step_logits.float().log_softmax(-1)  # [batch, gold positions, vocab]
    gold = inputs.gold.to(step_lp.device)
    valid = torch.arange(width, device=step_lp.device)[None, :] < g_len[:, None]
    token_lp = step_lp.gather(2, gold[:, :, None])[:, :, 0] * valid
    first = step_lp[:, 0].argmax(-1)
    second_known = (first == gold[:, 0]) & (g_len >= 2)
    second = torch.where(second_known, step_lp[:, min(1, width - 1)].argmax(-1), torch.full_like(first, -1))
    redo = ~second_known & (first != eos) if eos is not None else ~second_known
    if bool(redo.any()):
        inputs = batch.input_ids.device
        if per_row_request():  # per-row neuron sets need every row in every pass: all rows take the step
            stepped = _second_greedy_tokens(model, batch, cache, p_len.to(inputs), first.to(inputs))
            second = torch.where(redo, stepped.to(second.device), second)
        else:  # only the rows whose second token the teacher-forced pass did not hold
            keep = redo.nonzero()[:, 0].to(inputs)
            cache.batch_select_indices(keep)
            rows_left = Batch(batch.input_ids[keep], batch.attention_mask[keep])
            stepped = _second_greedy_tokens(model, rows_left, cache, p_len.to(inputs)[keep], first.to(inputs)[keep])
            second[keep.to(second.device)] = stepped.to(second.device)
    new_tokens = []
    for a, b in zip(first.tolist(), second.tolist()):
        tokens = []
        for token in (a, b):
            if token == eos or token < 0:
                break
            tokens.append(token)
        new_tokens.append(tokens)
    return new_tokens, token_lp[:, 0], token_lp.sum(1)


@torch.no_grad()
def plain_states(model, inputs: EvalBatch, needs: StateNeeds) -> PlainStates:
    """The plain pass over a batch that ablated passes over it resume from (core.resume)."""
    return record_pass(model, needs, inputs.steps, lambda: _cached_pass(model, inputs.batch))[1]


def eval_batches(tokens: Sequence[EvalTokens], batch_size: int) -> list[list[int]]:
    """Prompt indices per batch: prompts of similar length together (less padding), in a fixed order,
    so a sharded run computes exactly the batches a single process would."""
    order = sorted(range(len(tokens)), key=lambda i: (len(tokens[i].prompt_ids) + len(tokens[i].gold_ids), i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def evaluate_batch(model, tokenizer, prompts: Sequence[Prompt], tokens: Sequence[EvalTokens], idx: list[int],
                   floor: bool = False, states: PlainStates | None = None, point: ResumePoint | None = None,
                   inputs: EvalBatch | None = None, judged: dict | None = None) -> list[Outcome]:
    """Outcomes of the prompts `idx` (one batch of `eval_batches`), in that order; `floor`: core.correctness's
    short-answer floor; `states`: this batch's `plain_states`, replayed up to `point` (the same outcomes, bit for
    bit, in less time); `inputs`: its `eval_batch`, when made already; `judged`: (prompt index, answer ids) ->
    (answer text, correct), kept across the calls of a stage (most ablations leave most answers as they were)."""
    inputs = inputs if inputs is not None else eval_batch(tokenizer, tokens, idx, model_device(model))
    new_tokens, first_lp, all_lp = _evaluate_batch(model, tokenizer, inputs, states, point)
    judged = judged if judged is not None else {}
    verdicts = []
    for i, answer in zip(idx, new_tokens):
        key = (i, tuple(answer))
        if key not in judged:
            text = tokenizer.decode(answer, skip_special_tokens=True)
            judged[key] = (text, _judge(tokenizer, prompts[i], tokens[i], text, floor))
        verdicts.append(judged[key])
    return [Outcome(text, correct, float(first_lp[j]), float(all_lp[j]))
            for j, (text, correct) in enumerate(verdicts)]


def _judge(tokenizer, prompt: Prompt, tokens: EvalTokens, generated: str, floor: bool) -> bool:
    """core.correctness's rule: the gold or an alternative object; the floor reads the gold's own ids from here
    (an alternative's only when a short answer needs them)."""
    return is_correct(generated, prompt.gold, prompt.alternatives, head_reader(tokenizer, prompt, tokens.gold_ids),
                      floor)


def evaluate_prompts(
    model, tokenizer, prompts: Sequence[Prompt], batch_size: int = 128, tokens: Sequence[EvalTokens] | None = None,
    floor: bool = False,
) -> list[Outcome]:
    """Outcome per prompt, in order."""
    tokens = list(tokens) if tokens is not None else tokenize_for_eval(tokenizer, prompts)
    results: list[Outcome | None] = [None] * len(prompts)
    for idx in eval_batches(tokens, batch_size):
        for i, outcome in zip(idx, evaluate_batch(model, tokenizer, prompts, tokens, idx, floor)):
            results[i] = outcome
    return results  # type: ignore[return-value]
