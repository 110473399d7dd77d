"""Stage: critical neurons, those whose *single* ablation breaks a relation.

Screen: each candidate neuron is switched off alone on a sample of evaluation prompts (`--critical-prompts`
per relation, identification language, trained templates, prompts the model answers correctly) in one
prompt-only pass, reading the greedy first token and the gold first token's log-probability. A neuron that
flips the first token of at least one sampled prompt of a relation, or lowers a relation's gold first-token
log-probability by SCREEN_NATS on average, is then evaluated exactly (greedy answers, as the effects stage)
on every effect prompt of that language. Critical: that full drop is at least `--critical-threshold` points.

Candidates: every neuron of a model with up to `--critical-neurons`; above that (a 7B model), the union of
every relation's top-k and a uniform sample of `--critical-neurons` neurons.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from core.generation import model_device
from core.parquet_io import write_parquet_atomic
from core.prompt_outcome import _plain_head, _right_padded, tokenize_for_eval
from core.resume import (PlainStates, ResumePoint, StateNeeds, affordable_points, can_prune, can_replay,
                         record_pass, resume_point, resumed)
from core.run_layout import single_neuron_path
from precompute.context import RunContext, to_prompts
from precompute.stages.answers import RESUME_BUDGET_BYTES, evaluate, plain_passes
from precompute.stages.baseline import read_baseline
from precompute.stages.effects import effect_prompts
from precompute.stages.scoring import neuron_columns, ranking

CRITICAL_STREAM = 15485863  # in the candidate sample's seed, apart from every other draw of the run
SCREEN_NATS = 0.5  # a mean first-token log-prob drop that sends a neuron on to the exact evaluation
SCREEN_CHUNK = 64  # neurons per unit of work handed to a process


def run(ctx: RunContext) -> bool:
    if not ctx.options.critical or single_neuron_path(ctx.out).exists():
        return False
    sample, full = ctx.workers.on_main(lambda: _prompts(ctx))  # full carries each prompt's baseline `correct`
    candidates = ctx.workers.on_main(lambda: candidate_neurons(ctx))
    screened = _screen(ctx, sample, candidates)
    flagged = ctx.workers.broadcast(None if screened is None else sorted(
        screened[(screened.sample_broken > 0) | (screened.sample_first_lp_drop >= SCREEN_NATS)].neuron.unique()))
    full_rows = _evaluate_flagged(ctx, full, flagged)
    if ctx.is_main:
        write_parquet_atomic(single_neuron_frame(ctx, screened, full_rows), single_neuron_path(ctx.out))
    return True


def candidate_neurons(ctx: RunContext) -> np.ndarray:
    total, cap = ctx.space.total, ctx.options.critical_neurons
    if total <= cap:
        return np.arange(total)
    lang = ctx.options.identification_language
    top = {int(i) for rel in ctx.relations for i in ranking(ctx.out, rel, lang)[: ctx.k]}
    sample = np.random.default_rng([ctx.options.seed, CRITICAL_STREAM]).choice(total, cap, replace=False)
    return np.array(sorted(top | {int(i) for i in sample}))


def _prompts(ctx: RunContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the screen's sample, the exact evaluation's prompts): the identification language's effect prompts of
    trained templates; the sample is the first `critical_prompts` of each relation answered correctly."""
    lang = ctx.options.identification_language
    full = effect_prompts(ctx.prompts, ctx.options.effect_templates)
    full = full[(full.language == lang) & (full.template_kind == "train")].reset_index(drop=True)
    base = read_baseline(ctx).set_index("prompt_id").correct
    full = full.assign(correct=base.loc[full.prompt_id].to_numpy(bool))
    sample = full[full.correct].groupby("relation", sort=False).head(ctx.options.critical_prompts)
    return sample.reset_index(drop=True), full


def prompt_batch(model, tokenizer, sample: pd.DataFrame):
    """(right-padded prompt-only batch, each prompt's last position, each gold answer's first token), made once
    and read under every neuron's ablation."""
    tokens = tokenize_for_eval(tokenizer, to_prompts(sample))
    device = model_device(model)
    batch = _right_padded([t.prompt_ids for t in tokens], tokenizer.pad_token_id, device)
    gold = torch.tensor([t.gold_ids[0] for t in tokens], device=device)
    return batch, batch.attention_mask.sum(1) - 1, gold


@torch.no_grad()
def first_token_readout(model, batch, last: torch.Tensor, gold: torch.Tensor, states: PlainStates | None = None,
                        point: ResumePoint | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(greedy first token is the gold's first token, gold first-token log-prob) per prompt of a prompt_batch,
    from one prompt-only pass (under whatever ablation is active; `states`: the batch's plain pass, replayed up
    to `point`)."""
    with resumed(model, states, point, last[:, None] if can_prune(model) else None):
        out = _readout_pass(model, batch)
    return _readout(model, out, last, gold)


@torch.no_grad()
def plain_readout(model, batch, last: torch.Tensor, gold: torch.Tensor, needs: StateNeeds
                  ) -> tuple[torch.Tensor, torch.Tensor, PlainStates]:
    """first_token_readout of the plain model, and the states of its pass that `needs` asks for."""
    out, states = record_pass(model, needs, last[:, None], lambda: _readout_pass(model, batch))
    return (*_readout(model, out, last, gold), states)


def _readout_pass(model, batch):
    return (model.base_model if _plain_head(model) else model)(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=True)


def _readout(model, out, last: torch.Tensor, gold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(len(last), device=last.device)
    if _plain_head(model):  # the head on the last position only
        logits = model.get_output_embeddings()(out.last_hidden_state[rows, last])
    else:
        logits = out.logits[rows, last]
    lp = logits.float().log_softmax(-1)
    gold = gold.to(lp.device)
    return lp.argmax(-1) == gold, lp.gather(1, gold[:, None])[:, 0]


def _screen_baseline(ctx: RunContext, batch, candidates: np.ndarray
                     ) -> tuple[torch.Tensor, torch.Tensor, PlainStates | None, dict[int, ResumePoint | None]]:
    """(the plain model's readout, its pass's states, each candidate's resume point: None where the candidate's
    pass runs in full)."""
    model = ctx.lm.model
    points = {int(n): resume_point([ctx.space.neuron(int(n))], ctx.space) for n in candidates}
    if not can_replay(model):
        return (*first_token_readout(model, *batch), None, dict.fromkeys(points))
    tokens = batch[0].input_ids.numel()
    chosen = set(affordable_points(points.values(), model.config, tokens, next(model.parameters()).element_size(),
                                   RESUME_BUDGET_BYTES))
    right, lp, states = plain_readout(model, *batch, StateNeeds.of(chosen))
    return right, lp, states, {n: p if p in chosen else None for n, p in points.items()}


def _screen(ctx: RunContext, sample: pd.DataFrame, candidates: np.ndarray) -> pd.DataFrame | None:
    """Per candidate neuron and relation: sampled prompts, how many the neuron alone breaks (first token),
    the mean gold first-token log-prob drop. On the main process; None elsewhere."""
    model = ctx.lm.model
    batch = prompt_batch(model, ctx.lm.tokenizer, sample)
    base_right, base_lp, plain, points = _screen_baseline(ctx, batch, candidates)
    codes, relations = pd.factorize(sample.relation)
    group = torch.as_tensor(codes, device=base_lp.device)
    chunks = [candidates[i : i + SCREEN_CHUNK] for i in range(0, len(candidates), SCREEN_CHUNK)]

    def work(chunk):
        rows = []
        for neuron in chunk:
            point = points[int(neuron)]
            with ctx.hooks.ablate([ctx.space.neuron(int(neuron))]):
                right, lp = first_token_readout(model, *batch, plain if point else None, point)
            broken = (base_right & ~right).double()
            drop = (base_lp - lp).double()
            count = torch.zeros(len(relations), dtype=torch.float64, device=drop.device)
            per_broken, per_drop = count.index_add(0, group, broken), count.index_add(0, group, drop)
            size = count.index_add(0, group, torch.ones_like(drop))
            rows.append((int(neuron), size.cpu().numpy(), per_broken.cpu().numpy(), (per_drop / size).cpu().numpy()))
        return [(int(chunk[0]), rows)]

    with ctx.workers.bar(total=len(candidates), desc="critical neurons: single-neuron screen", unit="neuron") as bar:
        def counted(chunk):
            out = work(chunk)
            bar.update(len(chunk) * ctx.workers.world)
            return out
        merged = ctx.workers.map_gathered(chunks, counted)
    if merged is None:
        return None
    records = [dict(neuron=n, relation=rel, sample_prompts=int(size[j]), sample_broken=int(broken[j]),
                    sample_first_lp_drop=float(drop[j]))
               for key in sorted(merged) for n, size, broken, drop in merged[key]
               for j, rel in enumerate(relations)]
    return pd.DataFrame(records)


def _evaluate_flagged(ctx: RunContext, full: pd.DataFrame, flagged: list[int]) -> pd.DataFrame | None:
    """Exact accuracy of every relation with each flagged neuron off alone, on all of `full`."""
    prompts = to_prompts(full)
    tokens = tokenize_for_eval(ctx.lm.tokenizer, prompts)
    base = full.correct.to_numpy(bool)
    points = {n: resume_point([ctx.space.neuron(int(n))], ctx.space) for n in flagged}
    plain = plain_passes(ctx, tokens, points.values())
    frames = []
    with ctx.workers.bar(total=len(flagged), desc="critical neurons: exact single-neuron effects", unit="neuron") as bar:
        for neuron in flagged:
            with ctx.hooks.ablate([ctx.space.neuron(int(neuron))]):
                outcomes = evaluate(ctx, prompts, tokens, plain, points[neuron])
            if ctx.is_main:
                after = np.array([o.correct for o in outcomes], dtype=bool)
                frames.append(pd.DataFrame({"relation": full.relation.to_numpy(), "base": base, "after": after})
                              .groupby("relation", sort=False).agg(prompts=("base", "size"),
                                                                   base_accuracy=("base", "mean"),
                                                                   accuracy=("after", "mean"))
                              .reset_index().assign(neuron=int(neuron)))
            bar.update(1)
    if not ctx.is_main:
        return None
    if not frames:
        return pd.DataFrame(columns=["neuron", "relation", "prompts", "base_accuracy", "accuracy"])
    return pd.concat(frames, ignore_index=True)


def single_neuron_frame(ctx: RunContext, screened: pd.DataFrame, full: pd.DataFrame) -> pd.DataFrame:
    """Every screened neuron x relation with its neuron columns; the exact evaluation where there was one
    (prompts 0 and NaN accuracies elsewhere); drop_points = 100 x (base_accuracy - accuracy)."""
    columns = pd.DataFrame(neuron_columns(ctx.space))
    out = screened.merge(full, on=["neuron", "relation"], how="left")
    out["prompts"] = out.prompts.fillna(0).astype(np.int32)
    out["drop_points"] = 100 * (out.base_accuracy - out.accuracy)
    out = columns.merge(out, on="neuron").assign(language=ctx.options.identification_language)
    out["sample_prompts"] = out.sample_prompts.astype(np.int32)
    out["sample_broken"] = out.sample_broken.astype(np.int32)
    order = ["neuron", "layer", "module", "index", "relation", "language", "sample_prompts", "sample_broken",
             "sample_first_lp_drop", "prompts", "base_accuracy", "accuracy", "drop_points"]
    return out[order].sort_values(["neuron", "relation"], ignore_index=True)
